//! Linearizability of the core operations under real concurrency: `get`, `insert`, `replace`,
//! `invalidate`, `remove`, and `get_or_init`, `refresh`, `try_refresh` and `refresh_if` with an
//! init that is ready at once (a `try_refresh` fails half of the time), `refreshing` followed by
//! `invalidate` of the refresh it reports, `iter`, and `invalidate_if` choosing one key or all.
//!
//! Each round runs 3 threads × 4 random operations on 1 or 2 keys, started together behind a
//! barrier, and records a history: every operation's invocation and response as ticks of one
//! global atomic counter, and its result. A Wing & Gong search (with Lowe's memoization of
//! visited (linearized set, state) pairs) then looks for a sequential order that respects
//! real time (an operation that responded before another was invoked comes first) and that the
//! sequential specification below accepts.
//!
//! The specification is the contract's, with the flight made explicit, because a flight is
//! observable: `remove` (or `insert`) detaches a flight in progress, whose callers still receive
//! a value that is never stored. So a `get_or_init` whose init ran (it created the flight) is two
//! events in its thread's history: `Claim` (the key held nothing; it now holds a flight with a
//! fresh epoch), between the call's invocation and the moment its init ran, and `Commit` (the
//! flight's value is stored if the key still holds that flight), between then and the response.
//! A `get_or_init` whose init did not run returns either the key's ready entry or the value of the
//! flight it joined. Every epoch a key receives is above every epoch that key held before.
//!
//! A refresh is a flight attached to the ready entry it refreshes (or, on an empty key, the key's
//! flight): a `refresh` whose init ran is a `Claim` (the key held no flight and its entry no
//! refresh; now the entry has this refresh beside it) then a `Commit` (the value replaces the
//! entry only if the refresh is still attached to it: whatever removed or replaced the entry
//! detached it, Caffeine #193) or, for a failed `try_refresh`, a `Fail` (the refresh is detached,
//! the entry stays). While a refresh runs, reads return the entry it refreshes. A refresh whose
//! init did not run joined a flight or refresh and returns its value (or shares its error). A
//! failed flight's epoch is never returned, so the specification leaves it unknown. Flights are
//! named by their value, unique per operation. `refresh_if(k, e)` is a refresh of the entry `e`
//! only: a `Claim` whose init was given exactly the entry the key holds (epoch `e`, no refresh
//! beside it), or a join of the refresh beside that entry, or `None` when the key does not hold
//! the ready entry `e`.
//!
//! `iter` is one event: a snapshot of every key. It is atomic only within one shard, so it runs
//! only in rounds whose keys share a shard (single-shard memos — every other pair of rounds —
//! or one key). `invalidate_if` is what its contract says, a snapshot and then one
//! compare-and-delete per chosen item: a `Sweep` event (what the predicate was shown for the
//! keys in scope: an entry, a flight, or nothing), then a `SweepDelete` per item, which removes
//! it only if the key still holds the entry shown, the flight shown, or the entry that flight
//! committed. A sweep of every key runs only where its snapshot is atomic (as `iter`); a sweep
//! of one key runs in every round. Its per-item results are not observable, only the count; a
//! history stands for each split of the count, and passes if one of them is linearizable.
//!
//! Rounds: `ASYNC_MEMO_LIN_ROUNDS` (default 500).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_memo::{AsyncMemo, Epoch};

const THREADS: usize = 3;
const OPS: usize = 4;

/// One global clock: every invocation, response and init run takes a tick.
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, SeqCst)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Get(u8),
    Insert(u8, u64),
    /// `replace(key, observed, value)`.
    Replace(u8, Epoch, u64),
    /// `refreshing(key)`: the epoch of the refresh beside the key's entry.
    Refreshing(u8),
    Invalidate(u8, Epoch),
    Remove(u8),
    /// A `get_or_init` whose init did not run.
    GetOrInit(u8),
    /// A `refresh` or `try_refresh` whose init did not run: it joined a flight or a refresh.
    Joined(u8),
    /// A `refresh_if(key, observed)` whose init did not run: it joined the refresh beside the
    /// entry `observed`, or (`None`) the key did not hold that ready entry.
    RefreshIf(u8, Epoch),
    /// The first half of a call whose init ran: it created a flight (`refresh == false`: a
    /// `get_or_init`, on an empty key) or a refresh (on an empty key: the key's flight; beside a
    /// ready entry: its refresh) with this value and epoch (unknown if it failed). `given`:
    /// the entry a `refresh_if` init was handed (value, epoch), which must be the key's.
    Claim {
        key: u8,
        value: u64,
        epoch: Option<Epoch>,
        refresh: bool,
        given: Option<Stored>,
    },
    /// The second half: the flight's value is committed if it is still attached (in the key's
    /// slot, or beside the entry it refreshes).
    Commit(u8, u64, Epoch),
    /// The second half of a failed `try_refresh`: its flight or refresh is detached.
    Fail(u8, u64),
    /// `iter()`, collected. Only in rounds where it is one critical section (see `worker`).
    Iter,
    /// The snapshot half of an `invalidate_if` whose predicate chooses `scope` (one key) or
    /// every key (`None`): what it was shown for the keys in scope, between its invocation and
    /// the predicate's call for them. Every item shown in scope is chosen.
    Sweep {
        scope: Option<u8>,
    },
    /// The compare-and-delete of what the sweep (named by its invocation tick) was shown for
    /// `key`, between the predicate's return for it and the next predicate call (or the
    /// response). Its result is not observed one by one: the history holds the sweep's count
    /// (`Ret::Removed`), and `resolutions` splits it into `Ret::Bool`s every possible way.
    SweepDelete {
        key: u8,
        sweep: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ret {
    Entry(Option<(u64, Epoch)>),
    Epoch(Epoch),
    Bool(bool),
    Replaced(Result<Epoch, Option<Epoch>>),
    Refreshing(Option<Epoch>),
    /// The error of the failed flight with this value, shared by a joined `try_refresh`.
    Error(u64),
    Shown(Shown),
    /// What `invalidate_if` returned (before `resolutions`).
    Removed(usize),
    Unit,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    thread: usize,
    call: u64,
    ret_at: u64,
    op: Op,
    ret: Ret,
}

/// A ready entry: its value and epoch.
type Stored = (u64, Epoch);

/// A flight or refresh: its value, and its epoch (unknown for one that fails).
type Flight = (u64, Option<Epoch>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Empty,
    /// A ready entry, and the refresh attached to it.
    Ready(u64, Epoch, Option<Flight>),
    Flight(Flight),
}

/// The sequential specification's state: per key, its slot, the highest epoch it ever held,
/// and, per thread, what that thread's `invalidate_if` in progress was shown for the key (the
/// slot it will compare-and-delete).
type State = Vec<(Slot, Option<Epoch>, [Option<Slot>; THREADS])>;

/// What `iter` yielded, or an `invalidate_if` predicate was shown, for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Seen {
    Entry(u64, Epoch),
    /// A flight (the predicate is shown `None`).
    Flight,
}

/// Per key (at most 2): what was seen; `None` for nothing.
type Shown = [Option<Seen>; 2];

/// Applies `op` to `state` if the specification allows `ret`; returns the next state.
fn step(state: &State, thread: usize, op: Op, ret: Ret) -> Option<State> {
    let mut next = state.clone();
    let key = |k: u8| usize::from(k);
    let fresh = |state: &State, k: u8, e: Epoch| state[key(k)].1.is_none_or(|max| e > max);
    // The epoch a slot holds; `None` for an empty key, and for a flight whose epoch is unknown.
    let current = |slot: Slot| match slot {
        Slot::Ready(_, e, _) | Slot::Flight((_, Some(e))) => Some(e),
        Slot::Flight((_, None)) | Slot::Empty => None,
    };
    match (op, ret) {
        (Op::Get(k), Ret::Entry(got)) => {
            let want = match state[key(k)].0 {
                Slot::Ready(v, e, _) => Some((v, e)),
                _ => None,
            };
            (got == want).then_some(next)
        }
        (Op::Insert(k, v), Ret::Epoch(e)) => {
            if !fresh(state, k, e) {
                return None;
            }
            next[key(k)].0 = Slot::Ready(v, e, None);
            next[key(k)].1 = Some(e);
            Some(next)
        }
        (Op::Replace(k, observed, v), Ret::Replaced(Ok(e))) => {
            if current(state[key(k)].0) != Some(observed) || !fresh(state, k, e) {
                return None;
            }
            next[key(k)].0 = Slot::Ready(v, e, None);
            next[key(k)].1 = Some(e);
            Some(next)
        }
        (Op::Replace(k, observed, _), Ret::Replaced(Err(got))) => {
            let ok = match state[key(k)].0 {
                Slot::Empty => got.is_none(),
                // A failed flight's epoch is unknown, but newer than what the key held before.
                Slot::Flight((_, None)) => got.is_some_and(|e| e != observed && fresh(state, k, e)),
                slot => got == current(slot) && got != Some(observed),
            };
            ok.then_some(next)
        }
        (Op::Invalidate(k, observed), Ret::Bool(got)) => {
            let want = match state[key(k)].0 {
                Slot::Ready(_, e, _) | Slot::Flight((_, Some(e))) if e == observed => {
                    next[key(k)].0 = Slot::Empty;
                    true
                }
                // `invalidate(k, refreshing(k))`: the refresh only; the entry stays.
                Slot::Ready(v, e, Some((_, Some(r)))) if r == observed => {
                    next[key(k)].0 = Slot::Ready(v, e, None);
                    true
                }
                // A refresh that will fail has an unknown epoch: it may be the one observed.
                Slot::Ready(v, e, Some((_, None))) if got && fresh(state, k, observed) => {
                    next[key(k)].0 = Slot::Ready(v, e, None);
                    true
                }
                _ => false,
            };
            (got == want).then_some(next)
        }
        (Op::Refreshing(k), Ret::Refreshing(got)) => {
            let ok = match state[key(k)].0 {
                Slot::Ready(_, _, Some((_, Some(r)))) => got == Some(r),
                Slot::Ready(_, _, Some((_, None))) => got.is_some_and(|r| fresh(state, k, r)),
                _ => got.is_none(),
            };
            ok.then_some(next)
        }
        (Op::Remove(k), Ret::Entry(got)) => {
            let want = match state[key(k)].0 {
                Slot::Ready(v, e, _) => Some((v, e)),
                _ => None,
            };
            next[key(k)].0 = Slot::Empty;
            (got == want).then_some(next)
        }
        (Op::GetOrInit(k), Ret::Entry(Some(got))) => match state[key(k)].0 {
            Slot::Ready(v, e, _) | Slot::Flight((v, Some(e))) => ((v, e) == got).then_some(next),
            _ => None,
        },
        (Op::Joined(k), Ret::Entry(Some((v, e)))) => match state[key(k)].0 {
            Slot::Flight(f) | Slot::Ready(_, _, Some(f)) => (f == (v, Some(e))).then_some(next),
            _ => None,
        },
        (Op::RefreshIf(k, observed), Ret::Entry(got)) => match (state[key(k)].0, got) {
            (Slot::Ready(_, e, Some((v, Some(r)))), Some(got)) if e == observed => {
                ((v, r) == got).then_some(next)
            }
            (Slot::Ready(_, e, _), None) if e == observed => None,
            (_, None) => Some(next),
            _ => None,
        },
        (Op::Joined(k), Ret::Error(v)) => match state[key(k)].0 {
            Slot::Flight((f, None)) | Slot::Ready(_, _, Some((f, None))) => {
                (f == v).then_some(next)
            }
            _ => None,
        },
        (
            Op::Claim {
                key: k,
                value,
                epoch,
                refresh,
                given,
            },
            Ret::Unit,
        ) => {
            if epoch.is_some_and(|e| !fresh(state, k, e)) {
                return None;
            }
            let flight = (value, epoch);
            next[key(k)].0 = match state[key(k)].0 {
                Slot::Ready(v, e, None) if given.is_some() => {
                    (given == Some((v, e))).then_some(Slot::Ready(v, e, Some(flight)))?
                }
                _ if given.is_some() => return None, // it would have joined, or found none
                Slot::Empty => Slot::Flight(flight),
                Slot::Ready(v, e, None) if refresh => Slot::Ready(v, e, Some(flight)),
                _ => return None, // it would have hit, or joined
            };
            if epoch.is_some() {
                next[key(k)].1 = epoch;
            }
            Some(next)
        }
        (Op::Commit(k, value, e), Ret::Unit) => {
            match state[key(k)].0 {
                Slot::Flight((v, _)) | Slot::Ready(_, _, Some((v, _))) if v == value => {
                    next[key(k)].0 = Slot::Ready(value, e, None);
                }
                _ => {} // detached: its callers got the value, the key did not
            }
            Some(next)
        }
        (Op::Fail(k, value), Ret::Unit) => {
            match state[key(k)].0 {
                Slot::Flight((v, _)) if v == value => next[key(k)].0 = Slot::Empty,
                Slot::Ready(r, e, Some((v, _))) if v == value => {
                    next[key(k)].0 = Slot::Ready(r, e, None);
                }
                _ => {}
            }
            Some(next)
        }
        (Op::Iter, Ret::Shown(got)) => {
            let want = |slot: Slot| match slot {
                Slot::Ready(v, e, _) => Some(Seen::Entry(v, e)),
                _ => None,
            };
            (0..state.len())
                .all(|k| got[k] == want(state[k].0))
                .then_some(next)
        }
        (Op::Sweep { scope }, Ret::Shown(got)) => {
            for k in (0..state.len()).filter(|&k| scope.is_none_or(|s| key(s) == k)) {
                let slot = state[k].0;
                let want = match slot {
                    Slot::Ready(v, e, _) => Some(Seen::Entry(v, e)),
                    Slot::Flight(_) => Some(Seen::Flight),
                    Slot::Empty => None,
                };
                if got[k] != want {
                    return None;
                }
                next[k].2[thread] = want.map(|_| slot);
            }
            Some(next)
        }
        (Op::SweepDelete { key: k, .. }, Ret::Bool(got)) => {
            let shown = next[key(k)].2[thread].take()?;
            // Compare-and-delete by the epoch shown: the same entry, the same flight, or the
            // entry that flight committed (it has the flight's epoch).
            let same = match (shown, state[key(k)].0) {
                (Slot::Ready(_, e, _), Slot::Ready(_, now, _)) => e == now,
                (Slot::Flight((v, _)), Slot::Flight((now, _))) => v == now,
                (Slot::Flight((v, Some(e))), Slot::Ready(now, epoch, _)) => (v, e) == (now, epoch),
                _ => false,
            };
            if same {
                next[key(k)].0 = Slot::Empty;
            }
            (got == same).then_some(next)
        }
        _ => None,
    }
}

/// The histories `history` stands for: each sweep's count of removals split into the results
/// of its compare-and-deletes, every way the count allows (a sweep in these rounds deletes at
/// most 2 items, so at most 2 ways each).
fn resolutions(history: &[Event]) -> Vec<Vec<Event>> {
    let mut out = vec![history.to_vec()];
    let sweeps: HashSet<u64> = history
        .iter()
        .filter_map(|e| match e.op {
            Op::SweepDelete { sweep, .. } => Some(sweep),
            _ => None,
        })
        .collect();
    for sweep in sweeps {
        let items: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].op, Op::SweepDelete { sweep: s, .. } if s == sweep))
            .collect();
        let Ret::Removed(count) = history[items[0]].ret else {
            unreachable!("a sweep's deletes carry its count")
        };
        let mut next = Vec::new();
        for partial in &out {
            for mask in 0u32..1 << items.len() {
                if mask.count_ones() as usize != count {
                    continue;
                }
                let mut h = partial.clone();
                for (bit, &i) in items.iter().enumerate() {
                    h[i].ret = Ret::Bool(mask & 1 << bit != 0);
                }
                next.push(h);
            }
        }
        out = next;
    }
    out
}

/// Wing & Gong with memoization: is there a real-time-respecting order the spec accepts?
fn linearizable(history: &[Event], keys: usize) -> bool {
    assert!(history.len() <= 64);
    let mut seen: HashSet<(u64, State)> = HashSet::new();
    let start: State = vec![(Slot::Empty, None, [None; THREADS]); keys];
    search(history, 0, start, &mut seen)
}

fn search(history: &[Event], done: u64, state: State, seen: &mut HashSet<(u64, State)>) -> bool {
    if done.count_ones() as usize == history.len() {
        return true;
    }
    if !seen.insert((done, state.clone())) {
        return false;
    }
    let pending = |i: usize| done & (1 << i) == 0;
    // An event can go next only if no pending event responded before it was invoked.
    let horizon = (0..history.len())
        .filter(|&i| pending(i))
        .map(|i| history[i].ret_at)
        .min()
        .unwrap();
    for i in (0..history.len()).filter(|&i| pending(i)) {
        let event = &history[i];
        if event.call > horizon {
            continue;
        }
        if let Some(next) = step(&state, event.thread, event.op, event.ret) {
            if search(history, done | (1 << i), next, seen) {
                return true;
            }
        }
    }
    false
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// Spins `n` times: an init that takes a moment, so that other threads meet its flight.
fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// One thread's part of a round. `atomic`: the memo's keys all live in one shard (a
/// single-shard memo, or one key), so `iter` and an `invalidate_if` snapshot of every key are
/// one critical section (one shard's copy under its read lock) and can be checked as atomic;
/// otherwise `iter` is left out and `invalidate_if` chooses one key (whose shard's copy is
/// atomic).
fn worker(
    memo: &AsyncMemo<u8, u64>,
    thread: usize,
    seed: u64,
    keys: u64,
    atomic: bool,
    seen: &Mutex<Vec<Epoch>>,
) -> Vec<Event> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut events = Vec::new();
    for i in 0..OPS {
        let k = rng.below(keys) as u8;
        let value = (thread * 100 + i) as u64 + 1;
        let choice = rng.below(20);
        let observed = {
            let seen = seen.lock().unwrap();
            (!seen.is_empty()).then(|| seen[rng.below(seen.len() as u64) as usize])
        };
        // A few spins of jitter, so the threads' operations interleave in varied ways.
        spin(rng.below(64));
        let spins = rng.below(256);
        let fail = rng.below(2) == 0;
        let call = tick();
        let (op, ret) = match (choice, observed) {
            (0..=1, _) => (
                Op::Get(k),
                Ret::Entry(memo.get(&k).map(|e| (*e.value(), e.epoch()))),
            ),
            (2..=3, _) => (
                Op::Insert(k, value),
                Ret::Epoch(memo.insert(k, value).unwrap().epoch()),
            ),
            (4, Some(e)) => (
                Op::Replace(k, e, value),
                Ret::Replaced(memo.replace(k, e, value).map(|e| e.epoch())),
            ),
            (5..=6, Some(e)) => (Op::Invalidate(k, e), Ret::Bool(memo.invalidate(&k, e))),
            (7, _) => (
                Op::Remove(k),
                Ret::Entry(memo.remove(&k).map(|e| (*e.value(), e.epoch()))),
            ),
            (17, _) if atomic => {
                let mut got: Shown = [None; 2];
                for (k, entry) in memo.iter() {
                    got[usize::from(k)] = Some(Seen::Entry(*entry.value(), entry.epoch()));
                    seen.lock().unwrap().push(entry.epoch());
                }
                (Op::Iter, Ret::Shown(got))
            }
            (15..=16, _) => {
                // `invalidate_if` choosing one key, or (16, when atomic) every key. Each
                // predicate call is ticked on entry and on return: the snapshot precedes the
                // call for a key, each compare-and-delete lies between its item's return and
                // the next call (or the response).
                let scope = (choice == 15 || !atomic).then_some(k);
                let mut judged = Vec::new();
                let removed = memo.invalidate_if(|&key, entry| {
                    let at = tick();
                    let shown = match entry {
                        Some(e) => Seen::Entry(*e.value(), e.epoch()),
                        None => Seen::Flight,
                    };
                    let chosen = scope.is_none_or(|s| s == key);
                    judged.push((key, shown, chosen, at, tick()));
                    chosen
                });
                let ret_at = tick();
                let mut shown: Shown = [None; 2];
                for &(key, seen, chosen, ..) in &judged {
                    if chosen {
                        shown[usize::from(key)] = Some(seen);
                    }
                }
                let snapshot_by = judged.iter().find(|j| j.2).map_or(ret_at, |j| j.3);
                events.push(Event {
                    thread,
                    call,
                    ret_at: snapshot_by,
                    op: Op::Sweep { scope },
                    ret: Ret::Shown(shown),
                });
                for (i, &(key, _, chosen, _, returned)) in judged.iter().enumerate() {
                    if chosen {
                        events.push(Event {
                            thread,
                            call: returned,
                            ret_at: judged.get(i + 1).map_or(ret_at, |j| j.3),
                            op: Op::SweepDelete { key, sweep: call },
                            ret: Ret::Removed(removed),
                        });
                    }
                }
                continue;
            }
            (18..=19, _) => {
                // `refresh_if` of the epoch `get` reports (18: often current), or (19) of one
                // seen before (often stale). The hint read is not an event of the history.
                let observed = match choice {
                    18 => memo.get(&k).map(|e| e.epoch()).or(observed),
                    _ => observed,
                };
                let Some(observed) = observed else {
                    continue;
                };
                let call = tick();
                let ran: Arc<Mutex<Option<(u64, Stored)>>> = Arc::default();
                let started = Arc::clone(&ran);
                let init = move |old: async_memo::Entry<u64>| {
                    *started.lock().unwrap() = Some((tick(), (*old.value(), old.epoch())));
                    async move {
                        spin(spins);
                        value
                    }
                };
                let got = futures::executor::block_on(memo.refresh_if(k, observed, init));
                let ret_at = tick();
                let got = got.map(|entry| (*entry.value(), entry.epoch()));
                if let Some((_, e)) = got {
                    seen.lock().unwrap().push(e);
                }
                let ev = |call, ret_at, op, ret| Event {
                    thread,
                    call,
                    ret_at,
                    op,
                    ret,
                };
                match *ran.lock().unwrap() {
                    Some((at, given)) => {
                        let (v, e) = got.expect("the creator of a refresh receives its value");
                        assert_eq!(v, value, "the creator receives its own value");
                        let claim = Op::Claim {
                            key: k,
                            value,
                            epoch: Some(e),
                            refresh: true,
                            given: Some(given),
                        };
                        events.push(ev(call, at, claim, Ret::Unit));
                        events.push(ev(at, ret_at, Op::Commit(k, value, e), Ret::Unit));
                    }
                    None => events.push(ev(
                        call,
                        ret_at,
                        Op::RefreshIf(k, observed),
                        Ret::Entry(got),
                    )),
                }
                continue;
            }
            (13..=14, _) => {
                // The recipe after a change: detach the refresh in flight, if any.
                let refreshing = memo.refreshing(&k);
                let ret_at = tick();
                events.push(Event {
                    thread,
                    call,
                    ret_at,
                    op: Op::Refreshing(k),
                    ret: Ret::Refreshing(refreshing),
                });
                if let Some(r) = refreshing {
                    let call = tick();
                    let got = memo.invalidate(&k, r);
                    let ret_at = tick();
                    events.push(Event {
                        thread,
                        call,
                        ret_at,
                        op: Op::Invalidate(k, r),
                        ret: Ret::Bool(got),
                    });
                }
                continue;
            }
            (8..=10, _) => {
                // `refresh`, or (10) a `try_refresh` that fails half of the time.
                let ran: Arc<Mutex<Option<u64>>> = Arc::default();
                let started = Arc::clone(&ran);
                let init = move || {
                    *started.lock().unwrap() = Some(tick());
                    async move {
                        spin(spins);
                        if choice == 10 && fail {
                            Err(value)
                        } else {
                            Ok(value)
                        }
                    }
                };
                let got = if choice == 10 {
                    futures::executor::block_on(memo.try_refresh(k, init))
                } else {
                    let init = move || {
                        let future = init();
                        async move { future.await.expect("a refresh that cannot fail") }
                    };
                    Ok(futures::executor::block_on(memo.refresh(k, init)))
                };
                let ret_at = tick();
                let ran = *ran.lock().unwrap();
                let got = got.map(|entry| (*entry.value(), entry.epoch()));
                if let Ok((_, e)) = got {
                    seen.lock().unwrap().push(e);
                }
                let ev = |call, ret_at, op, ret| Event {
                    thread,
                    call,
                    ret_at,
                    op,
                    ret,
                };
                match (ran, got) {
                    (Some(at), got) => {
                        let epoch = match got {
                            Ok((v, e)) => {
                                assert_eq!(v, value, "the creator receives its own value");
                                Some(e)
                            }
                            Err(error) => {
                                assert_eq!(*error, value, "the creator receives its own error");
                                None
                            }
                        };
                        let claim = Op::Claim {
                            key: k,
                            value,
                            epoch,
                            refresh: true,
                            given: None,
                        };
                        events.push(ev(call, at, claim, Ret::Unit));
                        let end = match epoch {
                            Some(e) => Op::Commit(k, value, e),
                            None => Op::Fail(k, value),
                        };
                        events.push(ev(at, ret_at, end, Ret::Unit));
                    }
                    (None, Ok(got)) => {
                        events.push(ev(call, ret_at, Op::Joined(k), Ret::Entry(Some(got))));
                    }
                    (None, Err(error)) => {
                        events.push(ev(call, ret_at, Op::Joined(k), Ret::Error(*error)));
                    }
                }
                continue;
            }
            _ => {
                let ran: Arc<Mutex<Option<(u64, Epoch)>>> = Arc::default();
                let entry = {
                    let ran = Arc::clone(&ran);
                    futures::executor::block_on(memo.get_or_init_with_epoch(k, move |e| {
                        *ran.lock().unwrap() = Some((tick(), e));
                        async move {
                            spin(spins);
                            value
                        }
                    }))
                };
                let ret_at = tick();
                let got = (*entry.value(), entry.epoch());
                seen.lock().unwrap().push(entry.epoch());
                match *ran.lock().unwrap() {
                    Some((at, e)) => {
                        assert_eq!(got, (value, e), "the creator receives its own value");
                        events.push(Event {
                            thread,
                            call,
                            ret_at: at,
                            op: Op::Claim {
                                key: k,
                                value,
                                epoch: Some(e),
                                refresh: false,
                                given: None,
                            },
                            ret: Ret::Unit,
                        });
                        events.push(Event {
                            thread,
                            call: at,
                            ret_at,
                            op: Op::Commit(k, value, e),
                            ret: Ret::Unit,
                        });
                    }
                    None => events.push(Event {
                        thread,
                        call,
                        ret_at,
                        op: Op::GetOrInit(k),
                        ret: Ret::Entry(Some(got)),
                    }),
                }
                continue;
            }
        };
        let ret_at = tick();
        match ret {
            Ret::Entry(Some((_, e))) | Ret::Epoch(e) | Ret::Replaced(Ok(e)) => {
                seen.lock().unwrap().push(e);
            }
            _ => {}
        }
        events.push(Event {
            thread,
            call,
            ret_at,
            op,
            ret,
        });
    }
    events
}

fn rounds() -> u64 {
    std::env::var("ASYNC_MEMO_LIN_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

#[test]
fn concurrent_histories_are_linearizable() {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let rounds = rounds();
        let mut overlapping = 0;
        let mut flights = 0;
        let (mut joins, mut detached) = (0, 0);
        let (mut refreshes, mut refreshes_detached) = (0, 0);
        let (mut iters, mut sweeps, mut swept) = (0, 0, 0);
        let (mut refresh_ifs, mut refresh_ifs_started) = (0, 0);
        for round in 0..rounds {
            let keys = 1 + round % 2;
            // Every other pair of rounds runs on one shard: there `iter` and a sweep of every
            // key are atomic (one shard's copy), and are checked as such. The default memo
            // spreads the keys over several shards, where only one key's snapshot is atomic.
            let single_shard = round / 2 % 2 == 0;
            let memo: AsyncMemo<u8, u64> = if single_shard {
                AsyncMemo::builder().shards(1).build()
            } else {
                AsyncMemo::new()
            };
            let atomic = single_shard || keys == 1;
            let seen = Mutex::new(Vec::new());
            // Started by spinning on a counter rather than parking at a barrier: parked threads
            // wake one by one, too far apart for their operations to overlap.
            let ready = AtomicU64::new(0);
            let mut history: Vec<Event> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (memo, seen, ready) = (&memo, &seen, &ready);
                        s.spawn(move || {
                            ready.fetch_add(1, SeqCst);
                            while ready.load(SeqCst) < THREADS as u64 {
                                std::thread::yield_now();
                            }
                            worker(memo, t, round * 7919 + t as u64 + 1, keys, atomic, seen)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            let stats = memo.stats();
            joins += stats.joins;
            detached += stats.flights_detached;
            history.sort_by_key(|e| e.call);
            // Epochs are unique: no two stores (or flights) share one.
            let mut fresh = HashSet::new();
            for e in &history {
                let epoch = match (e.op, e.ret) {
                    (
                        Op::Claim {
                            epoch: Some(epoch), ..
                        },
                        _,
                    )
                    | (Op::Insert(..), Ret::Epoch(epoch))
                    | (Op::Replace(..), Ret::Replaced(Ok(epoch))) => epoch,
                    _ => continue,
                };
                assert!(
                    fresh.insert(epoch),
                    "epoch {epoch} issued twice: {history:#?}"
                );
            }
            overlapping += usize::from(
                history
                    .windows(2)
                    .any(|w| w[0].thread != w[1].thread && w[1].call < w[0].ret_at),
            );
            flights += history
                .iter()
                .filter(|e| matches!(e.op, Op::GetOrInit(_) | Op::Joined(_) | Op::RefreshIf(..)))
                .count();
            refreshes += stats.refreshes_started;
            refreshes_detached += stats.refreshes_detached;
            iters += history.iter().filter(|e| e.op == Op::Iter).count();
            for e in &history {
                match e.op {
                    Op::RefreshIf(..) => refresh_ifs += 1,
                    Op::Claim { given: Some(_), .. } => {
                        (refresh_ifs, refresh_ifs_started) =
                            (refresh_ifs + 1, refresh_ifs_started + 1)
                    }
                    _ => {}
                }
            }
            sweeps += history
                .iter()
                .filter(|e| matches!(e.op, Op::Sweep { .. }))
                .count();
            swept += stats.invalidated;
            assert!(
                resolutions(&history)
                    .iter()
                    .any(|h| linearizable(h, keys as usize)),
                "round {round}: not linearizable:\n{history:#?}"
            );
        }
        eprintln!(
            "linearizability: {rounds} rounds, {overlapping} with overlapping operations, \
             {flights} get_or_init or refresh calls that joined or hit ({joins} joined a \
             flight), {detached} flights detached while in progress; {refreshes} refreshes \
             started, {refreshes_detached} detached; {refresh_ifs} refresh_if \
             ({refresh_ifs_started} started a refresh); {iters} iter, {sweeps} invalidate_if \
             ({swept} entries invalidated in all)"
        );
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(payload) = body.join() {
                std::panic::resume_unwind(payload);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang: the rounds did not finish in 120 s"),
    }
}

/// The checker itself: it accepts what the spec allows and rejects what it does not.
#[test]
fn the_checker_rejects_what_the_spec_forbids() {
    let e = |n| {
        // Real epochs, in rising order.
        let memo: AsyncMemo<u8, u64> = AsyncMemo::new();
        (0..n)
            .map(|i| memo.insert(0, i).unwrap().epoch())
            .collect::<Vec<_>>()
    };
    let epochs = e(4);
    let claim = |value, epoch: Epoch, refresh| Op::Claim {
        key: 0,
        value,
        epoch: Some(epoch),
        refresh,
        given: None,
    };
    let ev = |thread, call, ret_at, op, ret| Event {
        thread,
        call,
        ret_at,
        op,
        ret,
    };
    // Sequential insert then get: fine.
    let ok = [
        ev(0, 0, 1, Op::Insert(0, 7), Ret::Epoch(epochs[1])),
        ev(1, 2, 3, Op::Get(0), Ret::Entry(Some((7, epochs[1])))),
    ];
    assert!(linearizable(&ok, 1));
    // A get that sees a value before it was inserted (no overlap): rejected.
    let early = [
        ev(1, 0, 1, Op::Get(0), Ret::Entry(Some((7, epochs[1])))),
        ev(0, 2, 3, Op::Insert(0, 7), Ret::Epoch(epochs[1])),
    ];
    assert!(!linearizable(&early, 1));
    // ...but fine if they overlap.
    let overlap = [
        ev(1, 0, 3, Op::Get(0), Ret::Entry(Some((7, epochs[1])))),
        ev(0, 1, 2, Op::Insert(0, 7), Ret::Epoch(epochs[1])),
    ];
    assert!(linearizable(&overlap, 1));
    // A stale invalidate that succeeds: rejected.
    let stale = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(0, 2, 3, Op::Insert(0, 2), Ret::Epoch(epochs[1])),
        ev(1, 4, 5, Op::Invalidate(0, epochs[0]), Ret::Bool(true)),
    ];
    assert!(!linearizable(&stale, 1));
    // A detached flight's value resurrected after a remove: rejected.
    let resurrected = [
        ev(0, 0, 1, claim(5, epochs[0], false), Ret::Unit),
        ev(1, 2, 3, Op::Remove(0), Ret::Entry(None)),
        ev(0, 4, 5, Op::Commit(0, 5, epochs[0]), Ret::Unit),
        ev(1, 6, 7, Op::Get(0), Ret::Entry(Some((5, epochs[0])))),
    ];
    assert!(!linearizable(&resurrected, 1));
    // Epochs of a key must rise: an insert that goes back in time is rejected.
    let backwards = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[2])),
        ev(0, 2, 3, Op::Insert(0, 2), Ret::Epoch(epochs[1])),
    ];
    assert!(!linearizable(&backwards, 1));
    // Two flights at once for one key (single-flight broken): rejected.
    let two_flights = [
        ev(0, 0, 3, claim(1, epochs[0], false), Ret::Unit),
        ev(1, 1, 4, claim(2, epochs[1], false), Ret::Unit),
        ev(0, 5, 6, Op::Commit(0, 1, epochs[0]), Ret::Unit),
        ev(1, 7, 8, Op::Commit(0, 2, epochs[1]), Ret::Unit),
        ev(2, 9, 10, Op::Get(0), Ret::Entry(Some((1, epochs[0])))),
    ];
    assert!(!linearizable(&two_flights, 1));

    // Refresh: readers keep the entry while its refresh runs, then see the refresh's value.
    let refreshed = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, claim(5, epochs[1], true), Ret::Unit),
        ev(2, 4, 5, Op::Get(0), Ret::Entry(Some((1, epochs[0])))),
        ev(1, 6, 7, Op::Commit(0, 5, epochs[1]), Ret::Unit),
        ev(2, 8, 9, Op::Get(0), Ret::Entry(Some((5, epochs[1])))),
    ];
    assert!(linearizable(&refreshed, 1));
    // A read that sees the refresh's value before it committed: rejected.
    let mut early_read = refreshed;
    early_read[2].ret = Ret::Entry(Some((5, epochs[1])));
    assert!(!linearizable(&early_read, 1));
    // Caffeine #193: a refresh that commits after its entry was invalidated: rejected.
    let caffeine_193 = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, claim(5, epochs[1], true), Ret::Unit),
        ev(2, 4, 5, Op::Invalidate(0, epochs[0]), Ret::Bool(true)),
        ev(1, 6, 7, Op::Commit(0, 5, epochs[1]), Ret::Unit),
        ev(2, 8, 9, Op::Get(0), Ret::Entry(Some((5, epochs[1])))),
    ];
    assert!(!linearizable(&caffeine_193, 1));
    // ...and one that commits over the insert that replaced its entry: rejected.
    let mut over_insert = caffeine_193;
    over_insert[2] = ev(2, 4, 5, Op::Insert(0, 2), Ret::Epoch(epochs[2]));
    assert!(!linearizable(&over_insert, 1));
    // invalidate(k, refreshing(k)) detaches only the refresh: the entry stays.
    let only_the_refresh = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, claim(5, epochs[1], true), Ret::Unit),
        ev(2, 4, 5, Op::Invalidate(0, epochs[1]), Ret::Bool(true)),
        ev(1, 6, 7, Op::Commit(0, 5, epochs[1]), Ret::Unit),
        ev(2, 8, 9, Op::Get(0), Ret::Entry(Some((1, epochs[0])))),
    ];
    assert!(linearizable(&only_the_refresh, 1));
    // invalidate(k, refreshing(k)) that finds neither the refresh nor the entry it committed,
    // though one of them was there throughout: rejected.
    let escaped = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, claim(5, epochs[1], true), Ret::Unit),
        ev(2, 4, 5, Op::Refreshing(0), Ret::Refreshing(Some(epochs[1]))),
        ev(2, 6, 9, Op::Invalidate(0, epochs[1]), Ret::Bool(false)),
        ev(1, 7, 8, Op::Commit(0, 5, epochs[1]), Ret::Unit),
    ];
    assert!(!linearizable(&escaped, 1));
    let mut committed_anyway = only_the_refresh;
    committed_anyway[4].ret = Ret::Entry(Some((5, epochs[1])));
    assert!(!linearizable(&committed_anyway, 1));
    // A second refresh beside the first (refreshes of one entry share one flight): rejected.
    let two_refreshes = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, claim(5, epochs[1], true), Ret::Unit),
        ev(2, 4, 5, claim(6, epochs[2], true), Ret::Unit),
    ];
    assert!(!linearizable(&two_refreshes, 1));
    // A failed refresh leaves the entry; a joined try_refresh shares its error.
    let failed = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(
            1,
            2,
            3,
            Op::Claim {
                key: 0,
                value: 5,
                epoch: None,
                refresh: true,
                given: None,
            },
            Ret::Unit,
        ),
        ev(2, 4, 5, Op::Joined(0), Ret::Error(5)),
        ev(1, 6, 7, Op::Fail(0, 5), Ret::Unit),
        ev(2, 8, 9, Op::Get(0), Ret::Entry(Some((1, epochs[0])))),
    ];
    assert!(linearizable(&failed, 1));
    let mut joined_late = failed;
    joined_late[2] = ev(2, 8, 9, Op::Joined(0), Ret::Error(5));
    joined_late[4] = ev(2, 10, 11, Op::Get(0), Ret::Entry(Some((1, epochs[0]))));
    assert!(
        !linearizable(&joined_late, 1),
        "joined a refresh that had failed"
    );
    // refresh_if(k, e): its init is handed the entry e, and it commits onto that entry only.
    let claim_if = |value, epoch, given| Op::Claim {
        key: 0,
        value,
        epoch: Some(epoch),
        refresh: true,
        given: Some(given),
    };
    let refreshed_if = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, claim_if(5, epochs[1], (1, epochs[0])), Ret::Unit),
        ev(
            2,
            4,
            5,
            Op::RefreshIf(0, epochs[0]),
            Ret::Entry(Some((5, epochs[1]))),
        ),
        ev(1, 6, 7, Op::Commit(0, 5, epochs[1]), Ret::Unit),
        ev(2, 8, 9, Op::RefreshIf(0, epochs[0]), Ret::Entry(None)),
        ev(2, 10, 11, Op::Get(0), Ret::Entry(Some((5, epochs[1])))),
    ];
    assert!(linearizable(&refreshed_if, 1));
    // Handed an entry the key no longer held (a newer insert): rejected.
    let mut handed_stale = refreshed_if;
    handed_stale[0] = ev(0, 0, 1, Op::Insert(0, 2), Ret::Epoch(epochs[0]));
    assert!(!linearizable(&handed_stale, 1));
    // "The key no longer holds e" while it does: rejected.
    let mut gone_too_soon = refreshed_if;
    gone_too_soon[2].ret = Ret::Entry(None);
    assert!(!linearizable(&gone_too_soon, 1));
    // Joined a refresh of another generation: rejected.
    let mut joined_another = refreshed_if;
    joined_another[2].op = Op::RefreshIf(0, epochs[2]);
    assert!(!linearizable(&joined_another, 1));
    // Caffeine #193 for refresh_if: committed after its entry was removed: rejected.
    let mut after_remove = refreshed_if;
    after_remove[2] = ev(2, 4, 5, Op::Remove(0), Ret::Entry(Some((1, epochs[0]))));
    assert!(!linearizable(&after_remove, 1));

    // replace: of two replaces of one epoch, one wins; the loser learns the current epoch.
    let replaced = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(
            1,
            2,
            5,
            Op::Replace(0, epochs[0], 2),
            Ret::Replaced(Ok(epochs[1])),
        ),
        ev(
            2,
            3,
            6,
            Op::Replace(0, epochs[0], 3),
            Ret::Replaced(Err(Some(epochs[1]))),
        ),
    ];
    assert!(linearizable(&replaced, 1));
    let mut both_won = replaced;
    both_won[2].ret = Ret::Replaced(Ok(epochs[2]));
    assert!(!linearizable(&both_won, 1));
    let mut told_stale = replaced;
    told_stale[2].ret = Ret::Replaced(Err(Some(epochs[0])));
    assert!(!linearizable(&told_stale, 1));

    // invalidate_if: a replacement stored between the snapshot and the delete survives.
    let shown = |k: usize, seen| {
        let mut shown: Shown = [None; 2];
        shown[k] = Some(seen);
        Ret::Shown(shown)
    };
    let sweep = |scope| Op::Sweep { scope };
    let delete = |key| Op::SweepDelete { key, sweep: 2 };
    let survives = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(1, 2, 3, sweep(Some(0)), shown(0, Seen::Entry(1, epochs[0]))),
        ev(0, 4, 5, Op::Insert(0, 2), Ret::Epoch(epochs[1])),
        ev(1, 6, 7, delete(0), Ret::Bool(false)),
        ev(0, 8, 9, Op::Get(0), Ret::Entry(Some((2, epochs[1])))),
    ];
    assert!(linearizable(&survives, 1));
    let mut deleted_the_replacement = survives;
    deleted_the_replacement[3].ret = Ret::Bool(true);
    deleted_the_replacement[4].ret = Ret::Entry(None);
    assert!(!linearizable(&deleted_the_replacement, 1));
    // A flight shown to the predicate that commits before the delete is removed with it...
    let committed_then_swept = [
        ev(0, 0, 1, claim(5, epochs[0], false), Ret::Unit),
        ev(1, 2, 3, sweep(None), shown(0, Seen::Flight)),
        ev(0, 4, 5, Op::Commit(0, 5, epochs[0]), Ret::Unit),
        ev(1, 6, 7, delete(0), Ret::Bool(true)),
        ev(2, 8, 9, Op::Get(0), Ret::Entry(None)),
    ];
    assert!(linearizable(&committed_then_swept, 1));
    // ...and one deleted before its commit never commits.
    let resurrected_flight = [
        ev(0, 0, 1, claim(5, epochs[0], false), Ret::Unit),
        ev(1, 2, 3, sweep(None), shown(0, Seen::Flight)),
        ev(1, 4, 5, delete(0), Ret::Bool(true)),
        ev(0, 6, 7, Op::Commit(0, 5, epochs[0]), Ret::Unit),
        ev(2, 8, 9, Op::Get(0), Ret::Entry(Some((5, epochs[0])))),
    ];
    assert!(!linearizable(&resurrected_flight, 1));
    // A sweep shown an entry that was already gone: rejected.
    let ghost = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(0, 2, 3, Op::Remove(0), Ret::Entry(Some((1, epochs[0])))),
        ev(1, 4, 5, sweep(None), shown(0, Seen::Entry(1, epochs[0]))),
    ];
    assert!(!linearizable(&ghost, 1));
    // iter is one snapshot: it may not see a later insert of key 1 but miss an earlier one of
    // key 0 (both inserts before it, the second after the first).
    let torn = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(0, 2, 3, Op::Insert(1, 2), Ret::Epoch(epochs[1])),
        ev(1, 4, 5, Op::Iter, shown(1, Seen::Entry(2, epochs[1]))),
    ];
    assert!(!linearizable(&torn, 2));
    let mut whole = torn;
    whole[2].ret = Ret::Shown([
        Some(Seen::Entry(1, epochs[0])),
        Some(Seen::Entry(2, epochs[1])),
    ]);
    assert!(linearizable(&whole, 2));
    // A count of 1 over two deletes stands for two histories.
    let two_items = [
        ev(1, 2, 3, sweep(None), Ret::Shown([None; 2])),
        ev(1, 4, 5, delete(0), Ret::Removed(1)),
        ev(1, 6, 7, delete(1), Ret::Removed(1)),
    ];
    let ways = resolutions(&two_items);
    assert_eq!(ways.len(), 2);
    assert!(
        ways.iter()
            .all(|h| h.iter().filter(|e| e.ret == Ret::Bool(true)).count() == 1)
    );
}
