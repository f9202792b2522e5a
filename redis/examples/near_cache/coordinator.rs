//! The coordinator: starts the reader processes (`../common/process.rs`), runs the writer,
//! stops the readers and prints the totals.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::process::{Process, now_ms};
use crate::report::Report;
use crate::{Args, Backoff, END_MARKER, fail, key, retry, xorshift};
use async_memo::AsyncMemo;
use async_memo_redis::{LogId, NearMemo, RedisLog};
use redis::AsyncCommands;

/// How long to keep trying to reach Redis at the start and end of the run.
const PATIENCE: Duration = Duration::from_secs(10);
/// What the writer did.
#[derive(Debug, Default)]
struct Writing {
    /// Commits the server acknowledged: each bumped a version and published its invalidation.
    commits: u64,
    /// Commits that failed and were retried (each may have run all the same).
    failed: u64,
    /// Acknowledged versions that were not above the last acknowledged version of their key:
    /// the source lost writes.
    regressions: u64,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let run = format!("near-cache-{}-{}", std::process::id(), now_ms());
    let data = format!("{run}:data");
    let log = RedisLog::open(args.redis.as_str(), &run).unwrap_or_else(|e| fail(&e.to_string()));
    let (client, stream_key) = (log.client().clone(), log.stream_key().to_string());
    let started = retry(PATIENCE, || {
        NearMemo::builder(RedisLog::from_client(client.clone(), stream_key.clone()))
            .start(AsyncMemo::new())
    })
    .await;
    let writer: NearMemo<String, u64> = match started {
        Ok(writer) => writer,
        Err(e) => return give_up(&format!("cannot reach Redis at {}: {e}", args.redis)),
    };

    let mut processes = Vec::new();
    for i in 0..args.processes {
        match spawn_reader(&args, &run).await {
            Ok(process) => processes.push(process),
            // The processes already started are killed when dropped.
            Err(e) => return give_up(&format!("reader process {i}: {e}")),
        }
    }

    let writing = write(&args, &writer, &data).await;
    // The end marker: the last record of the run. Without it the readers cannot know they
    // applied everything, and report so.
    let marker_key = END_MARKER.to_string();
    let marker = retry(PATIENCE, || writer.invalidate(&marker_key))
        .await
        .ok();
    let stop = match marker {
        Some(id) => format!("STOP {id}"),
        None => "STOP".to_string(),
    };
    let mut sent = Vec::new();
    for process in &mut processes {
        sent.push(process.send(&stop).await);
    }
    let mut reports = Vec::new();
    for (process, sent) in processes.iter_mut().zip(sent) {
        let report = match sent {
            Ok(()) => process.receive(Report::parse).await,
            Err(e) => Err(e),
        };
        reports.push(report);
    }
    for process in processes {
        process.wait().await;
    }
    clean_up(&writer, &data).await;
    conclude(&writing, marker, reports)
}

/// Starts one reader process.
async fn spawn_reader(args: &Args, run: &str) -> Result<Process, String> {
    let mut reader_args: Vec<String> = ["--redis", &args.redis, "--reader", run]
        .iter()
        .map(|s| s.to_string())
        .collect();
    reader_args.extend(["--load-ms".into(), args.load_ms.to_string()]);
    reader_args.extend(["--keys".into(), args.keys.to_string()]);
    if args.naive {
        reader_args.push("--naive".into());
    }
    Process::spawn(&reader_args).await
}

/// The writer: bumps a random key's version and publishes its invalidation in one
/// transaction, about once a millisecond, for `--seconds`. A commit that fails (the server is
/// down, the connection broke) is retried after a backoff; the log reconnects by itself.
async fn write(args: &Args, writer: &NearMemo<String, u64>, data: &str) -> Writing {
    let mut writing = Writing::default();
    let mut acknowledged: HashMap<String, u64> = HashMap::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut k = key(xorshift(&mut rng) as usize % args.keys);
    while started.elapsed().as_secs_f64() < args.seconds {
        tick.tick().await;
        let mut writes = redis::pipe();
        writes.hincr(data, &k, 1);
        match writer.commit_and_invalidate(&writes, &k).await {
            Ok((replies, _)) => {
                writing.commits += 1;
                let version = replies
                    .into_iter()
                    .next()
                    .and_then(|reply| redis::from_redis_value::<u64>(reply).ok());
                let last = acknowledged.entry(k.clone()).or_insert(0);
                match version {
                    Some(version) if version > *last => *last = version,
                    _ => {
                        writing.regressions += 1;
                        *last = version.unwrap_or(0);
                    }
                }
                backoff.reset();
                k = key(xorshift(&mut rng) as usize % args.keys);
            }
            Err(_) => {
                // The same change again: it may have been committed, then it commits twice.
                writing.failed += 1;
                backoff.wait().await;
            }
        }
    }
    writing
}

/// Deletes the run's keys; a failure only leaves them behind.
async fn clean_up(writer: &NearMemo<String, u64>, data: &str) {
    let log = writer.log();
    let deleted: redis::RedisResult<()> = retry(Duration::from_secs(2), || async {
        let mut connection = log.client().get_multiplexed_async_connection().await?;
        connection.del(&[data, log.stream_key()]).await
    })
    .await;
    if let Err(e) = deleted {
        eprintln!(
            "near_cache: could not delete {data} and {}: {e}",
            log.stream_key()
        );
    }
}

/// Prints the writer's line, one line per process, and the totals last; the exit status.
fn conclude(
    writing: &Writing,
    marker: Option<LogId>,
    reports: Vec<Result<Report, String>>,
) -> ExitCode {
    println!(
        "writer: {} commits acknowledged, {} failed commits retried",
        writing.commits, writing.failed
    );
    let mut complete = marker.is_some() && writing.regressions == 0;
    if marker.is_none() {
        println!(
            "note: the end marker could not be published: the readers' counts may not cover \
             the end of the run"
        );
    }
    if writing.regressions > 0 {
        println!(
            "note: the source went back {} times: it lost acknowledged writes (a restart \
             without persistence?), so the stale counts compare values with a history that no \
             longer exists",
            writing.regressions
        );
    }
    let mut total = Report::default();
    for (i, report) in reports.into_iter().enumerate() {
        let r = match report {
            Ok(r) => r,
            Err(e) => {
                println!("process {i}: {e}");
                complete = false;
                continue;
            }
        };
        println!(
            "process {i}: {} reads, {} failed reads retried, {} invalidations applied, {} gaps, \
             {} flushes, stale reads {}, stale commits {}{}",
            r.reads,
            r.failed_reads,
            r.applied,
            r.gaps,
            r.flushes,
            r.stale_reads,
            r.stale_commits,
            if r.drained {
                ""
            } else {
                " (did NOT apply the end marker: counts incomplete)"
            }
        );
        complete &= r.drained;
        total.stale_reads += r.stale_reads;
        total.stale_commits += r.stale_commits;
        total.gaps += r.gaps;
        total.lags_us.extend(r.lags_us);
    }
    if total.gaps > 0 {
        println!(
            "note: {} gaps were detected (a server restart, or a reader left behind a trimmed \
             log); each flushed a memo",
            total.gaps
        );
    }
    total.lags_us.sort_unstable();
    let pct = |p: f64| {
        let lags = &total.lags_us;
        if lags.is_empty() {
            return f64::NAN;
        }
        lags[((lags.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    println!(
        "stale reads: {}, stale commits: {}, invalidations: {}, propagation p50/p99: {:.2}/{:.2} ms",
        total.stale_reads,
        total.stale_commits,
        writing.commits,
        pct(0.50),
        pct(0.99)
    );
    if complete && total.stale_reads == 0 && total.stale_commits == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn give_up(message: &str) -> ExitCode {
    eprintln!("near_cache: {message}");
    ExitCode::FAILURE
}
