//! Single-flight through the attribute: concurrent calls of one key run the body once, calls of
//! other keys never wait for it (no lock across the body, cached #158), the flight survives its
//! first caller, and a failed flight's error reaches each of its callers. Deterministic: bodies
//! wait on oneshot gates and the calls are polled by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_memo::memoize;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::task::noop_waker_ref;

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(noop_waker_ref()))
}

/// A gate for a body: `open` lets it finish. Gates of callers that join another's flight are
/// never awaited.
fn gate() -> (oneshot::Sender<()>, oneshot::Receiver<()>) {
    oneshot::channel()
}

/// The key is `id` alone: the gate and the run counter go to the body without being keyed.
#[memoize(key: u32 = id)]
async fn gated(id: u32, gate: oneshot::Receiver<()>, runs: Arc<AtomicUsize>) -> u32 {
    runs.fetch_add(1, Ordering::SeqCst);
    gate.await.expect("gate dropped");
    id * 10
}

#[test]
fn concurrent_calls_of_one_key_run_the_body_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..8).map(|_| gate()).unzip();
    let mut calls: Vec<_> = receivers
        .into_iter()
        .map(|gate| Box::pin(gated(1, gate, Arc::clone(&runs))))
        .collect();
    for call in &mut calls {
        assert!(poll_once(call).is_pending());
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one body run for eight callers"
    );
    for open in senders {
        let _ = open.send(());
    }
    let values = block_on(futures::future::join_all(calls));
    assert_eq!(values, vec![10; 8]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Memoized: a later call is a hit and does not run the body.
    let (_open, unused) = gate();
    assert_eq!(block_on(gated(1, unused, Arc::clone(&runs))), 10);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pending_body_does_not_block_other_keys() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (open, slow_gate) = gate();
    let mut slow = Box::pin(gated(2, slow_gate, Arc::clone(&runs)));
    assert!(poll_once(&mut slow).is_pending());
    let (open_fast, fast_gate) = gate();
    open_fast.send(()).unwrap();
    // Key 3 completes while key 2's body is still waiting.
    assert_eq!(block_on(gated(3, fast_gate, Arc::clone(&runs))), 30);
    assert!(poll_once(&mut slow).is_pending());
    open.send(()).unwrap();
    assert_eq!(block_on(slow), 20);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn the_flight_survives_the_caller_that_started_it() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (open, first_gate) = gate();
    let mut first = Box::pin(gated(4, first_gate, Arc::clone(&runs)));
    assert!(poll_once(&mut first).is_pending());
    let (_never, second_gate) = gate();
    let mut second = Box::pin(gated(4, second_gate, Arc::clone(&runs)));
    assert!(poll_once(&mut second).is_pending());
    // The starter goes away; its body (waiting on the first gate) is driven by the second.
    drop(first);
    open.send(()).unwrap();
    assert_eq!(block_on(second), 40);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "not restarted");
}

#[test]
fn dropping_the_last_caller_drops_the_body_and_frees_the_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (open, first_gate) = gate();
    let mut only = Box::pin(gated(7, first_gate, Arc::clone(&runs)));
    assert!(poll_once(&mut only).is_pending());
    assert!(gated_memo().epoch(&7).is_some(), "a flight holds the key");
    drop(only);
    assert!(
        open.is_canceled(),
        "the body's future, holding the gate, was dropped"
    );
    assert!(gated_memo().epoch(&7).is_none(), "the key is free again");

    let (open, gate) = gate();
    open.send(()).unwrap();
    assert_eq!(block_on(gated(7, gate, Arc::clone(&runs))), 70);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the next call ran the body anew"
    );
}

#[derive(Clone, Debug, PartialEq)]
struct Unavailable(u32);

#[memoize(key: u32 = id)]
async fn flaky(
    id: u32,
    gate: oneshot::Receiver<bool>,
    runs: Arc<AtomicUsize>,
) -> Result<u32, Unavailable> {
    runs.fetch_add(1, Ordering::SeqCst);
    match gate.await {
        Ok(true) => Ok(id),
        _ => Err(Unavailable(id)),
    }
}

#[test]
fn callers_of_one_failed_flight_each_get_its_error_and_nothing_is_stored() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (fail, first_gate) = oneshot::channel();
    let (_unused, second_gate) = oneshot::channel();
    let mut first = Box::pin(flaky(5, first_gate, Arc::clone(&runs)));
    let mut second = Box::pin(flaky(5, second_gate, Arc::clone(&runs)));
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    fail.send(false).unwrap();
    assert_eq!(block_on(first), Err(Unavailable(5)));
    assert_eq!(block_on(second), Err(Unavailable(5)));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the error was shared, not recomputed"
    );
    assert!(flaky_memo().get(&5).is_none(), "errors are not stored");

    // The next call runs the body again, and an Ok is stored.
    let (succeed, gate) = oneshot::channel();
    succeed.send(true).unwrap();
    assert_eq!(block_on(flaky(5, gate, Arc::clone(&runs))), Ok(5));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(flaky_memo().get(&5).map(|e| *e.value()), Some(5));
}

#[memoize(key: u32 = id)]
async fn panicky(id: u32, gate: oneshot::Receiver<()>, runs: Arc<AtomicUsize>) -> u32 {
    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
        gate.await.ok();
        panic!("first run panics");
    }
    id
}

#[test]
fn a_panicking_body_reaches_its_poller_and_the_others_start_over() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (open, first_gate) = gate();
    let (_unused, second_gate) = gate();
    let mut first = Box::pin(panicky(6, first_gate, Arc::clone(&runs)));
    let mut second = Box::pin(panicky(6, second_gate, Arc::clone(&runs)));
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    open.send(()).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(first)));
    assert!(panicked.is_err());
    // The other caller starts a new flight with its own body run.
    assert_eq!(block_on(second), 6);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
