//! Stress (semantics 1-8 together, on a multi-threaded runtime): many tasks × few keys × random
//! `get_or_init` / `get_or_try_init` / `insert` / `invalidate` (current and stale epochs) /
//! `remove` / `invalidate_all` / `get`, with calls cancelled after a random number of polls and
//! init futures that yield, fail or panic at random. Invariants checked:
//!
//! * one init per epoch: every observer of an epoch sees the same value id, and a value id
//!   (made by one init) is only ever seen under one epoch;
//! * no resurrection: once `invalidate`/`remove` returned an epoch as gone, no call or read
//!   that starts afterwards sees it again;
//! * no hang: a watchdog thread fails the test after 60 s (a generous bound, not a timing
//!   claim; more for big runs);
//! * no leak: after the runtime and the memo are dropped, every value and every init future
//!   has been dropped.
//!
//! The soak runs the same workers against a bounded memo, an expiring one (a `ManualClock` that
//! the workers advance, time to live and time to idle) and one that is both, each with a removal
//! listener, and checks besides:
//!
//! * removals are reported once: no epoch reaches the listener twice, and an epoch reported
//!   removed (evicted, expired, replaced...) is never seen again by an operation that started
//!   after the report;
//! * the bound holds after every operation (`len() <= max_capacity`, even mid-run);
//! * an expired entry is never returned: an operation that starts at least a time to live after
//!   an entry was known to be committed never sees it.
//!
//! Size: `ASYNC_MEMO_SOAK_OPS` (or `ASYNC_MEMO_STRESS_OPS`) total operations per memo
//! configuration (default 20,000: about a second in debug builds). For the big soak:
//! `ASYNC_MEMO_SOAK_OPS=1000000 cargo test --release --test stress`.
//! Randomness: a xorshift generator seeded by the task index, so runs are reproducible up to
//! thread scheduling.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::Poll;
use std::time::Duration;

use std::collections::HashSet;
use std::time::Instant;

use async_memo::{AsyncMemo, Entry, Epoch, ManualClock, RemovalCause};
use common::DropCounted;
use futures::FutureExt;

const TASKS: u64 = 16;
const KEYS: u64 = 8;
const INJECTED: &str = "stress-injected panic";

fn total_ops() -> u64 {
    ["ASYNC_MEMO_SOAK_OPS", "ASYNC_MEMO_STRESS_OPS"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.parse().ok())
        .unwrap_or(20_000)
}

/// The watchdog's bound: generous, and longer for big runs (not a timing claim).
fn watchdog(ops: u64) -> Duration {
    Duration::from_secs(60 + ops / 5_000)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Live {
    values: AtomicIsize,
    futures_created: AtomicUsize,
    futures_dropped: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct Val {
    id: u64,
    key: u64,
    live: Arc<Live>,
}

impl Val {
    fn new(id: u64, key: u64, live: &Arc<Live>) -> Self {
        live.values.fetch_add(1, Ordering::SeqCst);
        Val {
            id,
            key,
            live: Arc::clone(live),
        }
    }
}

impl Clone for Val {
    fn clone(&self) -> Self {
        Val::new(self.id, self.key, &self.live)
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        self.live.values.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The boxed init future every stress flight runs.
type InitFut = Pin<Box<dyn Future<Output = Result<Val, u64>> + Send>>;

/// How the memo under test is built (the soak's configurations).
#[derive(Clone, Copy, Debug)]
struct Setup {
    capacity: Option<u64>,
    /// Time to live and time to idle, in milliseconds of the manual clock.
    ttl_ms: Option<u64>,
    tti_ms: Option<u64>,
}

const PLAIN: Setup = Setup {
    capacity: None,
    ttl_ms: None,
    tti_ms: None,
};

/// What the removal listener shares with the workers (the listener cannot hold the memo).
#[derive(Default)]
struct Book {
    /// A logical clock ordering "gone" records and the starts of reads.
    clock: AtomicU64,
    /// Epoch -> clock tick recorded after `invalidate`/`remove` said it was gone, or after the
    /// listener was told of its removal.
    gone: Mutex<HashMap<Epoch, u64>>,
    reported: Mutex<HashSet<Epoch>>,
    causes: Mutex<HashMap<RemovalCause, u64>>,
    violations: Mutex<Vec<String>>,
}

impl Book {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn mark_gone(&self, epoch: Epoch) {
        let now = self.tick();
        self.gone.lock().unwrap().entry(epoch).or_insert(now);
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    fn removed(&self, key: u64, entry: &Entry<Val>, cause: RemovalCause) {
        if entry.value().key != key {
            self.violation(format!(
                "listener: key {key} reported a value of key {}",
                entry.value().key
            ));
        }
        if !self.reported.lock().unwrap().insert(entry.epoch()) {
            self.violation(format!(
                "listener: epoch {} of key {key} reported twice",
                entry.epoch()
            ));
        }
        *self.causes.lock().unwrap().entry(cause).or_default() += 1;
        self.mark_gone(entry.epoch());
    }
}

struct Shared {
    memo: AsyncMemo<u64, Val>,
    setup: Setup,
    live: Arc<Live>,
    next_id: AtomicU64,
    book: Arc<Book>,
    clock: ManualClock,
    origin: Instant,
    epoch_value: Mutex<HashMap<Epoch, u64>>,
    value_epoch: Mutex<HashMap<u64, Epoch>>,
    /// Epoch -> manual-clock time (ms) by which it was known to be committed.
    committed_by: Mutex<HashMap<Epoch, u64>>,
}

impl Shared {
    fn new(setup: Setup, live: &Arc<Live>) -> Self {
        let book = Arc::new(Book::default());
        let clock = ManualClock::new();
        let mut builder = AsyncMemo::builder().shards(4).clock(clock.clone());
        if let Some(capacity) = setup.capacity {
            builder = builder.max_capacity(capacity);
        }
        if let Some(ms) = setup.ttl_ms {
            builder = builder.time_to_live(Duration::from_millis(ms));
        }
        if let Some(ms) = setup.tti_ms {
            builder = builder.time_to_idle(Duration::from_millis(ms));
        }
        let listener = Arc::clone(&book);
        let memo = builder
            .on_removal(move |key: &u64, entry: Entry<Val>, cause| {
                listener.removed(*key, &entry, cause)
            })
            .build();
        Shared {
            memo,
            setup,
            live: Arc::clone(live),
            next_id: AtomicU64::new(0),
            book,
            origin: clock_now(&clock),
            clock,
            epoch_value: Mutex::new(HashMap::new()),
            value_epoch: Mutex::new(HashMap::new()),
            committed_by: Mutex::new(HashMap::new()),
        }
    }

    fn violation(&self, what: String) {
        self.book.violation(what);
    }

    fn tick(&self) -> u64 {
        self.book.tick()
    }

    /// The manual clock, in ms since the memo was built.
    fn now_ms(&self) -> u64 {
        let since = clock_now(&self.clock).duration_since(self.origin);
        u64::try_from(since.as_millis()).unwrap()
    }

    /// Checks the bound after an operation.
    fn check_bound(&self) {
        if let Some(capacity) = self.setup.capacity {
            let len = self.memo.len() as u64;
            if len > capacity {
                self.violation(format!("len {len} above the capacity {capacity}"));
            }
        }
    }

    /// Records an observed entry; `started` is the clock when the observing call began, and
    /// `started_ms` the manual clock then.
    fn observe_at(&self, key: u64, entry: &Entry<Val>, started: u64, started_ms: u64) {
        let epoch = entry.epoch();
        if let Some(ttl) = self.setup.ttl_ms {
            let now = self.now_ms();
            let by = *self
                .committed_by
                .lock()
                .unwrap()
                .entry(epoch)
                .or_insert(now);
            if started_ms >= by + ttl {
                self.violation(format!(
                    "epoch {epoch} of key {key} returned expired: committed by {by} ms, \
                     read from {started_ms} ms, time to live {ttl} ms"
                ));
            }
        }
        self.observe(key, entry, started);
    }

    /// Records an observed entry; `started` is the clock when the observing call began.
    fn observe(&self, key: u64, entry: &Entry<Val>, started: u64) {
        let (id, epoch) = (entry.value().id, entry.epoch());
        if entry.value().key != key {
            self.violation(format!(
                "key {key} returned a value of key {}",
                entry.value().key
            ));
        }
        let seen = *self.epoch_value.lock().unwrap().entry(epoch).or_insert(id);
        if seen != id {
            self.violation(format!(
                "epoch {epoch} carried values {seen} and {id}: two inits"
            ));
        }
        let seen = *self.value_epoch.lock().unwrap().entry(id).or_insert(epoch);
        if seen != epoch {
            self.violation(format!("value {id} seen under epochs {seen} and {epoch}"));
        }
        if let Some(&gone_at) = self.book.gone.lock().unwrap().get(&epoch) {
            if gone_at < started {
                self.violation(format!(
                    "epoch {epoch} of key {key} resurrected (gone at {gone_at}, read at {started})"
                ));
            }
        }
    }

    fn mark_gone(&self, epoch: Epoch) {
        self.book.mark_gone(epoch);
    }

    /// An init closure for `key`: draws a fresh value id; its future yields, fails or panics.
    fn init(
        self: &Arc<Self>,
        key: u64,
        rng: &mut Rng,
    ) -> impl FnOnce() -> DropCounted<InitFut> + use<> {
        let shared = Arc::clone(self);
        let yields = rng.below(4);
        let fate = rng.below(40);
        move || {
            let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
            shared.live.futures_created.fetch_add(1, Ordering::SeqCst);
            let live = Arc::clone(&shared.live);
            let future: InitFut = Box::pin(async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
                match fate {
                    0 => panic!("{INJECTED}"),
                    1..=3 => Err(id),
                    _ => Ok(Val::new(id, key, &live)),
                }
            });
            DropCounted {
                future,
                drops: Arc::clone(&shared.live.futures_dropped),
            }
        }
    }
}

/// Polls `call` up to `polls` times (yielding in between) and drops it if unfinished;
/// `None` for unbounded. A panic is returned as `Err`.
async fn run_call<T>(
    call: impl Future<Output = T>,
    polls: Option<u64>,
) -> Option<Result<T, String>> {
    let mut call = pin!(AssertUnwindSafe(call).catch_unwind());
    let mut left = polls;
    loop {
        if left == Some(0) {
            return None; // cancelled: the call is dropped here
        }
        if let Poll::Ready(out) = futures::poll!(call.as_mut()) {
            return Some(out.map_err(|payload| {
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            }));
        }
        if let Some(n) = left.as_mut() {
            *n -= 1;
        }
        tokio::task::yield_now().await;
    }
}

async fn worker(shared: Arc<Shared>, task: u64, ops: u64) {
    let mut rng = Rng::new(task + 1);
    let memo = shared.memo.clone();
    let mut last_seen: HashMap<u64, Epoch> = HashMap::new();
    for _ in 0..ops {
        let key = rng.below(KEYS);
        let op = rng.below(100);
        let polls = if rng.below(4) == 0 {
            Some(rng.below(4))
        } else {
            None
        };
        let started_ms = shared.now_ms();
        let started = shared.tick();
        match op {
            0..=44 => {
                let init = shared.init(key, &mut rng);
                let call = memo.get_or_init(key, move || {
                    let fut = init();
                    async move {
                        fut.await
                            .unwrap_or_else(|id| panic!("{INJECTED} (err {id})"))
                    }
                });
                match run_call(call, polls).await {
                    Some(Ok(entry)) => {
                        shared.observe_at(key, &entry, started, started_ms);
                        last_seen.insert(key, entry.epoch());
                    }
                    Some(Err(msg)) if msg.contains(INJECTED) || msg.starts_with("async-memo:") => {}
                    Some(Err(msg)) => shared.violation(format!("unexpected panic: {msg}")),
                    None => {}
                }
            }
            45..=59 => {
                let init = shared.init(key, &mut rng);
                let call = memo.get_or_try_init(key, init);
                match run_call(call, polls).await {
                    Some(Ok(Ok(entry))) => {
                        shared.observe_at(key, &entry, started, started_ms);
                        last_seen.insert(key, entry.epoch());
                    }
                    Some(Ok(Err(_id))) => {}
                    Some(Err(msg)) if msg.contains(INJECTED) || msg.starts_with("async-memo:") => {}
                    Some(Err(msg)) => shared.violation(format!("unexpected panic: {msg}")),
                    None => {}
                }
            }
            60..=69 => {
                let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                let entry = memo.insert(key, Val::new(id, key, &shared.live)).unwrap();
                shared.observe_at(key, &entry, started, started_ms);
                last_seen.insert(key, entry.epoch());
            }
            70..=77 => {
                if let Some(epoch) = memo.epoch(&key) {
                    if memo.invalidate(&key, epoch) {
                        shared.mark_gone(epoch);
                    }
                }
            }
            78..=85 => {
                if let Some(&epoch) = last_seen.get(&key) {
                    if memo.invalidate(&key, epoch) {
                        shared.mark_gone(epoch);
                    }
                }
            }
            86..=91 => {
                if let Some(entry) = memo.remove(&key) {
                    shared.mark_gone(entry.epoch());
                }
            }
            92..=93 => memo.invalidate_all(),
            94 if shared.setup.ttl_ms.is_some() => memo.purge_expired(),
            95..=96 if shared.setup.ttl_ms.is_some() => {
                shared.clock.advance(Duration::from_millis(rng.below(8)));
            }
            _ => {
                if let Some(entry) = memo.get(&key) {
                    shared.observe_at(key, &entry, started, started_ms);
                }
            }
        }
        shared.check_bound();
    }
}

fn clock_now(clock: &ManualClock) -> Instant {
    async_memo::Clock::now(clock)
}

#[test]
fn random_operations_keep_every_invariant() {
    run(PLAIN);
}

/// The soak: bounded, expiring, and bounded and expiring memos with a removal listener.
#[test]
fn bounded_and_expiring_memos_keep_every_invariant() {
    let bounded = Setup {
        capacity: Some(5),
        ..PLAIN
    };
    let expiring = Setup {
        ttl_ms: Some(6),
        tti_ms: Some(3),
        ..PLAIN
    };
    let both = Setup {
        capacity: Some(4),
        ttl_ms: Some(4),
        ..PLAIN
    };
    for setup in [bounded, expiring, both] {
        run(setup);
    }
}

fn run(setup: Setup) {
    // Injected panics are expected; keep their messages out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        if !msg.contains(INJECTED) && !msg.starts_with("async-memo: the init future") {
            default_hook(info);
        }
    }));

    let live = Arc::new(Live::default());
    let shared = Arc::new(Shared::new(setup, &live));
    let ops = total_ops().div_ceil(TASKS);

    let (done_tx, done_rx) = mpsc::channel();
    let body = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            rt.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|task| tokio::spawn(worker(Arc::clone(&shared), task, ops)))
                    .collect();
                for task in tasks {
                    if let Err(e) = task.await {
                        shared.violation(format!("a worker task failed: {e}"));
                    }
                }
            });
            drop(rt);
            let _ = done_tx.send(());
        })
    };
    let bound = watchdog(ops * TASKS);
    match done_rx.recv_timeout(bound) {
        Ok(()) => body.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(body.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("hang: the stress run ({setup:?}) did not finish within {bound:?}")
        }
    }

    // What the memo holds at the end is consistent too.
    let end = shared.tick();
    for key in 0..KEYS {
        let end_ms = shared.now_ms();
        if let Some(entry) = shared.memo.get(&key) {
            shared.observe_at(key, &entry, end, end_ms);
        }
    }
    // Whatever is left is reported once more, at most, by a final clear.
    shared.memo.invalidate_all();
    let violations = std::mem::take(&mut *shared.book.violations.lock().unwrap());
    assert!(violations.is_empty(), "{setup:?}: {violations:#?}");
    let observed_epochs = shared.epoch_value.lock().unwrap().len();
    assert!(observed_epochs > 0, "the run observed nothing");
    eprintln!(
        "stress {setup:?}: {} ops, {} init futures, {} epochs observed, {} gone, removals \
         reported by cause {:?}",
        ops * TASKS,
        live.futures_created.load(Ordering::SeqCst),
        observed_epochs,
        shared.book.gone.lock().unwrap().len(),
        shared.book.causes.lock().unwrap(),
    );

    drop(Arc::into_inner(shared).expect("no task holds the state any more"));
    assert_eq!(live.values.load(Ordering::SeqCst), 0, "values leaked");
    assert_eq!(
        live.futures_created.load(Ordering::SeqCst),
        live.futures_dropped.load(Ordering::SeqCst),
        "init futures leaked"
    );
}
