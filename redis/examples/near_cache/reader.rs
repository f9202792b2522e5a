//! A reader process: workers read random keys through the memo and check every value they
//! get; the log's listener records the invalidations the process applied. Talks to the
//! coordinator on stdin (`STOP [end-marker-id]`) and stdout (`READY`, then one `RESULT` line).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, LogId, NearMemo, RedisLog};
use redis::RedisError;

use crate::process::{say, wait_for_stop};
use crate::report::Report;
use crate::source::{Loaded, Source};
use crate::{Args, Backoff, key, lock, retry, xorshift};

/// What the workers and the listener share.
struct Reader {
    /// The memo the workers read. Correct mode: the NearMemo's own memo (a record removes the
    /// entry and detaches the flight). Naive mode: a memo of its own, from which the listener
    /// deletes ready entries by key, as JetCache does; the NearMemo's memo is then unused.
    cache: AsyncMemo<String, Loaded>,
    naive: bool,
    source: Source,
    load: Duration,
    keys: usize,
    /// For each key, the id of the last invalidation of it that this process applied.
    floors: HashMap<String, Mutex<LogId>>,
    /// The id of the last invalidation of any key that this process applied.
    last_applied: Mutex<LogId>,
    lags_us: Mutex<Vec<u64>>,
    flushes: AtomicU64,
    stop: AtomicBool,
    reads: AtomicU64,
    failed_reads: AtomicU64,
    stale_reads: AtomicU64,
    stale_commits: AtomicU64,
    /// Whether a stale value was described on stderr already.
    shown: AtomicBool,
}

impl Reader {
    /// Describes the process's first stale value on stderr, for whoever wonders what one is.
    fn show_first(&self, what: &str, k: &str, value: Loaded, applied: LogId) {
        if !self.shown.swap(true, SeqCst) {
            eprintln!(
                "near_cache reader {}: first stale {what}: {k} = version {}, read when the log \
                 ended at {}, after this process applied {k}'s invalidation {applied}",
                std::process::id(),
                value.version,
                value.seen
            );
        }
    }

    fn floor(&self, key: &str) -> LogId {
        self.floors
            .get(key)
            .map_or(LogId::ZERO, |floor| *lock(floor))
    }

    /// The listener. The log calls it after the memo call, so a floor moves only once its
    /// record has reached the memo: a read that sees the new floor started after the removal.
    fn on_apply(&self, event: &Applied<'_, String>) {
        match event {
            Applied::Key { key, id, lag } => {
                if self.naive {
                    if let Some(entry) = self.cache.get(key.as_str()) {
                        self.cache.invalidate(key.as_str(), entry.epoch());
                    }
                }
                if let Some(floor) = self.floors.get(key.as_str()) {
                    let mut floor = lock(floor);
                    *floor = (*floor).max(*id);
                }
                let mut last = lock(&self.last_applied);
                *last = (*last).max(*id);
                drop(last);
                if let Some(lag) = lag {
                    lock(&self.lags_us).push(lag.as_micros() as u64);
                }
            }
            Applied::All { .. } => {
                if self.naive {
                    self.cache.invalidate_all();
                }
                self.flushes.fetch_add(1, SeqCst);
            }
            _ => {}
        }
    }
}

/// How long a reader keeps trying to reach the log at start, and to apply the end marker.
const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) async fn run(args: Args, namespace: String) -> ExitCode {
    // The URL was parsed by the coordinator already; the log's key is the library's.
    let (client, stream_key) = match RedisLog::open(args.redis.as_str(), &namespace) {
        Ok(log) => (log.client().clone(), log.stream_key().to_string()),
        Err(e) => return quit(&format!("bad --redis: {e}")),
    };
    let source = Source::new(
        client.clone(),
        format!("{namespace}:data"),
        stream_key.clone(),
    );
    let reader = Arc::new(Reader {
        cache: AsyncMemo::new(),
        naive: args.naive,
        source,
        load: Duration::from_millis(args.load_ms),
        keys: args.keys,
        floors: (0..args.keys)
            .map(|i| (key(i), Mutex::new(LogId::ZERO)))
            .collect(),
        last_applied: Mutex::new(LogId::ZERO),
        lags_us: Mutex::new(Vec::new()),
        flushes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        failed_reads: AtomicU64::new(0),
        stale_reads: AtomicU64::new(0),
        stale_commits: AtomicU64::new(0),
        shown: AtomicBool::new(false),
    });

    let started = retry(PATIENCE, || {
        let listening = Arc::clone(&reader);
        let memo = if args.naive {
            AsyncMemo::new()
        } else {
            reader.cache.clone()
        };
        let log = RedisLog::from_client(client.clone(), stream_key.clone());
        NearMemo::builder(log)
            .on_apply(move |event: &Applied<'_, String>| listening.on_apply(event))
            .start(memo)
    })
    .await;
    let near: NearMemo<String, Loaded> = match started {
        Ok(near) => near,
        Err(e) => return quit(&format!("cannot reach the log: {e}")),
    };
    // The log's end is recorded: no commit of the writer is before it.
    if say("READY").is_err() {
        return ExitCode::FAILURE;
    }

    let mut workers = Vec::new();
    for w in 0..4u64 {
        let seed = 0x2545_f491_4f6c_dd1d
            ^ (w + 1).wrapping_mul(0x9e37_79b9)
            ^ u64::from(std::process::id());
        workers.push(tokio::spawn(work(Arc::clone(&reader), seed)));
    }

    // Run until told to stop, then wait until the writer's end marker is applied, so that the
    // counts cover every commit of the run.
    let Some(marker) = wait_for_stop().await else {
        // The coordinator is gone: nobody to report to.
        return ExitCode::FAILURE;
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let drained = || marker.is_some_and(|end| *lock(&reader.last_applied) >= end);
    while !drained() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drained = drained();
    reader.stop.store(true, SeqCst);
    for worker in workers {
        if let Err(e) = worker.await {
            return quit(&format!("a worker failed: {e}"));
        }
    }
    let report = Report {
        stale_reads: reader.stale_reads.load(SeqCst),
        stale_commits: reader.stale_commits.load(SeqCst),
        reads: reader.reads.load(SeqCst),
        failed_reads: reader.failed_reads.load(SeqCst),
        applied: near.stats().applied,
        gaps: near.stats().gaps,
        flushes: reader.flushes.load(SeqCst),
        drained,
        lags_us: std::mem::take(&mut *lock(&reader.lags_us)),
    };
    match say(&report.to_line()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// One worker: reads random keys until told to stop. A read whose load failed is retried
/// after a backoff, as a new read checked from its own start.
async fn work(reader: Arc<Reader>, mut rng: u64) {
    let mut backoff = Backoff::new();
    while !reader.stop.load(SeqCst) {
        let k = key(xorshift(&mut rng) as usize % reader.keys);
        while !reader.stop.load(SeqCst) {
            match read(&reader, &k).await {
                Ok(()) => {
                    backoff.reset();
                    break;
                }
                Err(_) => {
                    reader.failed_reads.fetch_add(1, SeqCst);
                    backoff.wait().await;
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// One read of `k`, checked. `get_or_try_init` caches no error: after a failed load the next
/// read of the key starts a new one.
async fn read(reader: &Arc<Reader>, k: &str) -> Result<(), Arc<RedisError>> {
    let before = reader.floor(k);
    // Set by our init, if ours ran and loaded: the floor just before its value could be stored.
    let at_commit = Arc::new(Mutex::new(None::<LogId>));
    let init = {
        let (reader, k, at_commit) = (Arc::clone(reader), k.to_string(), Arc::clone(&at_commit));
        move || async move {
            let loaded = reader.source.load(&k).await?;
            tokio::time::sleep(reader.load).await;
            *lock(&at_commit) = Some(reader.floor(&k));
            Ok::<_, RedisError>(loaded)
        }
    };
    let entry = reader.cache.get_or_try_init(k.to_string(), init).await?;
    let value = *entry.value();
    reader.reads.fetch_add(1, SeqCst);
    if value.seen < before {
        reader.stale_reads.fetch_add(1, SeqCst);
        reader.show_first("read", k, value, before);
    }
    let at_commit = *lock(&at_commit);
    if let Some(at_commit) = at_commit {
        let stored = reader.cache.epoch(k) == Some(entry.epoch());
        if value.seen < at_commit && stored {
            reader.stale_commits.fetch_add(1, SeqCst);
            reader.show_first("commit", k, value, at_commit);
        }
    }
    Ok(())
}

/// Exits with `message` on stderr, which the coordinator's terminal shows.
fn quit(message: &str) -> ExitCode {
    eprintln!("near_cache reader {}: {message}", std::process::id());
    ExitCode::FAILURE
}
