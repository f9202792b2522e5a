//! The thread sweep of the bench report (issue 14): hit throughput on 1, 2, 4, ... threads up to
//! the machine's `available_parallelism`, for async-memo's `get` and `get_or_init`, quick_cache,
//! moka and the lock-free probe, and each one's N-thread / 1-thread ratio.
//!
//! A sample releases its threads together (a `Barrier`) and lets each read for a fixed wall time,
//! timed by the thread itself. A fixed time rather than a fixed count of reads: on a shared 2-vCPU
//! machine a thread the host preempts then simply reads less, instead of stretching the span of
//! every thread to its own late finish (what a fixed count measures). The readers take turns within
//! each round, so a change of load falls on all of them alike; the rate shown is the median of the
//! rounds.

use std::time::Duration;

use crate::contenders::{Contender, Ours, Quick, filled, mix_keys};
use crate::output::verdict;
use crate::readers::{MokaSync, Probe, Until, read_in_parallel, total_rate};
use crate::timing::median;

/// Keys every reader holds, read uniformly.
const KEYS: usize = 10_000;
/// Length of each thread's key sequence (cycled; a multiple of 1024).
const SEQUENCE: usize = 1 << 16;

/// The readers, in the order of the table.
pub const READERS: [&str; 5] = [
    "async-memo `get`",
    "async-memo `get_or_init` hit",
    "quick_cache `get`",
    "moka `sync::Cache::get`",
    "lock-free probe (`Arc<HashMap>`, foldhash)",
];
pub const OURS_GET: usize = 0;
pub const OURS_GET_OR_INIT: usize = 1;
pub const PROBE: usize = 4;

/// The sweep's results: `rates[reader][i]` is the median rate (reads per second, all threads
/// together) of `READERS[reader]` on `threads[i]` threads.
pub struct Sweep {
    pub cores: usize,
    pub threads: Vec<usize>,
    pub window: Duration,
    pub rounds: usize,
    pub rates: Vec<Vec<f64>>,
}

/// 1, 2, 4, ... up to `cores`, and `cores` itself; 2 always (the goal is stated for 2 threads).
fn thread_counts(cores: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1), |n| Some(n * 2))
        .take_while(|&n| n <= cores)
        .collect();
    counts.extend([cores.max(1), 2]);
    counts.sort_unstable();
    counts.dedup();
    counts
}

struct Subjects {
    ours: Ours,
    quick: Quick,
    moka: MokaSync,
    probe: Probe,
}

impl Subjects {
    fn rate(&self, reader: usize, keys: &[Vec<u64>], until: Until) -> f64 {
        let spans = match reader {
            0 => read_in_parallel(&|key| self.ours.get(key), keys, until),
            1 => read_in_parallel(&|key| Some(self.ours.get_or_compute(key)), keys, until),
            2 => read_in_parallel(&|key| self.quick.get(key), keys, until),
            3 => read_in_parallel(&|key| self.moka.get(key), keys, until),
            _ => read_in_parallel(&|key| self.probe.get(key), keys, until),
        };
        total_rate(&spans)
    }
}

/// Runs the sweep: one short warm-up round, then `rounds` rounds of `window` per sample.
pub fn run(window: Duration, rounds: usize) -> Sweep {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_counts(cores);
    let subjects = Subjects {
        ours: filled(KEYS),
        quick: filled(KEYS),
        moka: MokaSync::filled(KEYS),
        probe: Probe::filled(KEYS),
    };
    let most = *threads.last().unwrap();
    let keys: Vec<Vec<u64>> = (0..most).map(|t| mix_keys(t, KEYS, SEQUENCE, 0)).collect();
    let mut samples = vec![vec![Vec::new(); threads.len()]; READERS.len()];
    for round in 0..=rounds {
        let until = Until::Elapsed(if round == 0 { window / 4 } else { window });
        for (i, &n) in threads.iter().enumerate() {
            for (reader, samples) in samples.iter_mut().enumerate() {
                let rate = subjects.rate(reader, &keys[..n], until);
                if round > 0 {
                    samples[i].push(rate);
                }
            }
        }
    }
    let rates = samples
        .into_iter()
        .map(|per_count| per_count.into_iter().map(median).collect())
        .collect();
    Sweep {
        cores,
        threads,
        window,
        rounds,
        rates,
    }
}

impl Sweep {
    /// `READERS[reader]`'s rate on `threads` threads over its rate on one.
    pub fn ratio(&self, reader: usize, threads: usize) -> f64 {
        let i = self
            .threads
            .iter()
            .position(|&n| n == threads)
            .expect("a thread count of the sweep");
        self.rates[reader][i] / self.rates[reader][0]
    }

    pub fn print(&self) {
        println!(
            "Thread sweep: hits on {}K keys, uniform, each thread its own sequence; M reads/s, all \
             threads together. This machine: {} hardware threads (`available_parallelism`). \
             Threads start together (a `Barrier`) and each reads for a fixed {} ms of wall time \
             (fixed time, not a fixed count: a preempted thread reads less instead of stretching \
             the others' span); median of {} rounds, the readers in turns within each round.",
            KEYS / 1000,
            self.cores,
            self.window.as_millis(),
            self.rounds
        );
        println!();
        let many = &self.threads[1..];
        let mut head = String::from("| reader |");
        let mut rule = String::from("|---|");
        for n in &self.threads {
            head += &format!(" {n} thread{} |", if *n == 1 { "" } else { "s" });
            rule += "---:|";
        }
        for n in many {
            head += &format!(" {n} / 1 |");
            rule += "---:|";
        }
        println!("{head}");
        println!("{rule}");
        for (reader, name) in READERS.iter().enumerate() {
            let mut line = format!("| {name} |");
            for rate in &self.rates[reader] {
                line += &format!(" {:.2} M |", rate / 1e6);
            }
            for &n in many {
                line += &format!(" {:.2}x |", self.ratio(reader, n));
            }
            println!("{line}");
        }
        println!();
    }

    /// The verdict row of issue 14's scaling goal on `threads` threads: async-memo's N-thread /
    /// 1-thread ratio, `get` and `get_or_init` alike, at least 0.9x the probe's.
    pub fn print_verdict(&self, threads: usize) {
        let probe = self.ratio(PROBE, threads);
        let get = self.ratio(OURS_GET, threads) / probe;
        let get_or_init = self.ratio(OURS_GET_OR_INIT, threads) / probe;
        // The probe writes nothing shared: if even it gains less than 0.6x per thread, the host
        // gave the extra threads no cores of their own (other work on a shared machine), and a
        // ratio to it says nothing about the memo.
        let outcome = if probe < 0.6 * threads as f64 {
            format!("inconclusive: the probe itself reached {probe:.2}x (a busy machine)")
        } else {
            verdict(get.min(get_or_init) >= 0.9).to_string()
        };
        println!(
            "| hits on {threads} threads scale ≥ 0.9x as well as the lock-free probe ({threads}-thread / 1-thread ratio over the probe's) | `get` {:.2}x / probe {probe:.2}x = {get:.2}; `get_or_init` {:.2}x / {probe:.2}x = {get_or_init:.2} | {outcome} |",
            self.ratio(OURS_GET, threads),
            self.ratio(OURS_GET_OR_INIT, threads),
        );
    }
}
