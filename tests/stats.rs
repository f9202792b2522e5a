//! `AsyncMemo::stats` (issue 3, "Stats").
//!
//! Pins exact counter values in small deterministic scenarios: hits and misses of `get` and
//! `get_or_init` (`epoch` is not a read), joins, flights started / committed / detached (by
//! `invalidate`, `remove`, `insert`, `invalidate_all`) / failed / panicked / abandoned, removals
//! per cause with or without a listener; and that `flights_started == committed + detached +
//! failed + panicked + abandoned + in flight`, also after concurrent use.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_memo::{AsyncMemo, ManualClock, Stats};
use common::{poll_once, ready, secs};
use futures::channel::oneshot;
use futures::executor::block_on;

/// Flights started but not accounted for by any outcome: those still in progress.
fn in_flight(s: &Stats) -> u64 {
    s.flights_started
        - (s.flights_committed
            + s.flights_detached
            + s.flights_failed
            + s.flights_panicked
            + s.flights_abandoned)
}

/// A `Stats` with every counter zero, to fill in field by field (`Stats` is non-exhaustive).
fn zero() -> Stats {
    Stats::default()
}

#[test]
fn hits_and_misses_of_get_and_get_or_init() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    assert!(memo.get(&1).is_none());
    memo.insert(1, 10).unwrap();
    assert!(memo.get(&1).is_some());
    assert_eq!(
        *block_on(memo.get_or_init(1, || async { unreachable!() })).value(),
        10
    );
    assert_eq!(
        block_on(memo.get_or_init(2, || async { 20 })).into_value(),
        20
    );
    assert!(memo.epoch(&1).is_some(), "not a read");
    assert!(memo.epoch(&3).is_none(), "not a read");
    let mut expected = zero();
    expected.hits = 2;
    expected.misses = 2;
    expected.flights_started = 1;
    expected.flights_committed = 1;
    assert_eq!(memo.stats(), expected);
}

#[test]
fn callers_joining_a_flight_count_as_misses_and_joins() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let (tx, rx) = oneshot::channel();
    let mut a = pin!(memo.get_or_init(1, || async move { rx.await.unwrap() }));
    let mut b = pin!(memo.get_or_init(1, || async { unreachable!() }));
    let mut c = pin!(memo.get_or_init(1, || async { unreachable!() }));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(in_flight(&memo.stats()), 1);
    tx.send(7).unwrap();
    assert_eq!(*ready(poll_once(a)).value(), 7);
    assert_eq!(*ready(poll_once(b)).value(), 7);
    assert_eq!(*ready(poll_once(c)).value(), 7);
    let mut expected = zero();
    expected.misses = 3;
    expected.joins = 2;
    expected.flights_started = 1;
    expected.flights_committed = 1;
    assert_eq!(memo.stats(), expected);
}

#[test]
fn flights_detached_by_every_kind_of_removal() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let detachers: [fn(&AsyncMemo<u32, u32>); 4] = [
        |m| assert!(m.invalidate(&1, m.epoch(&1).unwrap())),
        |m| assert!(m.remove(&1).is_none(), "a flight is not an entry"),
        |m| {
            m.insert(1, 99).unwrap();
        },
        |m| m.invalidate_all(),
    ];
    for (i, detach) in detachers.iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let mut call = pin!(memo.get_or_init(1, || async move { rx.await.unwrap() }));
        assert!(poll_once(call.as_mut()).is_pending());
        detach(&memo);
        tx.send(i as u32).unwrap();
        assert_eq!(
            *ready(poll_once(call.as_mut())).value(),
            i as u32,
            "still delivered"
        );
        memo.remove(&1);
    }
    let s = memo.stats();
    assert_eq!((s.flights_started, s.flights_detached), (4, 4));
    assert_eq!(s.flights_committed, 0);
    // Detaching a flight removes no entry; the entry `insert` stored was removed by `remove`.
    assert_eq!((s.invalidated, s.removed, s.cleared), (0, 1, 0));
    assert_eq!(in_flight(&s), 0);
}

#[test]
fn failed_panicked_and_abandoned_flights() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let err = block_on(memo.get_or_try_init(1, || async { Err::<u32, _>("no") }));
    assert_eq!(*err.unwrap_err(), "no");

    let panicked = catch_unwind(AssertUnwindSafe(|| {
        block_on(memo.get_or_init(2, || async { panic!("init panicked") }))
    }));
    assert!(panicked.is_err());

    let (_tx, rx) = oneshot::channel::<u32>();
    {
        let mut call = pin!(memo.get_or_init(3, || async move { rx.await.unwrap() }));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(in_flight(&memo.stats()), 1);
    } // the last caller goes away

    let mut expected = zero();
    expected.misses = 3;
    expected.flights_started = 3;
    expected.flights_failed = 1;
    expected.flights_panicked = 1;
    expected.flights_abandoned = 1;
    assert_eq!(memo.stats(), expected);
    assert!(memo.is_empty());
}

#[test]
fn in_flight_is_what_started_minus_every_outcome() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let gates: Vec<_> = (0..3).map(|_| oneshot::channel::<u32>()).collect();
    let (senders, receivers): (Vec<_>, Vec<_>) = gates.into_iter().unzip();
    let mut calls: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(k, rx)| Box::pin(memo.get_or_init(k as u32, || async move { rx.await.unwrap() })))
        .collect();
    for call in &mut calls {
        assert!(poll_once(call.as_mut()).is_pending());
    }
    assert_eq!(in_flight(&memo.stats()), 3);
    for (i, tx) in senders.into_iter().enumerate() {
        tx.send(i as u32).unwrap();
        ready(poll_once(calls[i].as_mut()));
        let s = memo.stats();
        assert_eq!(in_flight(&s), 2 - i as u64);
        assert_eq!(s.flights_committed, i as u64 + 1);
    }
}

#[test]
fn removals_are_counted_per_cause_without_a_listener() {
    removals_per_cause(false);
}

#[test]
fn removals_are_counted_per_cause_with_a_listener() {
    removals_per_cause(true);
}

fn removals_per_cause(with_listener: bool) {
    let clock = ManualClock::new();
    let mut builder = AsyncMemo::builder()
        .shards(1)
        .max_capacity(2)
        .time_to_live(secs(10))
        .clock(clock.clone());
    let reported = Arc::new(AtomicU64::new(0));
    if with_listener {
        let reported = Arc::clone(&reported);
        builder = builder.on_removal(move |_: &u32, _, _| {
            reported.fetch_add(1, Ordering::SeqCst);
        });
    }
    let memo: AsyncMemo<u32, u32> = builder.build();
    let e = memo.insert(1, 1).unwrap().epoch();
    assert!(memo.invalidate(&1, e));
    assert!(!memo.invalidate(&1, e), "stale: not counted");
    memo.insert(2, 2).unwrap();
    memo.remove(&2);
    memo.insert(3, 3).unwrap();
    memo.insert(3, 33).unwrap();
    memo.insert(4, 4).unwrap();
    memo.insert(5, 5).unwrap(); // evicts 3 (capacity 2)
    clock.advance(secs(10));
    assert!(memo.get(&4).is_none(), "expired: a miss");
    memo.insert(6, 6).unwrap();
    memo.invalidate_all();
    let s = memo.stats();
    let mut expected = zero();
    expected.misses = 1;
    expected.invalidated = 1;
    expected.removed = 1;
    expected.replaced = 1;
    expected.evicted = 1;
    // 4 by `get`; 5 by the amortized purge of `insert(6)` (or by `invalidate_all`).
    expected.expired = 2;
    expected.cleared = 1;
    assert_eq!(s, expected);
    let listened = if with_listener { 7 } else { 0 };
    assert_eq!(reported.load(Ordering::SeqCst), listened);
}

#[test]
fn a_get_or_init_over_an_expired_entry_is_a_miss_and_a_new_flight() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
        .time_to_live(secs(1))
        .clock(clock.clone())
        .build();
    block_on(memo.get_or_init(1, || async { 1 }));
    block_on(memo.get_or_init(1, || async { unreachable!() }));
    clock.advance(secs(1));
    block_on(memo.get_or_init(1, || async { 2 }));
    let mut expected = zero();
    expected.hits = 1;
    expected.misses = 2;
    expected.flights_started = 2;
    expected.flights_committed = 2;
    expected.expired = 1;
    assert_eq!(memo.stats(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_flight_counters_add_up_after_concurrent_use() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::builder().max_capacity(8).build();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let memo = memo.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..300u32 {
                let k = (i * 7 + t) % 24;
                match (i + t) % 5 {
                    0 => {
                        let _ = memo
                            .get_or_try_init(k, || async move {
                                tokio::task::yield_now().await;
                                if k % 3 == 0 { Err("odd") } else { Ok(k) }
                            })
                            .await;
                    }
                    1 => {
                        if let Some(e) = memo.epoch(&k) {
                            memo.invalidate(&k, e);
                        }
                    }
                    2 => {
                        memo.insert(k, i).unwrap();
                    }
                    _ => {
                        memo.get_or_init(k, || async move {
                            tokio::task::yield_now().await;
                            k
                        })
                        .await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let s = memo.stats();
    assert!(s.flights_started > 0, "{s:?}");
    assert_eq!(in_flight(&s), 0, "{s:?}");
    assert!(memo.len() <= 8);
}
