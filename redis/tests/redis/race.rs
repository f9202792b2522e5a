//! The race Redisson and JetCache lose (Redisson #1930, #3874; JetCache #803), made
//! deterministic: a load in progress on process A, an invalidation from process B applied on
//! A before the load finishes. The load's value goes to its callers and is never stored.

use tokio::sync::oneshot;

use crate::support::until;
use crate::{Source, near, read};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_in_progress_when_a_remote_invalidation_is_applied_is_never_stored() {
    let server = server_or_skip!();
    let source = Source::default();
    source.write("k"); // version 1
    let a = near(&server, "race").await;
    let b = near(&server, "race").await;

    // A starts loading k: it reads version 1, then waits at the gate (a slow query).
    let (started, loading) = oneshot::channel();
    let (open, gate) = oneshot::channel::<()>();
    let load = tokio::spawn({
        let (a, source) = (a.clone(), source.clone());
        async move {
            a.memo()
                .get_or_init("k".to_string(), move || async move {
                    let version = source.read("k");
                    started.send(()).unwrap();
                    gate.await.unwrap();
                    version
                })
                .await
        }
    });
    loading.await.unwrap();

    // B changes the source, then invalidates; A applies it while its load is still in progress.
    assert_eq!(source.write("k"), 2);
    b.invalidate(&"k".to_string()).await.unwrap();
    until("A applied B's invalidation", || a.stats().applied == 1).await;

    open.send(()).unwrap();
    let entry = load.await.unwrap();
    assert_eq!(*entry.value(), 1, "the load's caller still gets its value");
    assert!(
        a.memo().get("k").is_none(),
        "but the stale value was never stored"
    );
    assert_ne!(a.memo().epoch("k"), Some(entry.epoch()));
    assert_eq!(
        read(&a, &source, "k").await,
        2,
        "the next read loads the new version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_starts_after_the_invalidation_is_stored() {
    let server = server_or_skip!();
    let source = Source::default();
    let a = near(&server, "race").await;
    let b = near(&server, "race").await;
    source.write("k");
    assert_eq!(read(&a, &source, "k").await, 1);
    source.write("k");
    b.invalidate(&"k".to_string()).await.unwrap();
    until("A applied", || a.stats().applied == 1).await;
    assert_eq!(read(&a, &source, "k").await, 2);
    assert_eq!(a.memo().get("k").map(|e| *e.value()), Some(2), "stored");
}
