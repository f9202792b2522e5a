//! The shared tier (issue 20), one race at a time: several near memos ("processes") of one
//! namespace on a real server, loaders held at gates so that every interleaving is forced,
//! never hoped for. Each memo's lease lasts a minute unless a test says otherwise, so a test
//! that passes did not need a lease to expire (the failure guards are 30 s).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{LoadError, NearMemo, Plain, SharedTier};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{RedisServer, until};
use crate::{Near, builder};

const MINUTE: Duration = Duration::from_secs(60);

/// A started near memo with a shared tier of `tier`'s settings.
async fn tiered(server: &RedisServer, ns: &str, tier: SharedTier<u64>) -> Near {
    builder(server, ns)
        .shared(tier)
        .start(AsyncMemo::new())
        .await
        .unwrap()
}

/// A near memo with the shared tier, leases of a minute.
async fn shared(server: &RedisServer, ns: &str) -> Near {
    tiered(server, ns, SharedTier::new(Plain).lease_ttl(MINUTE)).await
}

/// Counts the loads that ran, across memos.
#[derive(Clone, Default)]
struct Loads(Arc<AtomicU64>);

impl Loads {
    fn count(&self) -> u64 {
        self.0.load(SeqCst)
    }

    /// A loader that returns `value` at once. It counts a load when its future runs: `init`
    /// itself is called whenever a local flight starts, the future only when this process
    /// loads.
    fn ready(
        &self,
        value: u64,
    ) -> impl FnOnce() -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + 'static {
        let loads = self.clone();
        move || {
            Box::pin(async move {
                loads.0.fetch_add(1, SeqCst);
                value
            })
        }
    }
}

/// A load held at a gate: `started` fires when the loader runs, `release` sends its value.
struct Gate {
    started: oneshot::Receiver<()>,
    release: oneshot::Sender<Result<u64, String>>,
}

/// A task reading `key` through `near` with a gated, fallible loader.
fn gated(near: &Near, key: &str, loads: &Loads) -> (Gate, JoinHandle<Result<u64, Arc<String>>>) {
    let (started_tx, started) = oneshot::channel();
    let (release, release_rx) = oneshot::channel::<Result<u64, String>>();
    let loads = loads.clone();
    let near = near.clone();
    let key = key.to_string();
    let task = tokio::spawn(async move {
        near.get_or_try_init(key, move || async move {
            loads.0.fetch_add(1, SeqCst);
            let _ = started_tx.send(());
            release_rx.await.unwrap_or(Err("gate dropped".into()))
        })
        .await
    });
    (Gate { started, release }, task)
}

/// A task reading `key` through `near` with a loader returning `value` at once.
fn reading(near: &Near, key: &str, loads: &Loads, value: u64) -> JoinHandle<u64> {
    let near = near.clone();
    let key = key.to_string();
    let init = loads.ready(value);
    tokio::spawn(async move { near.get_or_init(key, init).await })
}

/// Joins a task (the timeout is a failure guard only).
async fn join<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the task finished within the guard")
        .expect("the task did not panic")
}

/// Waits until `near` has a flight waiting for another process's lease.
async fn until_waiting(near: &Near, waits: u64) {
    until("a flight waits for the lease", || {
        near.shared_stats().unwrap().waits >= waits
    })
    .await;
}

#[tokio::test]
async fn a_value_one_process_loaded_is_a_hit_in_another() {
    let server = server_or_skip!();
    let (a, b) = (shared(&server, "hit").await, shared(&server, "hit").await);
    let loads = Loads::default();
    assert_eq!(join(reading(&a, "k", &loads, 7)).await, 7);
    assert_eq!(
        join(reading(&b, "k", &loads, 99)).await,
        7,
        "B got A's value"
    );
    assert_eq!(loads.count(), 1, "one source load for both processes");
    let (sa, sb) = (a.shared_stats().unwrap(), b.shared_stats().unwrap());
    assert_eq!((sa.leases_granted, sa.stored, sa.source_loads), (1, 1, 1));
    assert_eq!(
        (sb.shared_hits, sb.source_loads, sb.leases_granted),
        (1, 0, 0)
    );
    assert_eq!(
        b.memo().get("k").map(|e| *e.value()),
        Some(7),
        "committed locally"
    );
}

#[tokio::test]
async fn aiocache_95_a_late_set_after_an_invalidation_is_refused() {
    // aiocache #95, JetCache #580, hazelcast #1905: A reads the source (old value); a writer
    // changes the source and invalidates; A then stores its old value where everybody reads it.
    let server = server_or_skip!();
    let (a, writer) = (shared(&server, "late").await, shared(&server, "late").await);
    let loads = Loads::default();
    let (gate, load) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    writer.invalidate(&"k".to_string()).await.unwrap();
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(
        join(load).await.unwrap(),
        1,
        "A's callers still get A's value"
    );
    assert_eq!(a.shared_stats().unwrap().refused_sets, 1);
    assert!(
        a.memo().get("k").is_none(),
        "not committed in A's memo either"
    );
    let fresh = shared(&server, "late").await;
    assert_eq!(
        join(reading(&fresh, "k", &loads, 2)).await,
        2,
        "nothing stored in Redis"
    );
    assert_eq!(fresh.shared_stats().unwrap().shared_hits, 0);
}

#[tokio::test]
async fn a_waiter_is_woken_by_the_store_not_by_the_lease_expiry() {
    let server = server_or_skip!();
    let (a, b) = (shared(&server, "wake").await, shared(&server, "wake").await);
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let waiter = reading(&b, "k", &loads, 99);
    until_waiting(&b, 1).await;
    gate.release.send(Ok(5)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 5);
    // The lease lasts a minute: only the store's wake-up ends B's wait within the guard.
    assert_eq!(join(waiter).await, 5);
    assert_eq!(loads.count(), 1, "B never loaded");
    let sb = b.shared_stats().unwrap();
    assert_eq!((sb.waits, sb.shared_hits, sb.takeovers), (1, 1, 0));
    assert_eq!(sb.wait_latency.count(), 1);
}

#[tokio::test]
async fn jetcache_580_an_invalidation_during_a_wait_loads_the_new_value() {
    let server = server_or_skip!();
    let a = shared(&server, "revoke").await;
    let b = shared(&server, "revoke").await;
    let writer = shared(&server, "revoke").await;
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let waiter = reading(&b, "k", &loads, 2);
    until_waiting(&b, 1).await;
    writer.invalidate(&"k".to_string()).await.unwrap();
    assert_eq!(
        join(waiter).await,
        2,
        "B took the revoked lease over and loaded anew"
    );
    assert_eq!(b.shared_stats().unwrap().takeovers, 1);
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 1);
    assert_eq!(
        a.shared_stats().unwrap().refused_sets,
        1,
        "A's old value was refused"
    );
    let c = shared(&server, "revoke").await;
    assert_eq!(
        join(reading(&c, "k", &loads, 3)).await,
        2,
        "Redis holds B's value"
    );
}

#[tokio::test]
async fn a_failed_load_gives_the_lease_back_and_a_waiter_takes_it_over() {
    let server = server_or_skip!();
    let (a, b) = (shared(&server, "fail").await, shared(&server, "fail").await);
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let waiter = reading(&b, "k", &loads, 4);
    until_waiting(&b, 1).await;
    gate.release
        .send(Err("the database is down".into()))
        .unwrap();
    assert_eq!(*join(holder).await.unwrap_err(), "the database is down");
    assert_eq!(join(waiter).await, 4);
    assert_eq!(b.shared_stats().unwrap().takeovers, 1);
    assert!(a.memo().get("k").is_none(), "the error was stored nowhere");
}

#[tokio::test]
async fn a_cancelled_holder_gives_the_lease_back() {
    let server = server_or_skip!();
    let (a, b) = (
        shared(&server, "cancel").await,
        shared(&server, "cancel").await,
    );
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let waiter = reading(&b, "k", &loads, 8);
    until_waiting(&b, 1).await;
    holder.abort();
    assert_eq!(
        join(waiter).await,
        8,
        "B took over without waiting out the lease"
    );
    assert_eq!(b.shared_stats().unwrap().takeovers, 1);
}

#[tokio::test]
async fn invalidate_all_revokes_every_lease_and_hides_every_value() {
    let server = server_or_skip!();
    let (a, writer) = (shared(&server, "all").await, shared(&server, "all").await);
    let loads = Loads::default();
    assert_eq!(join(reading(&a, "stored", &loads, 1)).await, 1);
    let (gate, holder) = gated(&a, "loading", &loads);
    gate.started.await.unwrap();
    writer.invalidate_all().await.unwrap();
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 1);
    assert_eq!(a.shared_stats().unwrap().refused_sets, 1);
    let c = shared(&server, "all").await;
    assert_eq!(
        join(reading(&c, "stored", &loads, 2)).await,
        2,
        "the old value is hidden"
    );
    assert_eq!(
        join(reading(&c, "loading", &loads, 2)).await,
        2,
        "the late one was refused"
    );
    assert_eq!(c.shared_stats().unwrap().shared_hits, 0);
}

#[tokio::test]
async fn a_restart_that_lost_an_invalidation_refuses_the_lease_it_resurrected() {
    // The server saves a snapshot while A holds the lease; a writer then invalidates the key
    // (deleting the lease); the server dies and comes back from the snapshot, lease and all,
    // without the invalidation. A's store reaches the new server: without the generation
    // bump of a new incarnation it would find its token and store the stale value.
    let server = server_or_skip!();
    let (a, writer) = (
        shared(&server, "restart").await,
        shared(&server, "restart").await,
    );
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let mut admin = server.connection().await;
    let () = redis::cmd("SAVE").query_async(&mut admin).await.unwrap();
    writer.invalidate(&"k".to_string()).await.unwrap();
    let mut server = server;
    server.restart();
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(
        join(holder).await.unwrap(),
        1,
        "A's callers get their value"
    );
    assert_eq!(
        a.shared_stats().unwrap().refused_sets,
        1,
        "the store reached the new server"
    );
    assert!(a.memo().get("k").is_none());
    let fresh = shared(&server, "restart").await;
    assert_eq!(
        join(reading(&fresh, "k", &loads, 2)).await,
        2,
        "nothing stale in Redis"
    );
}

#[tokio::test]
async fn a_restart_mid_load_stores_nothing() {
    let server = server_or_skip!();
    let a = shared(&server, "restart-empty").await;
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let mut server = server;
    server.restart();
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 1);
    assert!(
        a.memo().get("k").is_none(),
        "the lease was lost with the server"
    );
    let fresh = shared(&server, "restart-empty").await;
    assert_eq!(join(reading(&fresh, "k", &loads, 2)).await, 2);
}

#[tokio::test]
async fn many_callers_in_many_processes_load_once() {
    let server = server_or_skip!();
    let mut memos = Vec::new();
    for _ in 0..4 {
        memos.push(shared(&server, "herd").await);
    }
    let loads = Loads::default();
    let (gate, holder) = gated(&memos[0], "k", &loads);
    gate.started.await.unwrap();
    let mut readers = Vec::new();
    for memo in &memos {
        for _ in 0..10 {
            readers.push(reading(memo, "k", &loads, 99));
        }
    }
    for (i, memo) in memos.iter().enumerate().skip(1) {
        until_waiting(memo, 1).await;
        assert_eq!(
            memo.shared_stats().unwrap().waits,
            1,
            "process {i}: one flight waits"
        );
    }
    gate.release.send(Ok(3)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 3);
    for reader in readers {
        assert_eq!(join(reader).await, 3);
    }
    assert_eq!(
        loads.count(),
        1,
        "one source load for 41 callers in 4 processes"
    );
}

/// The name of `key`'s lease in namespace `ns` now (see `src/scripts.rs` for the layout).
async fn lease_key(server: &RedisServer, ns: &str, key: &str) -> String {
    let stream = format!("async-memo:{ns}:log");
    let mut admin = server.connection().await;
    let generation: String = redis::cmd("GET")
        .arg(format!("{stream}:gen"))
        .query_async(&mut admin)
        .await
        .unwrap();
    format!("async-memo:l:{{k:{key}}}:{generation}:{stream}")
}

#[tokio::test]
async fn a_refused_store_is_not_committed_locally_either() {
    // The lease disappears without any record in the log (deleted by hand here; evicted, or
    // expired under a slow load, in life): A's reader has nothing to apply, so only A's own
    // detach on the refused store keeps the value out of A's memo.
    let server = server_or_skip!();
    let a = shared(&server, "detach").await;
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let lease = lease_key(&server, "detach", "k").await;
    let mut admin = server.connection().await;
    let deleted: u64 = redis::cmd("DEL")
        .arg(&lease)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "{lease} was A's lease");
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(
        join(holder).await.unwrap(),
        1,
        "A's callers get their value"
    );
    assert_eq!(a.shared_stats().unwrap().refused_sets, 1);
    assert!(
        a.memo().get("k").is_none(),
        "refused in Redis, so not kept here"
    );
}

#[tokio::test]
async fn a_writer_without_a_tier_revokes_through_with_shared_tier() {
    let server = server_or_skip!();
    let a = shared(&server, "writer").await;
    let log = async_memo_redis::RedisLog::open(server.url(), "writer")
        .unwrap()
        .with_shared_tier();
    let writer: Near = NearMemo::builder(log)
        .start(AsyncMemo::new())
        .await
        .unwrap();
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    writer.invalidate(&"k".to_string()).await.unwrap();
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 1);
    assert_eq!(a.shared_stats().unwrap().refused_sets, 1);
}

#[tokio::test]
async fn a_lost_generation_never_brings_back_an_old_value() {
    // The generation key evicted or deleted after an invalidate-all: the namespace must not
    // start again at a generation whose values are still stored.
    let server = server_or_skip!();
    let (a, writer) = (shared(&server, "lost").await, shared(&server, "lost").await);
    let loads = Loads::default();
    assert_eq!(join(reading(&a, "k", &loads, 1)).await, 1);
    writer.invalidate_all().await.unwrap();
    let mut admin = server.connection().await;
    let stream = "async-memo:lost:log";
    let deleted: u64 = redis::cmd("DEL")
        .arg(format!("{stream}:gen"))
        .arg(format!("{stream}:run"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(deleted, 2, "the generation and its run id were there");
    let fresh = shared(&server, "lost").await;
    assert_eq!(
        join(reading(&fresh, "k", &loads, 2)).await,
        2,
        "not the value of before"
    );
    assert_eq!(fresh.shared_stats().unwrap().shared_hits, 0);
    writer.invalidate(&"k".to_string()).await.unwrap();
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_a_miss() {
    let server = server_or_skip!();
    let words: NearMemo<String, String> =
        NearMemo::builder(async_memo_redis::RedisLog::open(server.url(), "decode").unwrap())
            .shared(SharedTier::new(Plain))
            .start(AsyncMemo::new())
            .await
            .unwrap();
    let word = words
        .get_or_init("k".into(), || async { "seven".to_string() })
        .await;
    assert_eq!(word, "seven");
    let numbers = shared(&server, "decode").await;
    let loads = Loads::default();
    assert_eq!(join(reading(&numbers, "k", &loads, 7)).await, 7);
    let stats = numbers.shared_stats().unwrap();
    assert_eq!((stats.decode_failures, stats.source_loads), (1, 1));
    assert_eq!(
        (stats.leases_granted, stats.stored),
        (1, 1),
        "loaded under the lease, replaced"
    );
    let other = shared(&server, "decode").await;
    assert_eq!(
        join(reading(&other, "k", &loads, 99)).await,
        7,
        "the replacement is shared"
    );
    assert_eq!(
        loads.count(),
        1,
        "no herd: one load replaced the bad value for everybody"
    );
}

#[tokio::test]
async fn a_value_over_the_size_limit_is_not_shared() {
    let server = server_or_skip!();
    let small = || SharedTier::new(Plain).max_value_bytes(2);
    let (a, b) = (
        tiered(&server, "size", small()).await,
        tiered(&server, "size", small()).await,
    );
    let loads = Loads::default();
    assert_eq!(join(reading(&a, "k", &loads, 12345)).await, 12345);
    assert_eq!(a.shared_stats().unwrap().not_shared, 1);
    assert_eq!(
        a.memo().get("k").map(|e| *e.value()),
        Some(12345),
        "kept locally"
    );
    assert_eq!(join(reading(&b, "k", &loads, 12345)).await, 12345);
    assert_eq!(loads.count(), 2, "B loaded it too: nothing was shared");
}

#[tokio::test]
async fn without_redis_a_load_goes_to_the_source_and_stores_nothing() {
    let server = server_or_skip!();
    let a = shared(&server, "down").await;
    let mut server = server;
    server.kill();
    let loads = Loads::default();
    assert_eq!(join(reading(&a, "k", &loads, 6)).await, 6);
    let stats = a.shared_stats().unwrap();
    assert_eq!(
        (stats.unreachable, stats.leases_granted, stats.stored),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn at_max_wait_a_bounded_call_fails_and_get_or_init_loads_itself() {
    let server = server_or_skip!();
    let impatient = || {
        SharedTier::new(Plain)
            .lease_ttl(MINUTE)
            .max_wait(Duration::from_millis(50))
    };
    let a = shared(&server, "bound").await;
    let b = tiered(&server, "bound", impatient()).await;
    let loads = Loads::default();
    let (gate, holder) = gated(&a, "k", &loads);
    gate.started.await.unwrap();
    let failed = b
        .get_or_try_init_bounded("k".into(), || async { Ok::<u64, String>(9) })
        .await
        .unwrap_err();
    assert!(
        matches!(*failed, LoadError::WaitTimedOut { .. }),
        "{failed}"
    );
    assert_eq!(
        join(reading(&b, "k", &loads, 9)).await,
        9,
        "the default policy loads"
    );
    let stats = b.shared_stats().unwrap();
    assert_eq!(
        (stats.wait_timeouts, stats.source_loads, stats.stored),
        (2, 1, 0)
    );
    gate.release.send(Ok(1)).unwrap();
    assert_eq!(join(holder).await.unwrap(), 1);
}
