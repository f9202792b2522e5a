//! The staleness bound while the log cannot be read (`WhenDisconnected`), and what happens
//! when it can be read again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{Link, WhenDisconnected};

use crate::support::until;
use crate::{Near, Source, builder, read};

async fn with_policy(server: &crate::support::RedisServer, policy: WhenDisconnected) -> Near {
    builder(server, "ns")
        .when_disconnected(policy)
        .start(AsyncMemo::new())
        .await
        .unwrap()
}

/// Caches x (version 1) and waits until the reader has read once.
async fn warm(a: &Near, source: &Source) {
    source.write("x");
    assert_eq!(read(a, source, "x").await, 1);
    until("A has read once", || {
        a.stats().link == Some(Link::Connected)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_invalidates_everything_once_the_bound_has_passed() {
    let mut server = server_or_skip!();
    let source = Source::default();
    let a = with_policy(
        &server,
        WhenDisconnected::Clear {
            after: Duration::from_millis(50),
        },
    )
    .await;
    warm(&a, &source).await;
    server.kill();
    until("A cleared its memo", || a.stats().resets >= 1).await;
    assert!(a.memo().is_empty());
    assert_eq!(a.stats().link, Some(Link::Disconnected));
    assert_eq!(a.stats().gaps, 0, "a policy reset is not a gap");
    server.restart();
    until("A is connected again", || {
        a.stats().link == Some(Link::Connected)
    })
    .await;
    assert_eq!(a.stats().gaps, 1, "the new server is a gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_runs_every_init_and_stores_nothing_until_the_log_is_back() {
    let mut server = server_or_skip!();
    let a = with_policy(
        &server,
        WhenDisconnected::Bypass {
            after: Duration::ZERO,
        },
    )
    .await;
    let loads = Arc::new(AtomicU64::new(0));
    let load = || {
        let loads = Arc::clone(&loads);
        a.get_or_init("x".to_string(), move || async move {
            loads.fetch_add(1, Ordering::SeqCst) + 1
        })
    };
    assert_eq!(load().await, 1);
    assert_eq!(load().await, 1, "memoized while connected");
    server.kill();
    until("A bypasses and has cleared", || {
        let stats = a.stats();
        stats.link == Some(Link::Bypassing) && stats.resets >= 1
    })
    .await;
    assert_eq!(load().await, 2);
    assert_eq!(load().await, 3, "every call loads");
    assert!(a.memo().is_empty(), "nothing stored");
    server.restart();
    until("A is connected again", || {
        a.stats().link == Some(Link::Connected)
    })
    .await;
    assert_eq!(load().await, 4);
    assert_eq!(load().await, 4, "memoized again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_serving_and_the_reconnect_still_flushes_a_lost_log() {
    let mut server = server_or_skip!();
    let source = Source::default();
    let a = with_policy(&server, WhenDisconnected::Serve).await;
    warm(&a, &source).await;
    server.kill();
    until("A knows", || a.stats().link == Some(Link::Disconnected)).await;
    source.write("x");
    assert_eq!(read(&a, &source, "x").await, 1, "serving, as asked");
    assert_eq!(a.stats().resets, 0);
    server.restart();
    until("A is connected again", || {
        a.stats().link == Some(Link::Connected)
    })
    .await;
    assert_eq!(
        read(&a, &source, "x").await,
        2,
        "nothing is left stale after a reconnect"
    );
}
