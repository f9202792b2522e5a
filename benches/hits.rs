//! Hits: `get` on 1K, 10K and 1M keys (uniform and Zipf(0.9) access), and the get-or-compute call
//! on a present key (`get_or_init`, moka's `get_with`, quick_cache's `get_or_insert_async`),
//! for async-memo, moka, quick_cache and the `RwLock<HashMap>` floor side by side; and hits on two
//! threads at once (issue 14) for async-memo, quick_cache and the lock-free probe, the physical
//! limit (`examples/support/readers.rs`).
//!
//! `cargo bench --bench hits`; `cargo run --release --example bench_report` runs a reduced
//! version of every group in one table.

#[allow(dead_code)]
#[path = "../examples/support/traces.rs"]
mod traces;

#[path = "../examples/support/contenders.rs"]
mod contenders;

#[path = "../examples/support/readers.rs"]
mod readers;

#[path = "support/config.rs"]
mod config;

use std::hint::black_box;
use std::time::Duration;

use contenders::{Contender, Floor, Moka, Ours, Quick, access, filled, mix_keys};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use readers::{Probe, Until, read_in_parallel};

/// Length of each precomputed access sequence (a power of two, cycled through).
const ACCESSES: usize = 1 << 20;

fn get_one<C: Contender>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    n: usize,
    label: &str,
    keys: &[u64],
) {
    let cache = filled::<C>(n);
    group.bench_function(BenchmarkId::new(C::NAME, label), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (ACCESSES - 1);
            cache.get(black_box(keys[i]))
        })
    });
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get hit");
    group.throughput(Throughput::Elements(1));
    for n in [1_000, 10_000, 1_000_000] {
        for zipf in [false, true] {
            let keys = access(n, zipf, ACCESSES);
            let label = format!("{n} keys {}", if zipf { "zipf 0.9" } else { "uniform" });
            get_one::<Ours>(&mut group, n, &label, &keys);
            get_one::<Moka>(&mut group, n, &label, &keys);
            get_one::<Quick>(&mut group, n, &label, &keys);
            get_one::<Floor>(&mut group, n, &label, &keys);
        }
    }
    group.finish();
}

fn get_or_compute_one<C: Contender>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    n: usize,
    keys: &[u64],
) {
    let cache = filled::<C>(n);
    group.bench_function(
        BenchmarkId::new(C::NAME, format!("{n} keys uniform")),
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (ACCESSES - 1);
                cache.get_or_compute(black_box(keys[i]))
            })
        },
    );
}

fn get_or_compute(c: &mut Criterion) {
    let mut group = c.benchmark_group("get_or_init hit");
    group.throughput(Throughput::Elements(1));
    let n = 10_000;
    let keys = access(n, false, ACCESSES);
    get_or_compute_one::<Ours>(&mut group, n, &keys);
    get_or_compute_one::<Moka>(&mut group, n, &keys);
    get_or_compute_one::<Quick>(&mut group, n, &keys);
    get_or_compute_one::<Floor>(&mut group, n, &keys);
    group.finish();
}

/// `iters` hits shared by `THREADS` threads started together (each its own uniform sequence over
/// the same 10K keys); the time is the slowest thread's, so throughput is that of all threads.
fn parallel_one<R>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, keys: &[Vec<u64>], read: R)
where
    R: Fn(u64) -> Option<u64> + Sync,
{
    group.bench_function(BenchmarkId::new(name, "10K keys uniform"), |b| {
        b.iter_custom(|iters| {
            let each = iters.div_ceil(keys.len() as u64);
            let spans = read_in_parallel(&read, keys, Until::Reads(each));
            spans
                .iter()
                .map(|s| s.elapsed)
                .max()
                .unwrap_or(Duration::ZERO)
        })
    });
}

fn parallel(c: &mut Criterion) {
    const THREADS: usize = 2;
    const KEYS: usize = 10_000;
    let mut group = c.benchmark_group("get hit, 2 threads");
    group.throughput(Throughput::Elements(1));
    let keys: Vec<Vec<u64>> = (0..THREADS)
        .map(|t| mix_keys(t, KEYS, 1 << 16, 0))
        .collect();
    let ours = filled::<Ours>(KEYS);
    parallel_one(&mut group, <Ours>::NAME, &keys, |key| ours.get(key));
    let quick = filled::<Quick>(KEYS);
    parallel_one(&mut group, Quick::NAME, &keys, |key| quick.get(key));
    let probe = Probe::filled(KEYS);
    parallel_one(&mut group, Probe::NAME, &keys, |key| probe.get(key));
    group.finish();
}

criterion_group! {
    name = benches;
    config = config::criterion();
    targets = get, get_or_compute, parallel
}
criterion_main!(benches);
