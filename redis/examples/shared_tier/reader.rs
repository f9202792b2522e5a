//! A reader process: workers read random keys (through the shared tier, or --naive
//! cache-aside) and check every value they get; the log's listener records the invalidations
//! the process applied. Talks to the coordinator on stdin (`STOP [end-marker-id]`) and stdout
//! (`READY`, then one `RESULT` line).

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, LogId, NearMemo, RedisLog, SharedTier, ValueCodec, WaitLatency};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Client, RedisError};

use crate::coordinator::naive_key;
use crate::process::{say, wait_for_stop};
use crate::report::Report;
use crate::source::{Loaded, Source};
use crate::{Args, Backoff, LoadedCodec, key, lock, retry, xorshift};

type Near = NearMemo<String, Loaded>;

/// What the workers and the listener share.
struct Reader {
    naive: Option<Arc<Naive>>,
    /// --naive: this process's local cache, as JetCache's `BOTH` keeps one: a load per process
    /// (its own single-flight), ready entries deleted by key when an invalidation arrives,
    /// loads in progress left alone. Unused otherwise (the near memo is the local tier).
    local: AsyncMemo<String, Loaded>,
    source: Source,
    load: Duration,
    keys: usize,
    /// For each key, the id of the last invalidation of it that this process applied.
    floors: HashMap<String, Mutex<LogId>>,
    last_applied: Mutex<LogId>,
    stop: AtomicBool,
    reads: AtomicU64,
    failed_reads: AtomicU64,
    loads: AtomicU64,
    stale_reads: AtomicU64,
    /// The stale (key, version) pairs found in the local memo, each counted once.
    stale_in_memo: Mutex<HashSet<(String, u64)>>,
    generations: Mutex<HashSet<(String, u64)>>,
    /// How long each load took, from its start to its value (the yardstick of the waits).
    load_times: Mutex<WaitLatency>,
    shown: AtomicBool,
}

/// --naive: the cached copies in Redis, on a connection made again after any error.
struct Naive {
    client: Client,
    run: String,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl Naive {
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(c) = lock(&self.connection).clone() {
            return Ok(c);
        }
        let c = self.client.get_multiplexed_async_connection().await?;
        *lock(&self.connection) = Some(c.clone());
        Ok(c)
    }

    fn forget<T>(&self, result: Result<T, RedisError>) -> Result<T, RedisError> {
        if result.is_err() {
            let broken = lock(&self.connection).take();
            drop(broken);
        }
        result
    }

    /// Cache-aside: GET; on a miss, load and SET (a failed SET only loses the copy).
    async fn read(
        &self,
        k: &str,
        load: impl Future<Output = Result<Loaded, RedisError>>,
    ) -> Result<Loaded, RedisError> {
        let key = naive_key(&self.run, k);
        let mut c = self.connection().await?;
        let cached: Option<Vec<u8>> = self.forget(c.get(&key).await)?;
        if let Some(value) = cached.and_then(|bytes| LoadedCodec.decode(&bytes)) {
            return Ok(value);
        }
        let value = load.await?;
        let mut bytes = Vec::new();
        if LoadedCodec.encode(&value, &mut bytes).is_ok() {
            let stored: Result<(), RedisError> = c.set(&key, bytes).await;
            let _ = self.forget(stored);
        }
        Ok(value)
    }
}

impl Reader {
    fn floor(&self, key: &str) -> LogId {
        self.floors
            .get(key)
            .map_or(LogId::ZERO, |floor| *lock(floor))
    }

    /// The listener: the log calls it after the memo call, so a floor moves only once its
    /// record has reached the memo.
    fn on_apply(&self, event: &Applied<'_, String>) {
        if let Applied::Key { key, id, .. } = event {
            if self.naive.is_some() {
                if let Some(entry) = self.local.get(key.as_str()) {
                    self.local.invalidate(key.as_str(), entry.epoch());
                }
            }
            if let Some(floor) = self.floors.get(key.as_str()) {
                let mut floor = lock(floor);
                *floor = (*floor).max(*id);
            }
            let mut last = lock(&self.last_applied);
            *last = (*last).max(*id);
        }
    }

    fn show_first(&self, what: &str, k: &str, value: Loaded, applied: LogId) {
        if !self.shown.swap(true, SeqCst) {
            eprintln!(
                "shared_tier reader {}: first stale {what}: {k} = version {} (saw the log at {}), \
                 after this process applied {k}'s invalidation {applied}",
                std::process::id(),
                value.version,
                value.seen
            );
        }
    }
}

/// How long a reader keeps trying to reach the log at start, and to apply the end marker.
const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) async fn run(args: Args, namespace: String) -> ExitCode {
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
        naive: args.naive.then(|| {
            Arc::new(Naive {
                client: client.clone(),
                run: namespace.clone(),
                connection: Mutex::new(None),
            })
        }),
        local: AsyncMemo::new(),
        source,
        load: Duration::from_millis(args.load_ms),
        keys: args.keys,
        floors: (0..args.keys)
            .map(|i| (key(i), Mutex::new(LogId::ZERO)))
            .collect(),
        last_applied: Mutex::new(LogId::ZERO),
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        failed_reads: AtomicU64::new(0),
        loads: AtomicU64::new(0),
        stale_reads: AtomicU64::new(0),
        stale_in_memo: Mutex::new(HashSet::new()),
        generations: Mutex::new(HashSet::new()),
        load_times: Mutex::new(WaitLatency::default()),
        shown: AtomicBool::new(false),
    });
    // A lease outlives a load many times over: a holder that dies costs the others this long.
    let lease = Duration::from_millis(args.load_ms.saturating_mul(20)).max(Duration::from_secs(1));
    let started = retry(PATIENCE, || {
        let listening = Arc::clone(&reader);
        let log = RedisLog::from_client(client.clone(), stream_key.clone());
        let mut builder = NearMemo::builder(log)
            .on_apply(move |event: &Applied<'_, String>| listening.on_apply(event));
        if !args.naive {
            builder = builder.shared(SharedTier::new(LoadedCodec).lease_ttl(lease));
        }
        builder.start(AsyncMemo::new())
    })
    .await;
    let near: Near = match started {
        Ok(near) => near,
        Err(e) => return quit(&format!("cannot reach the log: {e}")),
    };
    if say("READY").is_err() {
        return ExitCode::FAILURE;
    }

    let mut workers = Vec::new();
    for w in 0..4u64 {
        let seed = 0x2545_f491_4f6c_dd1d
            ^ (w + 1).wrapping_mul(0x9e37_79b9)
            ^ u64::from(std::process::id());
        workers.push(tokio::spawn(work(Arc::clone(&reader), near.clone(), seed)));
    }

    let Some(marker) = wait_for_stop().await else {
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
    let shared = near.shared_stats().unwrap_or_default();
    let report = Report {
        reads: reader.reads.load(SeqCst),
        failed_reads: reader.failed_reads.load(SeqCst),
        loads: reader.loads.load(SeqCst),
        shared_hits: shared.shared_hits,
        takeovers: shared.takeovers,
        refused_sets: shared.refused_sets,
        gaps: near.stats().gaps,
        stale_reads: reader.stale_reads.load(SeqCst),
        stale_commits: lock(&reader.stale_in_memo).len() as u64,
        drained,
        generations: lock(&reader.generations).drain().collect(),
        waits: shared.wait_latency,
        load_times: std::mem::take(&mut *lock(&reader.load_times)),
    };
    match say(&report.to_line()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// One worker: reads random keys until told to stop; a read whose load failed is retried
/// after a backoff, as a new read checked from its own start.
async fn work(reader: Arc<Reader>, near: Near, mut rng: u64) {
    let mut backoff = Backoff::new();
    while !reader.stop.load(SeqCst) {
        let k = key(xorshift(&mut rng) as usize % reader.keys);
        while !reader.stop.load(SeqCst) {
            match read(&reader, &near, &k).await {
                Ok(()) => {
                    backoff.reset();
                    break;
                }
                Err(()) => {
                    reader.failed_reads.fetch_add(1, SeqCst);
                    backoff.wait().await;
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// One read of `k`, checked.
async fn read(reader: &Arc<Reader>, near: &Near, k: &str) -> Result<(), ()> {
    let before = reader.floor(k);
    let load = {
        let (reader, k) = (Arc::clone(reader), k.to_string());
        async move {
            reader.loads.fetch_add(1, SeqCst);
            let started = Instant::now();
            let loaded = reader.source.load(&k).await?;
            tokio::time::sleep(reader.load).await;
            lock(&reader.load_times).record(started.elapsed());
            Ok::<_, RedisError>(loaded)
        }
    };
    let value = match &reader.naive {
        Some(naive) => {
            let (naive, key) = (Arc::clone(naive), k.to_string());
            let cache_aside = async move { naive.read(&key, load).await };
            *reader
                .local
                .get_or_try_init(k.to_string(), move || cache_aside)
                .await
                .map_err(drop)?
                .value()
        }
        None => near
            .get_or_try_init(k.to_string(), move || load)
            .await
            .map_err(drop)?,
    };
    reader.reads.fetch_add(1, SeqCst);
    lock(&reader.generations).insert((k.to_string(), value.version));
    if value.seen < before {
        reader.stale_reads.fetch_add(1, SeqCst);
        reader.show_first("read", k, value, before);
    }
    // An entry in our memo after we applied invalidation `now` was committed after the
    // removal, by a flight that started after it: it must have seen `now`.
    let now = reader.floor(k);
    let memo = if reader.naive.is_some() {
        &reader.local
    } else {
        near.memo()
    };
    if let Some(entry) = memo.get(k) {
        let value = *entry.value();
        if value.seen < now && lock(&reader.stale_in_memo).insert((k.to_string(), value.version)) {
            reader.show_first("value in the memo", k, value, now);
        }
    }
    Ok(())
}

fn quit(message: &str) -> ExitCode {
    eprintln!("shared_tier reader {}: {message}", std::process::id());
    ExitCode::FAILURE
}
