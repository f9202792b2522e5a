//! The invalidation log's numbers: propagation latency (p50/p99, publish to apply in another
//! process) at a light load, and the sustained invalidation rate across several processes
//! that all publish flat out while applying each other's records.
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly no &
//! cargo run --release -p async-memo-redis --example propagation -- --redis redis://127.0.0.1:6379/ --processes 4 --seconds 5
//! ```
//!
//! Every process publishes through its own `NearMemo` and applies everybody else's records;
//! the run checks that each process applied exactly the records the others published, with no
//! gap. Latency is measured with the publisher's and the reader's clocks, on one machine.
//!
//! Every call to Redis handles its error: a publish that fails is counted and retried after a
//! backoff (the log reconnects by itself), and a failed publish may have been appended all the
//! same, so the check then allows that many records more.

use std::io::Write as _;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, NearMemo, RedisLog};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

const HELP: &str = "\
propagation: invalidation propagation latency and sustained invalidations per second across
processes, through one Redis stream.

USAGE:
    propagation [--redis URL] [--processes N] [--seconds S]

    --redis URL       the server (default redis://127.0.0.1:6379/)
    --processes N     processes, each publishing and applying (default 4)
    --seconds S       length of each of the two phases (default 5)
";

#[tokio::main]
async fn main() -> ExitCode {
    let mut redis = "redis://127.0.0.1:6379/".to_string();
    let (mut processes, mut seconds, mut child) = (4usize, 5f64, None::<String>);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| fail("an option needs a value"));
        match arg.as_str() {
            "--redis" => redis = value(),
            "--processes" => processes = value().parse().unwrap_or_else(|_| fail("--processes")),
            "--seconds" => seconds = value().parse().unwrap_or_else(|_| fail("--seconds")),
            "--child" => child = Some(value()),
            "-h" | "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if processes < 2 || !(seconds > 0.0 && seconds < 1e6) {
        fail("--processes must be at least 2 and --seconds positive");
    }
    let outcome = match &child {
        Some(namespace) => run_child(&redis, namespace).await,
        None => coordinate(&redis, processes, seconds).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let who = match child {
                Some(_) => format!("propagation child {}", std::process::id()),
                None => "propagation".to_string(),
            };
            eprintln!("{who}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("propagation: {message}\n\n{HELP}");
    std::process::exit(2)
}

/// A child process and its control channel (its stdin and stdout).
struct Child {
    process: tokio::process::Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Child {
    async fn spawn(redis: &str, namespace: &str) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut process = tokio::process::Command::new(exe)
            .args(["--redis", redis, "--child", namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a child: {e}"))?;
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            return Err("a child started without pipes".into());
        };
        let mut child = Child {
            process,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        child.expect("READY", Duration::from_secs(30)).await?;
        Ok(child)
    }

    async fn tell(&mut self, line: &str) -> Result<(), String> {
        let sent = async {
            self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
            self.stdin.flush().await
        };
        sent.await
            .map_err(|e| format!("cannot tell a child {line:?}: {e}"))
    }

    /// The rest of the next line that starts with `prefix`, within `patience`.
    async fn expect(&mut self, prefix: &str, patience: Duration) -> Result<String, String> {
        let lines = &mut self.lines;
        let read = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(rest) = line.strip_prefix(prefix) {
                            return Ok(rest.trim().to_string());
                        }
                    }
                    Ok(None) => {
                        return Err(format!(
                            "a child exited before saying {prefix} (its message is above)"
                        ));
                    }
                    Err(e) => return Err(format!("cannot read a child's output: {e}")),
                }
            }
        };
        tokio::time::timeout(patience, read)
            .await
            .unwrap_or_else(|_| Err(format!("a child did not say {prefix} within {patience:?}")))
    }
}

async fn coordinate(redis: &str, processes: usize, seconds: f64) -> Result<(), String> {
    let namespace = format!("propagation-{}", std::process::id());
    let mut children = Vec::new();
    for _ in 0..processes {
        children.push(Child::spawn(redis, &namespace).await?);
    }
    // A phase, the children's wait for its last records (30 s at most), and slack.
    let patience = Duration::from_secs_f64(seconds) + Duration::from_secs(60);
    println!("# Invalidation propagation: {processes} processes, one Redis stream, {redis}\n");
    println!("| phase | published | per second | applied everywhere | gaps | p50 | p99 | max |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    let (mut grand_total, mut own_totals) = (0u64, vec![0u64; processes]);
    let (mut all_failed, mut own_failed) = (0u64, vec![0u64; processes]);
    let mut notes = Vec::new();
    for phase in ["light", "flat-out"] {
        for child in &mut children {
            child.tell(&format!("RUN {phase} {seconds}")).await?;
        }
        let (mut published, mut failed) = (Vec::new(), Vec::new());
        for child in &mut children {
            let reply = child.expect("PUBLISHED", patience).await?;
            let mut numbers = reply.split(' ').map(str::parse::<u64>);
            match (numbers.next(), numbers.next()) {
                (Some(Ok(p)), Some(Ok(f))) => {
                    published.push(p);
                    failed.push(f);
                }
                _ => return Err(format!("a child said PUBLISHED {reply:?}")),
            }
        }
        let total: u64 = published.iter().sum();
        let phase_failed: u64 = failed.iter().sum();
        // Cumulative over the phases: a child may apply the first records of a phase before
        // it has read its own RUN line.
        grand_total += total;
        all_failed += phase_failed;
        for (i, child) in children.iter_mut().enumerate() {
            own_totals[i] += published[i];
            own_failed[i] += failed[i];
            let expected = grand_total - own_totals[i];
            // A failed publish may have been appended all the same.
            let slack = all_failed - own_failed[i];
            child.tell(&format!("EXPECT {expected} {slack}")).await?;
        }
        let (mut lags, mut complete, mut gaps) = (Vec::new(), true, 0u64);
        for child in &mut children {
            let report = child.expect("APPLIED", patience).await?;
            let mut parts = report.split(' ');
            complete &= parts.next() == Some("complete");
            gaps += parts
                .next()
                .and_then(|g| g.parse::<u64>().ok())
                .unwrap_or(0);
            lags.extend(
                parts
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|l| l.parse::<u64>().ok()),
            );
        }
        lags.sort_unstable();
        let pct = |p: f64| {
            lags.get(((lags.len().max(1) - 1) as f64 * p).round() as usize)
                .map_or(f64::NAN, |&us| us as f64 / 1000.0)
        };
        println!(
            "| {phase} | {total} | {:.0} | {} | {gaps} | {:.2} ms | {:.2} ms | {:.2} ms |",
            total as f64 / seconds,
            if complete { "yes" } else { "NO" },
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        if phase_failed > 0 {
            notes.push(format!(
                "{phase}: {phase_failed} publishes failed and were retried; each may have been \
                 appended all the same"
            ));
        }
    }
    for note in notes {
        println!("\nnote: {note}");
    }
    for mut child in children {
        drop(child.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), child.process.wait()).await;
    }
    if let Ok(client) = redis::Client::open(redis) {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(format!("async-memo:{namespace}:log"))
                .query_async(&mut c)
                .await;
        }
    }
    Ok(())
}

async fn run_child(redis: &str, namespace: &str) -> Result<(), String> {
    let lags = Arc::new(Mutex::new(Vec::<u64>::new()));
    let log = RedisLog::open(redis, namespace).map_err(|e| format!("bad --redis: {e}"))?;
    let (client, stream_key) = (log.client().clone(), log.stream_key().to_string());
    // The server may be starting: try for 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut backoff = Duration::from_millis(5);
    let near: NearMemo<u64, u64> = loop {
        let seen = Arc::clone(&lags);
        let log = RedisLog::from_client(client.clone(), stream_key.clone()).max_len(1_000_000);
        let started = NearMemo::builder(log)
            .on_apply(move |event: &Applied<'_, u64>| {
                if let Applied::Key { lag: Some(lag), .. } = event {
                    lock(&seen).push(lag.as_micros() as u64);
                }
            })
            .start(AsyncMemo::new())
            .await;
        match started {
            Ok(near) => break near,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("cannot reach the log: {e}"));
            }
            Err(_) => backoff = pause(backoff).await,
        }
    };
    say("READY")?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let me = u64::from(std::process::id());
    // Stdin closed (or broken): the coordinator is done, or gone.
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split(' ').collect();
        let ["RUN", phase, seconds] = words.as_slice() else {
            continue;
        };
        let seconds: f64 = seconds
            .parse()
            .map_err(|_| format!("RUN with a bad number of seconds: {line:?}"))?;
        let published = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        // Light: one record per process every 4 ms. Flat out: 8 publishers per process on the
        // multiplexed connection, each awaiting its XADD.
        let (publishers, every) = if *phase == "light" {
            (1, Some(Duration::from_millis(4)))
        } else {
            (8, None)
        };
        let mut tasks = Vec::new();
        for p in 0..publishers {
            let (near, published, failed) =
                (near.clone(), Arc::clone(&published), Arc::clone(&failed));
            tasks.push(tokio::spawn(async move {
                let (mut n, mut backoff) = (0u64, Duration::from_millis(5));
                while started.elapsed().as_secs_f64() < seconds {
                    match near.invalidate(&(me * 1_000 + p + n % 64)).await {
                        Ok(_) => {
                            published.fetch_add(1, SeqCst);
                            n += 1;
                            backoff = Duration::from_millis(5);
                            if let Some(every) = every {
                                tokio::time::sleep(every).await;
                            }
                        }
                        // The log reconnects by itself; the same key again after a backoff.
                        Err(_) => {
                            failed.fetch_add(1, SeqCst);
                            backoff = pause(backoff).await;
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.map_err(|e| format!("a publisher failed: {e}"))?;
        }
        say(&format!(
            "PUBLISHED {} {}",
            published.load(SeqCst),
            failed.load(SeqCst)
        ))?;
        let (expected, slack) = loop {
            let Ok(Some(line)) = lines.next_line().await else {
                return Ok(());
            };
            let words: Vec<&str> = line.split(' ').collect();
            if let ["EXPECT", expected, slack] = words.as_slice() {
                match (expected.parse::<u64>(), slack.parse::<u64>()) {
                    (Ok(expected), Ok(slack)) => break (expected, slack),
                    _ => return Err(format!("a bad EXPECT line: {line:?}")),
                }
            }
        };
        // A failure guard, not a measurement: the reader drains in milliseconds. `expected`
        // counts the other processes' records over every phase so far.
        let deadline = Instant::now() + Duration::from_secs(30);
        while near.stats().applied < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stats = near.stats();
        let complete = (expected..=expected + slack).contains(&stats.applied);
        // Every record of the phase is applied: its lags are all in, none of the next.
        let lags: Vec<String> = lock(&lags).drain(..).map(|l| l.to_string()).collect();
        say(&format!(
            "APPLIED {} {} {}",
            if complete { "complete" } else { "incomplete" },
            stats.gaps,
            lags.join(",")
        ))?;
    }
    Ok(())
}

/// Sleeps `backoff`; the next one, doubled up to 200 ms.
async fn pause(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(Duration::from_millis(200))
}

/// A poisoned lock only means a listener panicked; the lags are still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A line to the coordinator.
fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("the coordinator is gone: {e}"))
}
