//! Invalidations reach every process, exactly as published: keys, "all", own records, the
//! start-up cursor, Redis as the source.

use std::hash::RandomState;
use std::sync::{Arc, Mutex};

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, NearMemo, Plain, RedisLog, Reset};
use redis::AsyncCommands;

use crate::support::until;
use crate::{Source, builder, near, read};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_every_other_process() {
    let server = server_or_skip!();
    let source = Source::default();
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(near(&server, "ns").await);
    }
    let writer = near(&server, "ns").await;
    source.write("k");
    for r in &readers {
        assert_eq!(read(r, &source, "k").await, 1);
    }
    source.write("k");
    writer.invalidate(&"k".to_string()).await.unwrap();
    for r in &readers {
        until("the reader applied", || r.stats().applied == 1).await;
        assert_eq!(read(r, &source, "k").await, 2);
        let stats = r.stats();
        assert!(stats.last_apply_lag.is_some());
        assert_eq!((stats.gaps, stats.resets), (0, 0));
    }
    assert_eq!(writer.stats().published, 1);
}

/// The hasher places keys in one process's memo only; the log carries them as the codec
/// encodes them, so SipHash memos and default-hasher memos share a namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_memos_on_siphash_and_on_the_default_hasher() {
    type SipNear = NearMemo<String, u64, RedisLog, Plain, RandomState>;
    let server = server_or_skip!();
    let source = Source::default();
    let sip = || AsyncMemo::builder().hasher(RandomState::new()).build();
    let a: SipNear = builder(&server, "ns").start(sip()).await.unwrap();
    let b: SipNear = builder(&server, "ns").start(sip()).await.unwrap();
    let c = near(&server, "ns").await;
    source.write("k");
    assert_eq!(read(&a, &source, "k").await, 1);
    assert_eq!(read(&c, &source, "k").await, 1);

    // SipHash to SipHash and to the default hasher.
    source.write("k");
    b.invalidate(&"k".to_string()).await.unwrap();
    until("A applied", || a.stats().applied == 1).await;
    assert!(a.memo().get("k").is_none(), "A's entry was removed");
    assert_eq!(read(&a, &source, "k").await, 2);
    until("C applied", || c.stats().applied == 1).await;
    assert_eq!(read(&c, &source, "k").await, 2);

    // The default hasher to SipHash.
    source.write("k");
    c.invalidate(&"k".to_string()).await.unwrap();
    until("A applied again", || a.stats().applied == 2).await;
    assert_eq!(read(&a, &source, "k").await, 3);
    assert_eq!((a.stats().gaps, a.stats().resets), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_invalidations_apply_at_once_and_the_own_reader_skips_them() {
    let server = server_or_skip!();
    let source = Source::default();
    let a = near(&server, "ns").await;
    source.write("k");
    assert_eq!(read(&a, &source, "k").await, 1);
    source.write("k");
    a.invalidate(&"k".to_string()).await.unwrap();
    assert!(
        a.memo().get("k").is_none(),
        "removed before invalidate returned"
    );
    assert_eq!(read(&a, &source, "k").await, 2);
    until("the own record was read and skipped", || a.stats().own == 1).await;
    assert_eq!(a.stats().applied, 0);
    assert_eq!(
        a.memo().get("k").map(|e| *e.value()),
        Some(2),
        "the fresh entry survives its own record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_records_the_end_first_and_replays_nothing_before_it() {
    let server = server_or_skip!();
    let writer = near(&server, "ns").await;
    for _ in 0..5 {
        writer.invalidate(&"old".to_string()).await.unwrap();
    }
    let memo = AsyncMemo::new();
    memo.insert("held-before".to_string(), 0).unwrap();
    let late = builder(&server, "ns").start(memo).await.unwrap();
    assert!(
        late.memo().get("held-before").is_none(),
        "nothing from before start is served"
    );
    // The first record after start is applied; the five before it never are.
    writer.invalidate(&"new".to_string()).await.unwrap();
    until("the late joiner applied the new record", || {
        late.stats().applied == 1
    })
    .await;
    writer.invalidate(&"newer".to_string()).await.unwrap();
    until("and the next", || late.stats().applied == 2).await;
    assert_eq!(late.stats().gaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_reaches_every_process() {
    let server = server_or_skip!();
    let source = Source::default();
    let a = near(&server, "ns").await;
    let b = near(&server, "ns").await;
    for key in ["x", "y"] {
        read(&a, &source, key).await;
    }
    b.invalidate_all().await.unwrap();
    until("A reset", || a.stats().resets == 1).await;
    assert!(a.memo().is_empty());
    assert_eq!(a.stats().gaps, 0, "a published reset is not a gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_decode_resets_the_memo() {
    let server = server_or_skip!();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let a = builder(&server, "ns")
        .on_apply(move |event: &Applied<'_, String>| {
            if let Applied::All { reason, .. } = event {
                seen.lock().unwrap().push(*reason);
            }
        })
        .start(AsyncMemo::new())
        .await
        .unwrap();
    a.memo().insert("k".to_string(), 1).unwrap();
    // Another program writes a key that is not UTF-8 into the log.
    let mut c = server.connection().await;
    let _: String = redis::cmd("XADD")
        .arg(a.log().stream_key())
        .arg("*")
        .arg("k")
        .arg(&b"\xff\xfe"[..])
        .query_async(&mut c)
        .await
        .unwrap();
    until("A reset", || a.stats().resets == 1).await;
    assert!(a.memo().is_empty());
    assert_eq!(*events.lock().unwrap(), [Reset::Undecodable]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_invalidate_writes_redis_and_publishes_in_one_transaction() {
    let server = server_or_skip!();
    let a = near(&server, "ns").await;
    let b = near(&server, "ns").await;
    let mut c = server.connection().await;
    let _: () = c.set("user:7", "Ada").await.unwrap();
    let load = |near: &crate::Near| {
        let client = redis::Client::open(server.url()).unwrap();
        let near = near.clone();
        async move {
            near.get_or_init("user:7".to_string(), move || async move {
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let name: String = c.get("user:7").await.unwrap();
                name.len() as u64
            })
            .await
        }
    };
    assert_eq!(load(&a).await, 3);
    let mut writes = redis::pipe();
    writes.set("user:7", "Grace");
    let (replies, id) = b
        .commit_and_invalidate(&writes, &"user:7".to_string())
        .await
        .unwrap();
    assert_eq!(replies.len(), 1);
    until("A applied", || a.stats().applied == 1).await;
    assert_eq!(load(&a).await, 5);
    let len: u64 = c.xlen(a.log().stream_key()).await.unwrap();
    assert_eq!(len, 1);
    let range: redis::streams::StreamRangeReply = c.xrange_all(a.log().stream_key()).await.unwrap();
    assert_eq!(range.ids[0].id, id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_listener_does_not_stop_the_reader() {
    let server = server_or_skip!();
    let source = Source::default();
    let a = builder(&server, "ns")
        .on_apply(|_: &Applied<'_, String>| panic!("a listener bug"))
        .start(AsyncMemo::new())
        .await
        .unwrap();
    let b = near(&server, "ns").await;
    for round in 1..=2 {
        source.write("x");
        b.invalidate(&"x".to_string()).await.unwrap();
        until("A applied", || a.stats().applied == round).await;
        assert_eq!(
            read(&a, &source, "x").await,
            round,
            "the entry was removed before the panic"
        );
    }
}
