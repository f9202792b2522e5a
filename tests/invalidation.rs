//! Compare-and-delete and detaching flights (semantics 3, 4 and 5).
//!
//! Pins that `invalidate(k, e)` removes the ready entry or detaches the flight of `k` only if its
//! epoch is `e`, and says whether it did (a stale `e` changes nothing); that a flight detached by
//! `invalidate`, `remove`, `insert` or `invalidate_all` never commits, and a call that starts after
//! the detach starts a new flight instead of joining it; that callers already joined still receive
//! the detached flight's result and can tell from `epoch(k)` or a stale `invalidate` that it is no
//! longer current; and that detached flights' futures and removed values are dropped exactly once.

mod common;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::{AsyncMemo, Epoch};
use common::{DropCounted, LiveCounted, poll_once, ready};
use futures::channel::oneshot;

/// An init future that waits for its gate, then yields `value`.
fn gated<V: Send + 'static>(
    gate: oneshot::Receiver<()>,
    value: V,
) -> impl FnOnce() -> Pin<Box<dyn Future<Output = V> + Send>> {
    move || {
        Box::pin(async move {
            gate.await.unwrap();
            value
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Detach {
    Invalidate,
    Remove,
    Insert,
    InvalidateAll,
}

const INSERTED: u32 = 99;

/// Detaches the flight of `"k"` (epoch `flight`) the way `how` says, checking what it returns.
fn detach(memo: &AsyncMemo<&'static str, u32>, how: Detach, flight: Epoch) {
    match how {
        Detach::Invalidate => assert!(memo.invalidate("k", flight), "the epoch matches"),
        Detach::Remove => assert!(memo.remove("k").is_none(), "no ready entry to return"),
        Detach::Insert => {
            let inserted = memo.insert("k", INSERTED).unwrap();
            assert!(inserted.epoch() > flight);
        }
        Detach::InvalidateAll => memo.invalidate_all(),
    }
    assert_ne!(memo.epoch("k"), Some(flight), "the flight is detached");
}

/// The full story of a detached flight: its callers (creator and one joiner) still receive its
/// value; a call that starts after the detach starts a new flight (or hits the inserted entry)
/// and is not completed by the detached one; the detached flight never commits.
fn detached_flight_never_commits(how: Detach) {
    let memo: AsyncMemo<&'static str, u32> = AsyncMemo::new();
    let (gate_a, gate_a_rx) = oneshot::channel::<()>();
    let (gate_b, gate_b_rx) = oneshot::channel::<()>();
    let new_inits = Arc::new(AtomicUsize::new(0));

    let mut creator = pin!(memo.get_or_init("k", gated(gate_a_rx, 1)));
    assert!(poll_once(creator.as_mut()).is_pending());
    let detached = memo.epoch("k").unwrap();
    let mut joined = pin!(memo.get_or_init("k", || async { unreachable!("joined") }));
    assert!(poll_once(joined.as_mut()).is_pending());

    detach(&memo, how, detached);

    let counter = Arc::clone(&new_inits);
    let start_b = gated(gate_b_rx, 2);
    let mut after = pin!(memo.get_or_init("k", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        start_b()
    }));
    let fresh = match how {
        Detach::Insert => {
            let hit = ready(poll_once(after.as_mut()));
            assert_eq!(*hit.value(), INSERTED, "a call after an insert hits it");
            assert_eq!(new_inits.load(Ordering::SeqCst), 0);
            hit.epoch()
        }
        _ => {
            assert!(poll_once(after.as_mut()).is_pending());
            assert_eq!(
                new_inits.load(Ordering::SeqCst),
                1,
                "a call after the detach runs its own init: it did not join the detached flight"
            );
            let fresh = memo.epoch("k").expect("the new flight holds the key");
            assert!(fresh > detached);
            fresh
        }
    };

    // The detached flight completes: its callers receive its value and epoch...
    gate_a.send(()).unwrap();
    let from_joined = ready(poll_once(joined.as_mut()));
    let from_creator = ready(poll_once(creator.as_mut()));
    for entry in [&from_joined, &from_creator] {
        assert_eq!((*entry.value(), entry.epoch()), (1, detached));
    }
    // ...can see it is no longer current...
    assert_eq!(
        memo.epoch("k"),
        Some(fresh),
        "the detached flight did not commit"
    );
    assert!(
        !memo.invalidate("k", detached),
        "a stale invalidate changes nothing"
    );
    assert_eq!(memo.epoch("k"), Some(fresh));

    // ...and the call that started after the detach was not completed by it.
    if let Detach::Insert = how {
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(INSERTED));
    } else {
        assert!(memo.get("k").is_none(), "nothing was committed");
        assert!(
            poll_once(after.as_mut()).is_pending(),
            "the new call waits for its own flight"
        );
        gate_b.send(()).unwrap();
        let own = ready(poll_once(after.as_mut()));
        assert_eq!((*own.value(), own.epoch()), (2, fresh));
        assert_eq!(
            memo.get("k").map(|e| (*e.value(), e.epoch())),
            Some((2, fresh))
        );
    }
    assert_eq!(memo.len(), 1);
}

/// A detached flight that completes while its key is free leaves the key free (or holding the
/// inserted entry).
fn detached_flight_never_commits_into_a_free_key(how: Detach) {
    let memo: AsyncMemo<&'static str, u32> = AsyncMemo::new();
    let (gate, gate_rx) = oneshot::channel::<()>();
    let mut creator = pin!(memo.get_or_init("k", gated(gate_rx, 1)));
    assert!(poll_once(creator.as_mut()).is_pending());
    let detached = memo.epoch("k").unwrap();
    detach(&memo, how, detached);
    let held = memo.epoch("k");

    gate.send(()).unwrap();
    let entry = ready(poll_once(creator.as_mut()));
    assert_eq!((*entry.value(), entry.epoch()), (1, detached));
    assert_eq!(memo.epoch("k"), held, "the detached flight did not commit");
    match how {
        Detach::Insert => assert_eq!(memo.get("k").map(|e| *e.value()), Some(INSERTED)),
        _ => {
            assert!(memo.get("k").is_none());
            assert!(memo.is_empty());
            // The next call starts a new flight with its own init.
            let next = futures::executor::block_on(memo.get_or_init("k", || async { 3 }));
            assert_eq!(*next.value(), 3);
            assert!(next.epoch() > detached);
        }
    }
}

#[test]
fn invalidate_detaches_flight_and_it_never_commits() {
    detached_flight_never_commits(Detach::Invalidate);
    detached_flight_never_commits_into_a_free_key(Detach::Invalidate);
}

#[test]
fn remove_detaches_flight_and_it_never_commits() {
    detached_flight_never_commits(Detach::Remove);
    detached_flight_never_commits_into_a_free_key(Detach::Remove);
}

#[test]
fn insert_detaches_flight_and_it_never_commits() {
    detached_flight_never_commits(Detach::Insert);
    detached_flight_never_commits_into_a_free_key(Detach::Insert);
}

#[test]
fn invalidate_all_detaches_flight_and_it_never_commits() {
    detached_flight_never_commits(Detach::InvalidateAll);
    detached_flight_never_commits_into_a_free_key(Detach::InvalidateAll);
}

#[test]
fn invalidate_removes_ready_entry_only_with_its_epoch() {
    let live = Arc::new(AtomicUsize::new(0));
    let memo: AsyncMemo<&str, LiveCounted> = AsyncMemo::new();
    let entry = memo.insert("k", LiveCounted::new(1, &live)).unwrap();
    let other_key = memo
        .insert("other", LiveCounted::new(2, &live))
        .unwrap()
        .epoch();
    let stale_flight = futures::executor::block_on(memo.get_or_init("gone", {
        let live = Arc::clone(&live);
        move || async move { LiveCounted::new(0, &live) }
    }));
    let stale_flight_epoch = stale_flight.epoch();
    assert!(memo.invalidate("gone", stale_flight_epoch));
    drop(stale_flight);
    assert_eq!(
        live.load(Ordering::SeqCst),
        3,
        "k's in the memo and in hand, other's in the memo"
    );

    assert!(
        !memo.invalidate("k", other_key),
        "another key's epoch does not match"
    );
    assert!(
        !memo.invalidate("k", stale_flight_epoch),
        "nor does a flight's that was invalidated"
    );
    assert!(
        !memo.invalidate("missing", entry.epoch()),
        "nothing to remove"
    );
    assert_eq!(memo.epoch("k"), Some(entry.epoch()));

    let epoch = entry.epoch();
    drop(entry);
    assert!(memo.invalidate("k", epoch), "the observed epoch matches");
    assert!(memo.get("k").is_none());
    assert_eq!(memo.epoch("k"), None);
    assert_eq!(memo.len(), 1);
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "the removed value was dropped"
    );
    assert!(
        !memo.invalidate("k", epoch),
        "a second invalidate finds nothing"
    );
    drop(memo);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn stale_invalidate_keeps_newer_entry() {
    let memo: AsyncMemo<&str, &str> = AsyncMemo::new();
    let old = memo.insert("conn", "A").unwrap();
    let new = memo.insert("conn", "B").unwrap();
    assert!(!memo.invalidate("conn", old.epoch()));
    assert_eq!(
        memo.get("conn").map(|e| (*e.value(), e.epoch())),
        Some(("B", new.epoch()))
    );
    // Same when the newer entry was committed by a flight.
    assert!(memo.invalidate("conn", new.epoch()));
    let flown = futures::executor::block_on(memo.get_or_init("conn", || async { "C" }));
    assert!(!memo.invalidate("conn", old.epoch()));
    assert!(!memo.invalidate("conn", new.epoch()));
    assert_eq!(memo.epoch("conn"), Some(flown.epoch()));
}

#[test]
fn stale_invalidate_leaves_flight_alone() {
    let memo: AsyncMemo<&'static str, u32> = AsyncMemo::new();
    let stale = memo.insert("k", 0).unwrap().epoch();
    assert!(memo.invalidate("k", stale));
    let elsewhere = memo.insert("other", 0).unwrap().epoch();
    let (gate, gate_rx) = oneshot::channel::<()>();
    let mut call = pin!(memo.get_or_init("k", gated(gate_rx, 1)));
    assert!(poll_once(call.as_mut()).is_pending());
    let flight = memo.epoch("k").unwrap();

    assert!(
        !memo.invalidate("k", stale),
        "an older epoch of the same key"
    );
    assert!(!memo.invalidate("k", elsewhere), "an epoch of another key");
    assert_eq!(memo.epoch("k"), Some(flight));
    // A call now joins the flight: it was not detached.
    let mut joined = pin!(memo.get_or_init("k", || async { unreachable!("joined") }));
    assert!(poll_once(joined.as_mut()).is_pending());

    gate.send(()).unwrap();
    let entry = ready(poll_once(call.as_mut()));
    assert_eq!(ready(poll_once(joined.as_mut())).epoch(), flight);
    assert_eq!(entry.epoch(), flight);
    assert_eq!(
        memo.get("k").map(|e| (*e.value(), e.epoch())),
        Some((1, flight)),
        "the flight committed"
    );
}

#[test]
fn joined_callers_receive_detached_result_and_see_it_is_stale() {
    let memo: AsyncMemo<&'static str, u32> = AsyncMemo::new();
    let (gate_a, gate_a_rx) = oneshot::channel::<()>();
    let mut creator = pin!(memo.get_or_init("k", gated(gate_a_rx, 1)));
    assert!(poll_once(creator.as_mut()).is_pending());
    let detached = memo.epoch("k").unwrap();
    let mut joined = pin!(memo.get_or_try_init("k", || async { Err::<u32, _>(std::fmt::Error) }));
    assert!(poll_once(joined.as_mut()).is_pending());
    assert!(memo.invalidate("k", detached));

    // A newer entry is committed by a new flight before the detached one finishes.
    let newer = futures::executor::block_on(memo.get_or_init("k", || async { 2 }));
    gate_a.send(()).unwrap();
    let received = ready(poll_once(joined.as_mut())).expect("the detached flight succeeded");
    assert_eq!((*received.value(), received.epoch()), (1, detached));
    assert_eq!(*ready(poll_once(creator.as_mut())).value(), 1);

    // The value is not current: epoch(k) says so, and the stale invalidate spares the newer one.
    assert_ne!(memo.epoch("k"), Some(received.epoch()));
    assert!(!memo.invalidate("k", received.epoch()));
    assert_eq!(
        memo.get("k").map(|e| (*e.value(), e.epoch())),
        Some((2, newer.epoch()))
    );
}

#[test]
fn remove_returns_ready_entry_and_none_for_a_flight() {
    let memo: AsyncMemo<&'static str, u32> = AsyncMemo::new();
    let inserted = memo.insert("k", 1).unwrap();
    let removed = memo.remove("k").expect("the ready entry");
    assert_eq!((*removed.value(), removed.epoch()), (1, inserted.epoch()));
    assert!(memo.remove("k").is_none());

    let (gate, gate_rx) = oneshot::channel::<()>();
    let mut call = pin!(memo.get_or_init("k", gated(gate_rx, 2)));
    assert!(poll_once(call.as_mut()).is_pending());
    assert!(
        memo.remove("k").is_none(),
        "a flight has no entry to return"
    );
    assert_eq!(memo.epoch("k"), None, "but it is detached");
    gate.send(()).unwrap();
    assert_eq!(*ready(poll_once(call.as_mut())).value(), 2);
    assert_eq!(memo.epoch("k"), None);
}

#[test]
fn invalidate_all_clears_every_entry_and_detaches_every_flight() {
    let live = Arc::new(AtomicUsize::new(0));
    let memo: AsyncMemo<u32, LiveCounted> = AsyncMemo::builder().shards(4).build();
    for k in 0..16 {
        memo.insert(k, LiveCounted::new(k, &live)).unwrap();
    }
    let mut gates = Vec::new();
    let mut flights = Vec::new();
    for k in 100..104 {
        let (gate, gate_rx) = oneshot::channel::<()>();
        let value_live = Arc::clone(&live);
        let mut call = Box::pin(memo.get_or_init(k, move || async move {
            gate_rx.await.unwrap();
            LiveCounted::new(k, &value_live)
        }));
        assert!(poll_once(call.as_mut()).is_pending());
        gates.push(gate);
        flights.push(call);
    }
    assert_eq!(live.load(Ordering::SeqCst), 16);

    memo.invalidate_all();
    assert!(memo.is_empty());
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "every removed value was dropped"
    );
    assert!((0..16).chain(100..104).all(|k| memo.epoch(&k).is_none()));

    for gate in gates {
        gate.send(()).unwrap();
    }
    for (call, k) in flights.iter_mut().zip(100..) {
        assert_eq!(ready(poll_once(call.as_mut())).value().n, k);
    }
    assert!(memo.is_empty(), "no detached flight committed");
    assert!((100..104).all(|k| memo.epoch(&k).is_none()));
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn dropping_callers_of_detached_flight_leaves_new_flight_alone() {
    let memo: AsyncMemo<&'static str, u32> = AsyncMemo::new();
    let drops_a = Arc::new(AtomicUsize::new(0));
    let (_gate_a, gate_a_rx) = oneshot::channel::<()>();
    let (gate_b, gate_b_rx) = oneshot::channel::<()>();

    let drops = Arc::clone(&drops_a);
    let mut creator = Box::pin(memo.get_or_init("k", move || DropCounted {
        future: gated(gate_a_rx, 1)(),
        drops,
    }));
    assert!(poll_once(creator.as_mut()).is_pending());
    let detached = memo.epoch("k").unwrap();
    let mut joined = Box::pin(memo.get_or_init("k", || async { unreachable!("joined") }));
    assert!(poll_once(joined.as_mut()).is_pending());
    assert!(memo.invalidate("k", detached));

    let mut fresh_call = pin!(memo.get_or_init("k", gated(gate_b_rx, 2)));
    assert!(poll_once(fresh_call.as_mut()).is_pending());
    let fresh = memo.epoch("k").unwrap();

    drop(creator);
    assert_eq!(
        drops_a.load(Ordering::SeqCst),
        0,
        "a caller is still joined"
    );
    drop(joined);
    assert_eq!(
        drops_a.load(Ordering::SeqCst),
        1,
        "the last caller drops the detached flight's future, once"
    );
    assert_eq!(
        memo.epoch("k"),
        Some(fresh),
        "the new flight still holds the key"
    );

    gate_b.send(()).unwrap();
    let entry = ready(poll_once(fresh_call.as_mut()));
    assert_eq!((*entry.value(), entry.epoch()), (2, fresh));
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(fresh));
    assert_eq!(drops_a.load(Ordering::SeqCst), 1);
}

#[test]
fn detached_flight_future_and_values_are_dropped_exactly_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let future_drops = Arc::new(AtomicUsize::new(0));
    {
        let memo: AsyncMemo<&str, LiveCounted> = AsyncMemo::new();
        let (gate, gate_rx) = oneshot::channel::<()>();
        let value_live = Arc::clone(&live);
        let drops = Arc::clone(&future_drops);
        let mut creator = pin!(memo.get_or_init("k", move || DropCounted {
            future: Box::pin(async move {
                gate_rx.await.unwrap();
                LiveCounted::new(1, &value_live)
            }),
            drops,
        }));
        let mut joined = pin!(memo.get_or_init("k", || async { unreachable!("joined") }));
        assert!(poll_once(creator.as_mut()).is_pending());
        assert!(poll_once(joined.as_mut()).is_pending());
        let detached = memo.epoch("k").unwrap();
        assert!(memo.invalidate("k", detached));

        gate.send(()).unwrap();
        let a = ready(poll_once(creator.as_mut()));
        assert_eq!(future_drops.load(Ordering::SeqCst), 1);
        let b = ready(poll_once(joined.as_mut()));
        assert_eq!((a.value().n, b.value().n), (1, 1));
        assert_eq!(
            live.load(Ordering::SeqCst),
            2,
            "one per caller, none in the memo"
        );
        drop((a, b));
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert!(memo.is_empty());
    }
    assert_eq!(future_drops.load(Ordering::SeqCst), 1);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}
