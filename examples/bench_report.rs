//! The one-command comparison: `cargo run --release --example bench_report`.
//!
//! Runs reduced versions of every group of `benches/` (hits, get-or-compute, miss and commit,
//! stampede, invalidate-and-refill churn, the 90%-hit mix on 1 and 2 threads, bounded memos),
//! measures memory per entry with a counting global allocator and the size of each library's
//! get-or-compute future, and prints markdown tables of medians and ratios, then a verdict on
//! each target of the benchmark issue. Times are medians of several samples after a warm-up.
//! A ratio `ours / X` below 1 means async-memo is faster.

#[path = "support/traces.rs"]
mod traces;

#[path = "support/contenders.rs"]
mod contenders;

#[path = "support/memoized.rs"]
mod memoized;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_memo::AsyncMemo;
use contenders::{
    Contender, Floor, Moka, Ours, OursRefreshing, Quick, StampedeCall, access, bounded_pass,
    filled, refreshes_in_flight, run_mix, runtime, stampede,
};
use memoized::Memoized;

// ---------------------------------------------------------------------------------------------
// A counting allocator: live bytes, counted only while `COUNTING` is on (memory section only, so
// the timed sections pay one relaxed load per allocation, the same for every library).

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes per entry of a cache built and filled with `n` `u64 -> u64` entries by `build`
/// (everything it allocates, fixed parts included), and the entries it holds.
fn bytes_per_entry<C: Contender>(n: usize, build: impl FnOnce() -> C) -> (f64, usize) {
    LIVE.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let cache = build();
    for key in 0..n as u64 {
        cache.insert(key, key);
    }
    cache.settle();
    COUNTING.store(false, Relaxed);
    let bytes = LIVE.load(Relaxed);
    let len = cache.len();
    drop(cache);
    (bytes as f64 / n as f64, len)
}

// ---------------------------------------------------------------------------------------------
// Timing.

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Median nanoseconds per operation: `run(batch)` times `batch` operations; one untimed warm-up.
fn per_op(samples: usize, batch: usize, mut run: impl FnMut(usize) -> Duration) -> f64 {
    run(batch);
    median(
        (0..samples)
            .map(|_| run(batch).as_nanos() as f64 / batch as f64)
            .collect(),
    )
}

const ACCESSES: usize = 1 << 20;

fn get_hit<C: Contender>(n: usize, keys: &[u64]) -> f64 {
    time_gets(&filled::<C>(n), keys)
}

/// `get` hits on a memo whose every key has a refresh in flight.
fn get_hit_refreshing(n: usize, keys: &[u64]) -> f64 {
    let cache = filled::<Ours>(n);
    let _in_flight = refreshes_in_flight(&cache.0, n as u64);
    time_gets(&cache, keys)
}

fn time_gets<C: Contender>(cache: &C, keys: &[u64]) -> f64 {
    let mut at = 0;
    per_op(11, 200_000, |batch| {
        let t0 = Instant::now();
        for i in 0..batch {
            black_box(cache.get(black_box(keys[(at + i) & (ACCESSES - 1)])));
        }
        at += batch;
        t0.elapsed()
    })
}

fn get_or_compute_hit<C: Contender>(n: usize, keys: &[u64]) -> f64 {
    let cache = filled::<C>(n);
    let mut at = 0;
    per_op(11, 200_000, |batch| {
        let t0 = Instant::now();
        for i in 0..batch {
            black_box(cache.get_or_compute(black_box(keys[(at + i) & (ACCESSES - 1)])));
        }
        at += batch;
        t0.elapsed()
    })
}

fn miss<C: Contender>() -> f64 {
    per_op(7, 100_000, |batch| {
        let cache = C::unbounded(batch);
        let t0 = Instant::now();
        for key in 0..batch as u64 {
            black_box(cache.get_or_compute(black_box(key)));
        }
        let elapsed = t0.elapsed();
        drop(cache);
        elapsed
    })
}

fn churn<C: Contender>(n: usize) -> f64 {
    let cache = filled::<C>(n);
    let mut key = 0u64;
    per_op(11, 100_000, |batch| {
        let t0 = Instant::now();
        for _ in 0..batch {
            key = (key + 1) % n as u64;
            black_box(cache.churn(black_box(key)));
        }
        t0.elapsed()
    })
}

/// Median calls per second (overall) of the mix on `threads` threads (`miss_every`: see
/// `contenders::mix_keys`; 10 is the 90%-hit mix, 0 all hits).
fn mix<C: Contender>(threads: usize, miss_every: usize) -> f64 {
    const OPS: usize = 300_000;
    run_mix::<C>(threads, 10_000, OPS / 4, miss_every);
    let rates = (0..7)
        .map(|_| {
            let elapsed = run_mix::<C>(threads, 10_000, OPS, miss_every);
            (threads * OPS) as f64 / elapsed.as_secs_f64()
        })
        .collect();
    median(rates)
}

/// Median microseconds of the 1,000-task stampede, and the most inits any run saw.
fn stampede_run<C: Contender + StampedeCall>(
    rt: &tokio::runtime::Runtime,
    yields: usize,
) -> (f64, u64) {
    stampede::<C>(rt, 1_000, yields);
    let runs: Vec<_> = (0..31).map(|_| stampede::<C>(rt, 1_000, yields)).collect();
    let max_inits = runs.iter().map(|r| r.1).max().unwrap();
    let us = median(runs.iter().map(|r| r.0.as_secs_f64() * 1e6).collect());
    (us, max_inits)
}

/// Bounded: (hit ratio of a cold pass, median ns per call over that pass and two more).
fn bounded<C: Contender>(keys: &[u64], capacity: u64) -> (f64, f64) {
    let cache = C::bounded(capacity).expect("bounded");
    let (ratio, first) = bounded_pass(&cache, keys);
    let mut times = vec![first];
    for _ in 0..2 {
        times.push(bounded_pass(&cache, keys).1);
    }
    let ns = median(
        times
            .into_iter()
            .map(|t| t.as_nanos() as f64 / keys.len() as f64)
            .collect(),
    );
    (ratio, ns)
}

/// `#[memoize]` and its rivals on one workload each: ns per hit (1K keys), ns per miss (fresh
/// keys, a body run and a store), and the 100-caller crowd on one cold key (median µs, most body
/// runs in one crowd).
struct MemoizeRow {
    name: &'static str,
    hit: f64,
    miss: f64,
    crowd_us: f64,
    crowd_runs: u64,
}

/// The three rows, measured in turns (one sample of each, then the next round), so that a load
/// change on a shared machine falls on all three alike: the ratio to the hand-written memo is
/// the point of this table.
fn memoize_rows(rt: &tokio::runtime::Runtime) -> [MemoizeRow; 3] {
    use memoized::{Attribute, ByHand, Cached};
    const KEYS: u64 = 1_000;
    const HITS: usize = 200_000;
    const MISSES: usize = 50_000;
    memoized::fill::<Attribute>(KEYS);
    memoized::fill::<ByHand>(KEYS);
    memoized::fill::<Cached>(KEYS);
    let mut hit: [Vec<f64>; 3] = Default::default();
    let mut miss: [Vec<f64>; 3] = Default::default();
    let ns = |d: Duration, n: usize| d.as_nanos() as f64 / n as f64;
    // Round 0 is the warm-up.
    for round in 0..12 {
        let at = round * HITS as u64;
        let h = [
            ns(memoized::hits::<Attribute>(KEYS, at, HITS), HITS),
            ns(memoized::hits::<ByHand>(KEYS, at, HITS), HITS),
            ns(memoized::hits::<Cached>(KEYS, at, HITS), HITS),
        ];
        let m = [
            ns(memoized::misses::<Attribute>(MISSES), MISSES),
            ns(memoized::misses::<ByHand>(MISSES), MISSES),
            ns(memoized::misses::<Cached>(MISSES), MISSES),
        ];
        // The misses emptied the memos first: the hit keys go back in, untimed.
        memoized::fill::<Attribute>(KEYS);
        memoized::fill::<ByHand>(KEYS);
        memoized::fill::<Cached>(KEYS);
        if round > 0 {
            for i in 0..3 {
                hit[i].push(h[i]);
                miss[i].push(m[i]);
            }
        }
    }
    let mut crowd_us: [Vec<f64>; 3] = Default::default();
    let mut crowd_runs = [0; 3];
    for round in 0..21 {
        let key = 1_000_000 + round;
        let c = [
            memoized::crowd::<Attribute>(rt, 100, key),
            memoized::crowd::<ByHand>(rt, 100, key),
            memoized::crowd::<Cached>(rt, 100, key),
        ];
        for i in 0..3 {
            crowd_us[i].push(c[i].0.as_secs_f64() * 1e6);
            crowd_runs[i] = crowd_runs[i].max(c[i].1);
        }
    }
    let names = [Attribute::NAME, ByHand::NAME, Cached::NAME];
    let [h0, h1, h2] = hit;
    let [m0, m1, m2] = miss;
    let [c0, c1, c2] = crowd_us;
    let row = |i: usize, h: Vec<f64>, m: Vec<f64>, c: Vec<f64>| MemoizeRow {
        name: names[i],
        hit: median(h),
        miss: median(m),
        crowd_us: median(c),
        crowd_runs: crowd_runs[i],
    };
    [row(0, h0, m0, c0), row(1, h1, m1, c1), row(2, h2, m2, c2)]
}

// ---------------------------------------------------------------------------------------------
// Output.

/// A row of times in ns: ours, moka, quick_cache, floor (NaN where not run).
struct Row {
    group: &'static str,
    workload: String,
    t: [f64; 4],
}

fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "–".into()
    } else if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.1} ns")
    }
}

fn fmt_ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() {
        "–".into()
    } else {
        format!("{:.2}", a / b)
    }
}

fn print_rows(rows: &[Row]) {
    println!(
        "| group | workload | async-memo | moka | quick_cache | RwLock<HashMap> | ours/moka | ours/quick_cache | ours/floor |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.group,
            r.workload,
            fmt_ns(r.t[0]),
            fmt_ns(r.t[1]),
            fmt_ns(r.t[2]),
            fmt_ns(r.t[3]),
            fmt_ratio(r.t[0], r.t[1]),
            fmt_ratio(r.t[0], r.t[2]),
            fmt_ratio(r.t[0], r.t[3]),
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Today's date (UTC), from the system clock.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn main() {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## async-memo benchmark report");
    println!();
    println!(
        "{} · {cores} cores · {} · load average at start {} · `cargo run --release --example bench_report`",
        today(),
        cpu_model(),
        load_average()
    );
    println!();
    println!(
        "Medians after a warm-up; times per call (the 90%-hit mix: per call, all threads together). \
         Ratios are ours / theirs: below 1 means async-memo is faster. moka 0.12 `future::Cache`, \
         quick_cache 0.7 `sync::Cache`, floor: `parking_lot::RwLock<std HashMap>`; each with its \
         default hasher. Futures are polled directly (no executor) except in the stampede."
    );
    println!();

    // Memory first, before any runtime or thread exists.
    const MEM_N: usize = 100_000;
    let mem = [
        (
            "async-memo (unbounded)",
            bytes_per_entry(MEM_N, || <Ours>::unbounded(MEM_N)),
        ),
        (
            "async-memo (max_capacity 100K)",
            bytes_per_entry(MEM_N, || <Ours>::bounded(MEM_N as u64).unwrap()),
        ),
        (
            "moka (unbounded)",
            bytes_per_entry(MEM_N, || Moka::unbounded(MEM_N)),
        ),
        (
            "moka (max_capacity 100K)",
            bytes_per_entry(MEM_N, || Moka::bounded(MEM_N as u64).unwrap()),
        ),
        (
            "quick_cache (capacity 100K)",
            bytes_per_entry(MEM_N, || Quick::bounded(MEM_N as u64).unwrap()),
        ),
        (
            "RwLock<HashMap>",
            bytes_per_entry(MEM_N, || <Floor>::unbounded(MEM_N)),
        ),
    ];

    // Future sizes: the get-or-compute call with an init returning a u64 at once.
    let fut_ours = {
        let memo: AsyncMemo<u64, u64> = AsyncMemo::new();
        std::mem::size_of_val(&memo.get_or_init(1, || async { 1 }))
    };
    let fut_moka = {
        let cache: moka::future::Cache<u64, u64> = moka::future::Cache::new(16);
        std::mem::size_of_val(&cache.get_with(1, async { 1 }))
    };
    let fut_quick = {
        let cache: quick_cache::sync::Cache<u64, u64> = quick_cache::sync::Cache::new(16);
        std::mem::size_of_val(&cache.get_or_insert_async(&1, async { Ok::<u64, ()>(1) }))
    };

    let mut rows = Vec::new();

    // 1. get hits.
    let mut get_10k = 0.0;
    let mut get_10k_row = [0.0; 4];
    for n in [1_000, 10_000, 1_000_000] {
        for zipf in [false, true] {
            if n == 1_000 && zipf {
                continue;
            }
            let keys = access(n, zipf, ACCESSES);
            let t = [
                get_hit::<Ours>(n, &keys),
                get_hit::<Moka>(n, &keys),
                get_hit::<Quick>(n, &keys),
                get_hit::<Floor>(n, &keys),
            ];
            if n == 10_000 && !zipf {
                get_10k = t[0];
                get_10k_row = t;
            }
            rows.push(Row {
                group: "`get` hit",
                workload: format!(
                    "{} keys, {}",
                    match n {
                        1_000 => "1K",
                        10_000 => "10K",
                        _ => "1M",
                    },
                    if zipf { "Zipf 0.9" } else { "uniform" }
                ),
                t,
            });
        }
    }

    // Diagnostic: the same 10K-key uniform hits with async-memo and the floor on quick_cache's
    // hasher (foldhash `quality`), to separate the floor's cost of std's SipHash from the rest,
    // and our default (foldhash `fast`) from the variant quick_cache chose.
    {
        type Fold = quick_cache::DefaultHashBuilder;
        let keys = access(10_000, false, ACCESSES);
        rows.push(Row {
            group: "`get` hit, diagnostic",
            workload: "10K keys, uniform, all on foldhash".into(),
            t: [
                get_hit::<Ours<Fold>>(10_000, &keys),
                f64::NAN,
                get_hit::<Quick>(10_000, &keys),
                get_hit::<Floor<Fold>>(10_000, &keys),
            ],
        });
    }

    // 2. get-or-compute hits.
    let keys = access(10_000, false, ACCESSES);
    let goi = [
        get_or_compute_hit::<Ours>(10_000, &keys),
        get_or_compute_hit::<Moka>(10_000, &keys),
        get_or_compute_hit::<Quick>(10_000, &keys),
        get_or_compute_hit::<Floor>(10_000, &keys),
    ];
    rows.push(Row {
        group: "get-or-compute hit",
        workload: "10K keys, uniform".into(),
        t: goi,
    });
    drop(keys);

    // 3. Miss and commit.
    let misses = [
        miss::<Ours>(),
        miss::<Moka>(),
        miss::<Quick>(),
        miss::<Floor>(),
    ];
    rows.push(Row {
        group: "miss and commit",
        workload: "unique keys, ready init, fresh cache per 100K".into(),
        t: misses,
    });

    // 5. Churn.
    let churns = [
        churn::<Ours>(10_000),
        churn::<Moka>(10_000),
        churn::<Quick>(10_000),
        churn::<Floor>(10_000),
    ];
    rows.push(Row {
        group: "invalidate and refill",
        workload: "10K keys: hit, delete, recompute".into(),
        t: churns,
    });

    // 6. The 90%-hit mix on 1 and 2 threads (calls per second; shown as ns per call), and the
    // same with hits only.
    let mixes: Vec<[f64; 4]> = [(1, 10), (2, 10), (1, 0), (2, 0)]
        .into_iter()
        .map(|(threads, miss_every)| {
            [
                mix::<Ours>(threads, miss_every),
                mix::<Moka>(threads, miss_every),
                mix::<Quick>(threads, miss_every),
                mix::<Floor>(threads, miss_every),
            ]
        })
        .collect();
    for (i, m) in mixes.iter().enumerate() {
        rows.push(Row {
            group: if i < 2 { "90%-hit mix" } else { "100%-hit mix" },
            workload: format!(
                "{} thread(s), 10K keys{}",
                1 + i % 2,
                if i < 2 { " + 10% new keys" } else { "" }
            ),
            t: m.map(|rate| 1e9 / rate),
        });
    }

    // 4. Stampede: an init that wakes once (when everyone has arrived), and one that then
    // yields 8 more times (each a wake-up of the init future, as I/O would cause).
    let rt = runtime();
    let mut stampedes = Vec::new();
    for yields in [0, 8] {
        let s = [
            stampede_run::<Ours>(&rt, yields),
            stampede_run::<Moka>(&rt, yields),
            stampede_run::<Quick>(&rt, yields),
            stampede_run::<Floor>(&rt, yields),
        ];
        rows.push(Row {
            group: "stampede",
            workload: format!(
                "1,000 tasks, one cold key, 2-worker tokio; init wakes {}",
                if yields == 0 {
                    "once".to_string()
                } else {
                    format!("{} times", yields + 1)
                }
            ),
            t: s.map(|s| s.0 * 1000.0),
        });
        stampedes.push(s);
    }

    // 8. `#[memoize]`: the attribute, the same memo by hand, and cached's `#[cached]`.
    let memoize_rows = memoize_rows(&rt);
    drop(rt);

    // 7. Refresh: a hit on an entry whose refresh is in flight, and the 90%-hit mix on a memo
    // with refresh_after (every hot key refreshed every 100 ms by a worker thread).
    let refresh_keys = access(10_000, false, ACCESSES);
    let hit_plain = get_hit::<Ours>(10_000, &refresh_keys);
    let hit_refreshing = get_hit_refreshing(10_000, &refresh_keys);
    let mix_plain = mix::<Ours>(1, 10);
    let mix_refreshing = mix::<OursRefreshing>(1, 10);

    print_rows(&rows);
    println!();
    println!("| refresh | plain memo | with refresh | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `get` hit, 10K keys, every key with a refresh in flight | {} | {} | {} |",
        fmt_ns(hit_plain),
        fmt_ns(hit_refreshing),
        fmt_ratio(hit_refreshing, hit_plain)
    );
    println!(
        "| 90%-hit mix, 1 thread, `refresh_after(100 ms)` (calls/s) | {:.2} M | {:.2} M | {:.2}x |",
        mix_plain / 1e6,
        mix_refreshing / 1e6,
        mix_refreshing / mix_plain
    );
    println!();
    let inits = |i: usize| stampedes[0][i].1.max(stampedes[1][i].1);
    println!(
        "Stampede inits (most seen in 62 runs; must be 1): async-memo {}, moka {}, quick_cache {}, \
         RwLock<HashMap> {} (no single-flight).",
        inits(0),
        inits(1),
        inits(2),
        inits(3)
    );
    println!();
    println!("| mix, calls/s (all threads) | async-memo | moka | quick_cache | RwLock<HashMap> |");
    println!("|---|---:|---:|---:|---:|");
    let mut scales = Vec::new();
    for (name, one, two) in [("90% hits", 0, 1), ("100% hits", 2, 3)] {
        let mops = |m: [f64; 4]| m.map(|r| format!("{:.2} M", r / 1e6));
        let (m1, m2) = (mops(mixes[one]), mops(mixes[two]));
        println!(
            "| {name}, 1 thread | {} | {} | {} | {} |",
            m1[0], m1[1], m1[2], m1[3]
        );
        println!(
            "| {name}, 2 threads | {} | {} | {} | {} |",
            m2[0], m2[1], m2[2], m2[3]
        );
        let scale: [f64; 4] = std::array::from_fn(|i| mixes[two][i] / mixes[one][i]);
        println!(
            "| {name}, 2 threads / 1 thread | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            scale[0], scale[1], scale[2], scale[3]
        );
        scales.push(scale);
    }
    println!();

    // 7. Bounded memos.
    println!(
        "Bounded (get-or-compute on every access; hit ratio of one pass from cold, time the \
         median of three passes; 100K-key space, 500K accesses):"
    );
    println!();
    println!(
        "| trace | capacity | hit async-memo | hit moka | hit quick_cache | ours - moka (pp) | async-memo | moka | quick_cache | ours/moka | ours/quick_cache |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    const KEY_SPACE: usize = 100_000;
    let mut worst_pp = f64::INFINITY;
    let mut worst_speedup = f64::INFINITY;
    for trace in traces::traces(KEY_SPACE, 500_000) {
        for percent in [1, 10] {
            let capacity = (KEY_SPACE * percent / 100) as u64;
            let ours = bounded::<Ours>(&trace.keys, capacity);
            let moka = bounded::<Moka>(&trace.keys, capacity);
            let quick = bounded::<Quick>(&trace.keys, capacity);
            let pp = (ours.0 - moka.0) * 100.0;
            worst_pp = worst_pp.min(pp);
            worst_speedup = worst_speedup.min(moka.1 / ours.1);
            println!(
                "| {} | {percent}% | {:.2}% | {:.2}% | {:.2}% | {pp:+.2} | {} | {} | {} | {} | {} |",
                trace.name,
                ours.0 * 100.0,
                moka.0 * 100.0,
                quick.0 * 100.0,
                fmt_ns(ours.1),
                fmt_ns(moka.1),
                fmt_ns(quick.1),
                fmt_ratio(ours.1, moka.1),
                fmt_ratio(ours.1, quick.1),
            );
        }
    }
    println!();

    println!("| memory, 100K `u64 -> u64` entries | bytes per entry | entries held |");
    println!("|---|---:|---:|");
    for (name, (bytes, len)) in &mem {
        println!("| {name} | {bytes:.1} | {len} |");
    }
    println!();
    println!("| get-or-compute future (`size_of_val`) | bytes |");
    println!("|---|---:|");
    println!("| async-memo `get_or_init` | {fut_ours} |");
    println!("| moka `get_with` | {fut_moka} |");
    println!("| quick_cache `get_or_insert_async` | {fut_quick} |");
    println!();

    // Targets of the benchmark issue.
    let ours_mem = mem[0].1.0.max(mem[1].1.0);
    let stampede_ratio = stampedes
        .iter()
        .map(|s| s[0].0 / s[1].0)
        .fold(0.0, f64::max);
    let stampede_ok = inits(0) == 1 && stampede_ratio <= 0.5;
    println!(
        "`#[memoize]` (n -> 2n, `u64` keys; hits over 1K keys, misses on fresh keys, futures \
         polled directly; the crowd: 100 tasks on the 2-worker runtime call one cold key, the body \
         returns once all have called; the three measured in turns, 11 rounds and 21 crowds):"
    );
    println!();
    println!(
        "| memoized fn | hit | miss | 100-caller crowd | body runs per crowd | hit / hand-written | miss / hand-written |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let hand = &memoize_rows[1];
    for r in &memoize_rows {
        println!(
            "| {} | {} | {} | {:.1} µs | {} | {} | {} |",
            r.name,
            fmt_ns(r.hit),
            fmt_ns(r.miss),
            r.crowd_us,
            r.crowd_runs,
            fmt_ratio(r.hit, hand.hit),
            fmt_ratio(r.miss, hand.miss),
        );
    }
    println!();

    println!("| target | measured | verdict |");
    println!("|---|---|---|");
    let [g_ours, g_moka, g_quick, g_floor] = get_10k_row;
    let get_ok = g_moka / g_ours >= 8.0 && g_ours <= g_quick && g_ours / g_floor <= 1.5;
    println!(
        "| `get` hit, 10K keys: ≥ 8x moka, ≤ quick_cache, ≤ 1.5x floor | {:.1}x moka, {:.2}x quick_cache, {:.2}x floor | {} |",
        g_moka / g_ours,
        g_ours / g_quick,
        g_ours / g_floor,
        verdict(get_ok)
    );
    println!(
        "| `get_or_init` hit ≤ 1.5x our `get` hit | {:.2}x | {} |",
        goi[0] / get_10k,
        verdict(goi[0] / get_10k <= 1.5)
    );
    println!(
        "| miss and commit ≥ 5x faster than moka | {:.1}x | {} |",
        misses[1] / misses[0],
        verdict(misses[1] / misses[0] >= 5.0)
    );
    println!(
        "| 2 threads ≥ 1.6x 1 thread (90%-hit mix) | {:.2}x (moka {:.2}x, quick_cache {:.2}x, floor {:.2}x; hits only: {:.2}x) | {} |",
        scales[0][0],
        scales[0][1],
        scales[0][2],
        scales[0][3],
        scales[1][0],
        verdict(scales[0][0] >= 1.6)
    );
    println!(
        "| stampede: 1 init, ≤ half of moka's time | {} init(s); {:.2}x moka (init wakes once), {:.2}x (9 times) | {} |",
        inits(0),
        stampedes[0][0].0 / stampedes[0][1].0,
        stampedes[1][0].0 / stampedes[1][1].0,
        verdict(stampede_ok)
    );
    println!(
        "| memory ≤ 100 B per `u64 -> u64` entry | {:.1} B unbounded, {:.1} B bounded (moka {:.1} B) | {} |",
        mem[0].1.0,
        mem[1].1.0,
        mem[2].1.0,
        verdict(ours_mem <= 100.0)
    );
    println!(
        "| `get_or_init` future ≤ 256 B | {fut_ours} B (moka {fut_moka} B) | {} |",
        verdict(fut_ours <= 256)
    );
    println!(
        "| bounded hit ratio within 2 pp of moka on every trace | worst {worst_pp:+.2} pp | {} |",
        verdict(worst_pp >= -2.0)
    );
    println!(
        "| bounded throughput ≥ 5x moka | worst {worst_speedup:.1}x | {} |",
        verdict(worst_speedup >= 5.0)
    );
    let attr = &memoize_rows[0];
    let attr_overhead = (attr.hit / hand.hit).max(attr.miss / hand.miss);
    println!(
        "| `#[memoize]` ≤ 1.1x hand-written `get_or_init` (hit and miss), one body run per crowd | {:.2}x hit, {:.2}x miss; {} run(s) (cached {}) | {} |",
        attr.hit / hand.hit,
        attr.miss / hand.miss,
        attr.crowd_runs,
        memoize_rows[2].crowd_runs,
        verdict(attr_overhead <= 1.1 && attr.crowd_runs == 1)
    );
    println!(
        "| hit with a refresh in flight ≤ 1.05x a plain hit | {:.2}x | {} |",
        hit_refreshing / hit_plain,
        verdict(hit_refreshing / hit_plain <= 1.05)
    );
    println!(
        "| `refresh_after` memo, 90%-hit mix ≥ 0.9x the plain memo | {:.2}x | {} |",
        mix_refreshing / mix_plain,
        verdict(mix_refreshing / mix_plain >= 0.9)
    );
    println!(
        "| stats on vs off: no difference on the hit path | stats cannot be switched off (always on) | not measurable |"
    );
    println!();
    println!(
        "Finished in {:.0} s; load average at end {}.",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
