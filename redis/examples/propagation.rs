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

use std::io::Write as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, NearMemo, RedisLog};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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
async fn main() {
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
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if processes < 2 || !(seconds > 0.0 && seconds < 1e6) {
        fail("--processes must be at least 2 and --seconds positive");
    }
    match child {
        Some(namespace) => run_child(&redis, &namespace).await,
        None => coordinate(&redis, processes, seconds).await,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("propagation: {message}\n\n{HELP}");
    std::process::exit(2)
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

async fn expect(lines: &mut Lines, prefix: &str) -> String {
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
    panic!("a child exited before saying {prefix}");
}

async fn coordinate(redis: &str, processes: usize, seconds: f64) {
    let namespace = format!("propagation-{}", std::process::id());
    let mut children = Vec::new();
    for _ in 0..processes {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--redis", redis, "--child", &namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a child");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        expect(&mut lines, "READY").await;
        children.push((child, stdin, lines));
    }
    println!("# Invalidation propagation: {processes} processes, one Redis stream, {redis}\n");
    println!("| phase | published | per second | applied everywhere | gaps | p50 | p99 | max |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    let (mut grand_total, mut own_totals) = (0u64, vec![0u64; processes]);
    for phase in ["light", "flat-out"] {
        for (_, stdin, _) in &mut children {
            stdin
                .write_all(format!("RUN {phase} {seconds}\n").as_bytes())
                .await
                .unwrap();
        }
        let mut published = Vec::new();
        for (_, _, lines) in &mut children {
            published.push(expect(lines, "PUBLISHED").await.parse::<u64>().unwrap());
        }
        let total: u64 = published.iter().sum();
        // Cumulative over the phases: a child may apply the first records of a phase before
        // it has read its own RUN line.
        grand_total += total;
        for (((_, stdin, _), own), own_total) in
            children.iter_mut().zip(&published).zip(&mut own_totals)
        {
            *own_total += own;
            let expected = grand_total - *own_total;
            stdin
                .write_all(format!("EXPECT {expected}\n").as_bytes())
                .await
                .unwrap();
        }
        let (mut lags, mut complete, mut gaps) = (Vec::new(), true, 0u64);
        for (_, _, lines) in &mut children {
            let report = expect(lines, "APPLIED").await;
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
    }
    for (mut child, stdin, _) in children {
        drop(stdin);
        let _ = child.wait().await;
    }
    if let Ok(client) = redis::Client::open(redis) {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(format!("async-memo:{namespace}:log"))
                .query_async(&mut c)
                .await;
        }
    }
}

async fn run_child(redis: &str, namespace: &str) {
    let lags = Arc::new(Mutex::new(Vec::<u64>::new()));
    let seen = Arc::clone(&lags);
    let log = RedisLog::open(redis, namespace).unwrap().max_len(1_000_000);
    let near: NearMemo<u64, u64> = NearMemo::builder(log)
        .on_apply(move |event: &Applied<'_, u64>| {
            if let Applied::Key { lag: Some(lag), .. } = event {
                seen.lock().unwrap().push(lag.as_micros() as u64);
            }
        })
        .start(AsyncMemo::new())
        .await
        .unwrap();
    say("READY");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let me = u64::from(std::process::id());
    while let Some(line) = lines.next_line().await.unwrap() {
        let words: Vec<&str> = line.split(' ').collect();
        if let ["RUN", phase, seconds] = words.as_slice() {
            let seconds: f64 = seconds.parse().unwrap();
            let published = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            // Light: one record per process every 4 ms. Flat out: 8 publishers per process
            // on the multiplexed connection, each awaiting its XADD.
            let (publishers, pause) = if *phase == "light" {
                (1, Some(Duration::from_millis(4)))
            } else {
                (8, None)
            };
            let mut tasks = Vec::new();
            for p in 0..publishers {
                let (near, published) = (near.clone(), Arc::clone(&published));
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while started.elapsed().as_secs_f64() < seconds {
                        near.invalidate(&(me * 1_000 + p + n % 64)).await.unwrap();
                        published.fetch_add(1, SeqCst);
                        n += 1;
                        if let Some(pause) = pause {
                            tokio::time::sleep(pause).await;
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            say(&format!("PUBLISHED {}", published.load(SeqCst)));
            let expected: u64 = loop {
                let line = lines.next_line().await.unwrap().unwrap_or_default();
                if let Some(n) = line.strip_prefix("EXPECT ") {
                    break n.parse().unwrap();
                }
            };
            // A failure guard, not a measurement: the reader drains in milliseconds.
            // `expected` counts the other processes' records over every phase so far.
            let deadline = Instant::now() + Duration::from_secs(30);
            while near.stats().applied < expected && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let stats = near.stats();
            let complete = stats.applied == expected;
            // Every record of the phase is applied: its lags are all in, none of the next.
            let lags: Vec<String> = lags
                .lock()
                .unwrap()
                .drain(..)
                .map(|l| l.to_string())
                .collect();
            say(&format!(
                "APPLIED {} {} {}",
                if complete { "complete" } else { "incomplete" },
                stats.gaps,
                lags.join(",")
            ));
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}
