//! A refusal is visible where the caller is (issue 9, kind 3).
//!
//! Pins: `insert` of a value heavier than `max_capacity` (any value at capacity 0) returns
//! `Err(Refused)` with the value, its weight and the bound, instead of an `Entry` that looks
//! stored; what the key held is still replaced and the refused value is reported once, as
//! `Evicted`; weight 0 is admitted at any capacity, 0 included; a flight's refused value reaches
//! its callers and the documented rule (`weight > max_capacity()`, `epoch(k)` is `None`) tells.

mod common;

use async_memo::{AsyncMemo, RemovalCause};
use common::{Counts, Tracked, log, recorder, take};
use futures::executor::block_on;

type Memo = AsyncMemo<u64, Tracked>;

#[test]
fn refusal_is_visible_insert_heavier_than_max_capacity_returns_err() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(100)
        .shards(4)
        .weigher(|_, v: &Tracked| v.weight)
        .on_removal(recorder(&log))
        .build();
    let old = memo.insert(1, counts.weighted(1, 10)).unwrap();
    let refused = memo.insert(1, counts.weighted(1, 101)).unwrap_err();
    assert_eq!((refused.weight(), refused.max_capacity()), (101, 100));
    assert_eq!(refused.entry().value().weight, 101, "the value comes back");
    assert!(refused.to_string().contains("max_capacity"));
    assert_eq!(memo.epoch(&1), None, "the key is empty");
    assert_eq!(
        take(&log),
        [
            (1, old.epoch(), RemovalCause::Replaced),
            (1, refused.entry().epoch(), RemovalCause::Evicted),
        ]
    );
    // Exactly at the bound: stored.
    assert!(memo.insert(2, counts.weighted(2, 100)).is_ok());
    assert!(memo.get(&2).is_some());
    drop((old, refused, memo));
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn refusal_is_visible_at_capacity_zero_and_weight_zero_is_admitted() {
    let counts = Counts::new();
    let memo: Memo = AsyncMemo::builder().max_capacity(0).build();
    let refused = memo.insert(1, counts.value(1)).unwrap_err();
    assert_eq!((refused.weight(), refused.max_capacity()), (1, 0));
    assert!(memo.is_empty());

    let weightless: Memo = AsyncMemo::builder()
        .max_capacity(0)
        .weigher(|_, v: &Tracked| v.weight)
        .build();
    for k in 0..10 {
        let entry = weightless.insert(k, counts.weighted(k, 0)).unwrap();
        assert_eq!(weightless.epoch(&k), Some(entry.epoch()));
    }
    assert_eq!(
        weightless.len(),
        10,
        "weight 0 counts for nothing, even at capacity 0"
    );
    assert!(weightless.insert(10, counts.weighted(10, 1)).is_err());
    assert_eq!(weightless.len(), 10);
}

#[test]
fn refusal_is_visible_a_refused_commit_follows_the_documented_rule() {
    let counts = Counts::new();
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(50)
        .weigher(|_, v: &Tracked| v.weight)
        .build();
    let value = counts.weighted(1, 51);
    let heavy = block_on(memo.get_or_init(1, || async move { value }));
    assert!(u64::from(heavy.value().weight) > memo.max_capacity().unwrap());
    assert_eq!(memo.epoch(&1), None, "not stored");
    let value = counts.weighted(2, 50);
    let light = block_on(memo.get_or_init(2, || async move { value }));
    assert!(u64::from(light.value().weight) <= memo.max_capacity().unwrap());
    assert_eq!(memo.epoch(&2), Some(light.epoch()), "stored");
    assert_eq!(AsyncMemo::<u8, u8>::new().max_capacity(), None);
    drop((heavy, light, memo));
    assert_eq!(counts.created(), counts.dropped());
}
