//! The libraries the benchmark suite compares, behind one trait, and the workloads it runs on
//! them. Shared by `benches/*.rs` and `examples/bench_report.rs` (included with `#[path]`, next
//! to `traces.rs`, which the including crate must declare as `mod traces` at its root).
//!
//! Every contender is used the way its documentation recommends for this job, with its default
//! hasher: async-memo (`AsyncMemo`, foldhash `fast`), moka (`moka::future::Cache`, std
//! `RandomState`), quick_cache (`sync::Cache` with `get_or_insert_async`, foldhash `quality`),
//! and the floor, a `parking_lot::RwLock<std::collections::HashMap>` (std `RandomState`) that
//! neither coalesces concurrent computations nor evicts.
//!
//! Futures are driven by [`now`]: polled once with a no-op waker (every future here is ready
//! at once when its init is), and finished with `futures::executor::block_on` otherwise. That
//! measures the library, not an executor.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_memo::{AsyncMemo, DefaultHashBuilder};
use parking_lot::RwLock;

use crate::traces::{Rng, Zipf};

/// Drives `future` to completion: one poll with a no-op waker, then `block_on` if it was not
/// ready (it always is on the paths measured here, unless another thread holds its flight).
#[inline(always)]
pub fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => futures::executor::block_on(future),
    }
}

/// One library under test, keyed and valued by `u64`.
pub trait Contender: Send + Sync + 'static {
    const NAME: &'static str;
    /// A cache meant to hold `n` keys without evicting (quick_cache needs a capacity: it is
    /// given twice `n`, so it keeps everything).
    fn unbounded(n: usize) -> Self;
    /// A cache bounded to `capacity` entries; `None` if the contender cannot bound itself.
    fn bounded(capacity: u64) -> Option<Self>
    where
        Self: Sized;
    /// A plain lookup: `get`.
    fn get(&self, key: u64) -> Option<u64>;
    /// The get-or-compute call (`get_or_init`, `get_with`, `get_or_insert_async`) with an init
    /// that is ready at once.
    fn get_or_compute(&self, key: u64) -> u64;
    /// The same, setting `missed` when the init runs (for hit ratios).
    fn get_or_compute_counting(&self, key: u64, missed: &Cell<bool>) -> u64;
    fn insert(&self, key: u64, value: u64);
    /// Invalidate-and-refill: observe the entry, remove it (compare-and-delete where the library
    /// has it), and compute it again.
    fn churn(&self, key: u64) -> u64;
    /// Lets a library finish deferred maintenance (moka's pending tasks) before a measurement.
    fn settle(&self) {}
    /// Ready entries held.
    fn len(&self) -> usize;
}

/// async-memo; `S` is its hasher (its default, foldhash, unless a diagnostic row says otherwise).
pub struct Ours<S = DefaultHashBuilder>(pub AsyncMemo<u64, u64, S>);

impl<S> Contender for Ours<S>
where
    S: BuildHasher + Clone + Default + Send + Sync + 'static,
{
    const NAME: &'static str = "async-memo";
    fn unbounded(_n: usize) -> Self {
        Ours(AsyncMemo::builder().hasher(S::default()).build())
    }
    fn bounded(capacity: u64) -> Option<Self> {
        let builder = AsyncMemo::builder().hasher(S::default());
        Some(Ours(builder.max_capacity(capacity).build()))
    }
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key).map(|entry| *entry.value())
    }
    #[inline]
    fn get_or_compute(&self, key: u64) -> u64 {
        *now(self.0.get_or_init(key, move || async move { key })).value()
    }
    #[inline]
    fn get_or_compute_counting(&self, key: u64, missed: &Cell<bool>) -> u64 {
        let init = || {
            missed.set(true);
            async move { key }
        };
        *now(self.0.get_or_init(key, init)).value()
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value).unwrap();
    }
    #[inline]
    fn churn(&self, key: u64) -> u64 {
        let seen = now(self.0.get_or_init(key, move || async move { key }));
        self.0.invalidate(&key, seen.epoch());
        *now(self.0.get_or_init(key, move || async move { key })).value()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// async-memo with automatic refresh: entries are refreshed `AFTER_MS` milliseconds after their
/// commit, on the first read after that, by a worker thread the spawner feeds (one `block_on` per
/// task). `PRECISE = false` is the default memo, which times refreshes on the coarse clock;
/// `PRECISE = true` passes `.clock(SystemClock)` (an `Instant::now` per call).
pub struct OursRefreshing<const PRECISE: bool = false, const AFTER_MS: u64 = 100>(pub Ours);

/// The refresh interval of the default [`OursRefreshing`]: a run of the report's busy refresh
/// mix (1.5M calls, about a quarter of a second on the development VM) refreshes every hot key
/// once or twice there; the report prints the count it saw.
pub const REFRESH_AFTER: Duration = Duration::from_millis(100);

/// An interval no benchmark run reaches: the memo pays for reading its clock and checking each
/// entry's due tick, and never refreshes.
pub const NEVER_DUE_MS: u64 = 3_600_000;

type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A spawner that runs each task on one worker thread (started on first use).
fn worker_spawner() -> impl Fn(Task) + Send + Sync + 'static {
    static WORKER: std::sync::OnceLock<std::sync::mpsc::Sender<Task>> = std::sync::OnceLock::new();
    let sender = WORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        std::thread::spawn(move || {
            for task in rx {
                futures::executor::block_on(task);
            }
        });
        tx
    });
    let sender = sender.clone();
    move |task| {
        sender
            .send(task)
            .expect("the refresh worker runs for the whole process")
    }
}

impl<const PRECISE: bool, const AFTER_MS: u64> OursRefreshing<PRECISE, AFTER_MS> {
    fn build(capacity: Option<u64>) -> Self {
        let after = Duration::from_millis(AFTER_MS);
        let builder = AsyncMemo::builder().refresh_after(after, worker_spawner());
        let builder = if PRECISE {
            builder.clock(async_memo::SystemClock)
        } else {
            builder
        };
        let memo = match capacity {
            Some(capacity) => builder.max_capacity(capacity).build(),
            None => builder.build(),
        };
        OursRefreshing(Ours(memo))
    }
}

impl<const PRECISE: bool, const AFTER_MS: u64> Contender for OursRefreshing<PRECISE, AFTER_MS> {
    const NAME: &'static str = if PRECISE {
        "async-memo refresh_after, SystemClock"
    } else {
        "async-memo refresh_after"
    };
    fn unbounded(_n: usize) -> Self {
        Self::build(None)
    }
    fn bounded(capacity: u64) -> Option<Self> {
        Some(Self::build(Some(capacity)))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(key)
    }
    fn get_or_compute(&self, key: u64) -> u64 {
        self.0.get_or_compute(key)
    }
    fn get_or_compute_counting(&self, key: u64, missed: &Cell<bool>) -> u64 {
        self.0.get_or_compute_counting(key, missed)
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value)
    }
    fn churn(&self, key: u64) -> u64 {
        self.0.churn(key)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `n` keys, each with a refresh in flight that never finishes (the pending calls are returned:
/// drop them to abandon the refreshes). A hit on such a key must cost what a plain hit costs.
pub fn refreshes_in_flight(memo: &AsyncMemo<u64, u64>, n: u64) -> Vec<Task> {
    (0..n)
        .map(|key| {
            let memo = memo.clone();
            let mut call: Task = Box::pin(async move {
                memo.refresh(key, std::future::pending::<u64>).await;
            });
            let polled = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            assert!(polled.is_pending(), "the refresh waits forever");
            call
        })
        .collect()
}

pub struct Moka(pub moka::future::Cache<u64, u64>);

impl Contender for Moka {
    const NAME: &'static str = "moka";
    fn unbounded(_n: usize) -> Self {
        Moka(moka::future::Cache::builder().build())
    }
    fn bounded(capacity: u64) -> Option<Self> {
        Some(Moka(moka::future::Cache::new(capacity)))
    }
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        now(self.0.get(&key))
    }
    #[inline]
    fn get_or_compute(&self, key: u64) -> u64 {
        now(self.0.get_with(key, async move { key }))
    }
    #[inline]
    fn get_or_compute_counting(&self, key: u64, missed: &Cell<bool>) -> u64 {
        now(self.0.get_with(key, async move {
            missed.set(true);
            key
        }))
    }
    fn insert(&self, key: u64, value: u64) {
        now(self.0.insert(key, value));
    }
    #[inline]
    fn churn(&self, key: u64) -> u64 {
        // moka has no compare-and-delete: invalidate by key.
        black_box(now(self.0.get_with(key, async move { key })));
        now(self.0.invalidate(&key));
        now(self.0.get_with(key, async move { key }))
    }
    fn settle(&self) {
        now(self.0.run_pending_tasks());
    }
    fn len(&self) -> usize {
        self.settle();
        self.0.entry_count() as usize
    }
}

pub struct Quick(pub quick_cache::sync::Cache<u64, u64>);

impl Contender for Quick {
    const NAME: &'static str = "quick_cache";
    fn unbounded(n: usize) -> Self {
        Quick(quick_cache::sync::Cache::new(2 * n.max(16)))
    }
    fn bounded(capacity: u64) -> Option<Self> {
        Some(Quick(quick_cache::sync::Cache::new(capacity as usize)))
    }
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    #[inline]
    fn get_or_compute(&self, key: u64) -> u64 {
        let init = async move { Ok::<_, ()>(key) };
        now(self.0.get_or_insert_async(&key, init)).unwrap()
    }
    #[inline]
    fn get_or_compute_counting(&self, key: u64, missed: &Cell<bool>) -> u64 {
        let init = async move {
            missed.set(true);
            Ok::<_, ()>(key)
        };
        now(self.0.get_or_insert_async(&key, init)).unwrap()
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    #[inline]
    fn churn(&self, key: u64) -> u64 {
        black_box(self.get_or_compute(key));
        self.0.remove(&key);
        self.get_or_compute(key)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The floor: one `RwLock<HashMap>`, no single-flight, no eviction, no epochs. `S` is its
/// hasher (std `RandomState` unless a diagnostic row says otherwise).
pub struct Floor<S = RandomState>(pub RwLock<HashMap<u64, u64, S>>);

impl<S> Contender for Floor<S>
where
    S: BuildHasher + Default + Send + Sync + 'static,
{
    const NAME: &'static str = "RwLock<HashMap>";
    fn unbounded(_n: usize) -> Self {
        Floor(RwLock::new(HashMap::default()))
    }
    fn bounded(_capacity: u64) -> Option<Self> {
        None
    }
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.read().get(&key).copied()
    }
    #[inline]
    fn get_or_compute(&self, key: u64) -> u64 {
        if let Some(value) = self.get(key) {
            return value;
        }
        let value = now(async move { key });
        *self.0.write().entry(key).or_insert(value)
    }
    #[inline]
    fn get_or_compute_counting(&self, key: u64, missed: &Cell<bool>) -> u64 {
        if let Some(value) = self.get(key) {
            return value;
        }
        missed.set(true);
        self.get_or_compute(key)
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.write().insert(key, value);
    }
    #[inline]
    fn churn(&self, key: u64) -> u64 {
        black_box(self.get_or_compute(key));
        self.0.write().remove(&key);
        self.get_or_compute(key)
    }
    fn len(&self) -> usize {
        self.0.read().len()
    }
}

/// A cache holding keys `0..n` (value = key).
pub fn filled<C: Contender>(n: usize) -> C {
    let cache = C::unbounded(n);
    for key in 0..n as u64 {
        cache.insert(key, key);
    }
    cache.settle();
    cache
}

/// `len` accesses to keys `0..n`: uniform, or Zipf(0.9) with the hot ranks scattered over the
/// key space (so hot keys are not all small integers). Fixed seeds.
pub fn access(n: usize, zipf: bool, len: usize) -> Vec<u64> {
    let mut rng = Rng::new(0x5eed + n as u64 + zipf as u64);
    if zipf {
        let dist = Zipf::new(n, 0.9);
        // A fixed permutation of ranks to keys.
        let mut perm: Vec<u64> = (0..n as u64).collect();
        for i in (1..n).rev() {
            perm.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        (0..len)
            .map(|_| perm[dist.sample(&mut rng) as usize])
            .collect()
    } else {
        (0..len).map(|_| rng.next_u64() % n as u64).collect()
    }
}

/// The mix, per thread: `ops` calls of get-or-compute on keys `0..hot` (filled beforehand,
/// uniform), except that every `miss_every`-th call (none if 0) is on a key no one has used (a
/// miss and a commit). `miss_every = 10` is the 90%-hit mix.
pub fn mix_keys(thread: usize, hot: usize, ops: usize, miss_every: usize) -> Vec<u64> {
    let mut rng = Rng::new(0xa11ce + thread as u64);
    let mut fresh = (1u64 << 40) * (thread as u64 + 1);
    (0..ops)
        .map(|i| {
            if miss_every > 0 && i % miss_every == miss_every - 1 {
                fresh += 1;
                fresh
            } else {
                rng.next_u64() % hot as u64
            }
        })
        .collect()
}

/// Runs the mix on `threads` threads, each doing `ops` calls, on a cache filled with `hot` keys.
/// Returns the wall time from the first thread's start to the last thread's end, as the workers
/// see it (the spawning thread may not even be scheduled while they run: 2 cores).
pub fn run_mix<C: Contender>(
    threads: usize,
    hot: usize,
    ops: usize,
    miss_every: usize,
) -> Duration {
    let cache = Arc::new(filled::<C>(hot));
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, start) = (cache.clone(), start.clone());
            let keys = mix_keys(t, hot, ops, miss_every);
            std::thread::spawn(move || {
                start.wait();
                let t0 = Instant::now();
                let mut sum = 0u64;
                for &key in &keys {
                    sum = sum.wrapping_add(cache.get_or_compute(black_box(key)));
                }
                black_box(sum);
                (t0, Instant::now())
            })
        })
        .collect();
    let spans: Vec<(Instant, Instant)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    last - first
}

/// The shared state of one stampede.
pub struct Crowd {
    /// Inits that ran.
    inits: AtomicU64,
    /// Tasks that have made their call.
    arrived: AtomicUsize,
    /// Opened once every task has made its call: lets the init finish.
    release: tokio::sync::watch::Receiver<bool>,
    /// How many more times the init yields to the scheduler after its release.
    yields: usize,
}

/// The cold-key stampede: `tasks` tasks spawned on `runtime` wait at a gate, then all call
/// get-or-compute on one key of a fresh cache. The init waits until every task has made its
/// call (one wake-up), then yields `yields` more times (each yield is one more wake-up of the
/// init future, as an init doing I/O would see), so every task meets the computation in
/// progress. Returns the time from opening the gate until every task has its value, and how
/// many inits ran.
pub fn stampede<C: Contender + StampedeCall>(
    runtime: &tokio::runtime::Runtime,
    tasks: usize,
    yields: usize,
) -> (Duration, u64) {
    let cache = Arc::new(C::unbounded(16));
    let (release, released) = tokio::sync::watch::channel(false);
    let crowd = Arc::new(Crowd {
        inits: AtomicU64::new(0),
        arrived: AtomicUsize::new(0),
        release: released,
        yields,
    });
    let (open, gate) = tokio::sync::watch::channel(false);
    let (ready, mut all_ready) = tokio::sync::mpsc::channel::<()>(tasks);
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (cache, crowd, mut gate) = (cache.clone(), crowd.clone(), gate.clone());
                let ready = ready.clone();
                tokio::spawn(async move {
                    let wait = gate.wait_for(|&open| open);
                    ready.try_send(()).unwrap();
                    wait.await.unwrap();
                    crowd.arrived.fetch_add(1, Ordering::AcqRel);
                    cache.stampede_call(7, crowd).await
                })
            })
            .collect();
        // Every task has started before the gate opens.
        for _ in 0..tasks {
            all_ready.recv().await.unwrap();
        }
        let t0 = Instant::now();
        open.send(true).unwrap();
        while crowd.arrived.load(Ordering::Acquire) < tasks {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for handle in handles {
            assert_eq!(handle.await.unwrap(), 7);
        }
        (t0.elapsed(), crowd.inits.load(Ordering::Relaxed))
    })
}

/// The init of a stampede: counts itself, waits for its release, yields `crowd.yields` times,
/// and returns the key.
pub async fn slow_init(key: u64, crowd: Arc<Crowd>) -> u64 {
    crowd.inits.fetch_add(1, Ordering::Relaxed);
    let mut release = crowd.release.clone();
    release.wait_for(|&released| released).await.unwrap();
    for _ in 0..crowd.yields {
        tokio::task::yield_now().await;
    }
    key
}

/// The get-or-compute call, awaited on a runtime (for the stampede).
pub trait StampedeCall {
    fn stampede_call(&self, key: u64, crowd: Arc<Crowd>) -> impl Future<Output = u64> + Send;
}

impl StampedeCall for Ours {
    async fn stampede_call(&self, key: u64, crowd: Arc<Crowd>) -> u64 {
        *self
            .0
            .get_or_init(key, move || slow_init(key, crowd))
            .await
            .value()
    }
}

impl StampedeCall for Moka {
    async fn stampede_call(&self, key: u64, crowd: Arc<Crowd>) -> u64 {
        self.0.get_with(key, slow_init(key, crowd)).await
    }
}

impl StampedeCall for Quick {
    async fn stampede_call(&self, key: u64, crowd: Arc<Crowd>) -> u64 {
        let init = async move { Ok::<_, ()>(slow_init(key, crowd).await) };
        self.0.get_or_insert_async(&key, init).await.unwrap()
    }
}

impl StampedeCall for Floor {
    async fn stampede_call(&self, key: u64, crowd: Arc<Crowd>) -> u64 {
        if let Some(value) = self.get(key) {
            return value;
        }
        let value = slow_init(key, crowd).await;
        *self.0.write().entry(key).or_insert(value)
    }
}

/// A two-worker multi-threaded tokio runtime (this machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

/// One bounded-memo pass over a trace with get-or-compute: (hit ratio, time).
pub fn bounded_pass<C: Contender>(cache: &C, keys: &[u64]) -> (f64, Duration) {
    let missed = Cell::new(false);
    let mut misses = 0u64;
    let t0 = Instant::now();
    for &key in keys {
        black_box(cache.get_or_compute_counting(black_box(key), &missed));
        misses += missed.replace(false) as u64;
    }
    let elapsed = t0.elapsed();
    (1.0 - misses as f64 / keys.len() as f64, elapsed)
}
