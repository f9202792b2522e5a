//! One load across replicas: N processes share values through the shared tier, a writer keeps
//! changing the source and invalidating, and the run counts how often the source was loaded
//! per generation of a key and what a shared tier must never do: store a value older than an
//! invalidation (a stale set) or serve one (a stale read).
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly yes --appendfsync always &
//! cargo run -p async-memo-redis --example shared_tier -- --redis redis://127.0.0.1:6379/ --processes 8 --seconds 5
//! cargo run -p async-memo-redis --example shared_tier -- --redis redis://127.0.0.1:6379/ --processes 8 --seconds 5 --naive
//! ```
//!
//! The run survives a restart of the server, as `near_cache` does: loads fail and are retried
//! through `get_or_try_init`, the writer retries, the shared tier treats every lease as lost.
//!
//! Files: `coordinator.rs` (the writer, the inspector of Redis, the totals), `reader.rs` (a
//! reader process and its checks), `report.rs` (what a reader reports); shared with
//! `near_cache`: `../common/source.rs` (the source of truth), `../common/process.rs` (the
//! reader processes' control channel), `../common/retry.rs` (retries with a backoff).

mod coordinator;
#[path = "../common/process.rs"]
mod process;
mod reader;
mod report;
#[path = "../common/retry.rs"]
mod retry;
#[path = "../common/source.rs"]
mod source;

use std::process::ExitCode;

use async_memo_redis::{EncodeError, LogId, ValueCodec};

use crate::retry::{Backoff, lock, retry, xorshift};
use crate::source::Loaded;

const HELP: &str = "\
shared_tier: N reader processes memoize values from a Redis hash that a writer keeps updating
(each value is its version) and invalidating, sharing them through async-memo-redis's shared
tier: a local miss reads the shared value, or takes the key's lease and loads from the source,
or waits for the process that holds the lease. Loads take --load-ms.

USAGE:
    shared_tier [--redis URL] [--processes N] [--seconds S] [--load-ms MS] [--keys K] [--naive]

OPTIONS:
    --redis URL       the server (default redis://127.0.0.1:6379/)
    --processes N     reader processes (default 8)
    --seconds S       how long the writer writes (default 5)
    --load-ms MS      how long a load takes after reading the source (default 5)
    --keys K          how many hot keys (default 8)
    --writes-per-s W  the writer's changes per second, over all keys (default 100)
    --naive           cache-aside the JetCache / Spring way: GET the key from Redis, on a miss
                      load it and SET it; the writer changes the source, then DELs the key

DEFINITIONS:
    As near_cache defines them: the writer bumps a key's version and publishes its
    invalidation in one MULTI; a load reads the version and the log's last record id in one
    MULTI, so a value is older than invalidation I exactly when the id it saw is below I.
    A generation is one (key, version) pair that some process read at least once.
    A stale read is a read that started after its process had applied an invalidation of that
    key and returned a value older than it. A stale set is a value older than an invalidation
    found stored: in Redis, by an inspector that reads every key's shared value after the
    writer's invalidation of it was acknowledged (through peek_shared; in --naive mode a GET),
    or in a process's own memo, after the process applied the invalidation.

SERVER RESTARTS:
    As near_cache: run the server with --appendonly yes --appendfsync always so that the
    source survives. While the server is down, flights load from the source without a lease
    (they count as source loads); after it is back, the namespace starts a new generation, so
    no lease or value from before is used.

OUTPUT:
    A line for the writer, one per process, how long the loads took (p50/p99: the yardstick of
    the lease waits), then, last:
    source loads per generation: X, stale sets: Y, stale reads: Z, lease waits p50/p99: A/B ms
    X = source loads / generations read. The lease waits are the shared tier's: from a flight
    finding the key's lease held until the value arrived or it took the lease over (--naive
    has none: -/-). The exit status is 0 exactly when Y and Z are 0 over a complete run (every
    process reported after applying the writer's last record, and the source lost no write).
";

#[derive(Clone, Debug)]
struct Args {
    redis: String,
    processes: usize,
    seconds: f64,
    load_ms: u64,
    keys: usize,
    writes_per_s: u32,
    naive: bool,
    /// Internal: `reader NAMESPACE`.
    reader: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        redis: "redis://127.0.0.1:6379/".into(),
        processes: 8,
        seconds: 5.0,
        load_ms: 5,
        keys: 8,
        writes_per_s: 100,
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
            "--writes-per-s" => args.writes_per_s = number(&value("--writes-per-s")),
            "--naive" => args.naive = true,
            "--reader" => args.reader = Some(value("--reader")),
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if args.processes == 0
        || args.keys == 0
        || args.writes_per_s == 0
        || !(args.seconds > 0.0 && args.seconds < 1e6)
    {
        fail("--processes, --keys and --writes-per-s must be at least 1, --seconds positive");
    }
    args
}

fn number<T: std::str::FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| fail(&format!("not a number: {text:?}")))
}

fn fail(message: &str) -> ! {
    eprintln!("shared_tier: {message}\n\n{HELP}");
    std::process::exit(2)
}

/// The `i`-th key of the source.
fn key(i: usize) -> String {
    format!("k{i}")
}

/// The key the writer invalidates once after its last commit: a reader that has applied it
/// has applied (or flushed for) every commit before it.
const END_MARKER: &str = "end";

/// How a loaded value travels through the shared tier (and, in --naive mode, as a plain Redis
/// string): `"<version> <seen log id>"`, readable in `redis-cli`.
struct LoadedCodec;

impl ValueCodec<Loaded> for LoadedCodec {
    fn encode(&self, value: &Loaded, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(format!("{} {}", value.version, value.seen).as_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Option<Loaded> {
        let (version, seen) = std::str::from_utf8(bytes).ok()?.split_once(' ')?;
        Some(Loaded {
            version: version.parse().ok()?,
            seen: seen.parse::<LogId>().ok()?,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    match args.reader.clone() {
        Some(namespace) => reader::run(args, namespace).await,
        None => coordinator::run(args).await,
    }
}
