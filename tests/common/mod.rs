//! Helpers shared by the integration tests: drop-counted values (`Tracked`, counted made and
//! dropped; `LiveCounted`, counted live), counted inits and drop-counted init futures, a removal
//! log keyed by epoch, a hasher that places keys in chosen shards, hand-polling with a no-op or a
//! counting waker, a spawned caller that joins a flight, and watchdogs that turn a deadlock or a
//! lost wake-up into a test failure. Automatic refresh helpers are in [`auto_refresh`].

#![allow(dead_code)]

pub mod auto_refresh;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry, Epoch, RemovalCause};
use futures::channel::oneshot;

/// Counts every `Tracked` value made (including clones) and every one dropped.
#[derive(Default, Debug)]
pub struct Counts {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

impl Counts {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Values alive now: made and not yet dropped.
    pub fn live(&self) -> usize {
        self.created() - self.dropped()
    }

    pub fn value(self: &Arc<Self>, id: u64) -> Tracked {
        self.created.fetch_add(1, Ordering::SeqCst);
        Tracked {
            id,
            weight: 1,
            counts: Arc::clone(self),
        }
    }

    pub fn weighted(self: &Arc<Self>, id: u64, weight: u32) -> Tracked {
        let mut value = self.value(id);
        value.weight = weight;
        value
    }
}

/// A value whose every copy is counted when made and when dropped.
#[derive(Debug)]
pub struct Tracked {
    pub id: u64,
    pub weight: u32,
    counts: Arc<Counts>,
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.counts.created.fetch_add(1, Ordering::SeqCst);
        Tracked {
            id: self.id,
            weight: self.weight,
            counts: Arc::clone(&self.counts),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.counts.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value that counts its live instances (clones included) in one shared counter: +1 when made
/// or cloned, -1 when dropped. (`Tracked` instead counts creations and drops apart.)
#[derive(Debug)]
pub struct LiveCounted {
    pub n: u32,
    live: Arc<AtomicUsize>,
}

impl LiveCounted {
    pub fn new(n: u32, live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        LiveCounted {
            n,
            live: Arc::clone(live),
        }
    }
}

impl Clone for LiveCounted {
    fn clone(&self) -> Self {
        LiveCounted::new(self.n, &self.live)
    }
}

impl Drop for LiveCounted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An init that counts its runs in `calls` and yields `value` without waiting.
pub fn counted<V: Send + 'static>(
    calls: &Arc<AtomicUsize>,
    value: V,
) -> impl FnOnce() -> std::future::Ready<V> + use<V> {
    let calls = Arc::clone(calls);
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(value)
    }
}

/// Wraps an init future; counts how many times it is dropped in `drops`.
pub struct DropCounted<F> {
    pub future: F,
    pub drops: Arc<AtomicUsize>,
}

impl<F: Future + Unpin> Future for DropCounted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.future).poll(cx)
    }
}

impl<F> Drop for DropCounted<F> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a removal listener saw, in order.
pub type Log<K> = Arc<Mutex<Vec<(K, Epoch, RemovalCause)>>>;

pub fn log<K>() -> Log<K> {
    Arc::new(Mutex::new(Vec::new()))
}

/// A listener that appends to `log`.
pub fn recorder<K, V>(log: &Log<K>) -> impl Fn(&K, Entry<V>, RemovalCause) + Send + Sync + 'static
where
    K: Clone + Send + 'static,
    V: 'static,
{
    let log = Arc::clone(log);
    move |key: &K, entry: Entry<V>, cause| {
        log.lock()
            .unwrap()
            .push((key.clone(), entry.epoch(), cause));
    }
}

pub fn take<K>(log: &Log<K>) -> Vec<(K, Epoch, RemovalCause)> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// Asserts every epoch in `log` is reported exactly once, and returns epoch -> cause.
pub fn once_each<K>(log: &[(K, Epoch, RemovalCause)]) -> HashMap<Epoch, RemovalCause> {
    let mut counts: HashMap<Epoch, usize> = HashMap::new();
    let mut causes = HashMap::new();
    for (_, epoch, cause) in log {
        *counts.entry(*epoch).or_default() += 1;
        causes.insert(*epoch, *cause);
    }
    for (epoch, count) in &counts {
        assert_eq!(*count, 1, "epoch {epoch:?} reported {count} times");
    }
    causes
}

pub fn epochs<K>(log: &[(K, Epoch, RemovalCause)]) -> BTreeSet<Epoch> {
    log.iter().map(|(_, epoch, _)| *epoch).collect()
}

/// A hasher for `u64` keys that puts key `k` in shard `k % shards` (the memo picks a shard from
/// bits 32.. of the hash).
#[derive(Clone, Copy, Debug, Default)]
pub struct ByShard;

pub struct ByShardHasher(u64);

impl Hasher for ByShardHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = (k << 32) | (k.wrapping_mul(0x9E37_79B9) & 0xFFFF_FFFF);
    }
}

impl BuildHasher for ByShard {
    type Hasher = ByShardHasher;
    fn build_hasher(&self) -> ByShardHasher {
        ByShardHasher(0)
    }
}

/// Polls once with a waker that does nothing: the test decides who polls next.
pub fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    future.poll(&mut Context::from_waker(&waker))
}

pub fn ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("expected the call to be ready"),
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct CountingWaker(AtomicUsize);

impl CountingWaker {
    pub fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counting waker, and the `Waker` to hand to `poll`.
pub fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let count = Arc::new(CountingWaker::default());
    (Arc::clone(&count), Waker::from(count))
}

/// Awaits `future`, failing the test (instead of hanging) if it takes more than 10 s.
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("hang: a caller was never woken")
}

/// Spawns a task that calls `get_or_init(key, init)` and returns its handle once that call has
/// been polled (and so joined the flight in progress); the task yields the value and epoch.
pub async fn spawn_joined<I, Fut>(
    memo: &AsyncMemo<u32, u32>,
    key: u32,
    init: I,
) -> tokio::task::JoinHandle<(u32, Epoch)>
where
    I: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = u32> + Send + 'static,
{
    let memo = memo.clone();
    let (joined_tx, joined_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut call = std::pin::pin!(memo.get_or_init(key, init));
        let first = futures::poll!(call.as_mut());
        joined_tx.send(()).unwrap();
        let entry = match first {
            Poll::Ready(entry) => entry,
            Poll::Pending => call.await,
        };
        (*entry.value(), entry.epoch())
    });
    joined_rx.await.unwrap();
    task
}

/// Runs `body` on its own thread; a body that does not finish within ten seconds fails the
/// test (a deadlock) instead of hanging it. A panic in `body` is propagated.
pub fn within_10s<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(out) => out,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: the body did not finish in 10 s"),
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
