//! `#[memoize]` against the same memo written by hand with `get_or_init`, and against `cached`'s
//! `#[cached]` in its async form with per-key `sync_writes` (its single-flight): the same
//! function, `n -> 2n`, three ways, each counting its body runs. Shared by
//! `examples/bench_report.rs` and `benches/memoize.rs`.

#![allow(dead_code)]

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_memo::{AsyncMemo, memoize};
use cached::macros::cached;

use crate::contenders::now;

/// One way to memoize `n -> 2n`.
pub trait Memoized {
    const NAME: &'static str;
    /// The memoized call.
    fn call(n: u64) -> impl Future<Output = u64> + Send;
    /// The same memo, but the body waits until every caller of the crowd has arrived.
    fn call_in_crowd(n: u64) -> impl Future<Output = u64> + Send;
    /// Body runs so far (both functions).
    fn runs() -> u64;
    /// Empties the memo (outside the timed part).
    fn clear() -> impl Future<Output = ()>;
}

// The crowd: callers count themselves in before calling, and the last one to arrive opens the
// release, which the body awaits: one wake-up, like a body whose I/O completes once.
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
static CROWD: AtomicUsize = AtomicUsize::new(0);
static RELEASE: LazyLock<tokio::sync::watch::Sender<bool>> =
    LazyLock::new(|| tokio::sync::watch::Sender::new(false));

async fn wait_for_crowd() {
    let mut released = RELEASE.subscribe();
    released.wait_for(|&open| open).await.unwrap();
}

fn arrive() {
    if ARRIVED.fetch_add(1, Ordering::AcqRel) + 1 == CROWD.load(Ordering::Acquire) {
        RELEASE.send_replace(true);
    }
}

// ---------------------------------------------------------------------------------------------
// #[memoize]

static ATTR_RUNS: AtomicU64 = AtomicU64::new(0);

#[memoize]
async fn attr_double(n: u64) -> u64 {
    ATTR_RUNS.fetch_add(1, Ordering::Relaxed);
    n * 2
}

#[memoize]
async fn attr_crowd(n: u64) -> u64 {
    ATTR_RUNS.fetch_add(1, Ordering::Relaxed);
    wait_for_crowd().await;
    n * 2
}

pub struct Attribute;

impl Memoized for Attribute {
    const NAME: &'static str = "`#[memoize]`";
    fn call(n: u64) -> impl Future<Output = u64> + Send {
        attr_double(n)
    }
    fn call_in_crowd(n: u64) -> impl Future<Output = u64> + Send {
        attr_crowd(n)
    }
    fn runs() -> u64 {
        ATTR_RUNS.load(Ordering::Relaxed)
    }
    async fn clear() {
        attr_double_memo().invalidate_all();
        attr_crowd_memo().invalidate_all();
    }
}

// ---------------------------------------------------------------------------------------------
// By hand: a static memo and get_or_init, as one would write it without the attribute.

static HAND_RUNS: AtomicU64 = AtomicU64::new(0);
static HAND_MEMO: LazyLock<AsyncMemo<u64, u64>> = LazyLock::new(AsyncMemo::new);
static HAND_CROWD_MEMO: LazyLock<AsyncMemo<u64, u64>> = LazyLock::new(AsyncMemo::new);

async fn hand_double(n: u64) -> u64 {
    HAND_MEMO
        .get_or_init(n, || async move {
            HAND_RUNS.fetch_add(1, Ordering::Relaxed);
            n * 2
        })
        .await
        .into_value()
}

async fn hand_crowd(n: u64) -> u64 {
    HAND_CROWD_MEMO
        .get_or_init(n, || async move {
            HAND_RUNS.fetch_add(1, Ordering::Relaxed);
            wait_for_crowd().await;
            n * 2
        })
        .await
        .into_value()
}

pub struct ByHand;

impl Memoized for ByHand {
    const NAME: &'static str = "hand-written `get_or_init`";
    fn call(n: u64) -> impl Future<Output = u64> + Send {
        hand_double(n)
    }
    fn call_in_crowd(n: u64) -> impl Future<Output = u64> + Send {
        hand_crowd(n)
    }
    fn runs() -> u64 {
        HAND_RUNS.load(Ordering::Relaxed)
    }
    async fn clear() {
        HAND_MEMO.invalidate_all();
        HAND_CROWD_MEMO.invalidate_all();
    }
}

// ---------------------------------------------------------------------------------------------
// cached: `#[cached]` on an async fn, with `sync_writes = "by_key"` so that concurrent misses of
// one key run the body once (a lock per key bucket, held across the body).

static CACHED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(sync_writes = "by_key")]
async fn cached_double(n: u64) -> u64 {
    CACHED_RUNS.fetch_add(1, Ordering::Relaxed);
    n * 2
}

#[cached(sync_writes = "by_key")]
async fn cached_crowd(n: u64) -> u64 {
    CACHED_RUNS.fetch_add(1, Ordering::Relaxed);
    wait_for_crowd().await;
    n * 2
}

pub struct Cached;

impl Memoized for Cached {
    const NAME: &'static str = "cached `#[cached(sync_writes = \"by_key\")]`";
    fn call(n: u64) -> impl Future<Output = u64> + Send {
        cached_double(n)
    }
    fn call_in_crowd(n: u64) -> impl Future<Output = u64> + Send {
        cached_crowd(n)
    }
    fn runs() -> u64 {
        CACHED_RUNS.load(Ordering::Relaxed)
    }
    async fn clear() {
        use cached::Cached as _;
        CACHED_DOUBLE.0.write().await.cache_clear();
        CACHED_CROWD.0.write().await.cache_clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads.

/// Calls keys `0..n` once, so that they are hits from then on.
pub fn fill<M: Memoized>(n: u64) {
    for key in 0..n {
        now(M::call(key));
    }
}

/// Times `batch` hits cycling over keys `0..n` (filled by [`fill`]), starting at `from`.
pub fn hits<M: Memoized>(n: u64, from: u64, batch: usize) -> Duration {
    let t0 = Instant::now();
    for i in from..from + batch as u64 {
        std::hint::black_box(now(M::call(std::hint::black_box(i % n))));
    }
    t0.elapsed()
}

/// Times `batch` misses on fresh keys of an emptied memo (each a body run and a store).
pub fn misses<M: Memoized>(batch: usize) -> Duration {
    now(M::clear());
    let t0 = Instant::now();
    for key in 0..batch as u64 {
        std::hint::black_box(now(M::call(std::hint::black_box(key))));
    }
    t0.elapsed()
}

/// `callers` tasks on `runtime` call one cold key at once; the body returns when all of them
/// have arrived (the last one opens the release just before its call, so a few callers may
/// still be joining as the body finishes). Returns the time until every caller has its value, and the body runs.
pub fn crowd<M: Memoized>(
    runtime: &tokio::runtime::Runtime,
    callers: usize,
    key: u64,
) -> (Duration, u64) {
    let before = M::runs();
    ARRIVED.store(0, Ordering::Release);
    CROWD.store(callers, Ordering::Release);
    RELEASE.send_replace(false);
    let t0 = Instant::now();
    runtime.block_on(async {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                tokio::spawn(async move {
                    arrive();
                    M::call_in_crowd(key).await
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.await.unwrap(), key * 2);
        }
    });
    (t0.elapsed(), M::runs() - before)
}
