//! Faults: the server killed and restarted mid-stream, the stream trimmed past a slow reader,
//! a slow reader that catches up, duplicate records, connections killed under the reader, the
//! stream deleted under it. After each, no process serves a value older than the last
//! invalidation it could have seen.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{Applied, GapCause, NearMemo, RedisLog, Reset, WhenDisconnected};

use crate::support::until;
use crate::{Near, Source, near, read};

/// A reader whose listener blocks on its first record until the test says go: a slow reader,
/// made deterministic. Returns the memo, a receiver that fires when it is blocked, the sender
/// that releases it, and the resets it reported.
async fn slow_reader(
    server: &crate::support::RedisServer,
    namespace: &str,
    max_len: u64,
) -> (
    Near,
    tokio::sync::oneshot::Receiver<()>,
    mpsc::Sender<()>,
    Arc<Mutex<Vec<Reset>>>,
) {
    let (blocked_tx, blocked_rx) = tokio::sync::oneshot::channel();
    let blocked_tx = Mutex::new(Some(blocked_tx));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let resets = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&resets);
    let log = RedisLog::open(server.url(), namespace)
        .unwrap()
        .max_len(max_len)
        .block(Duration::from_millis(100));
    let near = NearMemo::builder(log)
        .when_disconnected(WhenDisconnected::Serve)
        .on_apply(move |event: &Applied<'_, String>| match event {
            Applied::Key { .. } => {
                if let Some(tx) = blocked_tx.lock().unwrap().take() {
                    tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                }
            }
            Applied::All { reason, .. } => seen.lock().unwrap().push(*reason),
            _ => {}
        })
        .start(AsyncMemo::new())
        .await
        .unwrap();
    (near, blocked_rx, go_tx, resets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_trimmed_past_a_slow_reader_is_a_gap_and_flushes() {
    let server = server_or_skip!();
    let source = Source::default();
    let (slow, blocked, go, resets) = slow_reader(&server, "ns", 1_000_000).await;
    let writer: Near = NearMemo::builder(RedisLog::open(server.url(), "ns").unwrap().max_len(5))
        .start(AsyncMemo::new())
        .await
        .unwrap();
    source.write("x");
    assert_eq!(read(&slow, &source, "x").await, 1);

    writer.invalidate(&"first".to_string()).await.unwrap();
    blocked.await.unwrap(); // the reader is stuck inside its first record
    // Meanwhile x changes, its invalidation is published, and 100 more records trim it away.
    source.write("x");
    writer.invalidate(&"x".to_string()).await.unwrap();
    for i in 0..100 {
        writer.invalidate(&format!("other{i}")).await.unwrap();
    }
    go.send(()).unwrap();

    until("the slow reader saw the gap", || slow.stats().gaps == 1).await;
    assert_eq!(*resets.lock().unwrap(), [Reset::Gap(GapCause::Trimmed)]);
    assert_eq!(
        read(&slow, &source, "x").await,
        2,
        "x's invalidation was trimmed, the flush covered it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_reader_within_the_cap_catches_up_without_a_gap() {
    let server = server_or_skip!();
    let source = Source::default();
    let (slow, blocked, go, resets) = slow_reader(&server, "ns", 100_000).await;
    let writer = near(&server, "ns").await;
    source.write("x");
    assert_eq!(read(&slow, &source, "x").await, 1);
    writer.invalidate(&"first".to_string()).await.unwrap();
    blocked.await.unwrap();
    source.write("x");
    writer.invalidate(&"x".to_string()).await.unwrap();
    for i in 0..100 {
        writer.invalidate(&format!("other{i}")).await.unwrap();
    }
    go.send(()).unwrap();
    until("the slow reader applied all 102", || {
        slow.stats().applied == 102
    })
    .await;
    until("and knows it is not behind", || slow.stats().lag == 0).await;
    assert_eq!(slow.stats().gaps, 0);
    assert!(resets.lock().unwrap().is_empty());
    assert_eq!(read(&slow, &source, "x").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_mid_stream_is_a_gap_and_flushes() {
    let mut server = server_or_skip!();
    let source = Source::default();
    let a = near(&server, "ns").await;
    let b = near(&server, "ns").await;
    source.write("x");
    assert_eq!(read(&a, &source, "x").await, 1);
    b.invalidate(&"warm-up".to_string()).await.unwrap();
    until("A is reading", || a.stats().applied == 1).await;

    // x changes while the server is down: its invalidation cannot be published (the writer
    // would retry; here it gives up), and the restarted server has lost the whole stream.
    server.kill();
    source.write("x");
    assert!(b.invalidate(&"x".to_string()).await.is_err());
    server.restart();

    // The reconnect is counted just after the gap's reset: wait for both.
    until("A noticed the new server", || {
        let stats = a.stats();
        stats.gaps == 1 && stats.reconnects >= 1
    })
    .await;
    assert_eq!(
        read(&a, &source, "x").await,
        2,
        "the flush covered the lost invalidation"
    );
    // And the log works on the new server.
    source.write("x");
    b.invalidate(&"x".to_string()).await.unwrap();
    until("A applied from the new stream", || a.stats().applied == 2).await;
    assert_eq!(read(&a, &source, "x").await, 3);
    assert_eq!(a.stats().gaps, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_resume_from_the_last_applied_id_without_loss_or_duplicates() {
    let server = server_or_skip!();
    let a = near(&server, "ns").await;
    let b = near(&server, "ns").await;
    let mut admin = server.connection().await;
    let mut published = 0;
    for round in 0..5 {
        for i in 0..20 {
            b.invalidate(&format!("k{round}-{i}")).await.unwrap();
            published += 1;
        }
        // Kill every other client: A's reader (possibly mid-XREAD) and B's publisher.
        let me: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut admin)
            .await
            .unwrap();
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut admin)
            .await
            .unwrap();
        let _ = me;
        // B's next publish may fail on its dead connection; a writer retries, so do we.
        while b.invalidate(&format!("retry{round}")).await.is_err() {}
        published += 1;
    }
    until("A applied every record", || a.stats().applied >= published).await;
    let stats = a.stats();
    assert_eq!(
        stats.applied, published,
        "no record lost, none applied twice"
    );
    assert_eq!(
        (stats.gaps, stats.resets),
        (0, 0),
        "a reconnect to the same server is no gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_record_only_costs_a_reload() {
    let server = server_or_skip!();
    let source = Source::default();
    let a = near(&server, "ns").await;
    let b = near(&server, "ns").await;
    source.write("x");
    read(&a, &source, "x").await;
    source.write("x");
    // A writer that timed out and retried: the same invalidation twice.
    b.invalidate(&"x".to_string()).await.unwrap();
    b.invalidate(&"x".to_string()).await.unwrap();
    until("A applied both", || a.stats().applied == 2).await;
    assert_eq!(read(&a, &source, "x").await, 2);
    assert_eq!(a.stats().gaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_under_a_connected_reader_is_a_gap() {
    let server = server_or_skip!();
    let source = Source::default();
    let a = near(&server, "ns").await;
    let b = near(&server, "ns").await;
    b.invalidate(&"warm-up".to_string()).await.unwrap();
    until("A is reading", || a.stats().applied == 1).await;
    source.write("x");
    assert_eq!(read(&a, &source, "x").await, 1);
    // Someone deletes the stream, with x's invalidation in it that A never got to read.
    let mut admin = server.connection().await;
    source.write("x");
    let _: () = redis::cmd("DEL")
        .arg(a.log().stream_key())
        .query_async(&mut admin)
        .await
        .unwrap();
    until("A noticed", || a.stats().gaps == 1).await;
    assert_eq!(read(&a, &source, "x").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_joins_late_starts_at_the_end_and_misses_nothing_after() {
    let server = server_or_skip!();
    let source = Source::default();
    let writer = near(&server, "ns").await;
    for i in 0..50 {
        writer.invalidate(&format!("before{i}")).await.unwrap();
    }
    let late = near(&server, "ns").await;
    source.write("x");
    assert_eq!(read(&late, &source, "x").await, 1);
    source.write("x");
    writer.invalidate(&"x".to_string()).await.unwrap();
    until("the late reader applied x", || late.stats().applied == 1).await;
    assert_eq!(read(&late, &source, "x").await, 2);
    assert_eq!(late.stats().gaps, 0);
}
