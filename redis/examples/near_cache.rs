//! Many processes memoize values from one source of truth that a writer keeps changing, and
//! count what a near cache must never do: serve or store a value older than an invalidation
//! it has applied.
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly no &
//! cargo run -p async-memo-redis --example near_cache -- --redis redis://127.0.0.1:6379/ --processes 4 --seconds 5
//! cargo run -p async-memo-redis --example near_cache -- --redis redis://127.0.0.1:6379/ --processes 4 --seconds 5 --naive
//! ```
//!
//! See `--help` for what is measured and how "stale" is defined.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, NearMemo, RedisLog};
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const HELP: &str = "\
near_cache: N reader processes memoize values from a Redis hash that a writer keeps updating
(each value is its version) and invalidating; loads take --load-ms, so loads in progress meet
invalidations.

USAGE:
    near_cache [--redis URL] [--processes N] [--seconds S] [--load-ms MS] [--keys K] [--naive]

OPTIONS:
    --redis URL       the server (default redis://127.0.0.1:6379/)
    --processes N     reader processes (default 4)
    --seconds S       how long the writer writes (default 5)
    --load-ms MS      how long a load takes after reading the source (default 5)
    --keys K          how many keys (default 8)
    --naive           apply invalidations the JetCache way: delete the ready entry by key and
                      leave loads in progress alone (async-memo's NearMemo detaches them)

DEFINITIONS:
    A stale read is a read that *started* after the process had applied an invalidation of
    that key and returned a version older than it (reads concurrent with an invalidation may
    see either). A stale commit stores a version older than an invalidation the process had
    applied before the store. Propagation is the time from the writer publishing an
    invalidation to a reader applying it.

OUTPUT:
    One line per process, then, last:
    stale reads: X, stale commits: Y, invalidations: Z, propagation p50/p99: A/B ms
    The exit status is 0 exactly when X and Y are 0.
";

#[derive(Clone, Debug)]
struct Args {
    redis: String,
    processes: usize,
    seconds: f64,
    load_ms: u64,
    keys: usize,
    naive: bool,
    /// Internal: `reader NAMESPACE`.
    reader: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        redis: "redis://127.0.0.1:6379/".into(),
        processes: 4,
        seconds: 5.0,
        load_ms: 5,
        keys: 8,
        naive: false,
        reader: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--redis" => args.redis = value("--redis"),
            "--processes" => args.processes = number(&value("--processes")),
            "--seconds" => args.seconds = number(&value("--seconds")),
            "--load-ms" => args.load_ms = number(&value("--load-ms")),
            "--keys" => args.keys = number(&value("--keys")),
            "--naive" => args.naive = true,
            "--reader" => args.reader = Some(value("--reader")),
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if args.processes == 0 || args.keys == 0 || !(args.seconds > 0.0 && args.seconds < 1e6) {
        fail("--processes and --keys must be at least 1, --seconds positive");
    }
    args
}

fn number<T: std::str::FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| fail(&format!("not a number: {text:?}")))
}

fn fail(message: &str) -> ! {
    eprintln!("near_cache: {message}\n\n{HELP}");
    std::process::exit(2)
}

fn key(i: usize) -> String {
    format!("k{i}")
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    match args.reader.clone() {
        Some(namespace) => reader(args, namespace).await,
        None => coordinator(args).await,
    }
}

/// What a reader process reports.
#[derive(Debug, Default)]
struct Report {
    stale_reads: u64,
    stale_commits: u64,
    reads: u64,
    applied: u64,
    gaps: u64,
    lags_us: Vec<u64>,
}

impl Report {
    fn to_line(&self) -> String {
        let lags: Vec<String> = self.lags_us.iter().map(u64::to_string).collect();
        format!(
            "RESULT {} {} {} {} {} {}",
            self.stale_reads,
            self.stale_commits,
            self.reads,
            self.applied,
            self.gaps,
            lags.join(",")
        )
    }

    fn parse(line: &str) -> Option<Report> {
        let mut parts = line.strip_prefix("RESULT ")?.split(' ');
        let mut n = || parts.next()?.parse().ok();
        let (stale_reads, stale_commits, reads, applied, gaps) = (n()?, n()?, n()?, n()?, n()?);
        let lags_us = parts
            .next()
            .unwrap_or("")
            .split(',')
            .filter_map(|l| l.parse().ok())
            .collect();
        Some(Report {
            stale_reads,
            stale_commits,
            reads,
            applied,
            gaps,
            lags_us,
        })
    }
}

async fn coordinator(args: Args) {
    let run = format!(
        "near-cache-{}-{}",
        std::process::id(),
        async_memo_redis_now_ms()
    );
    let data = format!("{run}:data");
    let log = RedisLog::open(args.redis.as_str(), &run).unwrap_or_else(|e| fail(&e.to_string()));
    let writer: NearMemo<String, u64> = match NearMemo::builder(log).start(AsyncMemo::new()).await {
        Ok(writer) => writer,
        Err(e) => fail(&format!("cannot reach Redis at {}: {e}", args.redis)),
    };

    let mut children = Vec::new();
    for _ in 0..args.processes {
        let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
        command.args(["--redis", &args.redis, "--reader", &run]);
        command.args([
            "--load-ms",
            &args.load_ms.to_string(),
            "--keys",
            &args.keys.to_string(),
        ]);
        if args.naive {
            command.arg("--naive");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a reader process");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Readers have recorded the log's end when they say READY: no write is before it.
        let ready = lines.next_line().await.ok().flatten();
        assert_eq!(ready.as_deref(), Some("READY"), "a reader failed to start");
        children.push((child, stdin, lines));
    }

    // The writer: bump a key's version and publish its invalidation in one transaction,
    // about once a millisecond.
    let started = Instant::now();
    let mut invalidations = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    while started.elapsed().as_secs_f64() < args.seconds {
        tick.tick().await;
        let k = key(xorshift(&mut rng) as usize % args.keys);
        let mut writes = redis::pipe();
        writes.hincr(&data, &k, 1);
        match writer.commit_and_invalidate(&writes, &k).await {
            Ok(_) => invalidations += 1,
            Err(e) => fail(&format!("the writer failed: {e}")),
        }
    }

    let mut total = Report::default();
    for (i, (mut child, mut stdin, mut lines)) in children.into_iter().enumerate() {
        stdin
            .write_all(format!("STOP {invalidations}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let mut report = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(r) = Report::parse(&line) {
                report = Some(r);
                break;
            }
        }
        let r = report.expect("a reader exited without a report");
        let _ = child.wait().await;
        println!(
            "process {i}: {} reads, {} invalidations applied, {} gaps, stale reads {}, stale commits {}",
            r.reads, r.applied, r.gaps, r.stale_reads, r.stale_commits
        );
        total.stale_reads += r.stale_reads;
        total.stale_commits += r.stale_commits;
        total.gaps += r.gaps;
        total.lags_us.extend(r.lags_us);
    }
    if let Ok(mut connection) = writer
        .log()
        .client()
        .get_multiplexed_async_connection()
        .await
    {
        let _: Result<(), _> = connection
            .del(&[data.as_str(), writer.log().stream_key()])
            .await;
    }

    total.lags_us.sort_unstable();
    let pct = |p: f64| {
        let lags = &total.lags_us;
        if lags.is_empty() {
            return f64::NAN;
        }
        lags[((lags.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    if total.gaps > 0 {
        println!(
            "note: {} gaps were detected; each flushed a memo",
            total.gaps
        );
    }
    println!(
        "stale reads: {}, stale commits: {}, invalidations: {}, propagation p50/p99: {:.2}/{:.2} ms",
        total.stale_reads,
        total.stale_commits,
        invalidations,
        pct(0.50),
        pct(0.99)
    );
    std::process::exit(if total.stale_reads == 0 && total.stale_commits == 0 {
        0
    } else {
        1
    });
}

fn async_memo_redis_now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn reader(args: Args, namespace: String) {
    let client = redis::Client::open(args.redis.as_str()).unwrap();
    let data = format!("{namespace}:data");
    // applied[k]: how many invalidations of k this process has applied = the version the
    // source had reached when the last of them was published (the writer bumps the version and
    // publishes in one transaction, so the n-th invalidation of k announces version n).
    let applied: Arc<HashMap<String, AtomicU64>> = Arc::new(
        (0..args.keys)
            .map(|i| (key(i), AtomicU64::new(0)))
            .collect(),
    );
    let lags = Arc::new(Mutex::new(Vec::new()));
    let gaps = Arc::new(AtomicU64::new(0));

    // The memo the workers read. Correct: the NearMemo's own memo (records remove the entry
    // and detach the flight). Naive: a separate memo where the listener deletes ready entries
    // by key, as JetCache does; the NearMemo's memo is then unused.
    let cache: AsyncMemo<String, u64> = AsyncMemo::new();
    let naive = args.naive.then(|| cache.clone());
    let listener = {
        let (applied, lags, gaps) = (Arc::clone(&applied), Arc::clone(&lags), Arc::clone(&gaps));
        move |event: &Applied<'_, String>| match event {
            Applied::Key { key, lag, .. } => {
                if let Some(naive) = &naive {
                    if let Some(entry) = naive.get(key.as_str()) {
                        naive.invalidate(key.as_str(), entry.epoch());
                    }
                }
                if let Some(counter) = applied.get(key.as_str()) {
                    counter.fetch_add(1, SeqCst);
                }
                if let Some(lag) = lag {
                    lags.lock().unwrap().push(lag.as_micros() as u64);
                }
            }
            Applied::All { .. } => {
                if let Some(naive) = &naive {
                    naive.invalidate_all();
                }
                gaps.fetch_add(1, SeqCst);
            }
            _ => {}
        }
    };
    let log = RedisLog::open(args.redis.as_str(), &namespace).unwrap();
    let memo_for_log = if args.naive {
        AsyncMemo::new()
    } else {
        cache.clone()
    };
    let near: NearMemo<String, u64> = NearMemo::builder(log)
        .on_apply(listener)
        .start(memo_for_log)
        .await
        .unwrap();
    say("READY");

    let stop = Arc::new(AtomicBool::new(false));
    let stale_reads = Arc::new(AtomicU64::new(0));
    let stale_commits = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (cache, applied, client, data) = (
            cache.clone(),
            Arc::clone(&applied),
            client.clone(),
            data.clone(),
        );
        let (stop, stale_reads, stale_commits, reads) = (
            Arc::clone(&stop),
            Arc::clone(&stale_reads),
            Arc::clone(&stale_commits),
            Arc::clone(&reads),
        );
        let load = Duration::from_millis(args.load_ms);
        let keys = args.keys;
        workers.push(tokio::spawn(async move {
            let connection = client.get_multiplexed_async_connection().await.unwrap();
            let mut rng = 0x2545_f491_4f6c_dd1d
                ^ (w + 1).wrapping_mul(0x9e37_79b9)
                ^ std::process::id() as u64;
            while !stop.load(SeqCst) {
                let k = key(xorshift(&mut rng) as usize % keys);
                let counter = applied.get(&k).unwrap();
                let before = counter.load(SeqCst);
                // Set by our init, if ours ran: the invalidations applied just before its
                // value could be stored.
                let at_commit = Arc::new(AtomicU64::new(u64::MAX));
                let init = {
                    let (mut connection, data, k, at_commit, applied) = (
                        connection.clone(),
                        data.clone(),
                        k.clone(),
                        Arc::clone(&at_commit),
                        Arc::clone(&applied),
                    );
                    move || async move {
                        let version: Option<u64> = connection.hget(&data, &k).await.unwrap();
                        tokio::time::sleep(load).await;
                        at_commit.store(applied[&k].load(SeqCst), SeqCst);
                        version.unwrap_or(0)
                    }
                };
                let entry = cache.get_or_init(k.clone(), init).await;
                let version = *entry.value();
                reads.fetch_add(1, SeqCst);
                if version < before {
                    stale_reads.fetch_add(1, SeqCst);
                }
                let at_commit = at_commit.load(SeqCst);
                let stored = cache.epoch(&k) == Some(entry.epoch());
                if at_commit != u64::MAX && version < at_commit && stored {
                    stale_commits.fetch_add(1, SeqCst);
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }));
    }

    // Run until told to stop, then wait (a failure guard of 10 s) until every invalidation the
    // writer published has been applied, so that the counts cover the whole run.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let published: u64 = loop {
        match lines.next_line().await.unwrap() {
            Some(line) => {
                if let Some(n) = line.strip_prefix("STOP ") {
                    break n.parse().unwrap();
                }
            }
            None => return,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while near.stats().applied < published && near.stats().gaps == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let report = Report {
        stale_reads: stale_reads.load(SeqCst),
        stale_commits: stale_commits.load(SeqCst),
        reads: reads.load(SeqCst),
        applied: near.stats().applied,
        gaps: gaps.load(SeqCst),
        lags_us: std::mem::take(&mut *lags.lock().unwrap()),
    };
    say(&report.to_line());
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}
