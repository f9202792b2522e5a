//! Capacity (issue 3, crate semantics 11 and 12): `max_capacity`, `weigher`, S3-FIFO.
//!
//! Pins: the bound holds after every operation (`len() <= cap`; with a weigher, total weight
//! `<= cap`) for inserts and `get_or_init` commits, across shards and threads; every evicted value
//! is reported once as `Evicted` and dropped once, and nothing leaks; replaced, invalidated and
//! removed entries free their room; flights in progress are neither evicted nor counted; an entry
//! heavier than the whole capacity is refused (reported `Evicted` at once) while its callers still
//! receive it; a hot set survives a one-pass scan. Admission across shard counts: `admission.rs`.

mod common;

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;

use async_memo::{AsyncMemo, Epoch, RemovalCause};
use common::{ByShard, Counts, Tracked, log, once_each, poll_once, ready, recorder, take};
use futures::channel::oneshot;
use futures::executor::block_on;

type Memo = AsyncMemo<u64, Tracked>;

/// A small deterministic pseudo-random stream (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Skewed keys in `0..n`: small keys are far more frequent.
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.next() % n;
        let b = self.next() % (a + 1);
        self.next() % (b + 1)
    }
}

#[test]
fn the_bound_holds_after_every_insert_and_evicted_values_are_dropped() {
    for shards in [1, 4] {
        let (log, counts) = (log(), Counts::new());
        let memo: Memo = AsyncMemo::builder()
            .max_capacity(40)
            .shards(shards)
            .on_removal(recorder(&log))
            .build();
        for k in 0..2_000u64 {
            drop(memo.insert(k % 700, counts.value(k)));
            assert!(memo.len() <= 40, "shards={shards}, after insert {k}");
            assert_eq!(
                counts.live(),
                memo.len(),
                "evicted values are dropped at once"
            );
        }
        let stats = memo.stats();
        let removed = take(&log);
        let causes = once_each(&removed);
        let evicted = causes.values().filter(|c| **c == RemovalCause::Evicted);
        assert_eq!(evicted.count() as u64, stats.evicted);
        assert_eq!(
            stats.evicted + stats.replaced + memo.len() as u64,
            2_000,
            "every insert is still here, replaced, or evicted"
        );
        assert_eq!(removed.len() as u64, stats.evicted + stats.replaced);
        drop(memo);
        assert_eq!(counts.created(), counts.dropped(), "nothing leaks");
    }
}

#[test]
fn the_bound_holds_after_every_get_or_init_commit() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(32)
        .shards(2)
        .on_removal(recorder(&log))
        .build();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..3_000 {
        let k = rng.skewed(500);
        let c = Arc::clone(&counts);
        let entry = block_on(memo.get_or_init(k, move || async move { c.value(k) }));
        assert_eq!(entry.value().id, k);
        drop(entry);
        assert!(memo.len() <= 32);
        assert_eq!(counts.live(), memo.len());
    }
    let stats = memo.stats();
    assert!(stats.hits > 0 && stats.evicted > 0, "{stats:?}");
    assert_eq!(stats.flights_committed, stats.evicted + memo.len() as u64);
    let removed = take(&log);
    once_each(&removed);
    assert!(removed.iter().all(|r| r.2 == RemovalCause::Evicted));
    assert_eq!(removed.len() as u64, stats.evicted);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn with_a_weigher_the_total_weight_stays_within_the_bound() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(100)
        .shards(1)
        .weigher(|_, v: &Tracked| v.weight)
        .on_removal(recorder(&log))
        .build();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // What the test stored last under each key: (epoch, weight).
    let mut stored: HashMap<u64, (Epoch, u32)> = HashMap::new();
    for i in 0..2_000u64 {
        let k = rng.skewed(200);
        let weight = (rng.next() % 30) as u32;
        let epoch = if i % 2 == 0 {
            memo.insert(k, counts.weighted(k, weight)).unwrap().epoch()
        } else {
            let c = Arc::clone(&counts);
            let e = block_on(memo.get_or_init(k, move || async move { c.weighted(k, weight) }));
            e.epoch()
        };
        // A hit returns the stored entry (already recorded); anything else is new.
        if stored.get(&k).map(|s| s.0) != Some(epoch) {
            stored.insert(k, (epoch, weight));
        }
        // `epoch()` is not a read, so it does not disturb the policy.
        let total: u64 = stored
            .iter()
            .filter(|(k, (e, _))| memo.epoch(*k) == Some(*e))
            .map(|(_, (_, w))| u64::from(*w))
            .sum();
        assert!(total <= 100, "total weight {total} after operation {i}");
        assert_eq!(counts.live(), memo.len());
    }
    once_each(&take(&log));
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn replaced_invalidated_and_removed_entries_free_their_room() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(4)
        .shards(1)
        .on_removal(recorder(&log))
        .build();
    let mut epochs = vec![
        memo.insert(1, counts.value(1)).unwrap().epoch(),
        memo.insert(2, counts.value(2)).unwrap().epoch(),
        memo.insert(3, counts.value(3)).unwrap().epoch(),
    ];
    for round in 0..200 {
        epochs[0] = memo.insert(1, counts.value(round)).unwrap().epoch();
        let e = memo.insert(4, counts.value(4)).unwrap().epoch();
        match round % 2 {
            0 => assert!(memo.invalidate(&4, e)),
            _ => assert!(memo.remove(&4).is_some()),
        }
        assert_eq!(memo.len(), 3);
    }
    assert_eq!(memo.stats().evicted, 0, "no room was ever short");
    for (k, e) in [1, 2, 3].iter().zip(&epochs) {
        assert_eq!(memo.epoch(k), Some(*e));
    }
    assert_eq!(counts.live(), 3);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn a_stale_policy_token_never_evicts_the_newer_entry_of_its_key() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(2)
        .shards(1)
        .on_removal(recorder(&log))
        .build();
    let a = memo.insert(1, counts.value(1)).unwrap().epoch();
    let b = memo.insert(1, counts.value(2)).unwrap().epoch(); // A's policy token is now stale
    assert!(memo.get(&1).is_some() && memo.get(&1).is_some(), "B is hot");
    let cold = memo.insert(2, counts.value(3)).unwrap().epoch();
    memo.insert(3, counts.value(4)).unwrap(); // full: evict one
    assert_eq!(
        memo.epoch(&1),
        Some(b),
        "B was read, and A's token names A only"
    );
    assert_eq!(
        take(&log),
        [
            (1, a, RemovalCause::Replaced),
            (2, cold, RemovalCause::Evicted)
        ]
    );
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn flights_in_progress_are_not_evicted_and_do_not_count() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(2)
        .shards(1)
        .on_removal(recorder(&log))
        .build();
    let (tx, rx) = oneshot::channel::<Tracked>();
    {
        let mut call = pin!(memo.get_or_init(100, || async move { rx.await.unwrap() }));
        assert!(poll_once(call.as_mut()).is_pending());
        let flight = memo.epoch(&100).expect("flight in progress");
        memo.insert(1, counts.value(1)).unwrap();
        memo.insert(2, counts.value(2)).unwrap();
        assert_eq!(memo.len(), 2, "the flight takes no room");
        for k in 3..50 {
            memo.insert(k, counts.value(k)).unwrap();
            assert!(memo.len() <= 2);
            assert_eq!(
                memo.epoch(&100),
                Some(flight),
                "the flight is never evicted"
            );
        }
        tx.send(counts.value(100)).unwrap();
        let entry = ready(poll_once(call.as_mut()));
        assert_eq!(entry.epoch(), flight);
        assert_eq!(memo.get(&100).map(|e| e.epoch()), Some(flight), "committed");
        assert!(memo.len() <= 2);
    }
    let removed = take(&log);
    once_each(&removed);
    assert_eq!(removed.len(), 48, "50 entries, 2 left");
    assert!(!removed.iter().any(|r| r.0 == 100));
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn an_entry_heavier_than_the_whole_capacity_is_refused_at_once_but_delivered() {
    let (log, counts) = (log(), Counts::new());
    // 4 shards share 100: 25 each. Key k lives in shard k % 4.
    let memo: AsyncMemo<u64, Tracked, ByShard> = AsyncMemo::builder()
        .max_capacity(100)
        .shards(4)
        .hasher(ByShard)
        .weigher(|_, v: &Tracked| v.weight)
        .on_removal(recorder(&log))
        .build();
    let light = memo.insert(4, counts.weighted(4, 25)).unwrap().epoch();

    // By insert: handed back as refused, never stored, reported once.
    let heavy = memo.insert(8, counts.weighted(8, 101)).unwrap_err();
    assert_eq!(heavy.entry().value().weight, 101);
    assert_eq!((heavy.weight(), heavy.max_capacity()), (101, 100));
    assert!(memo.get(&8).is_none());
    assert_eq!(
        take(&log),
        [(8, heavy.entry().epoch(), RemovalCause::Evicted)]
    );
    assert_eq!(memo.epoch(&4), Some(light), "the resident stays");
    drop(heavy);

    // By a flight with two callers: both receive it.
    let (tx, rx) = oneshot::channel::<Tracked>();
    let flight = {
        let mut a = pin!(memo.get_or_init(12, || async move { rx.await.unwrap() }));
        let mut b = pin!(memo.get_or_init(12, || async { unreachable!("joins") }));
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        tx.send(counts.weighted(12, 160)).unwrap();
        let a = ready(poll_once(a.as_mut()));
        let b = ready(poll_once(b.as_mut()));
        assert_eq!((a.value().id, b.value().id), (12, 12));
        assert_eq!(a.epoch(), b.epoch());
        a.epoch()
    };
    assert!(memo.get(&12).is_none());
    assert_eq!(
        memo.epoch(&12),
        None,
        "the documented way to tell: the key is empty"
    );
    assert_eq!(take(&log), [(12, flight, RemovalCause::Evicted)]);
    assert_eq!(memo.epoch(&4), Some(light));
    let stats = memo.stats();
    assert_eq!((stats.evicted, stats.flights_committed), (2, 1));
    assert_eq!(memo.len(), 1);
    assert_eq!(counts.live(), 1);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn a_hot_set_survives_a_one_pass_scan() {
    let counts = Counts::new();
    let memo: Memo = AsyncMemo::builder().max_capacity(100).shards(1).build();
    for k in 0..20 {
        memo.insert(k, counts.value(k)).unwrap();
        for _ in 0..3 {
            assert!(memo.get(&k).is_some());
        }
    }
    for cold in 1_000..11_000 {
        memo.insert(cold, counts.value(cold)).unwrap();
        assert!(memo.len() <= 100);
        if cold % 100 == 0 {
            // The working set keeps being read during the scan.
            for k in 0..20 {
                assert!(memo.get(&k).is_some(), "hot key {k} evicted at {cold}");
            }
        }
    }
    for k in 0..20 {
        assert!(memo.get(&k).is_some(), "hot key {k} survived the scan");
    }
    assert_eq!(counts.live(), memo.len());
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn without_reads_the_first_keys_are_the_first_evicted() {
    // The control for the scan test: the same stream without reads is plain FIFO.
    let memo: AsyncMemo<u64, u64> = AsyncMemo::builder().max_capacity(100).shards(1).build();
    for k in 0..20 {
        memo.insert(k, k).unwrap();
    }
    for cold in 1_000..1_200 {
        memo.insert(cold, cold).unwrap();
    }
    assert!((0..20).all(|k| memo.epoch(&k).is_none()));
}

#[test]
fn the_bound_holds_once_concurrent_writers_are_done() {
    let counts = Counts::new();
    let memo: Memo = AsyncMemo::builder().max_capacity(64).shards(4).build();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (memo, counts) = (memo.clone(), Arc::clone(&counts));
            scope.spawn(move || {
                let mut rng = Rng(t + 1);
                for _ in 0..2_000 {
                    let k = rng.skewed(400);
                    if rng.next() % 3 == 0 {
                        memo.insert(k, counts.value(k)).unwrap();
                    } else {
                        let c = Arc::clone(&counts);
                        block_on(memo.get_or_init(k, move || async move { c.value(k) }));
                    }
                }
            });
        }
    });
    assert!(memo.len() <= 64);
    assert_eq!(counts.live(), memo.len());
    let s = memo.stats();
    assert_eq!(
        s.flights_started,
        s.flights_committed
            + s.flights_detached
            + s.flights_failed
            + s.flights_panicked
            + s.flights_abandoned
    );
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn zero_capacity_stores_nothing_but_delivers_everything() {
    let (log, counts) = (log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .max_capacity(0)
        .on_removal(recorder(&log))
        .build();
    let c = Arc::clone(&counts);
    let entry = block_on(memo.get_or_init(1, move || async move { c.value(1) }));
    assert_eq!(entry.value().id, 1);
    assert!(memo.is_empty());
    assert_eq!(take(&log), [(1, entry.epoch(), RemovalCause::Evicted)]);
    drop(entry);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}
