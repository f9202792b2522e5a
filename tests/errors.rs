//! Errors of `get_or_try_init` (semantics 8).
//!
//! Pins that an `Err` from the flight's future reaches every caller of that flight that can
//! receive it as the same `Arc<E>`; that nothing is stored and the next call starts a new flight;
//! and that one key has one flight whatever its callers' types: a joined caller that cannot
//! receive the error (a `get_or_init` caller, or one expecting another `E`) starts over with its
//! own `init` (several such callers share one new flight), unlike moka, which runs one init per
//! error type.

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::AsyncMemo;
use common::{DropCounted, counted, poll_once, ready};
use futures::channel::oneshot;

#[derive(Debug, PartialEq)]
struct Refused(u32);

#[derive(Debug, PartialEq)]
struct OtherError;

#[test]
fn error_reaches_every_try_caller_as_the_same_arc() {
    let memo: AsyncMemo<String, u32> = AsyncMemo::new();
    let inits = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = oneshot::channel::<()>();
    let mut creator = pin!(memo.get_or_try_init("k".to_string(), move || async move {
        gate_rx.await.unwrap();
        Err::<u32, _>(Refused(7))
    }));
    assert!(poll_once(creator.as_mut()).is_pending());
    let mut by_ref = pin!(memo.get_or_try_init_by_ref("k", counted(&inits, Ok(0))));
    let mut owned: Vec<_> = (0..2)
        .map(|_| Box::pin(memo.get_or_try_init("k".to_string(), counted(&inits, Ok(0)))))
        .collect();
    assert!(poll_once(by_ref.as_mut()).is_pending());
    for call in &mut owned {
        assert!(poll_once(call.as_mut()).is_pending());
    }

    gate.send(()).unwrap();
    let first = ready(poll_once(creator.as_mut())).expect_err("the flight failed");
    assert_eq!(*first, Refused(7));
    let err = ready(poll_once(by_ref.as_mut())).expect_err("joined callers get the error");
    assert!(Arc::ptr_eq(&err, &first), "the very same Arc<E>");
    for call in &mut owned {
        let err = ready(poll_once(call.as_mut())).expect_err("joined callers get the error");
        assert!(Arc::ptr_eq(&err, &first), "the very same Arc<E>");
    }
    assert_eq!(inits.load(Ordering::SeqCst), 0, "no caller started over");
}

#[test]
fn error_is_not_stored_and_the_next_call_starts_a_new_flight() {
    futures::executor::block_on(async {
        let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
        let inits = Arc::new(AtomicUsize::new(0));
        let failed_epoch = Arc::new(std::sync::Mutex::new(None));
        let err = memo
            .get_or_try_init("k", {
                let memo = memo.clone();
                let failed_epoch = Arc::clone(&failed_epoch);
                move || {
                    *failed_epoch.lock().unwrap() = memo.epoch("k");
                    async { Err::<u32, _>(Refused(1)) }
                }
            })
            .await
            .unwrap_err();
        assert_eq!(*err, Refused(1));
        let failed_epoch = failed_epoch.lock().unwrap().expect("a flight held the key");
        assert!(memo.get("k").is_none(), "errors are not stored");
        assert_eq!(memo.epoch("k"), None, "the key is free");
        assert!(memo.is_empty());

        let ok = memo
            .get_or_try_init("k", counted(&inits, Ok::<_, Refused>(2)))
            .await
            .unwrap();
        assert_eq!(
            inits.load(Ordering::SeqCst),
            1,
            "the next call ran its init"
        );
        assert_eq!(*ok.value(), 2);
        assert!(ok.epoch() > failed_epoch, "in a new flight");
        assert_eq!(memo.get("k").map(|e| e.epoch()), Some(ok.epoch()));

        // And a failure right after a failure also retries.
        assert!(memo.invalidate("k", ok.epoch()));
        for n in 0..3 {
            let err = memo
                .get_or_try_init("k", counted(&inits, Err::<u32, _>(Refused(n))))
                .await
                .unwrap_err();
            assert_eq!(*err, Refused(n));
        }
        assert_eq!(inits.load(Ordering::SeqCst), 4);
        assert_eq!(memo.epoch("k"), None);
    });
}

#[test]
fn plain_caller_joined_to_failing_flight_starts_over_with_its_own_init() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let plain_inits = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = oneshot::channel::<()>();
    let (gate2, gate2_rx) = oneshot::channel::<()>();

    let mut fallible = pin!(memo.get_or_try_init("k", move || async move {
        gate_rx.await.unwrap();
        Err::<u32, _>(Refused(1))
    }));
    assert!(poll_once(fallible.as_mut()).is_pending());
    let failing = memo.epoch("k").unwrap();
    let counter = Arc::clone(&plain_inits);
    let mut plain = pin!(memo.get_or_init("k", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            gate2_rx.await.unwrap();
            5
        }
    }));
    assert!(poll_once(plain.as_mut()).is_pending());
    assert_eq!(plain_inits.load(Ordering::SeqCst), 0, "joined, not started");

    gate.send(()).unwrap();
    assert_eq!(
        *ready(poll_once(fallible.as_mut())).unwrap_err(),
        Refused(1)
    );
    assert_eq!(memo.epoch("k"), None, "the failed flight left the key free");
    // The plain caller cannot receive `Refused`: it starts a new flight with its own init.
    assert!(poll_once(plain.as_mut()).is_pending());
    assert_eq!(plain_inits.load(Ordering::SeqCst), 1);
    let own = memo.epoch("k").expect("the plain caller's flight");
    assert!(own > failing);
    gate2.send(()).unwrap();
    let entry = ready(poll_once(plain.as_mut()));
    assert_eq!((*entry.value(), entry.epoch()), (5, own));
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(own));
}

#[test]
fn caller_expecting_another_error_type_starts_over_with_its_own_init() {
    let memo: AsyncMemo<String, u32> = AsyncMemo::new();
    let other_inits = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = oneshot::channel::<()>();

    let mut refusing = pin!(memo.get_or_try_init("k".to_string(), move || async move {
        gate_rx.await.unwrap();
        Err::<u32, _>(Refused(3))
    }));
    assert!(poll_once(refusing.as_mut()).is_pending());
    let mut other =
        pin!(memo.get_or_try_init_by_ref("k", counted(&other_inits, Err::<u32, _>(OtherError))));
    assert!(poll_once(other.as_mut()).is_pending());

    gate.send(()).unwrap();
    // Polled first, the other caller drives the flight, cannot take its error, and starts over.
    let own = ready(poll_once(other.as_mut())).unwrap_err();
    assert_eq!(*own, OtherError, "its own init's error");
    assert_eq!(other_inits.load(Ordering::SeqCst), 1);
    assert_eq!(
        *ready(poll_once(refusing.as_mut())).unwrap_err(),
        Refused(3)
    );
    assert_eq!(memo.epoch("k"), None);
}

#[test]
fn callers_that_cannot_receive_the_error_share_one_new_flight() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let retries = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = oneshot::channel::<()>();
    let (retry_gate, retry_gate_rx) = oneshot::channel::<()>();
    let retry_gate_rx = futures::FutureExt::shared(retry_gate_rx);

    let mut refusing = pin!(memo.get_or_try_init("k", move || async move {
        gate_rx.await.unwrap();
        Err::<u32, _>(Refused(0))
    }));
    assert!(poll_once(refusing.as_mut()).is_pending());
    let retry = |value: u32| {
        let retries = Arc::clone(&retries);
        let gate = retry_gate_rx.clone();
        move || {
            retries.fetch_add(1, Ordering::SeqCst);
            async move {
                gate.await.unwrap();
                value
            }
        }
    };
    let mut plain = pin!(memo.get_or_init("k", retry(10)));
    let mut other = pin!(memo.get_or_try_init("k", {
        let init = retry(20);
        move || {
            let future = init();
            async move { Ok::<_, OtherError>(future.await) }
        }
    }));
    assert!(poll_once(plain.as_mut()).is_pending());
    assert!(poll_once(other.as_mut()).is_pending());

    gate.send(()).unwrap();
    assert!(ready(poll_once(refusing.as_mut())).is_err());
    assert!(
        poll_once(plain.as_mut()).is_pending(),
        "started a new flight"
    );
    assert!(poll_once(other.as_mut()).is_pending(), "joined it");
    assert_eq!(retries.load(Ordering::SeqCst), 1, "one init for both");

    retry_gate.send(()).unwrap();
    let a = ready(poll_once(other.as_mut())).unwrap();
    let b = ready(poll_once(plain.as_mut()));
    assert_eq!((*a.value(), a.epoch()), (10, b.epoch()));
    assert_eq!(*b.value(), 10);
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(b.epoch()));
}

#[test]
fn callers_with_different_error_types_share_one_successful_flight() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let inits = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = oneshot::channel::<()>();
    let counter = Arc::clone(&inits);
    let mut io = pin!(memo.get_or_try_init("k", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            gate_rx.await.unwrap();
            Ok::<_, std::io::Error>(1)
        }
    }));
    let mut fmt = pin!(memo.get_or_try_init("k", counted(&inits, Ok::<_, std::fmt::Error>(2))));
    let mut refused = pin!(memo.get_or_try_init("k", counted(&inits, Ok::<_, Refused>(3))));
    assert!(poll_once(io.as_mut()).is_pending());
    assert!(poll_once(fmt.as_mut()).is_pending());
    assert!(poll_once(refused.as_mut()).is_pending());
    gate.send(()).unwrap();
    let epochs = [
        ready(poll_once(refused.as_mut())).unwrap().epoch(),
        ready(poll_once(fmt.as_mut())).unwrap().epoch(),
        ready(poll_once(io.as_mut())).unwrap().epoch(),
    ];
    assert_eq!(
        inits.load(Ordering::SeqCst),
        1,
        "one init, not one per error type"
    );
    assert!(epochs.iter().all(|&e| e == epochs[0]));
}

#[test]
fn failing_detached_flight_leaves_the_new_flight_alone() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let (gate, gate_rx) = oneshot::channel::<()>();
    let (gate2, gate2_rx) = oneshot::channel::<()>();
    let mut failing = pin!(memo.get_or_try_init("k", move || async move {
        gate_rx.await.unwrap();
        Err::<u32, _>(Refused(4))
    }));
    assert!(poll_once(failing.as_mut()).is_pending());
    assert!(memo.invalidate("k", memo.epoch("k").unwrap()));
    let mut fresh = pin!(memo.get_or_init("k", move || async move {
        gate2_rx.await.unwrap();
        8
    }));
    assert!(poll_once(fresh.as_mut()).is_pending());
    let fresh_epoch = memo.epoch("k").unwrap();

    gate.send(()).unwrap();
    assert_eq!(*ready(poll_once(failing.as_mut())).unwrap_err(), Refused(4));
    assert_eq!(
        memo.epoch("k"),
        Some(fresh_epoch),
        "the failed flight removed only itself, and it was already detached"
    );
    gate2.send(()).unwrap();
    assert_eq!(*ready(poll_once(fresh.as_mut())).value(), 8);
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(fresh_epoch));
}

#[test]
fn failed_flight_future_is_dropped_exactly_once() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = oneshot::channel::<()>();
    let future_drops = Arc::clone(&drops);
    let mut creator = Box::pin(memo.get_or_try_init("k", move || DropCounted {
        future: Box::pin(async move {
            gate_rx.await.unwrap();
            Err::<u32, _>(Refused(9))
        }),
        drops: future_drops,
    }));
    let mut joined = Box::pin(memo.get_or_try_init("k", || async { Ok::<u32, Refused>(0) }));
    assert!(poll_once(creator.as_mut()).is_pending());
    assert!(poll_once(joined.as_mut()).is_pending());
    gate.send(()).unwrap();
    let a = ready(poll_once(joined.as_mut())).unwrap_err();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let b = ready(poll_once(creator.as_mut())).unwrap_err();
    assert!(Arc::ptr_eq(&a, &b));
    drop((creator, joined));
    assert_eq!(
        Arc::strong_count(&a),
        2,
        "the memo keeps no reference to the error once every caller has it"
    );
    assert!(memo.is_empty());
    drop(memo);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}
