//! Many processes memoize values from one source of truth that a writer keeps changing, and
//! count what a near cache must never do: serve or store a value older than an invalidation
//! it has applied.
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly yes --appendfsync always &
//! cargo run -p async-memo-redis --example near_cache -- --redis redis://127.0.0.1:6379/ --processes 4 --seconds 5
//! cargo run -p async-memo-redis --example near_cache -- --redis redis://127.0.0.1:6379/ --processes 4 --seconds 5 --naive
//! ```
//!
//! The run survives a restart of the server (kill it and start it again mid-run): every call
//! to Redis handles its error the way a service must. Loads fail and are retried through
//! `get_or_try_init`, which caches no error; the writer retries its commit on a connection it
//! makes again; every process sees the restart as a gap and flushes its memo. The source of
//! truth must survive the restart, as a real one does (`--appendonly yes`): see `--help`.
//!
//! Files: `coordinator.rs` (the writer and the reader processes' control channel), `reader.rs`
//! (a reader process and its checks), `report.rs` (what a reader reports); shared with the
//! `shared_tier` demo: `../common/source.rs` (the source of truth, on a connection that
//! reconnects) and `../common/retry.rs` (retries with a backoff).

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

use crate::retry::{Backoff, lock, retry, xorshift};

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
    The writer bumps a key's version and publishes its invalidation in one MULTI. A load reads
    the version and, in one MULTI too, the id of the last record of the invalidation log: the
    value has seen every invalidation up to that id, and is older than the change that any
    later invalidation announced. A stale read is a read that *started* after the process had
    applied an invalidation of that key and returned a value that had not seen it (reads
    concurrent with an invalidation may see either). A stale commit stores a value that had
    not seen an invalidation the process had applied before the store. Propagation is the time
    from the writer publishing an invalidation to a reader applying it.

SERVER RESTARTS:
    The run survives a restart of the server. A read whose load fails gets the error (the memo
    caches none) and is retried after a short backoff; it counts as a failed read, not a read.
    A commit that fails is retried on a new connection and counts as a failed commit (it may
    have run all the same: the version then moves by two). Each reader's log sees a gap (the
    server's run_id changed) and flushes the memo once. The invalidations published before a
    reader reads the log again are covered by that flush rather than applied one by one: until
    a key's next invalidation is applied, its reads are checked against the invalidations
    applied before the restart only.
    The checks need a source of truth that survives the restart, as any real one does: run the
    server with --appendonly yes --appendfsync always, so that even a crash loses no
    acknowledged write. The writer checks each version the server acknowledges against the
    last one of that key; a source that went back (a restart without persistence) fails the
    run, whose counts would compare values with a history that no longer exists.

OUTPUT:
    A line for the writer, one per process, notes (gaps, a source that went back), then, last:
    stale reads: X, stale commits: Y, invalidations: Z, propagation p50/p99: A/B ms
    Z counts the commits the server acknowledged. Each process describes its first stale read
    or commit, if any, on stderr. The exit status is 0 exactly when X and Y are 0, every
    process reported after applying the invalidation the writer publishes after its last
    commit (so the counts cover the whole run), and the source kept every acknowledged write.
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

/// The `i`-th key of the source.
fn key(i: usize) -> String {
    format!("k{i}")
}

/// The key the writer invalidates once after its last commit: a reader that has applied it
/// has applied (or flushed for) every commit before it.
const END_MARKER: &str = "end";

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    match args.reader.clone() {
        Some(namespace) => reader::run(args, namespace).await,
        None => coordinator::run(args).await,
    }
}
