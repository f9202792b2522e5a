//! The one-command comparison: `cargo run --release --example bench_report`.
//!
//! Runs reduced versions of every group of `benches/` (hits, get-or-compute, miss and commit,
//! stampede, invalidate-and-refill churn, the 90%-hit mix on 1 and 2 threads, bounded memos),
//! the lock-free probe that bounds a hit from below and a thread sweep of hits (issue 14,
//! `support/sweep.rs`), measures memory per entry with a counting global allocator and the size
//! of each library's get-or-compute future (`support/memory.rs`), prices `refresh_after` against
//! the plain memo and an expiring memo on the same clock (`support/refresh_mix.rs`), and prints
//! markdown tables of medians and ratios, then a verdict on each target of the benchmark issues.
//! Times are medians of several samples after a warm-up (`support/timing.rs`). A ratio `ours / X`
//! below 1 means async-memo is faster.

#[path = "support/traces.rs"]
mod traces;

#[path = "support/contenders.rs"]
mod contenders;

#[path = "support/memoized.rs"]
mod memoized;

#[path = "support/memory.rs"]
mod memory;

#[path = "support/output.rs"]
mod output;

#[path = "support/readers.rs"]
mod readers;

#[path = "support/refresh_mix.rs"]
mod refresh_mix;

#[path = "support/sweep.rs"]
mod sweep;

#[path = "support/timing.rs"]
mod timing;

use std::time::{Duration, Instant};

use contenders::{Floor, Moka, Ours, Quick, access, runtime};
use memory::Memory;
use output::{
    Row, cpu_model, fmt_ns, fmt_ratio, load_average, no_probe, print_rows, today, verdict,
};
use refresh_mix::{REFRESH_MIX_CALLS, clock_reads_per_hit, refresh_mix_in_turns};
use timing::{
    ACCESSES, bounded, churn, clock_read_ns, get_hit, get_hits_in_turns, get_hits_refreshing,
    get_or_compute_hit, get_or_init_drivers, memoize_rows, miss, mix, stampede_run,
};

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
         default hasher. Lock-free probe: an immutable `Arc<std HashMap>` on foldhash, filled once, \
         then only read (the physical limit of a hit). Futures are polled directly (no executor) \
         except in the stampede."
    );
    println!();

    // Memory first, before any runtime or thread exists.
    let mem = Memory::measure();
    let [fut_ours, fut_moka, fut_quick] = memory::future_sizes();

    let mut rows = Vec::new();

    // 1. get hits.
    let mut get_10k = 0.0;
    let mut get_10k_row = [0.0; 5];
    for n in [1_000, 10_000, 1_000_000] {
        for zipf in [false, true] {
            if n == 1_000 && zipf {
                continue;
            }
            let keys = access(n, zipf, ACCESSES);
            let t = get_hits_in_turns(n, &keys);
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
                f64::NAN,
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
        t: no_probe(goi),
    });
    // Our `get_or_init` hit driven two ways (see `timing::get_or_init_drivers`).
    let drivers = get_or_init_drivers(10_000, &keys);
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
        t: no_probe(misses),
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
        t: no_probe(churns),
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
            t: no_probe(m.map(|rate| 1e9 / rate)),
        });
    }

    // The thread sweep (before the runtime's workers exist).
    let sweep = sweep::run(Duration::from_millis(100), 5);

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
            t: no_probe(s.map(|s| s.0 * 1000.0)),
        });
        stampedes.push(s);
    }

    // 8. `#[memoize]`: the attribute, the same memo by hand, and cached's `#[cached]`.
    let memoize_rows = memoize_rows(&rt);
    drop(rt);

    // 7. Refresh: a hit on an entry whose refresh is in flight, the 90%-hit mix on memos with
    // refresh_after (never due, against the plain memo and an expiring memo on the same clock;
    // and every hot key refreshed once or twice a run by a worker thread), and the clock reads
    // of a get_or_init hit, counted.
    let refresh_keys = access(10_000, false, ACCESSES);
    let [hit_plain, hit_refreshing] = get_hits_refreshing(10_000, &refresh_keys);
    let refresh_mix = refresh_mix_in_turns();
    let clock_reads = clock_reads_per_hit();
    // What the memo reads: `Instant::now()`, and for `CoarseClock` the coarse clock itself (the
    // memo takes its ticks from it directly, without making an `Instant`).
    let clock_costs = [
        clock_read_ns(Instant::now),
        clock_read_ns(coarsetime::Instant::now_without_cache_update),
    ];

    print_rows(&rows);
    println!();
    println!(
        "| `get_or_init` hit, 10K keys, uniform; with our `get`, measured in turns | per call | / our `get` |"
    );
    println!("|---|---:|---:|");
    for (name, t) in [
        "our `get`",
        "`get_or_init`, polled once by the report's inlined `now` (as in the table above)",
        "`get_or_init`, polled once by `futures::FutureExt::now_or_never`",
    ]
    .into_iter()
    .zip(drivers)
    {
        println!("| {name} | {} | {} |", fmt_ns(t), fmt_ratio(t, drivers[0]));
    }
    println!();
    sweep.print();
    println!("| refresh | plain memo | with refresh | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `get` hit, 10K keys, every key with a refresh in flight (in turns) | {} | {} | {} |",
        fmt_ns(hit_plain),
        fmt_ns(hit_refreshing),
        fmt_ratio(hit_refreshing, hit_plain)
    );
    let busy = format!(
        "`refresh_after(100 ms)`, runs of {} calls: each hot key refreshed {:.1} times a run",
        REFRESH_MIX_CALLS,
        refresh_mix.refreshes / 10_000.0
    );
    for (what, row) in [
        (
            "`refresh_after` never due in the run, default clock (`CoarseClock`)",
            refresh_mix.idle,
        ),
        (
            "`refresh_after` never due in the run, `.clock(SystemClock)`",
            refresh_mix.idle_precise,
        ),
        (busy.as_str(), refresh_mix.busy),
    ] {
        println!(
            "| 90%-hit mix, 1 thread, {what} (calls/s; ratio: median of the rounds' ratios, in turns) | {:.2} M | {:.2} M | {:.2}x |",
            row.base / 1e6,
            row.memo / 1e6,
            row.ratio
        );
    }
    println!();
    println!(
        "| `refresh_after` never due, against an expiring memo on the same clock (`time_to_live` never reached) | expiring memo | with refresh | ratio |"
    );
    println!("|---|---:|---:|---:|");
    for (clock, row) in [
        (
            "`CoarseClock` (refresh's default; the expiring memo's `.clock(CoarseClock)`)",
            refresh_mix.against_expiring,
        ),
        (
            "`SystemClock` (expiry's default; refresh's `.clock(SystemClock)`)",
            refresh_mix.against_expiring_precise,
        ),
    ] {
        println!(
            "| 90%-hit mix, 1 thread, {clock} (calls/s; ratio: median of the rounds' ratios, in the same turns as above) | {:.2} M | {:.2} M | {:.2}x |",
            row.base / 1e6,
            row.memo / 1e6,
            row.ratio
        );
    }
    println!(
        "| clock reads per `get_or_init` hit of a `refresh_after` memo, counted by a counting clock (10K hits) | | {:.2} (none due), {:.2} (each starting its refresh) | |",
        clock_reads[0], clock_reads[1]
    );
    println!();
    println!(
        "A memo with `refresh_after` (or any expiry) reads its clock on every get-or-init call. \
         On this machine a read of `SystemClock` (`Instant::now()`) costs {} alone in a loop \
         and adds {} to a loop of random reads over 16 MiB; the coarse clock behind \
         `CoarseClock` (the default without expiry), as the memo reads it, costs {} and adds {}. \
         The busy run started {:.0} refreshes in {} calls \
         (median): each takes the shard's write lock to start, a task handed to a worker thread \
         through a channel, and the write lock again to commit; the plain memo does none of \
         this work.",
        fmt_ns(clock_costs[0].0),
        fmt_ns(clock_costs[0].1),
        fmt_ns(clock_costs[1].0),
        fmt_ns(clock_costs[1].1),
        refresh_mix.refreshes,
        REFRESH_MIX_CALLS,
    );
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

    mem.print();
    println!("| get-or-compute future (`size_of_val`) | bytes |");
    println!("|---|---:|");
    println!("| async-memo `get_or_init` | {fut_ours} |");
    println!("| moka `get_with` | {fut_moka} |");
    println!("| quick_cache `get_or_insert_async` | {fut_quick} |");
    println!();

    // Targets of the benchmark issue.
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
    let [g_ours, g_moka, g_quick, g_floor, _] = get_10k_row;
    let get_ok = g_moka / g_ours >= 8.0 && g_ours <= g_quick && g_ours / g_floor <= 1.5;
    println!(
        "| `get` hit, 10K keys: ≥ 8x moka, ≤ quick_cache, ≤ 1.5x floor | {:.1}x moka, {:.2}x quick_cache, {:.2}x floor | {} |",
        g_moka / g_ours,
        g_ours / g_quick,
        g_ours / g_floor,
        verdict(get_ok)
    );
    println!(
        "| `get` hit ≤ 1.0x quick_cache, each on its default hasher (10K keys, uniform) | {:.2}x | {} |",
        g_ours / g_quick,
        verdict(g_ours <= g_quick)
    );
    // Both drivers count: a user's `.await` is not always inlined (see the drivers' table).
    let goi_ratio = drivers[1].max(drivers[2]) / drivers[0];
    println!(
        "| `get_or_init` hit ≤ 1.2x our `get` hit (measured in turns; the slower driver) | {:.2}x (`now` {:.2}x, `now_or_never` {:.2}x; table above {:.2}x) | {} |",
        goi_ratio,
        drivers[1] / drivers[0],
        drivers[2] / drivers[0],
        goi[0] / get_10k,
        verdict(goi_ratio <= 1.2)
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
    // The goal is stated for 2 threads; a machine with more cores must keep scaling to all.
    sweep.print_verdict(2);
    if sweep.cores > 2 {
        sweep.print_verdict(sweep.cores);
    }
    println!(
        "| stampede: 1 init, ≤ half of moka's time | {} init(s); {:.2}x moka (init wakes once), {:.2}x (9 times) | {} |",
        inits(0),
        stampedes[0][0].0 / stampedes[0][1].0,
        stampedes[1][0].0 / stampedes[1][1].0,
        verdict(stampede_ok)
    );
    println!(
        "| memory ≤ 80 B per `u64 -> u64` entry, unbounded | {:.1} B unbounded ({:.1} B bounded, moka {:.1} B) | {} |",
        mem.unbounded(),
        mem.bounded(),
        mem.moka(),
        verdict(mem.unbounded() <= 80.0)
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
    // Restated in issue 19: what `refresh_after` adds to a memo that reads its clock anyway.
    let against_expiring = refresh_mix
        .against_expiring
        .ratio
        .min(refresh_mix.against_expiring_precise.ratio);
    let most_reads = clock_reads[0].max(clock_reads[1]);
    println!(
        "| `refresh_after` memo ≥ 0.95x an expiring memo on the same clock (90%-hit mix, never due), and ≤ 1 clock read per `get_or_init` hit | {:.2}x on `CoarseClock`, {:.2}x on `SystemClock`; {:.2} reads per hit (counted; {:.2} when it starts a refresh); against the plain memo {:.2}x, {:.2}x with {:.1}% of calls starting a refresh | {} |",
        refresh_mix.against_expiring.ratio,
        refresh_mix.against_expiring_precise.ratio,
        clock_reads[0],
        clock_reads[1],
        refresh_mix.idle.ratio,
        refresh_mix.busy.ratio,
        100.0 * refresh_mix.refreshes / REFRESH_MIX_CALLS as f64,
        verdict(against_expiring >= 0.95 && most_reads <= 1.0)
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
