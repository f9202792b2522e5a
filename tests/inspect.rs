//! `iter` and `invalidate_if`: snapshots and compare-and-delete by predicate.

mod common;

use std::pin::pin;
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock, RemovalCause};
use common::{log, poll_once, ready, recorder, take, within_10s};
use futures::channel::oneshot;

fn sorted<K: Ord, V: Clone>(
    memo_iter: impl Iterator<Item = (K, async_memo::Entry<V>)>,
) -> Vec<(K, V)> {
    let mut all: Vec<_> = memo_iter.map(|(k, e)| (k, e.value().clone())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn iter_yields_ready_unexpired_entries_and_is_not_a_read() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
        .time_to_idle(Duration::from_secs(10))
        .shards(4)
        .clock(clock.clone())
        .build();
    for k in 0..100 {
        memo.insert(k, k * 2).unwrap();
    }
    let mut flight = pin!(memo.get_or_init(1000, futures::future::pending));
    assert!(poll_once(flight.as_mut()).is_pending());
    let all = sorted(memo.iter());
    assert_eq!(
        all,
        (0..100).map(|k| (k, k * 2)).collect::<Vec<_>>(),
        "no flights"
    );
    assert_eq!(memo.stats().hits, 0, "iterating is not a read");
    clock.advance(Duration::from_secs(9));
    memo.get(&7);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        sorted(memo.iter()),
        vec![(7, 14)],
        "the iteration did not extend idle times"
    );
}

#[test]
fn invalidate_if_removes_what_it_chose_and_reports_it() {
    let removed = log();
    let memo: AsyncMemo<(&str, u32), u32> = AsyncMemo::builder()
        .max_capacity(1_000)
        .on_removal(recorder(&removed))
        .build();
    let a1 = memo.insert(("a", 1), 1).unwrap();
    let a2 = memo.insert(("a", 2), 2).unwrap();
    memo.insert(("b", 1), 3).unwrap();
    assert_eq!(memo.invalidate_if(|(tenant, _), _| *tenant == "a"), 2);
    let mut log = take(&removed);
    log.sort_by_key(|e| e.1);
    assert_eq!(
        log,
        vec![
            (("a", 1), a1.epoch(), RemovalCause::Invalidated),
            (("a", 2), a2.epoch(), RemovalCause::Invalidated)
        ]
    );
    assert_eq!(memo.len(), 1);
}

#[test]
fn a_replacement_stored_between_predicate_and_delete_survives() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    memo.insert(1, 1).unwrap();
    let removed = memo.invalidate_if(|&k, seen| {
        assert!(seen.is_some());
        memo.insert(k, 2).unwrap(); // re-entrant: a newer entry lands after the predicate saw the old one
        true
    });
    assert_eq!(removed, 0);
    assert_eq!(memo.get(&1).map(|e| *e.value()), Some(2));
}

#[test]
fn a_flight_chosen_by_the_predicate_never_commits() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let (open, gate) = oneshot::channel::<()>();
    let mut load = pin!(memo.get_or_init(5, move || async move {
        gate.await.unwrap();
        5
    }));
    assert!(poll_once(load.as_mut()).is_pending());
    assert_eq!(memo.invalidate_if(|_, seen| seen.is_none()), 1);
    open.send(()).unwrap();
    assert_eq!(
        *ready(poll_once(load.as_mut())).value(),
        5,
        "its caller still gets it"
    );
    assert!(memo.get(&5).is_none(), "never committed");
}

#[test]
fn a_reentrant_predicate_does_not_deadlock() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = AsyncMemo::builder().shards(1).build();
        for k in 0..10 {
            memo.insert(k, k).unwrap();
        }
        let removed = memo.invalidate_if(|&k, _| {
            memo.get(&k);
            memo.insert(k + 100, 0).unwrap();
            memo.iter().count();
            memo.invalidate_if(|_, _| false);
            k % 2 == 0
        });
        assert_eq!(removed, 5);
    });
}

#[test]
fn invalidate_if_detaches_the_refresh_of_an_entry_it_removes() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    memo.insert(1, 1).unwrap();
    let (open, gate) = oneshot::channel::<()>();
    let mut refresh = pin!(memo.refresh(1, move || async move {
        gate.await.unwrap();
        2
    }));
    assert!(poll_once(refresh.as_mut()).is_pending());
    assert_eq!(memo.invalidate_if(|_, seen| seen.is_some()), 1);
    assert_eq!(memo.refreshing(&1), None);
    open.send(()).unwrap();
    assert_eq!(*ready(poll_once(refresh.as_mut())).value(), 2);
    assert!(
        memo.get(&1).is_none(),
        "the detached refresh stored nothing"
    );
}

#[test]
fn a_listener_with_its_memo_stores_a_successor_and_frees_the_memo() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .on_removal_with_memo(|memo, key: &&str, entry, cause| {
            if cause == RemovalCause::Invalidated {
                memo.insert(*key, entry.value() + 1).unwrap();
            }
        })
        .build();
    let first = memo.insert("conn", 1).unwrap();
    assert!(memo.invalidate("conn", first.epoch()));
    assert_eq!(memo.get("conn").map(|e| *e.value()), Some(2));
    let weak = memo.downgrade();
    drop(memo);
    assert!(
        weak.upgrade().is_none(),
        "the listener keeps no reference: no cycle"
    );
}

#[test]
fn weighted_size_is_the_total_weight_of_the_ready_entries() {
    let memo: AsyncMemo<u32, Vec<u8>> = AsyncMemo::builder()
        .max_capacity(100)
        .weigher(|_, v: &Vec<u8>| v.len() as u32)
        .shards(1)
        .build();
    memo.insert(1, vec![0; 30]).unwrap();
    memo.insert(2, vec![0; 50]).unwrap();
    assert_eq!(memo.weighted_size(), 80);
    let mut refresh = pin!(memo.refresh(1, futures::future::pending));
    assert!(poll_once(refresh.as_mut()).is_pending());
    assert_eq!(
        memo.weighted_size(),
        80,
        "a refresh in flight weighs nothing"
    );
    memo.insert(3, vec![0; 60]).unwrap();
    assert!(memo.weighted_size() <= 100, "evicted down to the bound");
    assert_eq!(memo.max_capacity(), Some(100));

    let plain: AsyncMemo<u32, Vec<u8>> = AsyncMemo::new();
    plain.insert(1, vec![0; 30]).unwrap();
    plain.insert(2, vec![0; 50]).unwrap();
    assert_eq!((plain.weighted_size(), plain.max_capacity()), (2, None));
}
