//! Reads on many threads at once, and the two readers that only the thread sweep needs: the
//! physical-limit probe and moka's synchronous cache. Shared by `benches/hits.rs` and
//! `examples/bench_report.rs` (included with `#[path]`, like `contenders.rs`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The physical limit of a hit (issue 14): a lock-free lookup in an immutable map, filled once and
/// then only read, on foldhash (the default hasher of hashbrown and quick_cache). A reader writes
/// nothing at all, so no cache line moves between cores: whatever two threads lose against one
/// here, the machine loses (shared caches, memory bandwidth, a busy neighbour on the host), and a
/// cache's 2-thread ratio is judged against this one.
pub struct Probe(pub Arc<HashMap<u64, u64, quick_cache::DefaultHashBuilder>>);

impl Probe {
    pub const NAME: &'static str = "lock-free probe";

    /// Keys `0..n` (value = key), like `contenders::filled`.
    pub fn filled(n: usize) -> Self {
        Probe(Arc::new((0..n as u64).map(|key| (key, key)).collect()))
    }

    #[inline]
    pub fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key).copied()
    }
}

/// moka's synchronous cache (`moka::sync::Cache`, its default builder, unbounded): its `get` is a
/// plain call, the one to compare in the sweep (the report's main table uses `future::Cache`).
pub struct MokaSync(pub moka::sync::Cache<u64, u64>);

impl MokaSync {
    pub const NAME: &'static str = "moka (sync)";

    pub fn filled(n: usize) -> Self {
        let cache = moka::sync::Cache::builder().build();
        for key in 0..n as u64 {
            cache.insert(key, key);
        }
        cache.run_pending_tasks();
        MokaSync(cache)
    }

    #[inline]
    pub fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
}

/// When each reader stops.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// After this many reads (criterion's `iter_custom`).
    Reads(u64),
    /// Once this much time has passed since the reader was released (the sweep).
    Elapsed(Duration),
}

/// What one reader did: how many reads, in how long (its own clock, from its release).
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub reads: u64,
    pub elapsed: Duration,
}

/// Reads checked between two looks at the clock (or the count).
const CHUNK: usize = 1024;

/// Runs one reader per entry of `keys` (each cycles through its own sequence, whose length must be
/// a multiple of 1024), all released together by a barrier, each calling `read` until `until`.
/// Each reader times itself, so neither thread start-up nor the spawning thread (which may not
/// even be scheduled on 2 cores) is counted.
pub fn read_in_parallel<R>(read: &R, keys: &[Vec<u64>], until: Until) -> Vec<Span>
where
    R: Fn(u64) -> Option<u64> + Sync,
{
    let start = Barrier::new(keys.len());
    std::thread::scope(|scope| {
        let readers: Vec<_> = keys
            .iter()
            .map(|keys| {
                let start = &start;
                assert!(!keys.is_empty() && keys.len() % CHUNK == 0);
                scope.spawn(move || {
                    start.wait();
                    let t0 = Instant::now();
                    let mut reads = 0u64;
                    let mut at = 0;
                    let mut sum = 0u64;
                    loop {
                        let len = match until {
                            Until::Reads(n) => (n - reads).min(CHUNK as u64) as usize,
                            Until::Elapsed(_) => CHUNK,
                        };
                        for &key in &keys[at..at + len] {
                            sum = sum.wrapping_add(read(black_box(key)).unwrap_or(0));
                        }
                        at = (at + CHUNK) % keys.len();
                        reads += len as u64;
                        let done = match until {
                            Until::Reads(n) => reads >= n,
                            Until::Elapsed(window) => t0.elapsed() >= window,
                        };
                        if done {
                            break;
                        }
                    }
                    black_box(sum);
                    Span {
                        reads,
                        elapsed: t0.elapsed(),
                    }
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// Reads per second, all readers together (the sum of each reader's own rate).
pub fn total_rate(spans: &[Span]) -> f64 {
    spans
        .iter()
        .map(|s| s.reads as f64 / s.elapsed.as_secs_f64())
        .sum()
}
