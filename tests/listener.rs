//! The removal listener (issue 3, crate semantics 12).
//!
//! Pins: every ready entry that leaves is reported exactly once, with its epoch, for every cause
//! (`Invalidated`, `Removed`, `Replaced`, `Expired`, `Evicted`, `Cleared`), and the reported
//! epochs are exactly the entries that left; a stale `invalidate` reports nothing; the listener
//! runs on the operation's thread after locks are released, so a re-entrant listener may store a
//! successor for the same key through a `WeakMemo` (the MCP close handler) and it survives; a
//! panicking listener leaves the removal done, the other removals of the operation completed and
//! reported, and the panic reaches the caller; dropping the memo does not call the listener but
//! drops the values; a listener holding a strong handle leaks (a cycle) and a weak one does not.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use async_memo::{AsyncMemo, Entry, Epoch, ManualClock, MemoBuilder, RemovalCause, WeakMemo};
use common::{
    ByShard, Counts, Tracked, epochs, log, once_each, poll_once, ready, recorder, secs, take,
    within_10s,
};
use futures::channel::oneshot;

/// Completes a future that must not wait, without entering an executor (so it may run inside a
/// listener called from another such call).
fn now<F: Future>(future: F) -> F::Output {
    ready(poll_once(pin!(future)))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn every_cause_is_reported_exactly_once_with_its_epoch() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo: AsyncMemo<u64, Tracked> = AsyncMemo::builder()
        .shards(1)
        .max_capacity(3)
        .time_to_live(secs(100))
        .clock(clock.clone())
        .on_removal(recorder(&log))
        .build();
    let invalidated = memo.insert(1, counts.value(1)).unwrap().epoch();
    assert!(memo.invalidate(&1, invalidated));
    let removed = memo.insert(2, counts.value(2)).unwrap().epoch();
    assert_eq!(memo.remove(&2).map(|e| e.epoch()), Some(removed));
    let expired = now(memo.get_or_init(4, || std::future::ready(counts.value(4)))).epoch();
    clock.advance(secs(100));
    assert!(memo.get(&4).is_none());
    let evicted = memo.insert(5, counts.value(5)).unwrap().epoch();
    for k in 6..8 {
        memo.insert(k, counts.value(k)).unwrap();
    }
    // Full (capacity 3): the first new key evicts the oldest, unread entry; replacing it
    // evicts nothing.
    let replaced = memo.insert(3, counts.value(3)).unwrap().epoch();
    let kept = memo.insert(3, counts.value(33)).unwrap().epoch();
    let cleared = memo.insert(3, counts.value(333)).unwrap().epoch();
    assert_eq!(memo.len(), 3);
    memo.invalidate_all();
    let log = take(&log);
    let causes = once_each(&log);
    assert_eq!(causes[&invalidated], RemovalCause::Invalidated);
    assert_eq!(causes[&removed], RemovalCause::Removed);
    assert_eq!(causes[&replaced], RemovalCause::Replaced);
    assert_eq!(causes[&kept], RemovalCause::Replaced);
    assert_eq!(causes[&expired], RemovalCause::Expired);
    assert_eq!(causes[&evicted], RemovalCause::Evicted);
    assert_eq!(causes[&cleared], RemovalCause::Cleared);
    let stats = memo.stats();
    for (cause, count) in [
        (RemovalCause::Invalidated, stats.invalidated),
        (RemovalCause::Removed, stats.removed),
        (RemovalCause::Replaced, stats.replaced),
        (RemovalCause::Expired, stats.expired),
        (RemovalCause::Evicted, stats.evicted),
        (RemovalCause::Cleared, stats.cleared),
    ] {
        let reported = causes.values().filter(|c| **c == cause).count() as u64;
        assert_eq!(reported, count, "{cause:?}");
        assert!(count >= 1, "{cause:?} was exercised");
    }
    assert_eq!(log.len(), 9, "nine entries stored, all gone");
    assert_eq!(counts.live(), 0);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

/// Random operations of every kind; afterwards every entry ever stored is either still present
/// or was reported exactly once, never both.
fn churn(expiring: bool) {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let mut builder = AsyncMemo::builder()
        .shards(2)
        .max_capacity(16)
        .on_removal(recorder(&log));
    if expiring {
        builder = builder.time_to_live(secs(50)).clock(clock.clone());
    }
    let memo: AsyncMemo<u64, Tracked> = builder.build();
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let mut rng = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut stored: Vec<(u64, Epoch)> = Vec::new();
    for _ in 0..5_000 {
        let k = rng() % 40;
        match rng() % 100 {
            0..=29 => stored.push((k, memo.insert(k, counts.value(k)).unwrap().epoch())),
            30..=59 => {
                let made = AtomicUsize::new(0);
                let e = now(memo.get_or_init(k, || {
                    made.fetch_add(1, Ordering::SeqCst);
                    let v = counts.value(k);
                    async move { v }
                }));
                if made.load(Ordering::SeqCst) == 1 {
                    stored.push((k, e.epoch()));
                }
            }
            60..=74 => {
                // Current or stale: compare-and-delete decides.
                if !stored.is_empty() {
                    let (k, e) = stored[(rng() % stored.len() as u64) as usize];
                    memo.invalidate(&k, e);
                }
            }
            75..=84 => {
                memo.remove(&k);
            }
            85..=89 => {
                memo.get(&k);
            }
            90..=97 => clock.advance(secs(rng() % 10)),
            98 => memo.purge_expired(),
            _ => memo.invalidate_all(),
        }
    }
    let all: BTreeSet<Epoch> = stored.iter().map(|s| s.1).collect();
    assert_eq!(all.len(), stored.len());
    let present: BTreeSet<Epoch> = (0..40).filter_map(|k| memo.epoch(&k)).collect();
    let removals = take(&log);
    once_each(&removals);
    let left = epochs(&removals);
    assert!(left.is_disjoint(&present));
    let unaccounted = all
        .difference(&left)
        .filter(|e| !present.contains(e))
        .count();
    assert_eq!(
        unaccounted,
        0,
        "of {} entries stored, {} are present, {} were reported, {unaccounted} vanished unreported",
        all.len(),
        present.len(),
        left.len()
    );
    assert_eq!(left.union(&present).count(), all.len());
    let stats = memo.stats();
    let counted = stats.invalidated
        + stats.removed
        + stats.replaced
        + stats.expired
        + stats.evicted
        + stats.cleared;
    assert_eq!(counted, removals.len() as u64, "stats count every removal");
    assert_eq!(counts.live(), present.len());
    drop(memo);
    assert!(take(&log).is_empty(), "dropping the memo reports nothing");
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn the_reported_epochs_are_exactly_the_entries_that_left() {
    churn(false);
}

#[test]
fn the_reported_epochs_are_exactly_the_entries_that_left_with_expiry() {
    churn(true);
}

#[test]
fn a_stale_invalidate_reports_nothing() {
    let log = log();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder().on_removal(recorder(&log)).build();
    let old = memo.insert("k", 1).unwrap().epoch();
    let new = memo.insert("k", 2).unwrap().epoch();
    assert_eq!(take(&log), [("k", old, RemovalCause::Replaced)]);
    assert!(!memo.invalidate("k", old));
    assert!(!memo.invalidate("other", new));
    assert!(take(&log).is_empty());
    assert_eq!(memo.stats().invalidated, 0);
    assert!(memo.invalidate("k", new));
    assert_eq!(take(&log), [("k", new, RemovalCause::Invalidated)]);
}

#[test]
fn the_listener_runs_on_the_thread_of_the_operation() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let memo: AsyncMemo<u8, u8> = AsyncMemo::builder()
        .on_removal(move |_: &u8, _, _| record.lock().unwrap().push(thread::current().id()))
        .build();
    let e = memo.insert(1, 1).unwrap().epoch();
    let other = memo.clone();
    let id = thread::spawn(move || {
        assert!(other.invalidate(&1, e));
        thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), [id]);
}

/// The memo, its removal log, and the epochs of the successors the listener stored.
type Reconnecting = (
    AsyncMemo<&'static str, u32>,
    common::Log<&'static str>,
    Arc<Mutex<Vec<Epoch>>>,
);

/// How the close handler of the MCP case stores a successor for the key it was told about.
#[derive(Clone, Copy, Debug)]
enum Reconnect {
    Insert,
    GetOrInit,
}

/// A memo whose listener, told that the original connection (value 0) of a key left, stores
/// a successor (value 1) for the same key through a weak handle. It also logs every removal.
fn reconnecting(builder: MemoBuilder<&'static str, u32>, how: Reconnect) -> Reconnecting {
    let log = log();
    let successors = Arc::new(Mutex::new(Vec::new()));
    let me: Arc<OnceLock<WeakMemo<&'static str, u32>>> = Arc::default();
    let (weak, record, made) = (Arc::clone(&me), recorder(&log), Arc::clone(&successors));
    let memo = builder
        .on_removal(move |key: &&'static str, entry: Entry<u32>, cause| {
            let original = *entry.value() == 0;
            record(key, entry, cause);
            if !original {
                return;
            }
            let Some(memo) = weak.get().and_then(WeakMemo::upgrade) else {
                return;
            };
            let successor = match how {
                Reconnect::Insert => memo.insert(key, 1).unwrap(),
                Reconnect::GetOrInit => now(memo.get_or_init(key, || async { 1 })),
            };
            made.lock().unwrap().push(successor.epoch());
        })
        .build();
    me.set(memo.downgrade()).unwrap();
    (memo, log, successors)
}

/// Runs `remove_original` against a memo holding the original connection under "conn", and
/// checks that the successor the listener stored survives.
fn reconnect_survives(
    builder: impl FnOnce() -> (MemoBuilder<&'static str, u32>, Option<ManualClock>) + Send + 'static,
    how: Reconnect,
    cause: RemovalCause,
    remove_original: impl FnOnce(&AsyncMemo<&'static str, u32>, Epoch) + Send + 'static,
) {
    within_10s(move || {
        let (builder, clock) = builder();
        let (memo, log, successors) = reconnecting(builder, how);
        let original = memo.insert("conn", 0).unwrap().epoch();
        if let Some(clock) = clock {
            clock.advance(secs(10));
        }
        remove_original(&memo, original);
        let successors = successors.lock().unwrap().clone();
        assert_eq!(
            successors.len(),
            1,
            "{how:?}/{cause:?}: the listener ran once"
        );
        assert_eq!(
            memo.get("conn").map(|e| e.epoch()),
            Some(successors[0]),
            "{how:?}/{cause:?}: the successor survives"
        );
        let log = take(&log);
        assert!(
            log.contains(&("conn", original, cause)),
            "{how:?}/{cause:?}: {log:?}"
        );
        once_each(&log);
        assert!(!epochs(&log).contains(&successors[0]));
    });
}

fn plain() -> (MemoBuilder<&'static str, u32>, Option<ManualClock>) {
    (AsyncMemo::builder().shards(1), None)
}

fn expiring() -> (MemoBuilder<&'static str, u32>, Option<ManualClock>) {
    let clock = ManualClock::new();
    let builder = AsyncMemo::builder()
        .shards(1)
        .time_to_live(secs(10))
        .clock(clock.clone());
    (builder, Some(clock))
}

fn bounded() -> (MemoBuilder<&'static str, u32>, Option<ManualClock>) {
    (AsyncMemo::builder().shards(1).max_capacity(2), None)
}

#[test]
fn a_reentrant_listener_reconnects_after_invalidate() {
    for how in [Reconnect::Insert, Reconnect::GetOrInit] {
        reconnect_survives(plain, how, RemovalCause::Invalidated, |memo, e| {
            assert!(memo.invalidate("conn", e));
        });
    }
}

#[test]
fn a_reentrant_listener_reconnects_after_remove() {
    for how in [Reconnect::Insert, Reconnect::GetOrInit] {
        reconnect_survives(plain, how, RemovalCause::Removed, |memo, _| {
            assert_eq!(memo.remove("conn").map(|e| *e.value()), Some(0));
        });
    }
}

#[test]
fn a_reentrant_listener_reconnects_after_invalidate_all() {
    for how in [Reconnect::Insert, Reconnect::GetOrInit] {
        reconnect_survives(plain, how, RemovalCause::Cleared, |memo, _| {
            memo.invalidate_all();
        });
    }
}

#[test]
fn a_reentrant_listener_reconnects_after_eviction() {
    for how in [Reconnect::Insert, Reconnect::GetOrInit] {
        // Storing two others evicts "conn" (capacity 2); the successor, remembered by the ghost
        // queue, then displaces the older of the two.
        reconnect_survives(bounded, how, RemovalCause::Evicted, |memo, _| {
            memo.insert("other", 7).unwrap();
            memo.insert("another", 7).unwrap();
        });
    }
}

#[test]
fn a_reentrant_listener_reconnects_after_expiry_found_by_get_or_purge() {
    for how in [Reconnect::Insert, Reconnect::GetOrInit] {
        reconnect_survives(expiring, how, RemovalCause::Expired, |memo, _| {
            assert!(memo.get("conn").is_none());
        });
        reconnect_survives(expiring, how, RemovalCause::Expired, |memo, _| {
            memo.purge_expired();
        });
        reconnect_survives(expiring, how, RemovalCause::Expired, |memo, _| {
            assert!(memo.epoch("conn").is_none());
        });
    }
}

#[test]
fn a_reentrant_listener_inserting_over_the_flight_that_found_the_expired_entry() {
    // get_or_init finds the expired original and starts a flight; the listener's insert detaches
    // that flight, whose caller still receives its own value, and the insert survives.
    reconnect_survives(
        expiring,
        Reconnect::Insert,
        RemovalCause::Expired,
        |memo, original| {
            let mine = now(memo.get_or_init("conn", || async { 2 }));
            assert_eq!(*mine.value(), 2);
            assert!(mine.epoch() > original);
        },
    );
}

#[test]
fn a_reentrant_listener_calling_get_or_init_when_get_or_init_found_the_expired_entry() {
    reconnect_survives(
        expiring,
        Reconnect::GetOrInit,
        RemovalCause::Expired,
        |memo, _| {
            let mine = now(memo.get_or_init("conn", || async { 2 }));
            // Either the caller joined the successor's flight or the listener joined ours;
            // whichever: one value, and it is stored.
            assert_eq!(memo.get("conn").map(|e| e.epoch()), Some(mine.epoch()));
        },
    );
}

#[test]
fn a_panicking_listener_leaves_the_removal_done_and_reaches_the_caller() {
    within_10s(|| {
        let log = log();
        let record = recorder(&log);
        let memo: AsyncMemo<u64, u64> = AsyncMemo::builder()
            .shards(1)
            .on_removal(move |k: &u64, e: Entry<u64>, c| {
                record(k, e, c);
                panic!("listener panicked on {k}");
            })
            .build();
        let e = memo.insert(1, 1).unwrap().epoch();
        let payload = catch_unwind(AssertUnwindSafe(|| memo.invalidate(&1, e))).unwrap_err();
        assert_eq!(panic_message(&*payload), "listener panicked on 1");
        assert!(memo.get(&1).is_none(), "the removal stands");
        assert_eq!(take(&log), [(1, e, RemovalCause::Invalidated)]);
        assert_eq!(memo.stats().invalidated, 1);
        // The memo is usable: nothing is locked or poisoned.
        let again = memo.insert(1, 2).unwrap().epoch();
        assert_eq!(memo.epoch(&1), Some(again));
        assert_eq!(memo.len(), 1);
    });
}

/// A memo whose listener logs every removal and panics for key 0 and key 2.
fn panicky(shards: usize) -> (AsyncMemo<u64, Tracked, ByShard>, common::Log<u64>) {
    let log = log();
    let record = recorder(&log);
    let memo = AsyncMemo::builder()
        .shards(shards)
        .hasher(ByShard)
        .on_removal(move |k: &u64, e: Entry<Tracked>, c| {
            record(k, e, c);
            assert!(*k != 0 && *k != 2, "listener panicked on {k}");
        })
        .build();
    (memo, log)
}

#[test]
fn a_listener_panic_in_invalidate_all_still_completes_and_reports_the_rest_of_a_shard() {
    within_10s(|| {
        let counts = Counts::new();
        let (memo, log) = panicky(1);
        let stored: BTreeSet<Epoch> = (0..6)
            .map(|k| memo.insert(k, counts.value(k)).unwrap().epoch())
            .collect();
        let payload = catch_unwind(AssertUnwindSafe(|| memo.invalidate_all())).unwrap_err();
        assert!(panic_message(&*payload).starts_with("listener panicked on"));
        assert!(memo.is_empty(), "every removal completed");
        let log = take(&log);
        once_each(&log);
        assert_eq!(epochs(&log), stored, "every removal reported");
        assert_eq!(memo.stats().cleared, 6);
        assert_eq!(counts.live(), 0);
    });
}

#[test]
fn a_listener_panic_in_invalidate_all_still_clears_and_reports_every_shard() {
    within_10s(|| {
        let counts = Counts::new();
        let (memo, log) = panicky(4);
        // Key k lives in shard k % 4; the listener panics in shards 0 and 2.
        let stored: BTreeSet<Epoch> = (0..8)
            .map(|k| memo.insert(k, counts.value(k)).unwrap().epoch())
            .collect();
        let payload = catch_unwind(AssertUnwindSafe(|| memo.invalidate_all())).unwrap_err();
        assert!(panic_message(&*payload).starts_with("listener panicked on"));
        assert_eq!(memo.len(), 0, "every shard cleared");
        let log = take(&log);
        once_each(&log);
        assert_eq!(epochs(&log), stored, "every removal reported");
        assert_eq!(counts.live(), 0);
    });
}

#[test]
fn a_listener_panic_in_purge_expired_still_purges_every_shard() {
    within_10s(|| {
        let (clock, log) = (ManualClock::new(), log());
        let record = recorder(&log);
        let memo: AsyncMemo<u64, u64, ByShard> = AsyncMemo::builder()
            .shards(4)
            .hasher(ByShard)
            .time_to_live(secs(1))
            .clock(clock.clone())
            .on_removal(move |k: &u64, e: Entry<u64>, c| {
                record(k, e, c);
                assert!(*k != 0, "listener panicked on {k}");
            })
            .build();
        for k in 0..8 {
            memo.insert(k, k).unwrap();
        }
        clock.advance(secs(1));
        assert!(catch_unwind(AssertUnwindSafe(|| memo.purge_expired())).is_err());
        assert_eq!(memo.len(), 0, "every shard purged");
        assert_eq!(take(&log).len(), 8);
    });
}

#[test]
fn a_listener_panic_on_an_eviction_by_a_commit_still_delivers_to_every_caller() {
    within_10s(|| {
        let log = log();
        let record = recorder(&log);
        let memo: AsyncMemo<u64, u64> = AsyncMemo::builder()
            .shards(1)
            .max_capacity(1)
            .on_removal(move |k: &u64, e: Entry<u64>, c| {
                record(k, e, c);
                panic!("listener panicked on {k}");
            })
            .build();
        let first = memo.insert(1, 1).unwrap().epoch();
        let (tx, rx) = oneshot::channel::<u64>();
        let mut a = pin!(memo.get_or_init(2, || async move { rx.await.unwrap() }));
        let mut b = pin!(memo.get_or_init(2, || async { unreachable!("joins") }));
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        tx.send(2).unwrap();
        // `a` drives the commit, which evicts key 1: the listener's panic reaches `a`.
        assert!(catch_unwind(AssertUnwindSafe(|| poll_once(a.as_mut()))).is_err());
        let b = ready(poll_once(b.as_mut()));
        assert_eq!(
            *b.value(),
            2,
            "the flight was settled before the listener ran"
        );
        let s = memo.stats();
        assert_eq!((s.flights_started, s.flights_committed), (1, 1));
        assert_eq!(s.flights_panicked, 0, "the flight itself did not panic");
        assert_eq!(
            (s.hits, s.joins),
            (0, 1),
            "b received the flight's value, not a hit"
        );
        assert_eq!(memo.get(&2).map(|e| e.epoch()), Some(b.epoch()));
        assert_eq!(take(&log), [(1, first, RemovalCause::Evicted)]);
    });
}

#[test]
fn a_listener_panic_when_get_or_init_finds_an_expired_entry_leaves_the_key_usable() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<u64, u64> = AsyncMemo::builder()
        .time_to_live(secs(1))
        .clock(clock.clone())
        .on_removal(|k: &u64, _, cause| {
            assert!(cause != RemovalCause::Expired, "listener panicked on {k}");
        })
        .build();
    memo.insert(1, 1).unwrap();
    clock.advance(secs(1));
    let caught = catch_unwind(AssertUnwindSafe(
        || now(memo.get_or_init(1, || async { 2 })),
    ));
    assert!(caught.is_err(), "the listener's panic reaches the caller");
    // Another caller must not join a flight nobody will ever drive. (A fresh flight of a ready
    // future completes in one poll; `Pending` here means it joined the orphan, forever.)
    let other = memo.clone();
    let polled =
        within_10s(move || poll_once(pin!(other.get_or_init(1, || async { 3 }))).is_ready());
    assert!(polled, "the key is wedged: its flight was orphaned");
}

#[test]
fn dropping_the_memo_drops_its_values_without_calling_the_listener() {
    let (log, counts) = (log(), Counts::new());
    let memo: AsyncMemo<u64, Tracked> = AsyncMemo::builder().on_removal(recorder(&log)).build();
    for k in 0..10 {
        memo.insert(k, counts.value(k)).unwrap();
    }
    let handle = memo.clone();
    drop(memo);
    assert_eq!(counts.live(), 10, "another handle keeps the memo alive");
    drop(handle);
    assert!(take(&log).is_empty(), "documented: not reported");
    assert_eq!(counts.created(), counts.dropped(), "but dropped");
}

/// A listener that holds a *strong* handle to its own memo (through a slot the test can empty).
#[test]
fn a_listener_holding_a_strong_handle_leaks_everything_a_weak_one_does_not() {
    let counts = Counts::new();
    let slot: Arc<Mutex<Option<AsyncMemo<u64, Tracked>>>> = Arc::default();
    let held = Arc::clone(&slot);
    let memo: AsyncMemo<u64, Tracked> = AsyncMemo::builder()
        .on_removal(move |_: &u64, _, _| {
            let _strong = held.lock().unwrap().clone();
        })
        .build();
    *slot.lock().unwrap() = Some(memo.clone());
    for k in 0..5 {
        memo.insert(k, counts.value(k)).unwrap();
    }
    drop(memo);
    assert_eq!(
        counts.live(),
        5,
        "memo -> listener -> memo: nothing is freed"
    );
    // Breaking the cycle by hand frees everything.
    slot.lock().unwrap().take();
    assert_eq!(counts.created(), counts.dropped());

    // The same with a weak handle: dropping the last handle frees everything.
    let counts = Counts::new();
    let me: Arc<OnceLock<WeakMemo<u64, Tracked>>> = Arc::default();
    let weak = Arc::clone(&me);
    let memo: AsyncMemo<u64, Tracked> = AsyncMemo::builder()
        .on_removal(move |_: &u64, _, _| {
            let _maybe = weak.get().and_then(WeakMemo::upgrade);
        })
        .build();
    me.set(memo.downgrade()).unwrap();
    for k in 0..5 {
        memo.insert(k, counts.value(k)).unwrap();
    }
    drop(memo);
    assert!(me.get().unwrap().upgrade().is_none());
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn a_listener_run_by_get_or_init_over_an_expired_entry_can_join_the_pending_flight() {
    within_10s(|| {
        let clock = ManualClock::new();
        let joined = Arc::new(Mutex::new(None));
        let me: Arc<OnceLock<WeakMemo<u64, u64>>> = Arc::default();
        let (weak, seen) = (Arc::clone(&me), Arc::clone(&joined));
        let memo: AsyncMemo<u64, u64> = AsyncMemo::builder()
            .time_to_live(secs(1))
            .clock(clock.clone())
            .on_removal(move |k: &u64, _, cause| {
                assert_eq!(cause, RemovalCause::Expired);
                let memo = weak.get().and_then(WeakMemo::upgrade).unwrap();
                // The new flight is pending: a same-key call joins it (no self-await panic).
                let pending = poll_once(pin!(memo.get_or_init(*k, || async { 9 }))).is_pending();
                *seen.lock().unwrap() = Some((pending, memo.epoch(k)));
            })
            .build();
        me.set(memo.downgrade()).unwrap();
        let old = memo.insert(1, 1).unwrap().epoch();
        clock.advance(secs(1));
        let (tx, rx) = oneshot::channel();
        let mut call = pin!(memo.get_or_init(1, || async move { rx.await.unwrap() }));
        assert!(poll_once(call.as_mut()).is_pending());
        let flight = memo.epoch(&1).unwrap();
        assert!(flight > old);
        assert_eq!(*joined.lock().unwrap(), Some((true, Some(flight))));
        tx.send(2).unwrap();
        let entry = ready(poll_once(call.as_mut()));
        assert_eq!((entry.epoch(), *entry.value()), (flight, 2));
        assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(flight));
        let s = memo.stats();
        assert_eq!((s.flights_started, s.flights_committed, s.joins), (1, 1, 1));
    });
}

#[test]
fn an_init_panic_in_get_or_init_over_an_expired_entry_still_reports_it_once() {
    within_10s(|| {
        for listener_panics_too in [false, true] {
            let (clock, log) = (ManualClock::new(), log());
            let record = recorder(&log);
            let memo: AsyncMemo<u64, u64> = AsyncMemo::builder()
                .time_to_live(secs(1))
                .clock(clock.clone())
                .on_removal(move |k: &u64, e: Entry<u64>, c| {
                    record(k, e, c);
                    assert!(!listener_panics_too, "listener panicked on {k}");
                })
                .build();
            let old = memo.insert(1, 1).unwrap().epoch();
            clock.advance(secs(1));
            let payload = catch_unwind(AssertUnwindSafe(|| {
                now(memo.get_or_init(1, || -> std::future::Ready<u64> { panic!("init panicked") }))
            }))
            .unwrap_err();
            assert_eq!(
                panic_message(&*payload),
                "init panicked",
                "the first panic wins"
            );
            assert_eq!(take(&log), [(1, old, RemovalCause::Expired)]);
            assert_eq!(memo.epoch(&1), None, "the key is free");
            assert_eq!(*now(memo.get_or_init(1, || async { 3 })).value(), 3);
            let s = memo.stats();
            assert_eq!(
                (s.expired, s.flights_panicked, s.flights_committed),
                (1, 1, 1)
            );
        }
    });
}
