//! Panics (semantics 7): a panic in the init closure or in the flight's future propagates to
//! the caller that was polling it and to the caller whose `init` created the flight; every other
//! caller of that flight starts over with its own `init` (one starts a new flight, the rest join
//! it). Nothing hangs (waiters are woken), nothing is poisoned, nothing is stored, the key is
//! free and the memo stays usable.

mod common;

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry};
use common::{counting_waker, spawn_joined, within};
use futures::channel::oneshot;

/// Polls once, catching a panic.
fn try_poll<F: Future + ?Sized>(
    future: Pin<&mut F>,
    waker: &Waker,
) -> Result<Poll<F::Output>, Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(|| {
        future.poll(&mut Context::from_waker(waker))
    }))
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<non-string panic>")
    }
}

fn expect_panic<T>(result: Result<T, Box<dyn Any + Send>>) -> String {
    match result {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => message(&*payload),
    }
}

fn ready<T>(result: Result<Poll<T>, Box<dyn Any + Send>>) -> T {
    match result {
        Ok(Poll::Ready(value)) => value,
        Ok(Poll::Pending) => panic!("expected Ready, got Pending"),
        Err(payload) => panic!("unexpected panic: {}", message(&*payload)),
    }
}

fn pending<T>(result: Result<Poll<T>, Box<dyn Any + Send>>) {
    match result {
        Ok(Poll::Pending) => {}
        Ok(Poll::Ready(_)) => panic!("expected Pending, got Ready"),
        Err(payload) => panic!("unexpected panic: {}", message(&*payload)),
    }
}

/// An init closure that counts its runs.
fn counting<F, M: FnOnce() -> F>(
    inits: &Arc<AtomicUsize>,
    make: M,
) -> impl FnOnce() -> F + use<F, M> {
    let inits = Arc::clone(inits);
    move || {
        inits.fetch_add(1, Ordering::SeqCst);
        make()
    }
}

/// Waits for the gate, then panics if told so, else yields `value`.
async fn gated_maybe_panic(gate: oneshot::Receiver<bool>, value: u32) -> u32 {
    if gate.await.unwrap_or(false) {
        panic!("boom in the flight's future");
    }
    value
}

/// The memo still works for `key` (a new flight, a newer epoch) and for other keys.
fn assert_usable(memo: &AsyncMemo<u32, u32>, key: u32, older_than: Option<async_memo::Epoch>) {
    assert!(memo.get(&key).is_none(), "a panicked flight stored nothing");
    assert_eq!(memo.epoch(&key), None, "the key is free");
    let entry = futures::executor::block_on(memo.get_or_init(key, || async { 77 }));
    assert_eq!(*entry.value(), 77);
    if let Some(older) = older_than {
        assert!(entry.epoch() > older);
    }
    assert_eq!(memo.get(&key).unwrap().epoch(), entry.epoch());
    memo.insert(key + 1000, 1).unwrap();
    assert_eq!(memo.get(&(key + 1000)).map(|e| *e.value()), Some(1));
    assert!(memo.invalidate(&key, entry.epoch()));
}

/// Pins: a panic in the init closure reaches the creator with its own payload and frees the key.
#[test]
fn panic_in_init_closure_propagates_to_creator_and_frees_key() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let (_count, waker) = counting_waker();
    let mut call = Box::pin(memo.get_or_init(1, || -> std::future::Ready<u32> {
        panic!("boom in the init closure")
    }));
    let msg = expect_panic(try_poll(call.as_mut(), &waker));
    assert_eq!(msg, "boom in the init closure");
    drop(call);
    assert_usable(&memo, 1, None);
}

/// Pins: a panic in the future polled by its creator reaches the creator with its payload;
/// the other callers are woken, one starts a new flight with its own init and the rest join it.
#[test]
fn panic_in_future_polled_by_creator_restarts_others_in_one_new_flight() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let a_inits = Arc::new(AtomicUsize::new(0));
    let b_inits = Arc::new(AtomicUsize::new(0));
    let c_inits = Arc::new(AtomicUsize::new(0));
    let (a_gate, a_rx) = oneshot::channel();
    let (b_gate, b_rx) = oneshot::channel();
    let (_c_gate, c_rx) = oneshot::channel();
    let (_a_count, a_waker) = counting_waker();
    let (b_count, b_waker) = counting_waker();
    let (c_count, c_waker) = counting_waker();
    let mut a = Box::pin(memo.get_or_init(1, counting(&a_inits, || gated_maybe_panic(a_rx, 1))));
    let mut b = Box::pin(memo.get_or_init(1, counting(&b_inits, || gated_maybe_panic(b_rx, 2))));
    let mut c = Box::pin(memo.get_or_init(1, counting(&c_inits, || gated_maybe_panic(c_rx, 3))));
    pending(try_poll(a.as_mut(), &a_waker));
    pending(try_poll(b.as_mut(), &b_waker));
    pending(try_poll(c.as_mut(), &c_waker));
    let first = memo.epoch(&1).unwrap();

    a_gate.send(true).unwrap(); // the next poll of the future panics
    assert!(b_count.wakes() >= 1 && c_count.wakes() >= 1);
    let msg = expect_panic(try_poll(a.as_mut(), &a_waker));
    assert_eq!(msg, "boom in the flight's future");
    assert_eq!(memo.epoch(&1), None, "the panicked flight freed the key");
    drop(a);

    // B starts over with its own init: a new flight.
    pending(try_poll(b.as_mut(), &b_waker));
    let second = memo.epoch(&1).expect("B started a new flight");
    assert!(second > first);
    // C starts over too, and joins B's flight instead of running its init.
    pending(try_poll(c.as_mut(), &c_waker));
    assert_eq!(memo.epoch(&1), Some(second));
    b_gate.send(false).unwrap();
    let b_entry = ready(try_poll(b.as_mut(), &b_waker));
    let c_entry = ready(try_poll(c.as_mut(), &c_waker));
    assert_eq!((*b_entry.value(), b_entry.epoch()), (2, second));
    assert_eq!((*c_entry.value(), c_entry.epoch()), (2, second));
    assert_eq!(
        (
            a_inits.load(Ordering::SeqCst),
            b_inits.load(Ordering::SeqCst),
            c_inits.load(Ordering::SeqCst)
        ),
        (1, 1, 0)
    );
    assert_eq!(memo.get(&1).unwrap().epoch(), second);
}

/// Pins: when a joined caller is the one polling, the panic reaches it (with its payload) and
/// the creator (which panics when next polled); a third caller starts over.
#[test]
fn panic_in_future_polled_by_joiner_reaches_joiner_and_creator() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let c_inits = Arc::new(AtomicUsize::new(0));
    let (gate, rx) = oneshot::channel();
    let (a_count, a_waker) = counting_waker();
    let (_b_count, b_waker) = counting_waker();
    let (c_count, c_waker) = counting_waker();
    let mut a = Box::pin(memo.get_or_init(1, || gated_maybe_panic(rx, 1)));
    let mut b = Box::pin(memo.get_or_init(1, || async { unreachable!("B joins") }));
    let mut c = Box::pin(memo.get_or_init(1, counting(&c_inits, || async { 3 })));
    pending(try_poll(a.as_mut(), &a_waker));
    pending(try_poll(b.as_mut(), &b_waker));
    pending(try_poll(c.as_mut(), &c_waker));
    gate.send(true).unwrap();

    let msg = expect_panic(try_poll(b.as_mut(), &b_waker));
    assert_eq!(msg, "boom in the flight's future", "the polling caller");
    assert!(
        a_count.wakes() >= 1,
        "the creator was woken to learn of the panic"
    );
    assert!(c_count.wakes() >= 1, "the waiter was woken to start over");
    let msg = expect_panic(try_poll(a.as_mut(), &a_waker));
    assert!(msg.starts_with("async-memo:"), "the creator panics: {msg}");
    let c_entry = ready(try_poll(c.as_mut(), &c_waker));
    assert_eq!(*c_entry.value(), 3);
    assert_eq!(c_inits.load(Ordering::SeqCst), 1);
    drop((a, b, c));
    assert_eq!(memo.get(&1).map(|e| *e.value()), Some(3));
    assert!(memo.invalidate(&1, c_entry.epoch()));
    assert_usable(&memo, 1, Some(c_entry.epoch()));
}

/// Pins: a panic in the init closure while another thread's caller waits on the flight wakes
/// that waiter, which starts over with its own init.
#[test]
fn panic_in_init_closure_wakes_waiter_on_another_thread() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let (in_closure_tx, in_closure_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let b_inits = Arc::new(AtomicUsize::new(0));
    {
        // Not a scoped thread: if the test fails, the creator must not keep it from ending.
        let creator_memo = memo.clone();
        std::thread::spawn(move || {
            let call = creator_memo.get_or_init(1, move || -> std::future::Ready<u32> {
                in_closure_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                panic!("boom in a blocked init closure")
            });
            let result = catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(call)));
            done_tx.send(result.err().map(|p| message(&*p))).unwrap();
        });
        in_closure_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("creator never ran its init");
        let (b_count, b_waker) = counting_waker();
        let mut b = Box::pin(memo.get_or_init(1, counting(&b_inits, || async { 2 })));
        pending(try_poll(b.as_mut(), &b_waker));
        release_tx.send(()).unwrap();
        let creator = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("creator hung");
        assert_eq!(creator.as_deref(), Some("boom in a blocked init closure"));
        assert!(b_count.wakes() >= 1, "the waiter was never woken");
        let entry = ready(try_poll(b.as_mut(), &b_waker));
        assert_eq!(*entry.value(), 2);
    }
    assert_eq!(b_inits.load(Ordering::SeqCst), 1);
}

/// Pins: on a runtime, the panic reaches the creator's task as a panic `JoinError`; of the
/// others at most one (the one that polled) panics, and the survivors share one new flight.
#[tokio::test]
async fn panic_reaches_polling_task_and_creator_as_join_errors() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let restarts = Arc::new(AtomicUsize::new(0));
    let (gate, rx) = oneshot::channel();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let creator = {
        let memo = memo.clone();
        tokio::spawn(async move {
            let entry = memo
                .get_or_init(1, move || async move {
                    started_tx.send(()).unwrap();
                    gated_maybe_panic(rx, 1).await
                })
                .await;
            *entry.value()
        })
    };
    started_rx.await.unwrap();
    let mut others = Vec::new();
    for i in 0..4 {
        let init = counting(&restarts, move || async move { 100 + i });
        others.push(spawn_joined(&memo, 1, init).await);
    }
    gate.send(true).unwrap();
    assert!(
        within(creator).await.unwrap_err().is_panic(),
        "the creator panics"
    );
    let mut panicked = 0;
    let mut seen = Vec::new();
    for other in others {
        match within(other).await {
            Ok(got) => seen.push(got),
            Err(e) => {
                assert!(e.is_panic());
                panicked += 1;
            }
        }
    }
    assert!(panicked <= 1, "only the polling caller panics");
    assert_eq!(restarts.load(Ordering::SeqCst), 1, "one new flight");
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(memo.get(&1).map(|e| (*e.value(), e.epoch())), Some(seen[0]));
}

/// A value whose `Clone` panics while `PANIC_CLONE` is set.
#[derive(Debug)]
struct Brittle(u32, Arc<AtomicBool>);

impl Clone for Brittle {
    fn clone(&self) -> Self {
        if self.1.load(Ordering::SeqCst) {
            panic!("boom in Clone of V");
        }
        Brittle(self.0, Arc::clone(&self.1))
    }
}

/// Pins: a panic in `Clone` of `V` on the hit path (under the shard read lock) poisons
/// nothing: the same key and shard are readable and writable afterwards.
#[test]
fn panic_in_value_clone_on_hit_poisons_nothing() {
    let memo: AsyncMemo<u32, Brittle> = AsyncMemo::builder().shards(1).build();
    let brittle = Arc::new(AtomicBool::new(false));
    memo.insert(1, Brittle(1, Arc::clone(&brittle))).unwrap();
    brittle.store(true, Ordering::SeqCst);
    let msg = expect_panic(catch_unwind(AssertUnwindSafe(|| memo.get(&1))));
    assert_eq!(msg, "boom in Clone of V");
    let msg = expect_panic(catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(memo.get_or_init(1, || async { unreachable!() }))
    })));
    assert_eq!(msg, "boom in Clone of V");
    brittle.store(false, Ordering::SeqCst);
    assert_eq!(memo.get(&1).map(|e| e.value().0), Some(1));
    memo.insert(2, Brittle(2, Arc::clone(&brittle))).unwrap();
    assert_eq!(memo.len(), 2);
}

/// Pins: a panic after the future finished (in `Clone` of `V` while committing) still frees the
/// key and wakes the waiters, which start over; nothing is stored.
#[test]
fn panic_while_committing_frees_key_and_restarts_waiters() {
    let memo: AsyncMemo<u32, Brittle> = AsyncMemo::new();
    let brittle = Arc::new(AtomicBool::new(false));
    let (gate, rx) = oneshot::channel::<()>();
    let (_a_count, a_waker) = counting_waker();
    let (b_count, b_waker) = counting_waker();
    let value = Brittle(1, Arc::clone(&brittle));
    let mut a = Box::pin(memo.get_or_init(1, move || async move {
        rx.await.unwrap();
        value
    }));
    let b_value = Brittle(2, Arc::clone(&brittle));
    let mut b = Box::pin(memo.get_or_init(1, move || async move { b_value }));
    pending(try_poll(a.as_mut(), &a_waker));
    pending(try_poll(b.as_mut(), &b_waker));
    brittle.store(true, Ordering::SeqCst);
    gate.send(()).unwrap();
    let msg = expect_panic(try_poll(a.as_mut(), &a_waker));
    assert_eq!(msg, "boom in Clone of V");
    assert!(memo.get(&1).is_none() && memo.epoch(&1).is_none());
    assert!(b_count.wakes() >= 1);
    brittle.store(false, Ordering::SeqCst);
    let entry: Entry<Brittle> = ready(try_poll(b.as_mut(), &b_waker));
    assert_eq!(entry.value().0, 2, "B started over with its own init");
}

/// A future that is ready at once but panics when dropped.
struct PanicOnDrop;

impl Future for PanicOnDrop {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(5)
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("boom in Drop of the init future");
        }
    }
}

/// Pins: a panic in `Drop` of something the init future owns (dropped as the future finishes)
/// is a panic of the flight: it reaches the driver, frees the key, and a waiter starts over.
#[test]
fn panic_in_drop_inside_init_future_frees_key() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let (gate, rx) = oneshot::channel::<()>();
    let (_a_count, a_waker) = counting_waker();
    let (b_count, b_waker) = counting_waker();
    let mut a = Box::pin(memo.get_or_init(1, move || async move {
        let guard = PanicOnDrop;
        rx.await.unwrap();
        guard.await
    }));
    let mut b = Box::pin(memo.get_or_init(1, || async { 6 }));
    pending(try_poll(a.as_mut(), &a_waker));
    pending(try_poll(b.as_mut(), &b_waker));
    gate.send(()).unwrap();
    let msg = expect_panic(try_poll(a.as_mut(), &a_waker));
    assert_eq!(msg, "boom in Drop of the init future");
    assert!(b_count.wakes() >= 1);
    assert_eq!(*ready(try_poll(b.as_mut(), &b_waker)).value(), 6);
    drop((a, b));
    assert!(memo.invalidate(&1, memo.epoch(&1).unwrap()));
    assert_usable(&memo, 1, None);
}

/// Pins: many sequential panics on one key never poison it or leak its slot.
#[test]
fn repeated_panics_leave_memo_usable() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::builder().shards(1).build();
    for round in 0..20u32 {
        let result = catch_unwind(AssertUnwindSafe(|| {
            futures::executor::block_on(
                memo.get_or_init(round % 3, || async { panic!("boom {}", 1) }),
            )
        }));
        assert_eq!(expect_panic(result), "boom 1");
        assert_eq!(memo.epoch(&(round % 3)), None);
    }
    assert!(memo.is_empty());
    assert_usable(&memo, 0, None);
}
