//! Admission does not depend on the shard count (issue 9, kind 2; quick_cache #26).
//!
//! Pins: with any shard count (up to 64), every entry whose weight is at most `max_capacity` is
//! admitted — by `insert` and by a flight's commit — evicting others (in any shard) as needed;
//! the total resident weight never exceeds `max_capacity` (the bound stays exact); capacity lent
//! to a heavy entry comes back to the other shards once it leaves; a listener that stores a heavy
//! entry while another heavy entry is being made room for does not deadlock; nothing leaks.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_memo::{AsyncMemo, RemovalCause, WeakMemo};
use common::{Counts, Tracked};
use futures::executor::block_on;
use proptest::prelude::*;

type Memo = AsyncMemo<u64, Tracked>;

fn weighted(capacity: u64, shards: usize) -> Memo {
    AsyncMemo::builder()
        .max_capacity(capacity)
        .shards(shards)
        .weigher(|_, v: &Tracked| v.weight)
        .build()
}

/// The total weight of the entries of `keys` that the memo holds (read by `epoch`, which does
/// not count as a read for the policy).
fn resident_weight(memo: &Memo, weights: &HashMap<u64, u32>) -> u64 {
    weights
        .iter()
        .filter(|(k, _)| memo.epoch(k).is_some())
        .map(|(_, w)| u64::from(*w))
        .sum()
}

/// The public report: `max_capacity(1_000_000).weigher(len)` and a 200 kB value, refused on a
/// machine with many CPUs because each shard accepted only its share.
#[test]
fn admission_ignores_the_shard_count_a_200_kb_value_in_a_1_mb_memo_quick_cache_26() {
    for shards in [1, 4, 16, 64] {
        let memo: AsyncMemo<String, Vec<u8>> = AsyncMemo::builder()
            .max_capacity(1_000_000)
            .shards(shards)
            .weigher(|_, v: &Vec<u8>| v.len() as u32)
            .build();
        let stored = memo.insert("report".into(), vec![0; 200_000]);
        assert!(stored.is_ok(), "{shards} shards: refused");
        assert!(memo.get("report").is_some(), "{shards} shards: not stored");
        let committed = block_on(memo.get_or_init("flight".into(), || async { vec![1; 200_000] }));
        assert_eq!(
            memo.epoch("flight"),
            Some(committed.epoch()),
            "{shards} shards: the commit was refused"
        );
    }
}

#[test]
fn admission_ignores_the_shard_count_weights_up_to_the_whole_capacity() {
    const CAP: u64 = 1_000;
    for shards in [1, 2, 8, 64] {
        let counts = Counts::new();
        let memo = weighted(CAP, shards);
        let mut weights = HashMap::new();
        // Fill every shard with light entries.
        for k in 0..400 {
            memo.insert(k, counts.weighted(k, 5)).unwrap();
            weights.insert(k, 5);
        }
        assert!(resident_weight(&memo, &weights) <= CAP);
        for (k, w) in [
            (1_000, CAP as u32),
            (1_001, 999),
            (1_002, 500),
            (1_003, 1),
            (1_004, CAP as u32),
        ] {
            memo.insert(k, counts.weighted(k, w)).unwrap();
            weights.insert(k, w);
            assert!(
                memo.epoch(&k).is_some(),
                "{shards} shards: weight {w} not admitted"
            );
            let total = resident_weight(&memo, &weights);
            assert!(
                total <= CAP,
                "{shards} shards: {total} resident, bound {CAP}"
            );
        }
        assert_eq!(
            memo.len(),
            1,
            "{shards} shards: the whole capacity holds one entry"
        );
        // The capacity lent to the heavy entry returns: light entries fill every shard again.
        for k in 2_000..5_000 {
            memo.insert(k, counts.weighted(k, 1)).unwrap();
            weights.insert(k, 1);
            if k % 100 == 0 {
                assert!(resident_weight(&memo, &weights) <= CAP);
            }
        }
        assert_eq!(
            memo.len() as u64,
            CAP,
            "{shards} shards: the capacity lent to the heavy entry did not come back"
        );
        drop(memo);
        assert_eq!(counts.created(), counts.dropped(), "{shards} shards: leak");
    }
}

/// A listener that stores a heavy entry while the memo is making room for another: the reports
/// run after every lock (the admission lock included), so this cannot deadlock.
#[test]
fn admission_a_listener_storing_a_heavy_entry_while_room_is_made_does_not_deadlock() {
    let me: Arc<OnceLock<WeakMemo<u64, Tracked>>> = Arc::default();
    let counts = Counts::new();
    let (weak, made) = (Arc::clone(&me), Arc::clone(&counts));
    let stored: Arc<Mutex<Vec<bool>>> = Arc::default();
    let seen = Arc::clone(&stored);
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(100)
        .shards(8)
        .weigher(|_, v: &Tracked| v.weight)
        .on_removal(move |key: &u64, _, cause| {
            if cause == RemovalCause::Evicted && *key < 100 {
                if let Some(memo) = weak.get().and_then(|w| w.upgrade()) {
                    let ok = memo.insert(500 + key, made.weighted(500 + key, 60)).is_ok();
                    seen.lock().unwrap().push(ok);
                }
            }
        })
        .build();
    me.set(memo.downgrade()).unwrap();
    for k in 0..8 {
        memo.insert(k, counts.weighted(k, 12)).unwrap();
    }
    memo.insert(1_000, counts.weighted(1_000, 70)).unwrap();
    let stored = stored.lock().unwrap().clone();
    assert!(!stored.is_empty() && stored.iter().all(|ok| *ok));
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random weights up to the whole capacity, any shard count: each is admitted, and the
    /// total never exceeds the bound.
    #[test]
    fn admission_ignores_the_shard_count_random_weights(
        shards in prop_oneof![Just(1usize), Just(4), Just(64)],
        ops in proptest::collection::vec((0u64..200, 0u32..=300), 1..200),
    ) {
        const CAP: u64 = 300;
        let counts = Counts::new();
        let memo = weighted(CAP, shards);
        let mut weights = HashMap::new();
        for (key, weight) in ops {
            prop_assert!(memo.insert(key, counts.weighted(key, weight)).is_ok());
            weights.insert(key, weight);
            prop_assert!(memo.epoch(&key).is_some(), "weight {} not admitted", weight);
            let total = resident_weight(&memo, &weights);
            prop_assert!(total <= CAP, "{} resident, bound {}", total, CAP);
        }
        drop(memo);
        prop_assert_eq!(counts.created(), counts.dropped());
    }
}

/// Threads storing entries heavier than any shard's share, at once: all admitted, no deadlock
/// (one shard lock at a time), and the bound holds when they are done. No timing assumption: it
/// checks only the end state.
#[test]
fn admission_concurrent_heavy_inserts_keep_the_bound() {
    const CAP: u64 = 1_000;
    let counts = Counts::new();
    let memo = weighted(CAP, 64);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (memo, counts) = (&memo, &counts);
            scope.spawn(move || {
                for i in 0..200 {
                    let key = t * 1_000 + i;
                    let weight = if i % 3 == 0 { 400 } else { 7 };
                    memo.insert(key, counts.weighted(key, weight)).unwrap();
                }
            });
        }
    });
    let weights: HashMap<u64, u32> = (0..4u64)
        .flat_map(|t| (0..200).map(move |i| (t * 1_000 + i, if i % 3 == 0 { 400 } else { 7 })))
        .collect();
    assert!(resident_weight(&memo, &weights) <= CAP);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}
