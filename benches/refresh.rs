//! Refresh: a `get` hit on an entry whose refresh is in flight beside a plain hit, and the
//! get-or-compute hit of a memo with `refresh_after` beside a plain memo's (10K keys, uniform).
//!
//! `cargo bench --bench refresh`; `cargo run --release --example bench_report` prints both with
//! the 90%-hit mix.

#[allow(dead_code)]
#[path = "../examples/support/traces.rs"]
mod traces;

#[path = "../examples/support/contenders.rs"]
mod contenders;

#[path = "support/config.rs"]
mod config;

use std::hint::black_box;

use contenders::{Contender, Ours, OursRefreshing, access, filled, refreshes_in_flight};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Length of the precomputed access sequence (a power of two, cycled through).
const ACCESSES: usize = 1 << 20;
const KEYS: usize = 10_000;

fn hit_while_refreshing(c: &mut Criterion) {
    let mut group = c.benchmark_group("get hit, refresh in flight");
    group.throughput(Throughput::Elements(1));
    let keys = access(KEYS, false, ACCESSES);
    let plain = filled::<Ours>(KEYS);
    let refreshing = filled::<Ours>(KEYS);
    let _in_flight = refreshes_in_flight(&refreshing.0, KEYS as u64);
    for (label, cache) in [("plain", &plain), ("every key refreshing", &refreshing)] {
        group.bench_function(BenchmarkId::new("async-memo", label), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (ACCESSES - 1);
                cache.get(black_box(keys[i]))
            })
        });
    }
    group.finish();
}

fn get_or_init_with_refresh_after(c: &mut Criterion) {
    let mut group = c.benchmark_group("get_or_init hit, refresh_after");
    group.throughput(Throughput::Elements(1));
    let keys = access(KEYS, false, ACCESSES);
    let plain = filled::<Ours>(KEYS);
    let refreshing = filled::<OursRefreshing>(KEYS);
    group.bench_function(BenchmarkId::new("async-memo", "plain"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (ACCESSES - 1);
            plain.get_or_compute(black_box(keys[i]))
        })
    });
    group.bench_function(
        BenchmarkId::new("async-memo", "refresh_after 100 ms"),
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (ACCESSES - 1);
                refreshing.get_or_compute(black_box(keys[i]))
            })
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = config::criterion();
    targets = hit_while_refreshing, get_or_init_with_refresh_after
}
criterion_main!(benches);
