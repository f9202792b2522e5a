//! The coordinator: starts the reader processes, runs the writer and the inspector of Redis,
//! stops the readers and prints the totals.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::AsyncMemo;
use async_memo_redis::{LogId, NearMemo, RedisLog, SharedTier, ValueCodec, WaitLatency};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use crate::process::{Process, now_ms};
use crate::report::Report;
use crate::source::Loaded;
use crate::{Args, Backoff, END_MARKER, LoadedCodec, fail, key, lock, retry, xorshift};

/// How long to keep trying to reach Redis at the start and end of the run.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the writer did, and the last invalidation of each key the server acknowledged.
#[derive(Debug, Default)]
struct Writing {
    commits: u64,
    failed: u64,
    /// Acknowledged versions not above the last acknowledged version of their key: the source
    /// lost writes.
    regressions: u64,
}

/// The stale values the inspector found in Redis, each counted once.
type Found = Arc<Mutex<HashSet<(String, u64)>>>;

pub(crate) async fn run(args: Args) -> ExitCode {
    let run = format!("shared-tier-{}-{}", std::process::id(), now_ms());
    let data = format!("{run}:data");
    let log = RedisLog::open(args.redis.as_str(), &run).unwrap_or_else(|e| fail(&e.to_string()));
    let (client, stream_key) = (log.client().clone(), log.stream_key().to_string());
    // The writer's own memo is never read; its shared tier is how the inspector looks.
    let started = retry(PATIENCE, || {
        NearMemo::builder(RedisLog::from_client(client.clone(), stream_key.clone()))
            .shared(SharedTier::new(LoadedCodec))
            .start(AsyncMemo::new())
    })
    .await;
    let writer: NearMemo<String, Loaded> = match started {
        Ok(writer) => writer,
        Err(e) => return give_up(&format!("cannot reach Redis at {}: {e}", args.redis)),
    };

    let mut processes = Vec::new();
    for i in 0..args.processes {
        let mut reader_args: Vec<String> = vec!["--redis".into(), args.redis.clone()];
        reader_args.extend(["--reader".into(), run.clone()]);
        reader_args.extend(["--load-ms".into(), args.load_ms.to_string()]);
        reader_args.extend(["--keys".into(), args.keys.to_string()]);
        if args.naive {
            reader_args.push("--naive".into());
        }
        match Process::spawn(&reader_args).await {
            Ok(process) => processes.push(process),
            Err(e) => return give_up(&format!("reader process {i}: {e}")),
        }
    }

    let invalidated: Arc<Mutex<HashMap<String, LogId>>> = Arc::default();
    let found: Found = Arc::default();
    let inspector = tokio::spawn(inspect(
        args.clone(),
        writer.clone(),
        run.clone(),
        Arc::clone(&invalidated),
        Arc::clone(&found),
    ));
    let writing = write(&args, &writer, &data, &run, &invalidated).await;
    inspector.abort();

    let marker_key = END_MARKER.to_string();
    let marker = retry(PATIENCE, || writer.invalidate(&marker_key))
        .await
        .ok();
    let stop = match marker {
        Some(id) => format!("STOP {id}"),
        None => "STOP".to_string(),
    };
    let mut reports = Vec::new();
    for process in &mut processes {
        let sent = process.send(&stop).await;
        reports.push(sent);
    }
    let mut received = Vec::new();
    for (process, sent) in processes.iter_mut().zip(reports) {
        received.push(match sent {
            Ok(()) => process.receive(Report::parse).await,
            Err(e) => Err(e),
        });
    }
    for process in processes {
        process.wait().await;
    }
    clean_up(&writer, &data).await;
    let stale_in_redis = lock(&found).len() as u64;
    conclude(&writing, marker, stale_in_redis, received)
}

/// The writer: bumps a random key's version and publishes its invalidation in one
/// transaction (which also deletes the key's shared value and revokes its lease), at
/// `--writes-per-s`. In --naive mode it then DELs the key's cached copy, as cache-aside does.
async fn write(
    args: &Args,
    writer: &NearMemo<String, Loaded>,
    data: &str,
    run: &str,
    invalidated: &Mutex<HashMap<String, LogId>>,
) -> Writing {
    let mut writing = Writing::default();
    let mut acknowledged: HashMap<String, u64> = HashMap::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.writes_per_s);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut k = key(xorshift(&mut rng) as usize % args.keys);
    let mut naive: Option<MultiplexedConnection> = None;
    while started.elapsed().as_secs_f64() < args.seconds {
        tick.tick().await;
        let mut writes = redis::pipe();
        writes.hincr(data, &k, 1);
        let (replies, id) = match writer.commit_and_invalidate(&writes, &k).await {
            Ok(done) => done,
            Err(_) => {
                // The same change again: if it had committed, the version moves by two.
                writing.failed += 1;
                backoff.wait().await;
                continue;
            }
        };
        writing.commits += 1;
        lock(invalidated).insert(k.clone(), id);
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
        if args.naive {
            let naive_key = naive_key(run, &k);
            loop {
                let deleted = match naive_connection(writer, &mut naive).await {
                    Some(c) => c.del::<_, ()>(&naive_key).await.map_err(drop),
                    None => Err(()),
                };
                if deleted.is_ok() {
                    break;
                }
                naive = None;
                writing.failed += 1;
                backoff.wait().await;
            }
        }
        backoff.reset();
        k = key(xorshift(&mut rng) as usize % args.keys);
    }
    writing
}

/// The cached copy of `k` in --naive mode.
pub(crate) fn naive_key(run: &str, k: &str) -> String {
    format!("{run}:naive:{k}")
}

/// The inspector: every few milliseconds, reads every key's stored value in Redis and counts
/// those older than the key's last invalidation acknowledged *before* the read began (a value
/// stored after that invalidation deleted the key was loaded under a lease granted after it,
/// so it has seen it, unless a stale set happened).
async fn inspect(
    args: Args,
    writer: NearMemo<String, Loaded>,
    run: String,
    invalidated: Arc<Mutex<HashMap<String, LogId>>>,
    found: Found,
) {
    let mut connection = None;
    loop {
        for i in 0..args.keys {
            let k = key(i);
            let Some(floor) = lock(&invalidated).get(&k).copied() else {
                continue;
            };
            let stored = if args.naive {
                naive_get(&writer, &mut connection, &naive_key(&run, &k)).await
            } else {
                writer.peek_shared(&k).await.ok().flatten()
            };
            if let Some(value) = stored.filter(|v| v.seen < floor) {
                if lock(&found).insert((k.clone(), value.version)) {
                    eprintln!(
                        "shared_tier: stale set: {k} = version {} (saw the log at {}) stored \
                         after invalidation {floor}",
                        value.version, value.seen
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The --naive connection, made if there is none (the caller drops it after an error).
async fn naive_connection<'c>(
    writer: &NearMemo<String, Loaded>,
    connection: &'c mut Option<MultiplexedConnection>,
) -> Option<&'c mut MultiplexedConnection> {
    if connection.is_none() {
        let client = writer.log().client();
        *connection = client.get_multiplexed_async_connection().await.ok();
    }
    connection.as_mut()
}

/// A plain GET of a --naive cached copy; `None` on a miss or any error (the connection is
/// made again next time).
async fn naive_get(
    writer: &NearMemo<String, Loaded>,
    connection: &mut Option<MultiplexedConnection>,
    key: &str,
) -> Option<Loaded> {
    let c = naive_connection(writer, connection).await?;
    match c.get::<_, Option<Vec<u8>>>(key).await {
        Ok(bytes) => LoadedCodec.decode(&bytes?),
        Err(_) => {
            *connection = None;
            None
        }
    }
}

/// Deletes the run's source, log and generation; a failure only leaves them behind (the
/// shared values expire with their time to live).
async fn clean_up(writer: &NearMemo<String, Loaded>, data: &str) {
    let log = writer.log();
    let deleted: redis::RedisResult<()> = retry(Duration::from_secs(2), || async {
        let mut connection = log.client().get_multiplexed_async_connection().await?;
        let stream = log.stream_key();
        let (generation, run) = (format!("{stream}:gen"), format!("{stream}:run"));
        connection.del(&[data, stream, &generation, &run]).await
    })
    .await;
    if let Err(e) = deleted {
        eprintln!(
            "shared_tier: could not delete {data} and {}: {e}",
            log.stream_key()
        );
    }
}

/// Prints the writer's line, one line per process, and the totals last; the exit status.
fn conclude(
    writing: &Writing,
    marker: Option<LogId>,
    stale_in_redis: u64,
    reports: Vec<Result<Report, String>>,
) -> ExitCode {
    println!(
        "writer: {} commits acknowledged, {} failed calls retried",
        writing.commits, writing.failed
    );
    let mut complete = marker.is_some() && writing.regressions == 0;
    if marker.is_none() {
        println!("note: the end marker could not be published: the counts may miss the end");
    }
    if writing.regressions > 0 {
        println!(
            "note: the source went back {} times: it lost acknowledged writes (a restart \
             without persistence?)",
            writing.regressions
        );
    }
    let mut generations: HashSet<(String, u64)> = HashSet::new();
    let (mut loads, mut stale_reads, mut stale_commits) = (0, 0, 0);
    let mut waits = WaitLatency::default();
    let mut load_times = WaitLatency::default();
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
            "process {i}: {} reads, {} failed reads retried, {} source loads, {} shared hits, \
             {} waits, {} takeovers, {} refused sets, {} gaps, stale reads {}, stale in memo {}{}",
            r.reads,
            r.failed_reads,
            r.loads,
            r.shared_hits,
            r.waits.count(),
            r.takeovers,
            r.refused_sets,
            r.gaps,
            r.stale_reads,
            r.stale_commits,
            if r.drained {
                ""
            } else {
                " (did NOT apply the end marker: counts incomplete)"
            }
        );
        complete &= r.drained;
        loads += r.loads;
        stale_reads += r.stale_reads;
        stale_commits += r.stale_commits;
        waits.merge(&r.waits);
        load_times.merge(&r.load_times);
        generations.extend(r.generations);
    }
    let per_generation = loads as f64 / generations.len().max(1) as f64;
    let ms = |h: &WaitLatency, q: f64| {
        h.quantile(q)
            .map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
    };
    // The yardstick of the lease waits (target: p99 ≤ 2 × a load + one round trip).
    println!(
        "loads took p50/p99: {}/{} ms",
        ms(&load_times, 0.5),
        ms(&load_times, 0.99)
    );
    let (p50, p99) = (ms(&waits, 0.5), ms(&waits, 0.99));
    let stale_sets = stale_in_redis + stale_commits;
    println!(
        "source loads per generation: {per_generation:.2}, stale sets: {stale_sets}, stale reads: \
         {stale_reads}, lease waits p50/p99: {p50}/{p99} ms"
    );
    if complete && stale_sets == 0 && stale_reads == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn give_up(message: &str) -> ExitCode {
    eprintln!("shared_tier: {message}");
    ExitCode::FAILURE
}
