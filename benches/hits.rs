//! Hits: `get` on 1K, 10K and 1M keys (uniform and Zipf(0.9) access), and the get-or-compute call
//! on a present key (`get_or_init`, moka's `get_with`, quick_cache's `get_or_insert_async`),
//! for async-memo, moka, quick_cache and the `RwLock<HashMap>` floor side by side.
//!
//! `cargo bench --bench hits`; `cargo run --release --example bench_report` runs a reduced
//! version of every group in one table.

#[allow(dead_code)]
#[path = "../examples/support/traces.rs"]
mod traces;

#[path = "../examples/support/contenders.rs"]
mod contenders;

#[path = "support/config.rs"]
mod config;

use std::hint::black_box;

use contenders::{Contender, Floor, Moka, Ours, Quick, access, filled};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

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

criterion_group! {
    name = benches;
    config = config::criterion();
    targets = get, get_or_compute
}
criterion_main!(benches);
