//! Epochs (semantics 2, and the epoch side of 5).
//!
//! Pins that every flight and every `insert` draws its epoch from one process-wide monotonic
//! counter (strictly greater than every epoch issued before, on any thread, in any memo, so an
//! epoch observed in one memo never matches an entry of another); that an entry committed by a
//! flight carries that flight's epoch, the one `epoch(k)` reports during the flight; and that
//! during a flight `epoch(k)` is `Some` while `get(k)` is `None`.

mod common;

use std::pin::pin;

use async_memo::{AsyncMemo, Epoch};
use common::{poll_once, ready};
use futures::channel::oneshot;

/// The epoch of the flight in progress for `"k"`.
fn flight_epoch<V: Clone + Send + Sync + 'static>(memo: &AsyncMemo<&'static str, V>) -> Epoch {
    memo.epoch("k").expect("a flight holds the key")
}

#[test]
fn epochs_are_process_wide_and_strictly_increasing_across_memos() {
    let numbers: AsyncMemo<&str, u32> = AsyncMemo::new();
    let strings: AsyncMemo<&str, String> = AsyncMemo::new();
    let mut seen: Vec<Epoch> = Vec::new();
    for i in 0..20u32 {
        seen.push(numbers.insert("k", i).unwrap().epoch());
        seen.push(strings.insert("k", i.to_string()).unwrap().epoch());
        // A flight draws from the same counter as an insert.
        let flight = futures::executor::block_on(numbers.get_or_init("f", || async { 0 }));
        seen.push(flight.epoch());
        assert!(numbers.invalidate("f", flight.epoch()));
    }
    for pair in seen.windows(2) {
        assert!(pair[1] > pair[0], "{:?} then {:?}", pair[0], pair[1]);
        assert!(pair[1].get() > pair[0].get(), "numbers follow the order");
    }
}

#[test]
fn epoch_observed_in_one_memo_never_matches_another() {
    let a: AsyncMemo<&str, u32> = AsyncMemo::new();
    let b: AsyncMemo<&str, u32> = AsyncMemo::new();
    let in_a = a.insert("k", 1).unwrap();
    let in_b = b.insert("k", 1).unwrap();
    assert_ne!(in_a.epoch(), in_b.epoch());
    assert!(
        !b.invalidate("k", in_a.epoch()),
        "a's epoch does not match b's entry"
    );
    assert!(
        !a.invalidate("k", in_b.epoch()),
        "b's epoch does not match a's entry"
    );
    assert_eq!(a.epoch("k"), Some(in_a.epoch()));
    assert_eq!(b.epoch("k"), Some(in_b.epoch()));

    // Same for a flight of another memo, committed or in progress.
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let mut flight_in_b = pin!(b.get_or_init("f", || async move {
        gate_rx.await.unwrap();
        2
    }));
    assert!(poll_once(flight_in_b.as_mut()).is_pending());
    let from_a = futures::executor::block_on(a.get_or_init("f", || async { 3 }));
    assert!(
        !b.invalidate("f", from_a.epoch()),
        "the flight in b survives"
    );
    gate_tx.send(()).unwrap();
    let committed = ready(poll_once(flight_in_b.as_mut()));
    assert!(!a.invalidate("f", committed.epoch()));
    assert_eq!(a.get("f").map(|e| *e.value()), Some(3));
    assert_eq!(b.get("f").map(|e| *e.value()), Some(2));
}

#[test]
fn epochs_drawn_on_other_threads_are_larger() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let mut last = memo.insert(0, 0).unwrap().epoch();
    for i in 1..8u32 {
        let shared = memo.clone();
        let (from_thread, from_flight) = std::thread::spawn(move || {
            let inserted = shared.insert(i, i).unwrap().epoch();
            let flown = futures::executor::block_on(shared.get_or_init(i + 100, || async { 0 }));
            (inserted, flown.epoch())
        })
        .join()
        .unwrap();
        assert!(from_thread > last, "a new thread continues the one counter");
        assert!(from_flight > from_thread);
        last = memo.insert(i + 1000, i).unwrap().epoch();
        assert!(last > from_flight, "and this thread continues after it");
    }
}

#[test]
fn committed_entry_carries_the_flight_epoch() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let before = memo.insert("other", 0).unwrap().epoch();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let mut call = pin!(memo.get_or_init("k", || async move {
        gate_rx.await.unwrap();
        1
    }));
    assert!(poll_once(call.as_mut()).is_pending());
    let during = flight_epoch(&memo);
    assert!(
        during > before,
        "a flight draws a fresh epoch when it starts"
    );
    // Epochs issued while the flight runs are larger, yet the commit keeps the flight's epoch.
    let meanwhile = memo.insert("other", 1).unwrap().epoch();
    assert!(meanwhile > during);

    gate_tx.send(()).unwrap();
    let entry = ready(poll_once(call.as_mut()));
    assert_eq!(entry.epoch(), during, "the caller gets the flight's epoch");
    assert_eq!(memo.epoch("k"), Some(during), "the entry carries it");
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(during));
    assert!(
        memo.invalidate("k", during),
        "and can be invalidated with it"
    );
}

#[test]
fn committed_try_entry_carries_the_flight_epoch() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let mut call = pin!(memo.get_or_try_init("k", || async move {
        gate_rx.await.unwrap();
        Ok::<_, std::io::Error>(1)
    }));
    assert!(poll_once(call.as_mut()).is_pending());
    let during = flight_epoch(&memo);
    gate_tx.send(()).unwrap();
    let entry = ready(poll_once(call.as_mut())).unwrap();
    assert_eq!(entry.epoch(), during);
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(during));
}

#[test]
fn epoch_is_some_during_a_flight_while_get_is_none() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    assert_eq!(memo.epoch("k"), None);
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let mut call = pin!(memo.get_or_init("k", || async move {
        gate_rx.await.unwrap();
        1
    }));
    assert!(poll_once(call.as_mut()).is_pending());
    assert!(memo.epoch("k").is_some(), "the flight has an epoch");
    assert!(memo.get("k").is_none(), "but no ready entry");
    assert_eq!(memo.len(), 0, "flights are not counted");
    assert!(memo.is_empty());
    gate_tx.send(()).unwrap();
    ready(poll_once(call.as_mut()));
    assert!(memo.get("k").is_some());
    assert_eq!(memo.len(), 1);
}

#[test]
fn insert_draws_a_fresh_larger_epoch() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let first = memo.insert("k", 1).unwrap();
    let second = memo.insert("k", 2).unwrap();
    assert!(
        second.epoch() > first.epoch(),
        "replacing draws a new epoch"
    );
    assert_eq!(memo.epoch("k"), Some(second.epoch()));

    // Over a committed flight.
    let flown = futures::executor::block_on(memo.get_or_init("f", || async { 3 }));
    let over_flown = memo.insert("f", 4).unwrap();
    assert!(over_flown.epoch() > flown.epoch());
    assert_eq!(
        memo.get("f").map(|e| (e.epoch(), *e.value())),
        Some((over_flown.epoch(), 4))
    );

    // Over a flight in progress: larger than the flight's epoch.
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let mut call = pin!(memo.get_or_init("g", || async move {
        gate_rx.await.unwrap();
        5
    }));
    assert!(poll_once(call.as_mut()).is_pending());
    let during = memo.epoch("g").unwrap();
    let over_flight = memo.insert("g", 6).unwrap();
    assert!(over_flight.epoch() > during);
    assert_eq!(memo.epoch("g"), Some(over_flight.epoch()));
    gate_tx.send(()).unwrap();
    let detached = ready(poll_once(call.as_mut()));
    assert_eq!(detached.epoch(), during);
    assert_eq!(
        memo.epoch("g"),
        Some(over_flight.epoch()),
        "the insert stays"
    );
}

#[test]
fn new_flight_after_invalidate_draws_a_larger_epoch() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let mut last = futures::executor::block_on(memo.get_or_init("k", || async { 0 })).epoch();
    for i in 1..10 {
        assert!(memo.invalidate("k", last));
        let next = futures::executor::block_on(memo.get_or_init("k", move || async move { i }));
        assert!(next.epoch() > last);
        assert_eq!(*next.value(), i);
        last = next.epoch();
    }
}

#[test]
fn epoch_formats_as_its_number() {
    let memo: AsyncMemo<u8, u8> = AsyncMemo::new();
    let epoch = memo.insert(1, 1).unwrap().epoch();
    assert_eq!(epoch.to_string(), epoch.get().to_string());
    assert_eq!(format!("{epoch:?}"), format!("Epoch({})", epoch.get()));
}
