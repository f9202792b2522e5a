//! `#[memoize]` against the same memo written by hand with `get_or_init` (target: ≤ 1.1x) and
//! against `cached`'s `#[cached]` (async, `sync_writes = "by_key"`): hits over 1K keys, misses
//! on fresh keys, and 100 tokio tasks calling one cold key at once.
//!
//! `cargo bench --bench memoize`; `cargo run --release --example bench_report` runs a reduced
//! version and counts body runs per crowd.

#[allow(dead_code)]
#[path = "../examples/support/traces.rs"]
mod traces;

#[path = "../examples/support/contenders.rs"]
mod contenders;

#[path = "../examples/support/memoized.rs"]
mod memoized;

#[path = "support/config.rs"]
mod config;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memoized::{Attribute, ByHand, Cached, Memoized};

const KEYS: u64 = 1_000;

fn hit<M: Memoized>(c: &mut Criterion) {
    memoized::fill::<M>(KEYS);
    let mut group = c.benchmark_group("memoize hit");
    group.bench_function(BenchmarkId::from_parameter(M::NAME), |b| {
        let mut at = 0;
        b.iter(|| {
            at += 1;
            black_box(contenders::now(M::call(black_box(at % KEYS))))
        });
    });
    group.finish();
}

fn miss<M: Memoized>(c: &mut Criterion) {
    let mut group = c.benchmark_group("memoize miss");
    group.bench_function(BenchmarkId::from_parameter(M::NAME), |b| {
        b.iter_custom(|iters| memoized::misses::<M>(iters as usize));
    });
    group.finish();
}

fn crowd<M: Memoized>(c: &mut Criterion) {
    let rt = contenders::runtime();
    let mut group = c.benchmark_group("memoize 100-caller crowd");
    // criterion calls the routine once per sample: the key counter outlives it, so that every
    // crowd meets a cold key.
    let mut key = 1_000_000;
    group.bench_function(BenchmarkId::from_parameter(M::NAME), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                key += 1;
                let (elapsed, runs) = memoized::crowd::<M>(&rt, 100, key);
                assert_eq!(
                    runs,
                    1,
                    "{} ran its body {runs} times for one crowd",
                    M::NAME
                );
                total += elapsed;
            }
            total
        });
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    hit::<Attribute>(c);
    hit::<ByHand>(c);
    hit::<Cached>(c);
    miss::<Attribute>(c);
    miss::<ByHand>(c);
    miss::<Cached>(c);
    crowd::<Attribute>(c);
    crowd::<ByHand>(c);
    crowd::<Cached>(c);
}

criterion_group! {
    name = benches;
    config = config::criterion();
    targets = all
}
criterion_main!(benches);
