//! The shared tier across OS processes (issue 20): this test binary re-run as children
//! (`processes::child_process` with the shared tier), one server.

use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{Plain, SharedTier};
use redis::AsyncCommands;

use crate::processes::{Child, SHARED_LEASE, SHARED_NAMESPACE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_load_a_key_once() {
    let server = server_or_skip!();
    let mut admin = server.connection().await;
    let _: () = admin.set("src:k", 41).await.unwrap();
    const NAMES: [&str; 8] = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"];
    let mut children: Vec<Child> = NAMES
        .iter()
        .map(|n| Child::spawn_shared(&server, n))
        .collect();
    for child in &mut children {
        assert_eq!(child.ask("ready").await, "ready");
    }
    for child in &mut children {
        child.send("counted k").await;
    }
    // One process holds the lease and waits at its gate; the other seven must be waiting for
    // its value, not loading (the guard is a failure guard only).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut waiting = 0;
        for child in &mut children {
            waiting += u64::from(child.ask("waits").await == "waits 1");
        }
        if waiting == 7 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} of 7 processes wait"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _: () = admin.lpush("gate:k", 1).await.unwrap();
    for child in &mut children {
        assert_eq!(child.next().await, "value k 41");
    }
    let loads: u64 = admin.get("loads:k").await.unwrap();
    assert_eq!(loads, 1, "one source load for eight processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_load_is_taken_over_within_the_lease() {
    let server = server_or_skip!();
    let mut holder = Child::spawn_shared(&server, "H");
    assert_eq!(holder.ask("ready").await, "ready");
    assert_eq!(holder.ask("hold k").await, "holding k");
    // This process waits for the holder; a wait bound far beyond the lease, so that only the
    // lease's expiry (not the bound) can end it.
    let near = crate::builder(&server, SHARED_NAMESPACE)
        .shared(
            SharedTier::new(Plain)
                .lease_ttl(SHARED_LEASE)
                .max_wait(Duration::from_secs(600)),
        )
        .start(AsyncMemo::new())
        .await
        .unwrap();
    let waiter = {
        let near = near.clone();
        tokio::spawn(async move { near.get_or_init("k".into(), || async { 7 }).await })
    };
    crate::support::until("the waiter waits", || {
        near.shared_stats().unwrap().waits == 1
    })
    .await;
    holder.kill().await;
    let value = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("taken over within the failure guard")
        .unwrap();
    assert_eq!(value, 7, "this process loaded it");
    let stats = near.shared_stats().unwrap();
    assert_eq!(
        (stats.takeovers, stats.wait_timeouts, stats.stored),
        (1, 0, 1)
    );
}
