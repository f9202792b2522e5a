//! shuttle schedules over broader async scenarios than the loom models: several keys and tasks,
//! cancelled callers, eviction with a listener that re-enters the memo, expiry with a manual
//! clock, and (in `shuttle/refresh.rs`) refreshes racing invalidations, inserts, eviction and
//! expiry. Each scenario runs under the random scheduler and under PCT (probabilistic
//! concurrency testing, depth 3), `SHUTTLE_ITERATIONS` times each (default 1000).
//!
//! Built with `RUSTFLAGS="--cfg shuttle"`, which swaps the memo's locks, atomics and thread ids
//! for shuttle's (`src/sync.rs`). Tasks are `shuttle::future::spawn`ed; a task left waiting with
//! nobody to wake it is reported by shuttle as a deadlock, with the schedule that produced it.
#![cfg(shuttle)]

use std::collections::{HashMap, HashSet};
use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use async_memo::{AsyncMemo, Entry, Epoch, ManualClock, RemovalCause};
use async_memo_model::poll_once_and_drop;
use shuttle::future::{block_on, spawn};

type Memo = AsyncMemo<u8, u32>;

fn iterations() -> usize {
    std::env::var("SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Runs `scenario` under the random scheduler and under PCT.
fn check(scenario: fn()) {
    shuttle::check_random(scenario, iterations());
    shuttle::check_pct(scenario, iterations(), 3);
}

/// Wakes itself while it is polled and returns `Pending` once: the flight is parked between two
/// polls, and whoever polls next drives it.
fn yield_once<T>(value: T) -> impl Future<Output = T> {
    let mut value = Some(value);
    let mut yielded = false;
    poll_fn(move |cx| {
        if yielded {
            Poll::Ready(value.take().expect("polled after completion"))
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Several keys; per key, callers race an `insert` followed by an `invalidate` with the epoch
/// observed before it. Whatever the schedule, each key ends up holding exactly the inserted entry
/// (compare-and-delete; no resurrection), and callers that got the same epoch got the same value
/// (single-flight).
#[test]
fn flights_race_inserts_and_invalidations() {
    check(|| {
        block_on(async {
            let memo = Memo::new();
            let mut tasks = Vec::new();
            for key in 0..3u8 {
                for caller in 0..2u32 {
                    let memo = memo.clone();
                    tasks.push(spawn(async move {
                        let entry = memo
                            .get_or_init(key, move || yield_once(u32::from(key) * 10 + caller))
                            .await;
                        (key, entry)
                    }));
                }
            }
            let writer = {
                let memo = memo.clone();
                spawn(async move {
                    let mut inserted = HashMap::new();
                    for key in 0..3u8 {
                        let observed = memo.epoch(&key);
                        let epoch = memo.insert(key, 100 + u32::from(key)).unwrap().epoch();
                        if let Some(observed) = observed {
                            assert!(!memo.invalidate(&key, observed), "a stale epoch deletes");
                        }
                        inserted.insert(key, epoch);
                    }
                    inserted
                })
            };
            let mut seen: HashMap<Epoch, u32> = HashMap::new();
            for task in tasks {
                let (key, entry) = task.await.unwrap();
                let value = *entry.value();
                assert!(value == 100 + u32::from(key) || value / 10 == u32::from(key));
                assert_eq!(*seen.entry(entry.epoch()).or_insert(value), value);
            }
            let inserted = writer.await.unwrap();
            for key in 0..3u8 {
                let now = memo.get(&key).map(|e| (e.epoch(), *e.value()));
                assert_eq!(
                    now,
                    Some((inserted[&key], 100 + u32::from(key))),
                    "key {key}: the insert survives detached flights and stale invalidations"
                );
            }
        });
    });
}

/// Callers cancelled after their first poll (some of them the driver, right after the future woke
/// itself) never strand the callers that stay: every remaining caller completes (futures-rs
/// #2706), and callers of one flight share its epoch.
#[test]
fn cancelled_drivers_never_strand_waiters() {
    check(|| {
        block_on(async {
            let memo = Memo::new();
            let mut tasks = Vec::new();
            for key in 0..2u8 {
                for _ in 0..2 {
                    let memo = memo.clone();
                    tasks.push(spawn(async move {
                        let _ = poll_once_and_drop(memo.get_or_init(key, || yield_once(1)));
                        None
                    }));
                }
                let memo = memo.clone();
                tasks.push(spawn(async move {
                    Some(memo.get_or_init(key, || yield_once(2)).await)
                }));
            }
            for task in tasks {
                if let Some(entry) = task.await.unwrap() {
                    assert!(matches!(*entry.value(), 1 | 2));
                }
            }
            for key in 0..2u8 {
                assert!(memo.get(&key).is_some(), "the caller that stayed committed");
            }
        });
    });
}

/// A bounded memo (two entries, one shard) under callers of five keys, with a listener that
/// re-enters the memo through a weak handle. Every entry that leaves is reported once, after it
/// left (the listener no longer finds its epoch under its key), and the bound holds.
#[test]
fn eviction_with_a_reentrant_listener() {
    check(|| {
        block_on(async {
            let reported: Arc<Mutex<Vec<(u8, Epoch, RemovalCause)>>> = Arc::default();
            let me: Arc<Mutex<Option<async_memo::WeakMemo<u8, u32>>>> = Arc::default();
            let memo: Memo = AsyncMemo::builder()
                .max_capacity(2)
                .shards(1)
                .on_removal({
                    let (reported, me) = (Arc::clone(&reported), Arc::clone(&me));
                    move |key: &u8, entry: Entry<u32>, cause| {
                        let memo = me.lock().unwrap().as_ref().and_then(|w| w.upgrade());
                        if let Some(memo) = memo {
                            assert_ne!(
                                memo.epoch(key),
                                Some(entry.epoch()),
                                "reported before it left"
                            );
                        }
                        reported.lock().unwrap().push((*key, entry.epoch(), cause));
                    }
                })
                .build();
            *me.lock().unwrap() = Some(memo.downgrade());
            let mut tasks = Vec::new();
            for task in 0..3u8 {
                let memo = memo.clone();
                tasks.push(spawn(async move {
                    let mut got = Vec::new();
                    for step in 0..3u8 {
                        let key = (task + step * 2) % 5;
                        got.push(memo.get_or_init(key, || yield_once(u32::from(key))).await);
                    }
                    got
                }));
            }
            for task in tasks {
                for entry in task.await.unwrap() {
                    assert!(*entry.value() < 5, "a value of one of the five keys");
                }
            }
            assert!(memo.len() <= 2, "the bound holds");
            let reported = reported.lock().unwrap().clone();
            let mut once = HashSet::new();
            for (_, epoch, cause) in &reported {
                assert!(once.insert(*epoch), "{epoch:?} reported twice");
                assert_eq!(*cause, RemovalCause::Evicted);
            }
            for key in 0..5u8 {
                if let Some(epoch) = memo.epoch(&key) {
                    assert!(!once.contains(&epoch), "a resident entry was reported");
                }
            }
        });
    });
}

/// An expiring memo (time to live 10 s) whose manual clock advances while callers run and one
/// task invalidates what it sees. Callers of one epoch get one value; after the clock passes every
/// deadline and the memo is purged, every entry that was stored has been reported exactly once
/// (expired or invalidated), and none is left.
#[test]
fn expiry_with_a_manual_clock() {
    check(|| {
        block_on(async {
            let clock = ManualClock::new();
            let reported: Arc<Mutex<Vec<(Epoch, RemovalCause)>>> = Arc::default();
            let memo: Memo = AsyncMemo::builder()
                .time_to_live(Duration::from_secs(10))
                .clock(clock.clone())
                .on_removal({
                    let reported = Arc::clone(&reported);
                    move |_: &u8, entry: Entry<u32>, cause| {
                        reported.lock().unwrap().push((entry.epoch(), cause));
                    }
                })
                .build();
            let mut tasks = Vec::new();
            for task in 0..2u32 {
                let memo = memo.clone();
                tasks.push(spawn(async move {
                    let mut got = Vec::new();
                    for key in 0..2u8 {
                        got.push(memo.get_or_init(key, move || yield_once(task)).await);
                    }
                    got
                }));
            }
            let ticker = {
                let (memo, clock) = (memo.clone(), clock.clone());
                spawn(async move {
                    for _ in 0..2 {
                        clock.advance(Duration::from_secs(6));
                        shuttle::future::yield_now().await;
                        if let Some(epoch) = memo.epoch(&1) {
                            memo.invalidate(&1, epoch);
                        }
                    }
                })
            };
            let mut seen: HashMap<Epoch, u32> = HashMap::new();
            for task in tasks {
                for entry in task.await.unwrap() {
                    assert_eq!(
                        *seen.entry(entry.epoch()).or_insert(*entry.value()),
                        *entry.value()
                    );
                }
            }
            ticker.await.unwrap();
            clock.advance(Duration::from_secs(60));
            memo.purge_expired();
            assert_eq!(memo.len(), 0, "every entry expired and was purged");
            let reported = reported.lock().unwrap().clone();
            let mut once = HashSet::new();
            for (epoch, cause) in reported {
                assert!(once.insert(epoch), "{epoch:?} reported twice");
                assert!(matches!(
                    cause,
                    RemovalCause::Expired | RemovalCause::Invalidated
                ));
            }
        });
    });
}

/// Issue 9: entries heavier than their shard's share borrow capacity from the other shards. Two
/// heavy inserts and a stream of light ones race on four shards: every insert is admitted,
/// nothing deadlocks (one shard lock at a time, the admission lock never taken under a shard
/// lock), and the total weight ends within the bound.
#[test]
fn heavy_entries_borrow_capacity_across_shards() {
    check(|| {
        block_on(async {
            let memo: Memo = AsyncMemo::builder()
                .max_capacity(10)
                .shards(4)
                .weigher(|_, weight: &u32| *weight)
                .build();
            let mut tasks = Vec::new();
            for (key, weight) in [(0u8, 8u32), (1, 9)] {
                let memo = memo.clone();
                tasks.push(spawn(async move {
                    assert!(memo.insert(key, weight).is_ok(), "weight {weight} refused");
                }));
            }
            let light = memo.clone();
            tasks.push(spawn(async move {
                for key in 2..6u8 {
                    assert!(light.insert(key, 1).is_ok());
                }
            }));
            for task in tasks {
                task.await.expect("the task panicked");
            }
            let total: u32 = (0..6u8)
                .filter_map(|k| memo.get(&k))
                .map(|e| *e.value())
                .sum();
            assert!(total <= 10, "{total} resident, bound 10");
            assert!(
                memo.insert(9, 10).is_ok(),
                "the whole capacity, after the race"
            );
            assert_eq!(memo.len(), 1);
        });
    });
}

// The refresh scenarios (issue 10).
#[path = "shuttle/refresh.rs"]
mod refresh;
