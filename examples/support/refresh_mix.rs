//! The price of `refresh_after` in the bench report: the 90%-hit mix on memos with automatic
//! refresh beside the plain memo and beside an expiring memo on the same clock, and how often a
//! `get_or_init` hit reads the clock.
//!
//! The target (issue 19): a `refresh_after` memo costs no more than an expiring memo on the same
//! clock under the 90%-hit mix (≥ 0.95x its throughput), and reads the clock at most once per
//! hit. Any memo that must know the time pays for a clock read a call; what `refresh_after`
//! must not add is anything beyond that.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::{AsyncMemo, Clock, CoarseClock, ManualClock};

use crate::contenders::{
    Contender, NEVER_DUE_MS, Ours, OursRefreshing, REFRESH_AFTER, filled, mix_keys, now,
};
use crate::timing::median;

/// One row of the refresh mix: medians over the same rounds.
#[derive(Clone, Copy)]
pub struct RefreshRow {
    /// Calls per second of the memo compared with (the plain memo, or the expiring one).
    pub base: f64,
    /// Calls per second of the `refresh_after` memo.
    pub memo: f64,
    /// The median of the per-round ratios of the memo's throughput to the base's.
    pub ratio: f64,
}

/// The refresh mix's rows, and the refreshes the busy memo started.
pub struct RefreshMix {
    /// `refresh_after` never due during a run, default clock (coarse), against the plain memo.
    pub idle: RefreshRow,
    /// The same with `.clock(SystemClock)`.
    pub idle_precise: RefreshRow,
    /// `refresh_after` never due, default clock (coarse), against a memo with a time to live
    /// (never reached) on `.clock(CoarseClock)`: the target's comparison.
    pub against_expiring: RefreshRow,
    /// `refresh_after` never due on `.clock(SystemClock)`, against a memo with a time to live
    /// (never reached) on its default clock, `SystemClock`: the target's comparison.
    pub against_expiring_precise: RefreshRow,
    /// `refresh_after(100 ms)`, default clock, over runs long enough for refreshes to fire.
    pub busy: RefreshRow,
    /// Refreshes the busy memo started per run (median), out of `REFRESH_MIX_CALLS`.
    pub refreshes: f64,
}

/// Calls in one run of the busy refresh mix: about a quarter of a second on the development
/// VM, so that `contenders::REFRESH_AFTER` (100 ms) passes; the report prints how many
/// refreshes a run started, which says whether it did on the machine at hand.
pub const REFRESH_MIX_CALLS: usize = 1_500_000;

/// The memos of a round of the never-due mix (see [`idle_memo`]).
const IDLE_MEMOS: usize = 5;

/// The memo at `index` of a never-due round, filled with keys `0..10_000`: the plain memo; the
/// `refresh_after` memos on the coarse and the precise clock; the expiring memos on the same.
fn idle_memo(index: usize) -> Ours {
    match index {
        0 => filled::<Ours>(10_000),
        1 => filled::<OursRefreshing<false, NEVER_DUE_MS>>(10_000).0,
        2 => filled::<OursRefreshing<true, NEVER_DUE_MS>>(10_000).0,
        3 => expiring(true),
        _ => expiring(false),
    }
}

/// A memo with a time to live no run reaches, on `CoarseClock` or (its default) `SystemClock`,
/// filled with keys `0..10_000`.
fn expiring(coarse: bool) -> Ours {
    let builder = AsyncMemo::builder().time_to_live(Duration::from_millis(NEVER_DUE_MS));
    let memo = if coarse {
        builder.clock(CoarseClock).build()
    } else {
        builder.build()
    };
    let memo = Ours(memo);
    for key in 0..10_000 {
        memo.insert(key, key);
    }
    memo
}

/// The 90%-hit mix on one thread (10K hot keys, every tenth call a new key) on the plain memo,
/// two `refresh_after` memos whose refreshes never fall due (coarse and precise clock), two
/// expiring memos whose entries never expire (the same clocks), and a busy `refresh_after`
/// memo, measured in turns, in an order that rotates every round, after a warm-up round. Each
/// run starts on a freshly filled memo (and waits, untimed, for the refreshes it started to
/// finish), so that no run pays for another's. A ratio is the median over the rounds of the
/// base memo's time divided by the memo's in the same round: on a shared machine whose speed
/// drifts by 10-20% from one second to the next, a ratio taken within one round is the steadier
/// measure, and short rounds drift least. The never-due memos run 300K calls a run, 31 rounds;
/// the busy one runs `REFRESH_MIX_CALLS` calls a run (its 100 ms must pass), 9 rounds, each
/// with its own run of the plain memo.
pub fn refresh_mix_in_turns() -> RefreshMix {
    let short = mix_keys(0, 10_000, 300_000, 10);
    let mut idle: Vec<[f64; IDLE_MEMOS]> = Vec::new();
    for round in 0..32 {
        let mut runs = [0.0; IDLE_MEMOS];
        for turn in 0..IDLE_MEMOS {
            let memo = (round + turn) % IDLE_MEMOS;
            runs[memo] = mix_run(&idle_memo(memo), &short).0.as_secs_f64();
        }
        if round > 0 {
            idle.push(runs);
        }
    }
    let long = mix_keys(0, 10_000, REFRESH_MIX_CALLS, 10);
    let (mut busy, mut refreshes) = (Vec::new(), Vec::new());
    for round in 0..10 {
        let mut runs = [(Duration::ZERO, 0); 2];
        for turn in 0..2 {
            let memo = (round + turn) % 2;
            runs[memo] = match memo {
                0 => mix_run(&filled::<Ours>(10_000), &long),
                _ => refresh_mix_run(&filled::<OursRefreshing>(10_000), &long),
            };
        }
        if round > 0 {
            busy.push([runs[0].0.as_secs_f64(), runs[1].0.as_secs_f64()]);
            refreshes.push(runs[1].1 as f64);
        }
    }
    let pair = |base: usize, memo: usize| -> Vec<[f64; 2]> {
        idle.iter().map(|r| [r[base], r[memo]]).collect()
    };
    RefreshMix {
        idle: refresh_row(&pair(0, 1), short.len()),
        idle_precise: refresh_row(&pair(0, 2), short.len()),
        against_expiring: refresh_row(&pair(3, 1), short.len()),
        against_expiring_precise: refresh_row(&pair(4, 2), short.len()),
        busy: refresh_row(&busy, long.len()),
        refreshes: median(refreshes),
    }
}

/// A row from `[base seconds, memo seconds]` per round, each run `calls` calls.
fn refresh_row(rounds: &[[f64; 2]], calls: usize) -> RefreshRow {
    let rate = |i: usize| median(rounds.iter().map(|r| calls as f64 / r[i]).collect());
    RefreshRow {
        base: rate(0),
        memo: rate(1),
        ratio: median(rounds.iter().map(|r| r[0] / r[1]).collect()),
    }
}

/// One timed pass of `keys` through get-or-compute (the refreshes started: none here).
fn mix_run<C: Contender>(cache: &C, keys: &[u64]) -> (Duration, u64) {
    let t0 = Instant::now();
    let mut sum = 0u64;
    for &key in keys {
        sum = sum.wrapping_add(cache.get_or_compute(black_box(key)));
    }
    black_box(sum);
    (t0.elapsed(), 0)
}

/// `mix_run` on a refreshing memo; then waits (untimed, up to 10 s) until the worker has
/// finished every refresh the run started.
fn refresh_mix_run<const P: bool, const A: u64>(
    cache: &OursRefreshing<P, A>,
    keys: &[u64],
) -> (Duration, u64) {
    let (elapsed, _) = mix_run(cache, keys);
    let stats = || cache.0.0.stats();
    let started = stats().refreshes_started;
    for _ in 0..10_000 {
        let s = stats();
        if s.refreshes_committed + s.refreshes_detached + s.refreshes_failed >= started {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (elapsed, started)
}

/// A `ManualClock` that counts how often the memo reads it.
#[derive(Clone, Default)]
struct Counting {
    clock: ManualClock,
    reads: Arc<AtomicUsize>,
}

impl Clock for Counting {
    fn now(&self) -> Instant {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.clock.now()
    }
}

/// Clock reads per `get_or_init` hit of a `refresh_after` memo, counted by a clock that counts
/// (its `now` calls; deterministic, not timed) over 10K hits: `[no refresh due, every hit
/// finding its entry due and starting its refresh]`. The refreshes are queued, never run.
pub fn clock_reads_per_hit() -> [f64; 2] {
    const KEYS: u64 = 10_000;
    let clock = Counting::default();
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let spawn = {
        let tasks = Arc::clone(&tasks);
        move |task| tasks.lock().unwrap().push(task)
    };
    let memo: AsyncMemo<u64, u64> = AsyncMemo::builder()
        .refresh_after(REFRESH_AFTER, spawn)
        .clock(clock.clone())
        .build();
    for key in 0..KEYS {
        memo.insert(key, key)
            .expect("an unbounded memo refuses nothing");
    }
    let pass = || {
        let before = clock.reads.load(Ordering::Relaxed);
        for key in 0..KEYS {
            black_box(now(memo.get_or_init(key, move || async move { key + 1 })));
        }
        (clock.reads.load(Ordering::Relaxed) - before) as f64 / KEYS as f64
    };
    let not_due = pass();
    clock.clock.advance(REFRESH_AFTER);
    let due = pass();
    let started = tasks.lock().unwrap().len();
    assert_eq!(
        started as u64, KEYS,
        "every hit of the second pass started a refresh"
    );
    [not_due, due]
}
