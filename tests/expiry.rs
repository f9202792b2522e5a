//! Expiry (issue 3, crate semantics 11 and 12), with a `ManualClock` only.
//!
//! Pins: time to live counts from commit; time to idle is extended by `get` and `get_or_init`
//! hits but not by `epoch`; per-entry `expire_after` (`Duration::ZERO` expires at once, `None`
//! never); the earliest deadline wins; an expired entry is never returned (a `get_or_init`
//! starts a new flight with a new epoch); it is reported exactly once, as `Expired`, by whichever
//! operation finds it, and is absent for that operation; flights are never expired; an expiry
//! racing an `insert` or a new commit never removes the newer entry; every expired value is
//! dropped exactly once.

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock, RemovalCause};
use common::{Counts, Log, Tracked, counted, log, poll_once, ready, recorder, secs, take};
use futures::channel::oneshot;
use futures::executor::block_on;

type Memo = AsyncMemo<u64, Tracked>;

/// One shard, a manual clock, a time to live, and a listener writing to `log`.
fn ttl_memo(clock: &ManualClock, ttl: Duration, log: &Log<u64>) -> Memo {
    AsyncMemo::builder()
        .shards(1)
        .time_to_live(ttl)
        .clock(clock.clone())
        .on_removal(recorder(log))
        .build()
}

fn tti_memo(clock: &ManualClock, tti: Duration, log: &Log<u64>) -> Memo {
    AsyncMemo::builder()
        .shards(1)
        .time_to_idle(tti)
        .clock(clock.clone())
        .on_removal(recorder(log))
        .build()
}

#[test]
fn time_to_live_expires_exactly_at_the_deadline() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    let first = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(Duration::from_nanos(9_999_999_999));
    assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(first));
    clock.advance(Duration::from_nanos(1));
    assert!(memo.get(&1).is_none(), "expired at exactly ttl");
    assert_eq!(take(&log), [(1, first, RemovalCause::Expired)]);

    // A get_or_init now starts a new flight, with a new epoch.
    let runs = Arc::new(AtomicUsize::new(0));
    let again = block_on(memo.get_or_init(1, counted(&runs, counts.value(2))));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(again.epoch() > first);
    assert_eq!(again.value().id, 2);
    drop(again);
    assert!(take(&log).is_empty());
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn time_to_live_counts_from_commit_not_from_the_start_of_the_flight() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    let (tx, rx) = oneshot::channel::<Tracked>();
    {
        let mut call = pin!(memo.get_or_init(1, || async move { rx.await.unwrap() }));
        assert!(poll_once(call.as_mut()).is_pending());
        clock.advance(secs(100));
        memo.purge_expired();
        assert!(memo.epoch(&1).is_some(), "a flight is never expired");
        tx.send(counts.value(1)).unwrap();
        let entry = ready(poll_once(call.as_mut()));
        assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(entry.epoch()));
    }
    clock.advance(secs(9));
    assert!(
        memo.get(&1).is_some(),
        "ten seconds from commit, not from start"
    );
    clock.advance(secs(1));
    assert!(memo.get(&1).is_none());
    assert_eq!(take(&log).len(), 1);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn time_to_idle_is_extended_by_get_and_get_or_init_hits() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = tti_memo(&clock, secs(10), &log);
    let first = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(9));
    assert!(memo.get(&1).is_some(), "t=9: get is a read");
    clock.advance(secs(9));
    let runs = Arc::new(AtomicUsize::new(0));
    let hit = block_on(memo.get_or_init(1, counted(&runs, counts.value(9))));
    assert_eq!(
        (hit.epoch(), runs.load(Ordering::SeqCst)),
        (first, 0),
        "t=18: a get_or_init hit is a read"
    );
    drop(hit);
    clock.advance(secs(9));
    let hit = block_on(memo.get_or_init_by_ref(&1, counted(&runs, counts.value(9))));
    assert_eq!((hit.epoch(), runs.load(Ordering::SeqCst)), (first, 0));
    drop(hit);
    clock.advance(secs(9));
    assert!(memo.get(&1).is_some(), "t=36");
    assert!(take(&log).is_empty());
    clock.advance(secs(10));
    assert!(memo.get(&1).is_none(), "t=46: ten idle seconds");
    assert_eq!(take(&log), [(1, first, RemovalCause::Expired)]);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn epoch_is_not_a_read_for_time_to_idle() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = tti_memo(&clock, secs(10), &log);
    let first = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(9));
    assert_eq!(memo.epoch(&1), Some(first));
    clock.advance(secs(1));
    assert!(
        memo.get(&1).is_none(),
        "epoch() did not extend the idle time"
    );
    assert_eq!(take(&log), [(1, first, RemovalCause::Expired)]);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn a_read_moves_the_idle_deadline_that_purge_already_queued() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = tti_memo(&clock, secs(10), &log);
    let first = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(8));
    assert!(memo.get(&1).is_some());
    clock.advance(secs(8)); // t=16: the queued deadline (10) passed, the real one is 18
    memo.purge_expired();
    memo.insert(2, counts.value(2)).unwrap(); // amortized purge too
    assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(first), "read at t=16");
    clock.advance(secs(9)); // t=25 < 26
    memo.purge_expired();
    assert_eq!(memo.len(), 2);
    clock.advance(secs(1)); // t=26
    memo.purge_expired();
    let removed = take(&log);
    assert_eq!(removed.len(), 2, "both idle for ten seconds: {removed:?}");
    assert!(removed.contains(&(1, first, RemovalCause::Expired)));
    assert!(memo.is_empty());
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn expire_after_sets_each_entry_its_own_deadline() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    // The value's id is its lifetime in seconds; id 0 never expires.
    let memo: Memo = AsyncMemo::builder()
        .shards(1)
        .expire_after(|_, v: &Tracked| (v.id != 0).then(|| secs(v.id)))
        .clock(clock.clone())
        .on_removal(recorder(&log))
        .build();
    let never = memo.insert(0, counts.value(0)).unwrap().epoch();
    let five = memo.insert(5, counts.value(5)).unwrap().epoch();
    let three = block_on(memo.get_or_init(3, || std::future::ready(counts.value(3)))).epoch();
    clock.advance(secs(3));
    assert!(memo.get(&3).is_none());
    assert!(memo.get(&5).is_some());
    clock.advance(secs(2));
    memo.purge_expired();
    assert_eq!(
        take(&log),
        [
            (3, three, RemovalCause::Expired),
            (5, five, RemovalCause::Expired)
        ]
    );
    clock.advance(secs(1_000_000));
    memo.purge_expired();
    assert_eq!(memo.get(&0).map(|e| e.epoch()), Some(never), "None: never");
    assert!(take(&log).is_empty());
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn expire_after_zero_expires_at_once_yet_callers_receive_the_value() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo: Memo = AsyncMemo::builder()
        .shards(1)
        .expire_after(|_, _: &Tracked| Some(Duration::ZERO))
        .clock(clock.clone())
        .on_removal(recorder(&log))
        .build();

    let inserted = memo.insert(1, counts.value(1)).unwrap();
    assert_eq!(inserted.value().id, 1, "insert returns what it stored");
    assert!(memo.get(&1).is_none(), "Duration::ZERO: expired at once");
    assert!(memo.epoch(&1).is_none());
    assert_eq!(take(&log), [(1, inserted.epoch(), RemovalCause::Expired)]);
    drop(inserted);

    // Two callers of one flight both receive the value; the next call starts a new flight.
    let (tx, rx) = oneshot::channel::<Tracked>();
    let runs = Arc::new(AtomicUsize::new(0));
    let first = {
        let mut a = pin!(memo.get_or_init(2, || async move { rx.await.unwrap() }));
        let mut b = pin!(memo.get_or_init(2, counted(&runs, counts.value(99))));
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        tx.send(counts.value(2)).unwrap();
        let a = ready(poll_once(a.as_mut()));
        let b = ready(poll_once(b.as_mut()));
        assert_eq!((a.value().id, b.value().id), (2, 2));
        assert_eq!(a.epoch(), b.epoch());
        a.epoch()
    };
    assert_eq!(runs.load(Ordering::SeqCst), 0, "b joined a's flight");
    assert!(memo.get(&2).is_none());
    assert_eq!(take(&log), [(2, first, RemovalCause::Expired)]);
    let next = block_on(memo.get_or_init(2, counted(&runs, counts.value(3))));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a new flight");
    assert!(next.epoch() > first);
    drop(next);
    assert_eq!(take(&log).len(), 1);
    assert!(memo.is_empty());
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

/// Builds a memo with every rule given, inserts one entry at t=0, reads it at the given times
/// (`get`), and returns the first whole second at which it is gone.
fn expires_at(
    ttl: Option<u64>,
    tti: Option<u64>,
    own: Option<u64>,
    reads: &[u64],
    horizon: u64,
) -> Option<u64> {
    let clock = ManualClock::new();
    let mut builder = AsyncMemo::<u64, u64>::builder()
        .shards(1)
        .clock(clock.clone());
    if let Some(ttl) = ttl {
        builder = builder.time_to_live(secs(ttl));
    }
    if let Some(tti) = tti {
        builder = builder.time_to_idle(secs(tti));
    }
    if let Some(own) = own {
        builder = builder.expire_after(move |_, _| Some(secs(own)));
    }
    let memo = builder.build();
    memo.insert(1, 1).unwrap();
    for t in 0..=horizon {
        // `epoch` is not a read, so it observes without extending the idle time.
        if memo.epoch(&1).is_none() {
            return Some(t);
        }
        if reads.contains(&t) {
            assert!(memo.get(&1).is_some());
        }
        clock.advance(secs(1));
    }
    None
}

#[test]
fn the_earliest_deadline_wins() {
    assert_eq!(expires_at(Some(10), None, Some(5), &[], 100), Some(5));
    assert_eq!(expires_at(Some(5), None, Some(10), &[], 100), Some(5));
    assert_eq!(expires_at(None, Some(3), Some(100), &[], 200), Some(3));
    // Reads keep the idle deadline ahead, but the time to live still ends it.
    let reads = [2, 4, 6, 8, 10, 12];
    assert_eq!(expires_at(Some(10), Some(3), None, &reads, 100), Some(10));
    assert_eq!(expires_at(None, Some(3), Some(11), &reads, 100), Some(11));
    // The idle deadline comes first once reads stop.
    assert_eq!(
        expires_at(Some(50), Some(3), Some(60), &[2, 4], 100),
        Some(7)
    );
    assert_eq!(expires_at(None, Some(3), None, &[2, 4], 100), Some(7));
    assert_eq!(expires_at(None, None, None, &[], 100), None);
}

/// Every operation that can find an expired entry.
#[derive(Clone, Copy, Debug)]
enum Finder {
    Get,
    Epoch,
    Invalidate,
    Remove,
    InsertOver,
    GetOrInitOver,
    InvalidateAll,
    PurgeExpired,
    InsertOtherKey,
    GetOrInitOtherKey,
}

/// Expires one entry, lets `finder` find it, and checks it was reported exactly once, as
/// `Expired`, by that operation, that it was absent for it, and that its value was dropped.
fn expired_entry_found_by(finder: Finder) {
    use Finder::*;
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    let old = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(10));
    assert_eq!(memo.len(), 1, "counted until purged");
    assert!(take(&log).is_empty(), "nobody looked yet");
    let runs = Arc::new(AtomicUsize::new(0));
    let mut newer = None;
    match finder {
        Get => assert!(memo.get(&1).is_none()),
        Epoch => assert_eq!(memo.epoch(&1), None),
        Invalidate => assert!(!memo.invalidate(&1, old), "expired: absent"),
        Remove => assert!(memo.remove(&1).is_none(), "expired: absent"),
        InsertOver => newer = Some(memo.insert(1, counts.value(2)).unwrap().epoch()),
        GetOrInitOver => {
            let entry = block_on(memo.get_or_init(1, counted(&runs, counts.value(2))));
            assert_eq!(runs.load(Ordering::SeqCst), 1, "a new flight");
            assert!(entry.epoch() > old);
            newer = Some(entry.epoch());
        }
        InvalidateAll => memo.invalidate_all(),
        PurgeExpired => memo.purge_expired(),
        InsertOtherKey => {
            memo.insert(2, counts.value(2)).unwrap();
        }
        GetOrInitOtherKey => {
            block_on(memo.get_or_init(2, counted(&runs, counts.value(2))));
        }
    }
    assert_eq!(
        take(&log),
        [(1, old, RemovalCause::Expired)],
        "{finder:?} reports the expired entry once, as Expired"
    );
    assert_eq!(memo.stats().expired, 1, "{finder:?} counts it");
    // Nobody reports it again.
    memo.purge_expired();
    assert_eq!(memo.epoch(&1), newer);
    assert!(!memo.invalidate(&1, old));
    assert!(take(&log).is_empty(), "{finder:?}: reported twice");
    assert_eq!(memo.stats().expired, 1);
    let expected_live = usize::from(newer.is_some())
        + usize::from(matches!(finder, InsertOtherKey | GetOrInitOtherKey));
    assert_eq!(memo.len(), expected_live);
    assert_eq!(
        counts.live(),
        expected_live,
        "{finder:?}: the value was dropped"
    );
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn expired_entry_found_by_get() {
    expired_entry_found_by(Finder::Get);
}

#[test]
fn expired_entry_found_by_epoch() {
    expired_entry_found_by(Finder::Epoch);
}

#[test]
fn expired_entry_found_by_invalidate() {
    expired_entry_found_by(Finder::Invalidate);
}

#[test]
fn expired_entry_found_by_remove() {
    expired_entry_found_by(Finder::Remove);
}

#[test]
fn expired_entry_found_by_insert_over_it() {
    expired_entry_found_by(Finder::InsertOver);
}

#[test]
fn expired_entry_found_by_get_or_init_over_it() {
    expired_entry_found_by(Finder::GetOrInitOver);
}

#[test]
fn expired_entry_found_by_invalidate_all() {
    expired_entry_found_by(Finder::InvalidateAll);
}

#[test]
fn expired_entry_found_by_purge_expired() {
    expired_entry_found_by(Finder::PurgeExpired);
}

#[test]
fn expired_entry_found_by_an_insert_of_another_key() {
    expired_entry_found_by(Finder::InsertOtherKey);
}

#[test]
fn expired_entry_found_by_a_get_or_init_of_another_key() {
    expired_entry_found_by(Finder::GetOrInitOtherKey);
}

#[test]
fn insert_over_an_expired_entry_survives_the_late_purge() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    let a = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(10));
    let b = memo.insert(1, counts.value(2)).unwrap().epoch();
    memo.purge_expired();
    assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(b));
    assert_eq!(take(&log), [(1, a, RemovalCause::Expired)]);
    clock.advance(secs(9));
    memo.purge_expired();
    assert_eq!(memo.epoch(&1), Some(b), "B has its own ten seconds");
    clock.advance(secs(1));
    memo.purge_expired();
    assert_eq!(take(&log), [(1, b, RemovalCause::Expired)]);
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn the_stale_deadline_of_a_replaced_entry_never_removes_its_successor() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    // Per-entry: value id = lifetime. A lives 10 s; B, stored at t=5, lives 20 s.
    let memo: Memo = AsyncMemo::builder()
        .shards(1)
        .expire_after(|_, v: &Tracked| Some(secs(v.id)))
        .clock(clock.clone())
        .on_removal(recorder(&log))
        .build();
    let a = memo.insert(1, counts.value(10)).unwrap().epoch();
    clock.advance(secs(5));
    assert!(memo.invalidate(&1, a));
    let b = memo.insert(1, counts.value(20)).unwrap().epoch();
    clock.advance(secs(5)); // A's deadline
    memo.purge_expired();
    memo.insert(2, counts.value(100)).unwrap(); // amortized purge
    assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(b));
    clock.advance(secs(15)); // t=25: B's deadline
    memo.purge_expired();
    let removed = take(&log);
    assert_eq!(
        removed,
        [
            (1, a, RemovalCause::Invalidated),
            (1, b, RemovalCause::Expired)
        ]
    );
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn a_flight_started_after_expiry_commits_and_the_late_purge_keeps_it() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    let a = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(10));
    let (tx, rx) = oneshot::channel::<Tracked>();
    let b = {
        let mut call = pin!(memo.get_or_init(1, || async move { rx.await.unwrap() }));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(
            take(&log),
            [(1, a, RemovalCause::Expired)],
            "found by the claim"
        );
        let flight = memo.epoch(&1).expect("the new flight");
        assert!(flight > a);
        memo.purge_expired(); // A's deadline token is due, but names A
        assert_eq!(
            memo.epoch(&1),
            Some(flight),
            "the flight survives the purge"
        );
        tx.send(counts.value(2)).unwrap();
        let b = ready(poll_once(call.as_mut()));
        assert_eq!(b.epoch(), flight);
        b.epoch()
    };
    memo.purge_expired();
    memo.insert(2, counts.value(3)).unwrap();
    assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(b), "B survives");
    assert!(take(&log).is_empty());
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn callers_that_arrive_after_expiry_share_one_new_flight() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    let a = memo.insert(1, counts.value(1)).unwrap().epoch();
    clock.advance(secs(10));
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel::<Tracked>();
    {
        let mut first = pin!(memo.get_or_init(1, || async move { rx.await.unwrap() }));
        let mut second = pin!(memo.get_or_init(1, counted(&runs, counts.value(9))));
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(
            poll_once(second.as_mut()).is_pending(),
            "joined, not served A"
        );
        assert!(memo.get(&1).is_none());
        tx.send(counts.value(2)).unwrap();
        let x = ready(poll_once(second.as_mut()));
        let y = ready(poll_once(first.as_mut()));
        assert_eq!((x.value().id, y.value().id), (2, 2));
        assert_eq!(x.epoch(), y.epoch());
        assert!(x.epoch() > a);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(take(&log), [(1, a, RemovalCause::Expired)]);
    let stats = memo.stats();
    assert_eq!(
        (stats.flights_started, stats.joins, stats.expired),
        (1, 1, 1)
    );
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}

#[test]
fn amortized_purge_releases_expired_values_without_reads() {
    let (clock, log, counts) = (ManualClock::new(), log(), Counts::new());
    let memo = ttl_memo(&clock, secs(10), &log);
    for k in 0..4 {
        memo.insert(k, counts.value(k)).unwrap();
    }
    clock.advance(secs(10));
    assert_eq!(counts.live(), 4, "nothing purged yet");
    memo.insert(100, counts.value(100)).unwrap();
    assert_eq!(
        memo.len(),
        1,
        "one write purged the expired entries of its shard"
    );
    assert_eq!(counts.live(), 1);
    let removed = take(&log);
    assert_eq!(removed.len(), 4);
    assert!(removed.iter().all(|r| r.2 == RemovalCause::Expired));
    drop(memo);
    assert_eq!(counts.created(), counts.dropped());
}
