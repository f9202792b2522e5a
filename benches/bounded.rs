//! Bounded memos: hit ratio and throughput of get-or-compute at capacity 1% and 10% of a
//! 100,000-key space, on Zipf(0.9), Zipf(1.1) and Zipf(0.9) interleaved with a one-pass scan,
//! for async-memo (S3-FIFO), moka (TinyLFU) and quick_cache (S3-FIFO-like clock).
//! The floor cannot bound itself and is not run here.
//!
//! `cargo bench --bench bounded`. Hit ratios are printed before each group.

#[path = "../examples/support/traces.rs"]
mod traces;

#[path = "../examples/support/contenders.rs"]
mod contenders;

#[path = "support/config.rs"]
mod config;

use std::time::{Duration, Instant};

use contenders::{Contender, Moka, Ours, Quick, bounded_pass};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

const KEY_SPACE: usize = 100_000;
const TRACE_LEN: usize = 1_000_000;

fn one<C: Contender>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    label: &str,
    keys: &[u64],
    capacity: u64,
) {
    let cache = C::bounded(capacity).expect("bounded");
    // One pass from cold for the hit ratio; the timed passes continue on the warm cache.
    let (ratio, _) = bounded_pass(&cache, keys);
    println!("{label}: {} hit ratio {:.2}%", C::NAME, ratio * 100.0);
    group.bench_function(BenchmarkId::new(C::NAME, label), |b| {
        let mut at = 0;
        b.iter_custom(|iters| {
            let mut left = iters as usize;
            let mut total = Duration::ZERO;
            while left > 0 {
                let n = left.min(keys.len() - at);
                let t0 = Instant::now();
                bounded_pass(&cache, &keys[at..at + n]);
                total += t0.elapsed();
                at = (at + n) % keys.len();
                left -= n;
            }
            total
        })
    });
}

fn bounded(c: &mut Criterion) {
    let mut group = c.benchmark_group("bounded");
    group.throughput(Throughput::Elements(1));
    for trace in traces::traces(KEY_SPACE, TRACE_LEN) {
        for percent in [1, 10] {
            let capacity = (KEY_SPACE * percent / 100) as u64;
            let label = format!("{} cap {percent}%", trace.name);
            one::<Ours>(&mut group, &label, &trace.keys, capacity);
            one::<Moka>(&mut group, &label, &trace.keys, capacity);
            one::<Quick>(&mut group, &label, &trace.keys, capacity);
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config::criterion();
    targets = bounded
}
criterion_main!(benches);
