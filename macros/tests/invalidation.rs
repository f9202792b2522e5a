//! Invalidation through the accessor: compare-and-delete of one result by its epoch, a stale
//! epoch that changes nothing, a run in progress detached so that it never stores its value,
//! and `invalidate_all`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_memo::memoize;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::task::noop_waker_ref;

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(noop_waker_ref()))
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn connection(server: &str) -> String {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{server}#{n}")
}

#[test]
fn invalidate_removes_exactly_the_result_observed() {
    let first = block_on(connection("db"));
    let memo = connection_memo();
    let observed = memo.epoch("db").expect("memoized");

    // Meanwhile someone replaced it (a reconnect, say)...
    memo.invalidate("db", observed);
    let second = block_on(connection("db"));
    assert_ne!(first, second);
    // ...so a late invalidation by the old epoch leaves the new result alone.
    assert!(!memo.invalidate("db", observed), "stale epoch");
    assert_eq!(block_on(connection("db")), second);

    let current = memo.epoch("db").unwrap();
    assert!(memo.invalidate("db", current));
    assert!(memo.get("db").is_none());
}

#[memoize(key: u32 = id)]
async fn slow(id: u32, gate: oneshot::Receiver<u32>) -> u32 {
    gate.await.unwrap_or(0) + id
}

#[test]
fn a_run_invalidated_in_flight_never_stores_its_value() {
    let (open, gate) = oneshot::channel();
    let mut call = Box::pin(slow(1, gate));
    assert!(poll_once(&mut call).is_pending());
    let memo = slow_memo();
    let in_flight = memo.epoch(&1).expect("a flight has an epoch");
    assert!(memo.get(&1).is_none(), "not ready yet");
    assert!(memo.invalidate(&1, in_flight), "detached");
    open.send(100).unwrap();
    assert_eq!(block_on(call), 101, "its caller still gets the value");
    assert!(memo.get(&1).is_none(), "but it was never stored");

    let (open, gate) = oneshot::channel();
    open.send(200).unwrap();
    assert_eq!(
        block_on(slow(1, gate)),
        201,
        "the next call runs the body again"
    );
}

#[memoize]
async fn double(n: u8) -> u16 {
    u16::from(n) * 2
}

#[test]
fn invalidate_all_clears_the_memo() {
    for n in 0..10 {
        block_on(double(n));
    }
    assert_eq!(double_memo().len(), 10);
    double_memo().invalidate_all();
    assert!(double_memo().is_empty());
}
