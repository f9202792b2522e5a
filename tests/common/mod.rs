//! Helpers shared by the eviction, expiry, listener and stats tests: drop-counted values, a
//! removal log keyed by epoch, a hasher that places keys in chosen shards, hand-polling, and a
//! watchdog that turns a deadlock into a test failure.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use async_memo::{Entry, Epoch, RemovalCause};

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
