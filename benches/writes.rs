//! Writes and concurrency: miss-and-commit on unique keys, the 1,000-task cold-key stampede,
//! invalidate-and-refill churn, and the 90%-hit (and 100%-hit) mix on 1 and 2 threads, for async-memo, moka,
//! quick_cache and the `RwLock<HashMap>` floor side by side.
//!
//! `cargo bench --bench writes`.

#[allow(dead_code)]
#[path = "../examples/support/traces.rs"]
mod traces;

#[path = "../examples/support/contenders.rs"]
mod contenders;

#[path = "support/config.rs"]
mod config;

use std::hint::black_box;
use std::time::{Duration, Instant};

use contenders::{
    Contender, Floor, Moka, Ours, Quick, StampedeCall, filled, run_mix, runtime, stampede,
};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

/// A fresh cache every this many misses, so a long sample does not grow one cache without bound.
const MISS_CHUNK: u64 = 100_000;

fn miss_one<C: Contender>(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function(BenchmarkId::new(C::NAME, "unique keys"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let chunk = (iters - done).min(MISS_CHUNK);
                let cache = C::unbounded(MISS_CHUNK as usize);
                let t0 = Instant::now();
                for key in 0..chunk {
                    black_box(cache.get_or_compute(black_box(key)));
                }
                total += t0.elapsed();
                done += chunk;
            }
            total
        })
    });
}

fn miss(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss and commit");
    group.throughput(Throughput::Elements(1));
    miss_one::<Ours>(&mut group);
    miss_one::<Moka>(&mut group);
    miss_one::<Quick>(&mut group);
    miss_one::<Floor>(&mut group);
    group.finish();
}

fn stampede_one<C: Contender + StampedeCall>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
) {
    for yields in [0, 8] {
        let (_, inits) = stampede::<C>(rt, 1_000, yields);
        println!(
            "stampede: {} ran {inits} init(s) for 1,000 tasks (init wakes {} time(s))",
            C::NAME,
            yields + 1
        );
        let label = format!("1000 tasks, init wakes {}x", yields + 1);
        group.bench_function(BenchmarkId::new(C::NAME, label), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| stampede::<C>(rt, 1_000, yields).0).sum())
        });
    }
}

fn stampede_group(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stampede");
    group.sample_size(20);
    stampede_one::<Ours>(&mut group, &rt);
    stampede_one::<Moka>(&mut group, &rt);
    stampede_one::<Quick>(&mut group, &rt);
    stampede_one::<Floor>(&mut group, &rt);
    group.finish();
}

fn churn_one<C: Contender>(group: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    let cache = filled::<C>(n);
    group.bench_function(BenchmarkId::new(C::NAME, format!("{n} keys")), |b| {
        let mut key = 0;
        b.iter(|| {
            key = (key + 1) % n as u64;
            cache.churn(black_box(key))
        })
    });
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("invalidate and refill");
    group.throughput(Throughput::Elements(1));
    churn_one::<Ours>(&mut group, 10_000);
    churn_one::<Moka>(&mut group, 10_000);
    churn_one::<Quick>(&mut group, 10_000);
    churn_one::<Floor>(&mut group, 10_000);
    group.finish();
}

fn mix_one<C: Contender>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    threads: usize,
    miss_every: usize,
) {
    // One "iteration" is one call on each thread: the throughput is calls per second overall.
    group.throughput(Throughput::Elements(threads as u64));
    let hits = if miss_every == 0 {
        "100% hits"
    } else {
        "90% hits"
    };
    let id = BenchmarkId::new(C::NAME, format!("{hits}, {threads} thread(s)"));
    group.bench_function(id, |b| {
        b.iter_custom(|iters| run_mix::<C>(threads, 10_000, iters as usize, miss_every))
    });
}

fn mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix");
    group.sample_size(20);
    for miss_every in [10, 0] {
        for threads in [1, 2] {
            mix_one::<Ours>(&mut group, threads, miss_every);
            mix_one::<Moka>(&mut group, threads, miss_every);
            mix_one::<Quick>(&mut group, threads, miss_every);
            mix_one::<Floor>(&mut group, threads, miss_every);
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config::criterion();
    targets = miss, stampede_group, churn, mix
}
criterion_main!(benches);
