//! The op interpreter behind the model-based property test (`tests/model.rs`) and the cargo-fuzz
//! target (`fuzz/fuzz_targets/ops.rs`, which includes this file by `#[path]`).
//!
//! A sequence of [`Op`]s runs against a real [`AsyncMemo`] and, step by step, against a plain
//! sequential model of the contract (the crate docs, "Semantics"): a map from key to
//! `Ready { epoch, value, deadline, refresh }` or `Flight`, and a list of flights with their
//! callers. A refresh is a flight attached to the ready entry it refreshes (`refresh`), which
//! commits only onto that entry: whatever takes the entry out of its slot (invalidate, remove,
//! insert, replace, invalidate_all, expiry, eviction) detaches it, readers keep the entry while it
//! runs, and an error or panic leaves the entry. With `refresh_after`, a `get_or_init`-family
//! read of an entry due for a refresh (a time per entry, set at its commit) returns it and
//! starts one refresh with its own init, unless one is in flight; either way the entry's next
//! automatic attempt moves `after` on, and so it does from a refresh's failure (not from a
//! panic). The spawner queues the task; the interpreter adds it to the live calls, as the
//! refresh's creator whose output is `()`. Every `get_or_init`, `refresh` (and `try_` form)
//! call is a future polled by hand, on this thread, with a waker that counts its wake-ups, so a
//! run is deterministic. After every op the interpreter checks:
//!
//! * every result (hit, joined value, shared error, panic, pending) is the model's;
//! * the spawner received exactly the tasks of the automatic refreshes the model started;
//! * every init that ran is one the model expected (single-flight), with an epoch above every
//!   epoch seen before;
//! * every removal reported to the listener is one the model expected (cause, key, epoch, value),
//!   once; expired entries may be reported by any op, evictions only by ops that store an entry,
//!   only when the memo was full, and only of a ready entry (never a flight, never a newer one);
//! * `len()` equals the model's ready entries (expired ones count until reported), and never
//!   exceeds the capacity; `refreshing(k)` of every key is the model's refresh in flight;
//! * the live init futures are exactly the model's running flights (nothing leaks, nothing is
//!   dropped early), and `stats()` matches the model's counters;
//! * no lost wake-up: a pending call whose flight finished, or whose init future's gate opened,
//!   has been woken since its last poll.
//!
//! At the end every call is dropped and `invalidate_all` runs: then no value and no future may be
//! left alive. What the contract leaves open (which entry S3-FIFO evicts) is only checked for
//! what is guaranteed.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry, Epoch, ManualClock, RemovalCause};

/// Keys are `0..KEYS`.
pub const KEYS: u8 = 3;

/// Which method a call uses: `get_or_init_with_epoch`, `get_or_try_init_with_epoch`, `refresh`,
/// `try_refresh`, or `refresh_if` of the epoch the model says the key holds (or held last) when
/// the call starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Fallible,
    Refresh,
    TryRefresh,
    RefreshIf,
    /// Not a kind of [`Op::Call`]: the task an automatic refresh hands to the spawner, which
    /// the interpreter adds to the live calls (so `Poll` and `Drop` reach it). It counts as its
    /// refresh's creator, and ends (`()`) whatever the refresh's outcome.
    Task,
}

impl Kind {
    /// Whether the call receives its flight's error (`Arc<Failure>`); a task takes it and ends.
    fn fallible(self) -> bool {
        matches!(self, Kind::Fallible | Kind::TryRefresh | Kind::Task)
    }

    /// Whether the call refreshes a ready entry (or, with none, is `get_or_init`).
    fn refreshes(self) -> bool {
        matches!(self, Kind::Refresh | Kind::TryRefresh | Kind::RefreshIf)
    }
}

/// What a call's init does if it runs. `Error` in a `Plain` call produces a value instead (its
/// future cannot fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// The future is ready at its first poll with a value.
    Value,
    /// The future is ready at its first poll with an error.
    Error,
    /// The init closure itself panics (before making a future).
    PanicInClosure,
    /// The future panics at its first poll.
    PanicInFuture,
    /// The future is pending until an [`Op::Open`] opens its gate.
    Gated,
    /// The future wakes itself and returns `Pending` at its first poll (a `yield_now`), and
    /// gives a value at the next: if its driver is dropped in between, another caller must be
    /// woken to poll it (futures-rs #2706).
    Yield,
}

/// How an [`Op::Open`] completes a gated future (`Error` gives a value in a `Plain` flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Value,
    Error,
    Panic,
}

/// One step. Indices (`call`, `gate`, `back`) are taken modulo what exists, so every sequence is
/// valid and shrinks well.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Starts a call for `key` and polls it once.
    Call {
        key: u8,
        kind: Kind,
        init: Init,
    },
    /// Polls the `call`-th live call (in order of creation).
    Poll {
        call: u8,
    },
    /// Drops (cancels) the `call`-th live call.
    Drop {
        call: u8,
    },
    /// Opens the gate of the `gate`-th running gated flight.
    Open {
        gate: u8,
        outcome: Outcome,
    },
    Insert {
        key: u8,
    },
    /// `replace(key, e, v)`: with `back == 0`, `e` is the epoch the model says the key holds (or
    /// held last); otherwise the `back`-th most recent epoch seen, of any key (often stale).
    Replace {
        key: u8,
        back: u8,
    },
    /// `invalidate(key, e)` with `e` the epoch the model says the key holds (or held last).
    Invalidate {
        key: u8,
    },
    /// `invalidate(key, e)` with the `back`-th most recent epoch seen, of any key.
    InvalidateOld {
        key: u8,
        back: u8,
    },
    /// `invalidate(key, r)` with `r` the epoch of the key's refresh in flight, or of its last
    /// refresh (detached or finished: a stale one).
    InvalidateRefresh {
        key: u8,
    },
    Remove {
        key: u8,
    },
    InvalidateAll,
    Get {
        key: u8,
    },
    Epoch {
        key: u8,
    },
    Refreshing {
        key: u8,
    },
    /// Advances the manual clock by `secs` seconds.
    Advance {
        secs: u8,
    },
    PurgeExpired,
    /// `iter()`: the sorted snapshot must be exactly the model's ready, unexpired entries (the
    /// memo is quiet and has one shard), and iterating is not a read.
    Iter,
    /// `invalidate_if(predicate)`: the predicate must be shown exactly the model's ready,
    /// unexpired entries (`Some`) and the flights of keys with no entry (`None`), once each.
    InvalidateIf {
        pred: Pred,
    },
}

/// The predicates of [`Op::InvalidateIf`]: deterministic, by what they are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pred {
    /// Keys 0, 2, ...
    EvenKeys,
    /// Keys 1, 3, ...
    OddKeys,
    /// Flights only (shown `None`).
    Flights,
    /// Ready entries only (shown `Some`).
    Entries,
    All,
    /// Chooses everything, and for an odd key first inserts a replacement from inside the
    /// predicate (re-entrant): the replacement must survive (the entry judged is gone, so the
    /// compare-and-delete finds a newer epoch), the judged entry is reported `Replaced`.
    Reenter,
}

impl Pred {
    pub const ALL: [Pred; 6] = [
        Pred::EvenKeys,
        Pred::OddKeys,
        Pred::Flights,
        Pred::Entries,
        Pred::All,
        Pred::Reenter,
    ];

    fn chooses(self, key: u8, entry: bool) -> bool {
        match self {
            Pred::EvenKeys => key % 2 == 0,
            Pred::OddKeys => key % 2 == 1,
            Pred::Flights => !entry,
            Pred::Entries => entry,
            Pred::All | Pred::Reenter => true,
        }
    }

    /// Whether the predicate inserts a replacement for `key` before answering.
    fn replaces(self, key: u8) -> bool {
        self == Pred::Reenter && key % 2 == 1
    }
}

/// How the memo is built. Always one shard (so eviction is per memo) and a removal listener.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub capacity: Option<u8>,
    /// Time to live, in seconds.
    pub ttl: Option<u8>,
    /// Time to idle, in seconds.
    pub tti: Option<u8>,
    /// `refresh_after`, in seconds (0 included: every read of a committed entry is due), with
    /// a spawner that queues the task for the interpreter.
    pub refresh_after: Option<u8>,
    /// With `refresh_after`: also `refresh_after_entry`, by value id (see [`own_interval`]).
    pub per_entry: bool,
}

impl Config {
    pub const PLAIN: Config = Config {
        capacity: None,
        ttl: None,
        tti: None,
        refresh_after: None,
        per_entry: false,
    };
}

/// The `refresh_after_entry` interval of the value with this id, in seconds: `None` (the
/// memo-wide interval) for a third of the ids, 1 or 2 for the others.
fn own_interval(id: u64) -> Option<u64> {
    Some(id % 3).filter(|&n| n != 0)
}

/// Decodes a fuzzer's bytes: two bytes of config (the second's high bit turns on
/// `refresh_after`, bits 4-5 its seconds, bit 6 `refresh_after_entry`), then two bytes per op:
/// the first byte's low nibble is the op code (its high nibble picks the inspect ops under code
/// 15), the second its operands.
pub fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let opt = |b: u8| (b % 5 != 0).then_some(b % 5);
    let config = Config {
        capacity: opt(byte(0)),
        ttl: opt(byte(0) / 5),
        tti: opt(byte(1)),
        // The high bits of the second byte, added later (the committed seeds leave them 0).
        refresh_after: (byte(1) & 0x80 != 0).then_some(byte(1) / 16 % 4),
        per_entry: byte(1) & 0x40 != 0,
    };
    let ops = data
        .get(2..)
        .unwrap_or_default()
        .chunks(2)
        .take(64)
        .map(|c| {
            let (a, b) = (c[0], c.get(1).copied().unwrap_or(0));
            let key = b % KEYS;
            let kind = match (b & 0x80 != 0, b & 0x40 != 0) {
                (false, false) => Kind::Plain,
                (true, false) => Kind::Fallible,
                (false, true) => Kind::Refresh,
                (true, true) => Kind::TryRefresh,
            };
            // Bit 6 also picks the refresh-era twin of an op.
            let twin = b & 0x40 != 0;
            let kind = match (a % 16, kind) {
                (2, Kind::Refresh) => Kind::RefreshIf,
                (_, kind) => kind,
            };
            match a % 16 {
                0..=2 => Op::Call {
                    key,
                    kind,
                    init: [
                        Init::Value,
                        Init::Error,
                        Init::PanicInClosure,
                        Init::PanicInFuture,
                        Init::Gated,
                        Init::Yield,
                    ][usize::from(b / 4 % 6)],
                },
                3 | 4 => Op::Poll { call: b },
                5 => Op::Drop { call: b },
                6 => Op::Open {
                    gate: b % 8,
                    outcome: [Outcome::Value, Outcome::Error, Outcome::Panic]
                        [usize::from(b / 8 % 3)],
                },
                7 if twin => Op::Replace {
                    key,
                    back: b / 4 % 4,
                },
                7 => Op::Insert { key },
                8 if twin => Op::InvalidateRefresh { key },
                8 => Op::Invalidate { key },
                9 => Op::InvalidateOld {
                    key,
                    back: b / 4 % 8,
                },
                10 => Op::Remove { key },
                11 => Op::InvalidateAll,
                12 => Op::Get { key },
                13 if twin => Op::Refreshing { key },
                13 => Op::Epoch { key },
                14 => Op::Advance { secs: b % 4 },
                // Code 15 with a high nibble 1 (mod 4) or 2-3 (mod 4): the inspect ops, added
                // later; a plain 15 (and the committed seeds' 0x0f) stays `PurgeExpired`.
                15 if a / 16 % 4 == 1 => Op::Iter,
                15 if a / 16 % 4 >= 2 => Op::InvalidateIf {
                    pred: Pred::ALL[usize::from(b % 6)],
                },
                _ => Op::PurgeExpired,
            }
        })
        .collect();
    (config, ops)
}

const INJECTED: &str = "model: injected panic";
const CREATOR_PANIC: &str = "async-memo: the init future this call started panicked";

/// Replaces the panic hook once: injected panics (and the creator's hand-over panic) are
/// expected and silent; any other panic prints, and aborts the process if `abort_on_other` (a
/// fuzzer needs that to record a crash).
pub fn quiet_injected_panics(abort_on_other: bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let msg = payload_text(info.payload());
            if msg.contains(INJECTED) || msg.starts_with(CREATOR_PANIC) {
                return;
            }
            default(info);
            if abort_on_other {
                std::process::abort();
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

// ----------------------------------------------------------------------------------------------
// The real side: values, init futures with gates, counting wakers.

/// Counts live values and init futures.
#[derive(Default)]
struct Live {
    values: AtomicIsize,
    futures: AtomicIsize,
    next_id: AtomicU64,
}

#[derive(Debug)]
pub struct Val {
    id: u64,
    live: Arc<Live>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

impl Val {
    fn new(id: u64, live: &Arc<Live>) -> Self {
        live.values.fetch_add(1, SeqCst);
        Val {
            id,
            live: Arc::clone(live),
        }
    }
}

impl Clone for Val {
    fn clone(&self) -> Self {
        Val::new(self.id, &self.live)
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        self.live.values.fetch_sub(1, SeqCst);
    }
}

/// The error of a failing init: the id its value would have had.
#[derive(Debug)]
pub struct Failure(u64);

#[derive(Default)]
struct Gate {
    state: Mutex<(Option<Outcome>, Option<Waker>)>,
}

impl Gate {
    fn open(&self, outcome: Outcome) {
        let waker = {
            let mut state = self.state.lock().unwrap();
            state.0 = Some(outcome);
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

struct InitFut {
    id: u64,
    fallible: bool,
    now: Option<Outcome>,
    gate: Option<Arc<Gate>>,
    /// `Init::Yield` before its first poll.
    yields: bool,
    live: Arc<Live>,
}

impl InitFut {
    fn new(id: u64, fallible: bool, init: Init, live: &Arc<Live>) -> (Self, Option<Arc<Gate>>) {
        let gate = (init == Init::Gated).then(|| Arc::new(Gate::default()));
        let now = match init {
            Init::Value => Some(Outcome::Value),
            Init::Error => Some(Outcome::Error),
            Init::PanicInFuture => Some(Outcome::Panic),
            Init::Yield => Some(Outcome::Value),
            Init::Gated | Init::PanicInClosure => None,
        };
        live.futures.fetch_add(1, SeqCst);
        let fut = InitFut {
            id,
            fallible,
            now,
            gate: gate.clone(),
            yields: init == Init::Yield,
            live: Arc::clone(live),
        };
        (fut, gate)
    }
}

impl Future for InitFut {
    type Output = Result<Val, Failure>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yields {
            self.yields = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let outcome = match (&self.now, &self.gate) {
            (Some(outcome), _) => *outcome,
            (None, Some(gate)) => {
                let mut state = gate.state.lock().unwrap();
                match state.0 {
                    Some(outcome) => outcome,
                    None => {
                        state.1 = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            }
            (None, None) => unreachable!(),
        };
        Poll::Ready(match outcome {
            Outcome::Panic => panic!("{INJECTED} in the future of value {}", self.id),
            Outcome::Error if self.fallible => Err(Failure(self.id)),
            Outcome::Value | Outcome::Error => Ok(Val::new(self.id, &self.live)),
        })
    }
}

impl Drop for InitFut {
    fn drop(&mut self) {
        self.live.futures.fetch_sub(1, SeqCst);
    }
}

/// A `Plain` call's future: an `InitFut` that cannot fail.
struct PlainFut(InitFut);

impl Future for PlainFut {
    type Output = Val;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Val> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| unreachable!("a plain init never fails")))
    }
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// One init that ran: the call it belonged to, the flight's epoch, its value id and gate.
struct InitRun {
    call: usize,
    epoch: Epoch,
    id: u64,
    gate: Option<Arc<Gate>>,
    /// The entry a `refresh_if` init was given: its value id and epoch.
    base: Option<(u64, Epoch)>,
}

/// The entry a refresh flight refreshes.
fn flight_of(flight: &MFlight) -> Epoch {
    flight.refreshes.expect("a refresh flight")
}

/// A call's output; `Ok(None)` is `refresh_if`'s "the key no longer holds that entry".
type CallOut = Result<Option<Entry<Val>>, Arc<Failure>>;
type CallFut<'m> = Pin<Box<dyn Future<Output = CallOut> + 'm>>;

struct RealCall<'m> {
    fut: CallFut<'m>,
    waker: Arc<CountingWaker>,
    /// The waker's count when the last poll (which returned `Pending`) began.
    pending_at: Option<usize>,
}

/// What one poll gave.
#[derive(Debug, PartialEq, Eq)]
enum Polled {
    Pending,
    Value {
        id: u64,
        epoch: Epoch,
    },
    Error {
        id: u64,
    },
    /// `refresh_if`: the key no longer holds the entry observed.
    Gone,
    Panic(PanicKind),
    /// An automatic refresh's task ended (whatever its refresh's outcome).
    Done,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum PanicKind {
    /// The injected panic of the init or future this call was running.
    Injected,
    /// The creator's panic when another caller's poll of its future panicked.
    Creator,
    Other,
}

// ----------------------------------------------------------------------------------------------
// The model.

#[derive(Clone, Copy, Debug)]
enum Slot {
    Ready {
        epoch: Epoch,
        id: u64,
        /// Fixed deadline (time to live), in seconds since the start.
        deadline: Option<u64>,
        last_read: u64,
        /// The refresh flight attached to this entry.
        refresh: Option<usize>,
        /// When a read finds it due for an automatic refresh (`None`: never).
        refresh_at: Option<u64>,
    },
    Flight(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FState {
    Running,
    Done { ok: bool },
    Panicked,
    Abandoned,
}

#[derive(Debug)]
struct MFlight {
    key: u8,
    epoch: Epoch,
    id: u64,
    init: Init,
    fallible: bool,
    /// A refresh: the epoch of the ready entry it refreshes (and commits onto only).
    refreshes: Option<Epoch>,
    callers: BTreeSet<usize>,
    /// In its key's slot (a flight), or beside the entry it refreshes (a refresh).
    attached: bool,
    state: FState,
    gate: Option<Arc<Gate>>,
    opened: Option<Outcome>,
    /// An `Init::Yield` future has been polled once (it woke itself: it wants another poll).
    yielded: bool,
    /// The `Arc<Failure>` the first receiver of this flight's error got.
    error: Option<usize>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gate")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CState {
    Start,
    Joined { flight: usize, created: bool },
    Finished,
}

#[derive(Debug)]
struct MCall {
    key: u8,
    kind: Kind,
    init: Init,
    /// The epoch a `refresh_if` observed.
    observed: Option<Epoch>,
    state: CState,
}

#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
struct Counters {
    hits: u64,
    misses: u64,
    joins: u64,
    started: u64,
    committed: u64,
    detached: u64,
    failed: u64,
    panicked: u64,
    abandoned: u64,
    refresh_started: u64,
    refresh_committed: u64,
    refresh_detached: u64,
    refresh_failed: u64,
}

type Event = (u8, Epoch, RemovalCause, u64);

struct Model {
    config: Config,
    now: u64,
    slots: BTreeMap<u8, Slot>,
    flights: Vec<MFlight>,
    calls: Vec<MCall>,
    counters: Counters,
    /// Every epoch seen, in order (they must rise).
    epochs: Vec<Epoch>,
    /// The last epoch each key held.
    last_epoch: HashMap<u8, Epoch>,
    reported: BTreeSet<Epoch>,
    removals: HashMap<RemovalCause, u64>,
    /// Removals the current op must report: (key, epoch, cause, value id).
    expected: Vec<Event>,
    /// Whether the current op stored an entry (only such ops may evict).
    stored: bool,
    /// Inits the current op ran, in order.
    inits: Vec<InitRun>,
    /// The task calls of the automatic refreshes the current op started, in order: the
    /// spawner must have received exactly these.
    spawned: Vec<usize>,
}

impl Model {
    fn expired(&self, slot: &Slot) -> bool {
        match *slot {
            Slot::Ready {
                deadline,
                last_read,
                ..
            } => {
                let idle = self.config.tti.map(|t| last_read + u64::from(t));
                let due = match (deadline, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                due.is_some_and(|due| self.now >= due)
            }
            Slot::Flight(_) => false,
        }
    }

    fn deadline(&self) -> Option<u64> {
        self.config.ttl.map(|t| self.now + u64::from(t))
    }

    fn ready(&self, key: u8, epoch: Epoch, id: u64) -> Slot {
        let _ = key;
        let own = own_interval(id).filter(|_| self.config.per_entry);
        Slot::Ready {
            epoch,
            id,
            deadline: self.deadline(),
            last_read: self.now,
            refresh: None,
            refresh_at: (self.config.refresh_after)
                .map(|after| self.now + own.unwrap_or(u64::from(after))),
        }
    }

    /// When an automatic refresh that starts or fails now is tried again.
    fn retry_at(&self) -> Option<u64> {
        (self.config.refresh_after).map(|after| self.now + u64::from(after))
    }

    /// A refresh of the entry `of` failed without a panic: the entry's next automatic refresh
    /// waits an interval from now (semantics 20; a panic keeps the retry its start set).
    fn throttle(&mut self, key: u8, of: Epoch) {
        let retry = self.retry_at();
        if let Some(Slot::Ready {
            epoch, refresh_at, ..
        }) = self.slots.get_mut(&key)
        {
            if *epoch == of {
                *refresh_at = (*refresh_at).max(retry);
            }
        }
    }

    /// The epoch `key` holds (its entry's or its flight's), or held last.
    fn current_epoch(&self, key: u8) -> Option<Epoch> {
        match self.slots.get(&key) {
            Some(Slot::Ready { epoch, .. }) => Some(*epoch),
            Some(Slot::Flight(f)) => Some(self.flights[*f].epoch),
            None => self.last_epoch.get(&key).copied(),
        }
    }

    /// The `back`-th most recent epoch seen, of any key.
    fn older_epoch(&self, back: u8) -> Option<Epoch> {
        let n = self.epochs.len();
        (n > 0).then(|| self.epochs[n - 1 - usize::from(back) % n])
    }

    fn see_epoch(&mut self, key: u8, epoch: Epoch) -> Result<(), String> {
        if let Some(&last) = self.epochs.last() {
            if epoch <= last {
                return Err(format!(
                    "epoch {epoch} of key {key} is not above the last one issued ({last})"
                ));
            }
        }
        self.epochs.push(epoch);
        self.last_epoch.insert(key, epoch);
        Ok(())
    }

    /// Takes `key`'s slot out, expecting a report of a ready entry under `cause` (or `Expired`);
    /// a flight is detached, and so is a ready entry's refresh.
    fn vacate(&mut self, key: u8, cause: RemovalCause) -> Option<Slot> {
        let slot = self.take_slot(key)?;
        match slot {
            Slot::Ready { epoch, id, .. } => {
                let cause = if self.expired(&slot) {
                    RemovalCause::Expired
                } else {
                    cause
                };
                self.expected.push((key, epoch, cause, id));
            }
            Slot::Flight(f) => self.flights[f].attached = false,
        }
        Some(slot)
    }

    /// Takes `key`'s slot out without expecting a report; the refresh of a ready entry is
    /// detached with it (it commits only onto that entry).
    fn take_slot(&mut self, key: u8) -> Option<Slot> {
        let slot = self.slots.remove(&key)?;
        if let Slot::Ready {
            refresh: Some(r), ..
        } = slot
        {
            self.flights[r].attached = false;
        }
        Some(slot)
    }

    /// The refresh in flight beside `key`'s ready entry, as `refreshing` reports it (none once
    /// the entry expired).
    fn refreshing(&self, key: u8) -> Option<usize> {
        match self.slots.get(&key) {
            Some(s @ Slot::Ready { refresh, .. }) if !self.expired(s) => *refresh,
            _ => None,
        }
    }

    fn ready_count(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Ready { .. }))
            .count()
    }

    fn take_init(&mut self, call: usize) -> Result<InitRun, String> {
        if self.inits.is_empty() {
            return Err(format!(
                "call c{call} should have started a flight, but its init did not run"
            ));
        }
        let run = self.inits.remove(0);
        if run.call != call {
            return Err(format!(
                "call c{call} should have started a flight, but the init of c{} ran",
                run.call
            ));
        }
        Ok(run)
    }

    /// Drives flight `f` once (a poll of its init future). `Some(outcome)` if it finished.
    fn drive(&mut self, f: usize) -> Option<Outcome> {
        let flight = &self.flights[f];
        let outcome = match flight.init {
            Init::Value => Some(Outcome::Value),
            Init::Error => Some(Outcome::Error),
            Init::PanicInFuture => Some(Outcome::Panic),
            Init::Gated => flight.opened,
            Init::Yield if !flight.yielded => {
                self.flights[f].yielded = true;
                return None;
            }
            Init::Yield => Some(Outcome::Value),
            Init::PanicInClosure => unreachable!("never parked"),
        }?;
        let outcome = match outcome {
            Outcome::Error if !flight.fallible => Outcome::Value,
            o => o,
        };
        let (key, epoch, id, attached) = (flight.key, flight.epoch, flight.id, flight.attached);
        let refresh = flight.refreshes.is_some();
        if refresh {
            match outcome {
                Outcome::Value => self.commit_refresh(f),
                Outcome::Error => {
                    self.counters.failed += 1;
                    self.throttle(key, flight_of(&self.flights[f]));
                }
                Outcome::Panic => self.counters.panicked += 1,
            }
            if outcome != Outcome::Value {
                self.counters.refresh_failed += 1;
                self.free(f); // the entry stays
            }
            self.flights[f].state = match outcome {
                Outcome::Value => FState::Done { ok: true },
                Outcome::Error => FState::Done { ok: false },
                Outcome::Panic => FState::Panicked,
            };
            return Some(outcome);
        }
        match outcome {
            Outcome::Value => {
                if attached {
                    let slot = self.ready(key, epoch, id);
                    self.slots.insert(key, slot);
                    self.flights[f].attached = false;
                    self.counters.committed += 1;
                    self.stored = true;
                } else {
                    self.counters.detached += 1;
                }
                self.flights[f].state = FState::Done { ok: true };
            }
            Outcome::Error => {
                self.counters.failed += 1;
                self.free(f);
                self.flights[f].state = FState::Done { ok: false };
            }
            Outcome::Panic => {
                self.counters.panicked += 1;
                self.free(f);
                self.flights[f].state = FState::Panicked;
            }
        }
        Some(outcome)
    }

    /// A refresh's value arrived: it replaces the entry it refreshes if it is still attached to
    /// it (and the entry has not expired meanwhile: then the entry is purged, and the refresh was
    /// detached by that expiry).
    fn commit_refresh(&mut self, f: usize) {
        let (key, epoch, id) = (
            self.flights[f].key,
            self.flights[f].epoch,
            self.flights[f].id,
        );
        if !self.flights[f].attached {
            self.counters.detached += 1;
            self.counters.refresh_detached += 1;
            return;
        }
        let slot = self.slots.get(&key).copied();
        let Some(s @ Slot::Ready { refresh, .. }) = slot else {
            unreachable!("an attached refresh is beside its entry: {slot:?}")
        };
        debug_assert_eq!(refresh, Some(f));
        if self.expired(&s) {
            self.vacate(key, RemovalCause::Expired);
            self.counters.detached += 1;
            self.counters.refresh_detached += 1;
            return;
        }
        self.vacate(key, RemovalCause::Replaced);
        let slot = self.ready(key, epoch, id);
        self.slots.insert(key, slot);
        self.counters.committed += 1;
        self.counters.refresh_committed += 1;
        self.stored = true;
    }

    /// Removes flight `f` from its key if it is still there (no report: flights are not entries);
    /// a refresh is detached from its entry, which stays.
    fn free(&mut self, f: usize) {
        if !self.flights[f].attached {
            return;
        }
        self.flights[f].attached = false;
        let key = self.flights[f].key;
        match self.slots.get_mut(&key) {
            Some(Slot::Ready { refresh, .. }) if *refresh == Some(f) => *refresh = None,
            Some(Slot::Flight(g)) if *g == f => {
                self.slots.remove(&key);
            }
            slot => unreachable!("flight {f} attached, but its key holds {slot:?}"),
        }
    }

    /// A call starts flight `f` for `key` with the init that ran (`run`): a refresh of the
    /// ready entry of epoch `of`, or the key's flight.
    fn start_flight(&mut self, c: usize, run: InitRun, of: Option<Epoch>) -> usize {
        let key = self.calls[c].key;
        let (init, kind) = (self.calls[c].init, self.calls[c].kind);
        let f = self.flights.len();
        self.flights.push(MFlight {
            key,
            epoch: run.epoch,
            id: run.id,
            init,
            fallible: kind.fallible(),
            refreshes: of,
            callers: BTreeSet::from([c]),
            attached: true,
            state: FState::Running,
            gate: run.gate,
            opened: None,
            yielded: false,
            error: None,
        });
        self.counters.misses += 1;
        self.counters.started += 1;
        if of.is_some() {
            self.counters.refresh_started += 1;
        }
        self.calls[c].state = CState::Joined {
            flight: f,
            created: true,
        };
        f
    }

    /// One poll of call `c`, as the contract has it.
    fn poll(&mut self, c: usize) -> Result<Polled, String> {
        let key = self.calls[c].key;
        loop {
            match self.calls[c].state {
                CState::Finished => unreachable!("finished calls are not polled"),
                CState::Start => {
                    let slot = self.slots.get(&key).copied();
                    let refreshes = self.calls[c].kind.refreshes();
                    if let Some(observed) = self.calls[c].observed {
                        // `refresh_if`: only the ready entry observed (an expired one is purged).
                        let current = match slot {
                            Some(s @ Slot::Ready { epoch, .. }) if !self.expired(&s) => {
                                epoch == observed
                            }
                            Some(s) if self.expired(&s) => {
                                self.vacate(key, RemovalCause::Expired);
                                false
                            }
                            _ => false,
                        };
                        if !current {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Gone);
                        }
                    }
                    match slot {
                        // A refresh of a ready entry: joins its refresh, or starts one beside
                        // it. It is not a read of the entry.
                        Some(s @ Slot::Ready { epoch, refresh, .. })
                            if refreshes && !self.expired(&s) =>
                        {
                            if let Some(r) = refresh {
                                self.join(c, r);
                                continue;
                            }
                            let run = self.take_init(c)?;
                            self.see_epoch(key, run.epoch)?;
                            let Some(Slot::Ready { id, .. }) = slot else {
                                unreachable!()
                            };
                            let want = self.calls[c].observed.map(|_| (id, epoch));
                            if run.base != want {
                                return Err(format!(
                                    "c{c}'s init was given the entry {:?}, the model says {want:?}",
                                    run.base
                                ));
                            }
                            let f = self.start_flight(c, run, Some(epoch));
                            if let Some(Slot::Ready { refresh, .. }) = self.slots.get_mut(&key) {
                                *refresh = Some(f);
                            }
                            if let Some(panic) = self.panic_in_closure(c, f) {
                                return Ok(panic);
                            }
                        }
                        Some(s @ Slot::Ready { epoch, id, .. }) if !self.expired(&s) => {
                            self.touch(key);
                            self.counters.hits += 1;
                            self.calls[c].state = CState::Finished;
                            if let Some(panic) = self.auto_refresh(c, s)? {
                                return Ok(panic);
                            }
                            return Ok(Polled::Value { id, epoch });
                        }
                        Some(Slot::Flight(f)) => self.join(c, f),
                        _ => {
                            if slot.is_some() {
                                self.vacate(key, RemovalCause::Expired);
                            }
                            let run = self.take_init(c)?;
                            self.see_epoch(key, run.epoch)?;
                            let f = self.start_flight(c, run, None);
                            self.slots.insert(key, Slot::Flight(f));
                            if let Some(panic) = self.panic_in_closure(c, f) {
                                return Ok(panic);
                            }
                        }
                    }
                }
                CState::Joined { flight: f, created } => match self.flights[f].state {
                    FState::Running => match self.drive(f) {
                        None => return Ok(Polled::Pending),
                        Some(Outcome::Panic) => {
                            self.flights[f].callers.remove(&c);
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Panic(PanicKind::Injected));
                        }
                        Some(_) => {}
                    },
                    FState::Done { ok } => {
                        self.flights[f].callers.remove(&c);
                        let flight = &self.flights[f];
                        if ok {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Value {
                                id: flight.id,
                                epoch: flight.epoch,
                            });
                        }
                        if self.calls[c].kind.fallible() {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Error { id: flight.id });
                        }
                        self.calls[c].state = CState::Start;
                    }
                    FState::Panicked => {
                        self.flights[f].callers.remove(&c);
                        if created {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Panic(PanicKind::Creator));
                        }
                        self.calls[c].state = CState::Start;
                    }
                    FState::Abandoned => unreachable!("a joined caller keeps its flight alive"),
                },
            }
        }
    }

    /// The `get_or_init`-family call `c` hit the ready entry `slot`: if it is due, its next
    /// automatic attempt moves an interval on, and unless a refresh is in flight beside it,
    /// one starts with `c`'s init and its task goes to the spawner. `Some` if that init
    /// panicked in its closure: the refresh fails, and the panic goes to `c` instead of the hit.
    fn auto_refresh(&mut self, c: usize, slot: Slot) -> Result<Option<Polled>, String> {
        let Slot::Ready {
            epoch,
            refresh,
            refresh_at,
            ..
        } = slot
        else {
            unreachable!()
        };
        if refresh_at.is_none_or(|at| self.now < at) {
            return Ok(None);
        }
        let key = self.calls[c].key;
        let retry = self.retry_at();
        if let Some(Slot::Ready { refresh_at, .. }) = self.slots.get_mut(&key) {
            *refresh_at = retry;
        }
        if refresh.is_some() {
            return Ok(None); // one refresh at a time
        }
        let run = self.take_init(c)?;
        self.see_epoch(key, run.epoch)?;
        let (init, fallible) = (self.calls[c].init, self.calls[c].kind.fallible());
        let task = self.calls.len();
        self.calls.push(MCall {
            key,
            kind: Kind::Task,
            init,
            observed: None,
            state: CState::Start,
        });
        let f = self.start_flight(task, run, Some(epoch));
        self.counters.misses -= 1; // started by a hit
        self.flights[f].fallible = fallible;
        if let Some(Slot::Ready { refresh, .. }) = self.slots.get_mut(&key) {
            *refresh = Some(f);
        }
        if init != Init::PanicInClosure {
            self.spawned.push(task);
            return Ok(None);
        }
        // The reader's init closure panicked before a task existed.
        self.calls[task].state = CState::Finished;
        self.counters.panicked += 1;
        self.counters.refresh_failed += 1;
        self.free(f);
        self.flights[f].state = FState::Panicked;
        self.flights[f].callers.clear();
        Ok(Some(Polled::Panic(PanicKind::Injected)))
    }

    /// Call `c` joins flight `f` (the key's, or a refresh).
    fn join(&mut self, c: usize, f: usize) {
        self.counters.misses += 1;
        self.counters.joins += 1;
        self.flights[f].callers.insert(c);
        self.calls[c].state = CState::Joined {
            flight: f,
            created: false,
        };
    }

    /// The creator's init closure panicked (`Init::PanicInClosure`): the flight it just started
    /// fails at once, and the panic goes to the creator.
    fn panic_in_closure(&mut self, c: usize, f: usize) -> Option<Polled> {
        if self.calls[c].init != Init::PanicInClosure {
            return None;
        }
        self.counters.panicked += 1;
        if self.flights[f].refreshes.is_some() {
            self.counters.refresh_failed += 1;
        }
        self.free(f);
        self.flights[f].state = FState::Panicked;
        self.flights[f].callers.remove(&c);
        self.calls[c].state = CState::Finished;
        Some(Polled::Panic(PanicKind::Injected))
    }

    /// A read of a ready entry (time to idle restarts).
    fn touch(&mut self, key: u8) {
        let now = self.now;
        if let Some(Slot::Ready { last_read, .. }) = self.slots.get_mut(&key) {
            *last_read = now;
        }
    }

    /// `invalidate(key, epoch)`: compare-and-delete of the entry, the flight, or the refresh
    /// beside the entry (the entry stays); an expired entry is purged instead.
    fn invalidate(&mut self, key: u8, epoch: Epoch) -> bool {
        match self.slots.get(&key).copied() {
            Some(
                s @ Slot::Ready {
                    epoch: e, refresh, ..
                },
            ) => {
                if self.expired(&s) {
                    self.vacate(key, RemovalCause::Expired);
                    false
                } else if e == epoch {
                    self.vacate(key, RemovalCause::Invalidated);
                    true
                } else if let Some(r) = refresh.filter(|&r| self.flights[r].epoch == epoch) {
                    // The refresh only: the entry stays.
                    self.free(r);
                    true
                } else {
                    false
                }
            }
            Some(Slot::Flight(f)) if self.flights[f].epoch == epoch => {
                self.vacate(key, RemovalCause::Invalidated);
                true
            }
            _ => false,
        }
    }

    /// What `iter` and `invalidate_if` must show: every ready, unexpired entry (`Some((value
    /// id, epoch))`) and every flight of a key with no entry (`None`, only if `flights`).
    fn snapshot(&self, flights: bool) -> BTreeMap<u8, Option<(u64, Epoch)>> {
        self.slots
            .iter()
            .filter_map(|(&key, slot)| match *slot {
                Slot::Ready { epoch, id, .. } if !self.expired(slot) => {
                    Some((key, Some((id, epoch))))
                }
                Slot::Ready { .. } => None,
                Slot::Flight(_) => flights.then_some((key, None)),
            })
            .collect()
    }

    /// Call `c` is dropped.
    fn drop_call(&mut self, c: usize) {
        if let CState::Joined { flight: f, .. } = self.calls[c].state {
            let flight = &mut self.flights[f];
            flight.callers.remove(&c);
            if flight.state == FState::Running && flight.callers.is_empty() {
                flight.state = FState::Abandoned;
                self.counters.abandoned += 1;
                self.free(f);
            }
        }
        self.calls[c].state = CState::Finished;
    }

    /// Flights that want a poll from some caller (their future was woken), and finished
    /// flights whose pending callers each need one poll to take the outcome.
    fn wants(&self, f: usize) -> Wants {
        let flight = &self.flights[f];
        match flight.state {
            FState::Running if flight.opened.is_some() || flight.yielded => Wants::SomeCaller,
            FState::Running => Wants::Nothing,
            _ => Wants::EveryCaller,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wants {
    Nothing,
    SomeCaller,
    EveryCaller,
}

// ----------------------------------------------------------------------------------------------
// The interpreter.

/// Runs `ops` against a memo built with `config` and against the model. `Err` holds the first
/// violation, followed by a trace of the run.
pub fn run(config: Config, ops: &[Op]) -> Result<(), String> {
    let mut trace = String::new();
    let result = panic::catch_unwind(AssertUnwindSafe(|| run_inner(config, ops, &mut trace)))
        .unwrap_or_else(|payload| {
            Err(format!(
                "unexpected panic: {}",
                payload_text(payload.as_ref())
            ))
        });
    if std::env::var_os("MODEL_TRACE").is_some() {
        eprintln!("{config:?}\ntrace:\n{trace}");
    }
    result.map_err(|violation| format!("{violation}\n\n{config:?}\ntrace:\n{trace}"))
}

type Log = Arc<Mutex<Vec<Event>>>;

/// What the spawner of `refresh_after` received.
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;
type Spawned = Arc<Mutex<Vec<Task>>>;

fn run_inner(config: Config, ops: &[Op], trace: &mut String) -> Result<(), String> {
    let live = Arc::new(Live::default());
    let clock = ManualClock::new();
    let log: Log = Arc::default();
    let mut builder = AsyncMemo::<u8, Val>::builder()
        .shards(1)
        .clock(clock.clone());
    if let Some(capacity) = config.capacity {
        builder = builder.max_capacity(u64::from(capacity));
    }
    if let Some(ttl) = config.ttl {
        builder = builder.time_to_live(Duration::from_secs(u64::from(ttl)));
    }
    if let Some(tti) = config.tti {
        builder = builder.time_to_idle(Duration::from_secs(u64::from(tti)));
    }
    let spawned: Spawned = Arc::default();
    if let Some(after) = config.refresh_after {
        let queue = Arc::clone(&spawned);
        let spawn = move |task| queue.lock().unwrap().push(task);
        builder = builder.refresh_after(Duration::from_secs(u64::from(after)), spawn);
        if config.per_entry {
            builder = builder
                .refresh_after_entry(|_, v: &Val| own_interval(v.id).map(Duration::from_secs));
        }
    }
    let memo = {
        let log = Arc::clone(&log);
        builder
            .on_removal(move |key: &u8, entry: Entry<Val>, cause| {
                let event = (*key, entry.epoch(), cause, entry.value().id);
                log.lock().unwrap().push(event);
            })
            .build()
    };
    let runs: Arc<Mutex<Vec<InitRun>>> = Arc::default();
    let mut model = Model {
        config,
        now: 0,
        slots: BTreeMap::new(),
        flights: Vec::new(),
        calls: Vec::new(),
        counters: Counters::default(),
        epochs: Vec::new(),
        last_epoch: HashMap::new(),
        reported: BTreeSet::new(),
        removals: HashMap::new(),
        expected: Vec::new(),
        stored: false,
        inits: Vec::new(),
        spawned: Vec::new(),
    };
    let mut real: BTreeMap<usize, RealCall<'_>> = BTreeMap::new();

    for (i, &op) in ops.iter().enumerate() {
        let _ = write!(trace, "{i:>3}: {op:?}");
        let len_before = memo.len();
        model.stored = false;
        let note = apply(op, &memo, &log, &clock, &live, &runs, &mut model, &mut real)?;
        let _ = writeln!(trace, "  => {note}");
        adopt_tasks(&spawned, &mut model, &mut real)?;
        check(&memo, &log, &live, &runs, &mut model, &real, len_before)?;
    }

    // Wind down: drop every call, then clear the memo; nothing may be left alive.
    let _ = writeln!(trace, "end: drop every call, then invalidate_all");
    let ids: Vec<usize> = real.keys().copied().collect();
    for c in ids {
        let len_before = memo.len();
        model.stored = false;
        drop(real.remove(&c));
        model.drop_call(c);
        check(&memo, &log, &live, &runs, &mut model, &real, len_before)?;
    }
    let len_before = memo.len();
    model.stored = false;
    apply(
        Op::InvalidateAll,
        &memo,
        &log,
        &clock,
        &live,
        &runs,
        &mut model,
        &mut real,
    )?;
    check(&memo, &log, &live, &runs, &mut model, &real, len_before)?;
    if !memo.is_empty() {
        return Err(format!("len {} after invalidate_all", memo.len()));
    }
    drop(real);
    drop(memo);
    let values = live.values.load(SeqCst);
    let futures = live.futures.load(SeqCst);
    if values != 0 || futures != 0 {
        return Err(format!(
            "leak: {values} values and {futures} init futures alive after the memo was dropped"
        ));
    }
    Ok(())
}

/// Takes what the spawner received during an op: exactly one task per automatic refresh the
/// model started, which become live calls (polled and dropped by `Poll` and `Drop`).
fn adopt_tasks(
    spawned: &Spawned,
    model: &mut Model,
    real: &mut BTreeMap<usize, RealCall<'_>>,
) -> Result<(), String> {
    let tasks = std::mem::take(&mut *spawned.lock().unwrap());
    let want = std::mem::take(&mut model.spawned);
    if tasks.len() != want.len() {
        return Err(format!(
            "the spawner received {} refresh tasks, the model says {} (tasks c{want:?})",
            tasks.len(),
            want.len()
        ));
    }
    for (c, task) in want.into_iter().zip(tasks) {
        let fut: CallFut<'_> = Box::pin(async move {
            task.await;
            Ok(None)
        });
        let waker = Arc::default();
        let call = RealCall {
            fut,
            waker,
            pending_at: None,
        };
        real.insert(c, call);
    }
    Ok(())
}

/// Performs `op` on the memo and on the model; returns a note for the trace.
#[allow(clippy::too_many_arguments)]
fn apply<'m>(
    op: Op,
    memo: &'m AsyncMemo<u8, Val>,
    log: &Log,
    clock: &ManualClock,
    live: &Arc<Live>,
    runs: &Arc<Mutex<Vec<InitRun>>>,
    model: &mut Model,
    real: &mut BTreeMap<usize, RealCall<'m>>,
) -> Result<String, String> {
    let pick = |real: &BTreeMap<usize, RealCall<'m>>, i: u8| {
        (!real.is_empty()).then(|| *real.keys().nth(usize::from(i) % real.len()).unwrap())
    };
    Ok(match op {
        Op::Call { key, kind, init } => {
            if kind == Kind::Task {
                return Ok("a task is not a kind of call".into());
            }
            let key = key % KEYS;
            let observed = match kind {
                Kind::RefreshIf => match model.current_epoch(key) {
                    Some(epoch) => Some(epoch),
                    None => return Ok("no epoch to use".into()),
                },
                _ => None,
            };
            let c = model.calls.len();
            model.calls.push(MCall {
                key,
                kind,
                init,
                observed,
                state: CState::Start,
            });
            let fallible = kind.fallible();
            let (live, inits) = (Arc::clone(live), Arc::clone(runs));
            let start = move |epoch: Epoch, base: Option<(u64, Epoch)>| {
                let id = live.next_id.fetch_add(1, SeqCst);
                if init == Init::PanicInClosure {
                    inits.lock().unwrap().push(InitRun {
                        call: c,
                        epoch,
                        id,
                        gate: None,
                        base,
                    });
                    panic!("{INJECTED} in the init of value {id}");
                }
                let (fut, gate) = InitFut::new(id, fallible, init, &live);
                inits.lock().unwrap().push(InitRun {
                    call: c,
                    epoch,
                    id,
                    gate,
                    base,
                });
                fut
            };
            let fut: CallFut<'m> = match kind {
                Kind::Plain => Box::pin(async move {
                    let start = move |e| PlainFut(start(e, None));
                    Ok(Some(memo.get_or_init_with_epoch(key, start).await))
                }),
                Kind::Fallible => Box::pin(async move {
                    let start = move |e| start(e, None);
                    memo.get_or_try_init_with_epoch(key, start).await.map(Some)
                }),
                // `refresh` does not hand its init the flight's epoch: the init reads it back, a
                // re-entrant read that the poll's later results confirm.
                Kind::Refresh => Box::pin(async move {
                    let start = move || PlainFut(start(flight_epoch(memo, key), None));
                    Ok(Some(memo.refresh(key, start).await))
                }),
                Kind::TryRefresh => Box::pin(async move {
                    let start = move || start(flight_epoch(memo, key), None);
                    memo.try_refresh(key, start).await.map(Some)
                }),
                Kind::RefreshIf => Box::pin(async move {
                    let observed = observed.expect("refresh_if observes an epoch");
                    let start = move |old: Entry<Val>| {
                        let base = Some((old.value().id, old.epoch()));
                        PlainFut(start(flight_epoch(memo, key), base))
                    };
                    Ok(memo.refresh_if(key, observed, start).await)
                }),
                Kind::Task => unreachable!("returned above"),
            };
            real.insert(
                c,
                RealCall {
                    fut,
                    waker: Arc::default(),
                    pending_at: None,
                },
            );
            format!("c{c}: {}", poll_call(c, runs, model, real)?)
        }
        Op::Poll { call } => match pick(real, call) {
            Some(c) => format!("c{c}: {}", poll_call(c, runs, model, real)?),
            None => "no live call".into(),
        },
        Op::Drop { call } => match pick(real, call) {
            Some(c) => {
                drop(real.remove(&c));
                model.drop_call(c);
                format!("c{c} dropped")
            }
            None => "no live call".into(),
        },
        Op::Open { gate, outcome } => {
            let open: Vec<usize> = (0..model.flights.len())
                .filter(|&f| {
                    let flight = &model.flights[f];
                    flight.state == FState::Running
                        && flight.gate.is_some()
                        && flight.opened.is_none()
                })
                .collect();
            if open.is_empty() {
                "no closed gate".into()
            } else {
                let f = open[usize::from(gate) % open.len()];
                model.flights[f].opened = Some(outcome);
                let gate = model.flights[f].gate.clone().unwrap();
                gate.open(outcome);
                format!("gate of flight {} opened", model.flights[f].epoch)
            }
        }
        Op::Insert { key } => {
            let key = key % KEYS;
            let id = live.next_id.fetch_add(1, SeqCst);
            let entry = memo.insert(key, Val::new(id, live)).unwrap();
            model.see_epoch(key, entry.epoch())?;
            if entry.value().id != id {
                return Err(format!("insert returned value {}", entry.value().id));
            }
            model.vacate(key, RemovalCause::Replaced);
            let slot = model.ready(key, entry.epoch(), id);
            model.slots.insert(key, slot);
            model.stored = true;
            format!("v{id} at epoch {}", entry.epoch())
        }
        Op::Replace { key, back } => {
            let key = key % KEYS;
            let observed = if back == 0 {
                model.current_epoch(key)
            } else {
                model.older_epoch(back)
            };
            let Some(observed) = observed else {
                return Ok("no epoch to use".into());
            };
            let id = live.next_id.fetch_add(1, SeqCst);
            let got = memo.replace(key, observed, Val::new(id, live));
            let want = match model.slots.get(&key).copied() {
                None => Err(None),
                Some(s) if model.expired(&s) => {
                    model.vacate(key, RemovalCause::Expired);
                    Err(None)
                }
                Some(Slot::Ready { epoch, .. }) if epoch == observed => Ok(()),
                Some(Slot::Flight(f)) if model.flights[f].epoch == observed => Ok(()),
                Some(Slot::Ready { epoch, .. }) => Err(Some(epoch)),
                Some(Slot::Flight(f)) => Err(Some(model.flights[f].epoch)),
            };
            match (got, want) {
                (Ok(entry), Ok(())) => {
                    model.see_epoch(key, entry.epoch())?;
                    if entry.value().id != id {
                        return Err(format!("replace returned value {}", entry.value().id));
                    }
                    model.vacate(key, RemovalCause::Replaced);
                    let slot = model.ready(key, entry.epoch(), id);
                    model.slots.insert(key, slot);
                    model.stored = true;
                    format!(
                        "replace({key}, {observed}): v{id} at epoch {}",
                        entry.epoch()
                    )
                }
                (Err(got), Err(want)) if got == want => {
                    format!("replace({key}, {observed}) refused: the key holds {got:?}")
                }
                (got, want) => {
                    let got = got.map(|e| (e.value().id, e.epoch()));
                    return Err(format!(
                        "replace({key}, {observed}) returned {got:?}, the model says {want:?}"
                    ));
                }
            }
        }
        Op::Invalidate { key } | Op::InvalidateOld { key, .. } | Op::InvalidateRefresh { key } => {
            let key = key % KEYS;
            let epoch = match op {
                Op::InvalidateOld { back, .. } => model.older_epoch(back),
                Op::InvalidateRefresh { .. } => model
                    .flights
                    .iter()
                    .rev()
                    .find(|f| f.key == key && f.refreshes.is_some())
                    .map(|f| f.epoch),
                _ => model.current_epoch(key),
            };
            let Some(epoch) = epoch else {
                return Ok("no epoch to use".into());
            };
            let got = memo.invalidate(&key, epoch);
            let want = model.invalidate(key, epoch);
            if got != want {
                return Err(format!(
                    "invalidate({key}, {epoch}) returned {got}, the model says {want}"
                ));
            }
            format!("invalidate({key}, {epoch}) = {got}")
        }
        Op::Remove { key } => {
            let key = key % KEYS;
            let got = memo.remove(&key).map(|e| (e.value().id, e.epoch()));
            let want = match model.slots.get(&key).copied() {
                Some(s @ Slot::Ready { epoch, id, .. }) if !model.expired(&s) => Some((id, epoch)),
                _ => None,
            };
            model.vacate(key, RemovalCause::Removed);
            if got != want {
                return Err(format!(
                    "remove({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("remove({key}) = {got:?}")
        }
        Op::InvalidateAll => {
            memo.invalidate_all();
            for key in 0..KEYS {
                model.vacate(key, RemovalCause::Cleared);
            }
            "cleared".into()
        }
        Op::Get { key } => {
            let key = key % KEYS;
            let got = memo.get(&key).map(|e| (e.value().id, e.epoch()));
            let want = match model.slots.get(&key).copied() {
                Some(s @ Slot::Ready { epoch, id, .. }) => {
                    if model.expired(&s) {
                        model.vacate(key, RemovalCause::Expired);
                        model.counters.misses += 1;
                        None
                    } else {
                        model.touch(key);
                        model.counters.hits += 1;
                        Some((id, epoch))
                    }
                }
                _ => {
                    model.counters.misses += 1;
                    None
                }
            };
            if got != want {
                return Err(format!(
                    "get({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("get({key}) = {got:?}")
        }
        Op::Epoch { key } => {
            let key = key % KEYS;
            let got = memo.epoch(&key);
            let want = match model.slots.get(&key).copied() {
                Some(s @ Slot::Ready { epoch, .. }) => {
                    if model.expired(&s) {
                        model.vacate(key, RemovalCause::Expired);
                        None
                    } else {
                        Some(epoch)
                    }
                }
                Some(Slot::Flight(f)) => Some(model.flights[f].epoch),
                None => None,
            };
            if got != want {
                return Err(format!(
                    "epoch({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("epoch({key}) = {got:?}")
        }
        Op::Refreshing { key } => {
            let key = key % KEYS;
            let got = memo.refreshing(&key);
            let want = model.refreshing(key).map(|r| model.flights[r].epoch);
            if got != want {
                return Err(format!(
                    "refreshing({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("refreshing({key}) = {got:?}")
        }
        Op::Advance { secs } => {
            clock.advance(Duration::from_secs(u64::from(secs)));
            model.now += u64::from(secs);
            format!("now {} s", model.now)
        }
        Op::PurgeExpired => {
            memo.purge_expired();
            for key in 0..KEYS {
                if model.slots.get(&key).is_some_and(|s| model.expired(s)) {
                    model.vacate(key, RemovalCause::Expired);
                }
            }
            "purged".into()
        }
        Op::Iter => {
            let mut got: Vec<(u8, Option<(u64, Epoch)>)> = memo
                .iter()
                .map(|(key, entry)| (key, Some((entry.value().id, entry.epoch()))))
                .collect();
            got.sort();
            let want: Vec<_> = model.snapshot(false).into_iter().collect();
            if got != want {
                return Err(format!("iter() yielded {got:?}, the model says {want:?}"));
            }
            format!("iter() = {got:?}")
        }
        Op::InvalidateIf { pred } => invalidate_if(pred, memo, log, live, model)?,
    })
}

/// What happened inside one `invalidate_if`, in order, as seen from its predicate.
enum Step {
    /// Removal reports made since the previous predicate call (or the start): those of the
    /// previous chosen item's compare-and-delete.
    Reports(Vec<Event>),
    /// The predicate was shown `key` (an entry's value id and epoch, or a flight) and answered.
    Judged {
        key: u8,
        shown: Option<(u64, Epoch)>,
        chosen: bool,
    },
    /// The predicate inserted a replacement for `key` (value id, epoch) while the memo held
    /// `len_before` entries; the insert made these reports.
    Inserted {
        key: u8,
        id: u64,
        epoch: Epoch,
        len_before: usize,
        reports: Vec<Event>,
    },
}

/// [`Op::InvalidateIf`]: runs the real sweep, recording what its predicate was shown and did,
/// then replays that on the model: each chosen item is `invalidate(key, epoch shown)` right
/// after its predicate call, and the reports made between two predicate calls must be exactly
/// the previous compare-and-delete's (or, after an insert, the insert's).
fn invalidate_if(
    pred: Pred,
    memo: &AsyncMemo<u8, Val>,
    log: &Log,
    live: &Arc<Live>,
    model: &mut Model,
) -> Result<String, String> {
    let want: Vec<_> = model.snapshot(true).into_iter().collect();
    // The epoch of each flight shown (the predicate sees `None`; the sweep deletes by it).
    let flight_epochs: BTreeMap<u8, Epoch> = model
        .slots
        .iter()
        .filter_map(|(&key, slot)| match *slot {
            Slot::Flight(f) => Some((key, model.flights[f].epoch)),
            Slot::Ready { .. } => None,
        })
        .collect();
    let mut steps = Vec::new();
    let removed = memo.invalidate_if(|&key, entry| {
        steps.push(Step::Reports(std::mem::take(&mut *log.lock().unwrap())));
        let shown = entry.map(|e| (e.value().id, e.epoch()));
        if pred.replaces(key) {
            // Re-entrant: no lock is held while the predicate runs.
            let len_before = memo.len();
            let id = live.next_id.fetch_add(1, SeqCst);
            let stored = memo.insert(key, Val::new(id, live)).unwrap();
            steps.push(Step::Inserted {
                key,
                id,
                epoch: stored.epoch(),
                len_before,
                reports: std::mem::take(&mut *log.lock().unwrap()),
            });
        }
        let chosen = pred.chooses(key, shown.is_some());
        steps.push(Step::Judged { key, shown, chosen });
        chosen
    });
    let mut got: Vec<_> = steps
        .iter()
        .filter_map(|step| match *step {
            Step::Judged { key, shown, .. } => Some((key, shown)),
            _ => None,
        })
        .collect();
    got.sort();
    if got != want {
        return Err(format!(
            "invalidate_if({pred:?}) showed its predicate {got:?}, the model says {want:?}"
        ));
    }
    // Replay. The compare-and-delete of a chosen item runs after its predicate call, before
    // the next one; the last one's reports are left in the log for `check`.
    let mut chosen_item: Option<(u8, Option<(u64, Epoch)>)> = None;
    let mut want_removed = 0;
    let mut delete = |model: &mut Model, item: Option<(u8, Option<(u64, Epoch)>)>| {
        if let Some((key, shown)) = item {
            // The epoch the predicate was shown: the entry's, or the flight's.
            let epoch = match shown {
                Some((_, epoch)) => epoch,
                None => flight_epochs[&key],
            };
            if model.invalidate(key, epoch) {
                want_removed += 1;
            }
        }
    };
    for step in steps {
        match step {
            Step::Reports(reports) => {
                delete(model, chosen_item.take());
                model.stored = false;
                let len = model.ready_count();
                absorb(model, reports, len)?;
            }
            Step::Inserted {
                key,
                id,
                epoch,
                len_before,
                reports,
            } => {
                model.see_epoch(key, epoch)?;
                model.vacate(key, RemovalCause::Replaced);
                let slot = model.ready(key, epoch, id);
                model.slots.insert(key, slot);
                model.stored = true;
                absorb(model, reports, len_before)?;
            }
            Step::Judged { key, shown, chosen } => {
                if chosen {
                    chosen_item = Some((key, shown));
                }
            }
        }
    }
    delete(model, chosen_item.take());
    model.stored = false;
    if removed != want_removed {
        return Err(format!(
            "invalidate_if({pred:?}) removed {removed}, the model says {want_removed}"
        ));
    }
    Ok(format!("invalidate_if({pred:?}) = {removed} of {got:?}"))
}

/// The epoch of the flight a `refresh` call just created for `key`, read back by its init
/// (outside every lock): its refresh, or (no ready entry) the key's flight.
fn flight_epoch(memo: &AsyncMemo<u8, Val>, key: u8) -> Epoch {
    memo.refreshing(&key)
        .or_else(|| memo.epoch(&key))
        .expect("a refresh's init runs while its flight is in place")
}

/// Polls call `c` once, on the memo and on the model, and compares.
fn poll_call(
    c: usize,
    runs: &Arc<Mutex<Vec<InitRun>>>,
    model: &mut Model,
    real: &mut BTreeMap<usize, RealCall<'_>>,
) -> Result<String, String> {
    let call = real.get_mut(&c).expect("a live call");
    let waker = Waker::from(Arc::clone(&call.waker));
    // A wake-up during the poll counts as one after it (it asks for another poll).
    let wakes_before = call.waker.0.load(SeqCst);
    let polled = panic::catch_unwind(AssertUnwindSafe(|| {
        call.fut.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    let (got, error_ptr) = match polled {
        Ok(Poll::Pending) => (Polled::Pending, None),
        Ok(Poll::Ready(Ok(Some(entry)))) => (
            Polled::Value {
                id: entry.value().id,
                epoch: entry.epoch(),
            },
            None,
        ),
        Ok(Poll::Ready(Ok(None))) => (Polled::Gone, None),
        Ok(Poll::Ready(Err(failure))) => (
            Polled::Error { id: failure.0 },
            Some(Arc::as_ptr(&failure) as usize),
        ),
        Err(payload) => {
            let msg = payload_text(payload.as_ref());
            let kind = if msg.contains(INJECTED) {
                PanicKind::Injected
            } else if msg.starts_with(CREATOR_PANIC) {
                PanicKind::Creator
            } else {
                return Err(format!("c{c} panicked unexpectedly: {msg}"));
            };
            (Polled::Panic(kind), None)
        }
    };
    model.inits = std::mem::take(&mut *runs.lock().unwrap());
    let mut want = model.poll(c)?;
    let mut got = got;
    if model.calls[c].kind == Kind::Task {
        // A task ends with `()` whatever its refresh's outcome (a panic ends it quietly).
        if got == Polled::Gone {
            got = Polled::Done;
        }
        if want != Polled::Pending {
            want = Polled::Done;
        }
    }
    if let Some(run) = model.inits.first() {
        return Err(format!(
            "an init ran that the model did not expect (of c{}, epoch {}): single-flight broken",
            run.call, run.epoch
        ));
    }
    if got != want {
        return Err(format!("c{c} polled: {got:?}, the model says {want:?}"));
    }
    if let (Some(ptr), CState::Finished) = (error_ptr, model.calls[c].state) {
        // Every caller of a failed flight gets the same Arc.
        let Polled::Error { id } = got else {
            unreachable!()
        };
        let f = model
            .flights
            .iter()
            .position(|f| f.id == id)
            .expect("the failed flight");
        let first = *model.flights[f].error.get_or_insert(ptr);
        if first != ptr {
            return Err(format!("c{c} received another Arc of the flight's error"));
        }
    }
    let call = real.get_mut(&c).unwrap();
    if got == Polled::Pending {
        call.pending_at = Some(wakes_before);
    } else {
        real.remove(&c);
    }
    Ok(format!("{got:?}"))
}

/// The checks after every op.
fn check(
    memo: &AsyncMemo<u8, Val>,
    log: &Log,
    live: &Arc<Live>,
    runs: &Arc<Mutex<Vec<InitRun>>>,
    model: &mut Model,
    real: &BTreeMap<usize, RealCall<'_>>,
    len_before: usize,
) -> Result<(), String> {
    if let Some(run) = runs.lock().unwrap().first() {
        return Err(format!(
            "an init ran outside a poll (of c{}, epoch {})",
            run.call, run.epoch
        ));
    }
    // Removals.
    let events = std::mem::take(&mut *log.lock().unwrap());
    absorb(model, events, len_before)?;
    if let Some(capacity) = model.config.capacity {
        if memo.len() > usize::from(capacity) {
            return Err(format!("len {} above the capacity {capacity}", memo.len()));
        }
    }
    if memo.len() != model.ready_count() {
        return Err(format!(
            "len {} but the model holds {} ready entries: {:?}",
            memo.len(),
            model.ready_count(),
            model.slots
        ));
    }
    // Every entry weighs 1 (no weigher): the weighted size is the length, bounded or not.
    if memo.weighted_size() != model.ready_count() as u64 {
        return Err(format!(
            "weighted_size {} but the model holds {} ready entries",
            memo.weighted_size(),
            model.ready_count()
        ));
    }
    if memo.max_capacity() != model.config.capacity.map(u64::from) {
        return Err(format!("max_capacity {:?}", memo.max_capacity()));
    }
    // The refresh in flight beside each entry.
    for key in 0..KEYS {
        let got = memo.refreshing(&key);
        let want = model.refreshing(key).map(|r| model.flights[r].epoch);
        if got != want {
            return Err(format!(
                "refreshing({key}) is {got:?}, the model says {want:?}"
            ));
        }
    }
    // Init futures alive = running flights.
    let running = model
        .flights
        .iter()
        .filter(|f| f.state == FState::Running)
        .count();
    let futures = live.futures.load(SeqCst);
    if futures != running as isize {
        return Err(format!(
            "{futures} init futures alive, but {running} flights are running"
        ));
    }
    // No lost wake-up: a finished flight wakes each pending caller; a future that was woken
    // (its gate opened, or it yielded) has at least one pending caller woken to poll it — also
    // after the caller that was to poll it went away.
    let mut woken: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (&c, call) in real {
        let (Some(at), CState::Joined { flight: f, .. }) = (call.pending_at, model.calls[c].state)
        else {
            continue;
        };
        let was_woken = call.waker.0.load(SeqCst) > at;
        if model.wants(f) == Wants::EveryCaller && !was_woken {
            return Err(format!(
                "lost wake-up: c{c}'s flight finished but c{c} was not woken since it returned Pending"
            ));
        }
        let tally = woken.entry(f).or_default();
        tally.0 += 1;
        tally.1 += usize::from(was_woken);
    }
    for (f, (pending, woken)) in woken {
        if model.wants(f) == Wants::SomeCaller && woken == 0 {
            let epoch = model.flights[f].epoch;
            return Err(format!(
                "lost wake-up: flight {epoch} wants a poll, but none of its {pending} pending \
                 callers was woken"
            ));
        }
    }
    // Stats.
    let stats = memo.stats();
    let m = model.counters;
    let got = [
        stats.hits,
        stats.misses,
        stats.joins,
        stats.flights_started,
        stats.flights_committed,
        stats.flights_detached,
        stats.flights_failed,
        stats.flights_panicked,
        stats.flights_abandoned,
        stats.refreshes_started,
        stats.refreshes_committed,
        stats.refreshes_detached,
        stats.refreshes_failed,
    ];
    let want = [
        m.hits,
        m.misses,
        m.joins,
        m.started,
        m.committed,
        m.detached,
        m.failed,
        m.panicked,
        m.abandoned,
        m.refresh_started,
        m.refresh_committed,
        m.refresh_detached,
        m.refresh_failed,
    ];
    if got != want {
        return Err(format!(
            "stats [hits, misses, joins, started, committed, detached, failed, panicked, \
             abandoned, refreshes started, committed, detached, failed] = {got:?}, the model \
             says {want:?}"
        ));
    }
    let by_cause = |cause| model.removals.get(&cause).copied().unwrap_or(0);
    let got = [
        stats.invalidated,
        stats.removed,
        stats.replaced,
        stats.expired,
        stats.evicted,
        stats.cleared,
    ];
    let want = [
        by_cause(RemovalCause::Invalidated),
        by_cause(RemovalCause::Removed),
        by_cause(RemovalCause::Replaced),
        by_cause(RemovalCause::Expired),
        by_cause(RemovalCause::Evicted),
        by_cause(RemovalCause::Cleared),
    ];
    if got != want {
        return Err(format!("stats by cause {got:?}, the listener saw {want:?}"));
    }
    Ok(())
}

/// Matches removal reports against the model: each one the op was expected to make (then none
/// may be missing), or an expiry of an expired entry, or (by an op that stored an entry, in a
/// full bounded memo) an eviction of a ready entry; `len_before` is the memo's length before the
/// reports' cause ran.
fn absorb(model: &mut Model, events: Vec<Event>, len_before: usize) -> Result<(), String> {
    let mut evicted = 0;
    for event @ (key, epoch, cause, id) in events {
        if !model.reported.insert(epoch) {
            return Err(format!("{event:?}: epoch {epoch} reported twice"));
        }
        *model.removals.entry(cause).or_default() += 1;
        if let Some(i) = model.expected.iter().position(|e| *e == event) {
            model.expected.remove(i);
            continue;
        }
        let slot = model.slots.get(&key).copied();
        let holds =
            matches!(slot, Some(Slot::Ready { epoch: e, id: v, .. }) if e == epoch && v == id);
        let ok = match cause {
            RemovalCause::Expired => holds && model.expired(&slot.unwrap()),
            RemovalCause::Evicted => holds && model.stored && model.config.capacity.is_some(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "unexpected removal report {event:?}; the key holds {slot:?}, the op stored: {}",
                model.stored
            ));
        }
        if cause == RemovalCause::Evicted {
            evicted += 1;
        }
        model.take_slot(key);
    }
    if !model.expected.is_empty() {
        return Err(format!("removals not reported: {:?}", model.expected));
    }
    // Evictions only when full, and no more than needed.
    if let Some(capacity) = model.config.capacity {
        let room = usize::from(capacity).saturating_sub(len_before);
        if evicted > usize::from(room == 0) {
            return Err(format!(
                "{evicted} evicted with room for {room} more (len before: {len_before})"
            ));
        }
    }
    Ok(())
}
