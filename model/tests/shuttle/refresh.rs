//! The refresh scenarios (issue 10): refreshes racing invalidations and inserts, eviction and
//! expiry, and automatic refreshes on spawned tasks. Values are `u64`: a `refresh_if`'s value
//! names the generation it refreshed (`base << 8 | REFRESHED`), so a check can tell which entry
//! a stored value was committed onto.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry, Epoch, ManualClock, RemovalCause};
use async_memo_model::poll_once_and_drop;
use shuttle::future::{block_on, spawn};

use super::{check, yield_once};

type Memo64 = AsyncMemo<u8, u64>;

/// The tag of a value computed by `refresh_if` from the entry it refreshes.
const REFRESHED: u64 = 2;

fn refreshed_from(base: Epoch) -> u64 {
    base.get() << 8 | REFRESHED
}

/// The generation a `refresh_if` value was computed from.
fn base_of(value: u64) -> Option<u64> {
    (value & 0xff == REFRESHED).then_some(value >> 8)
}

type Reports = Arc<Mutex<Vec<(u8, Epoch, u64, RemovalCause)>>>;

/// A memo whose listener records (key, epoch, value, cause) of every removal.
fn recording(builder: async_memo::MemoBuilder<u8, u64>) -> (Memo64, Reports) {
    let reports: Reports = Arc::default();
    let memo = {
        let reports = Arc::clone(&reports);
        builder
            .on_removal(move |key: &u8, entry: Entry<u64>, cause| {
                let report = (*key, entry.epoch(), *entry.value(), cause);
                reports.lock().unwrap().push(report);
            })
            .build()
    };
    (memo, reports)
}

/// The checks every refresh scenario ends with, once every task is done:
///
/// - every entry is reported at most once, and none still held was reported;
/// - a stored value computed by `refresh_if` from the entry B was committed onto B: B left as
///   `Replaced` (never after B was invalidated, expired or evicted: Caffeine #193);
/// - an epoch in `killed` (a successful `invalidate`, of an entry or of a refresh) is never held
///   at the end, and a killed refresh was never stored;
/// - no refresh is left in flight: every one committed, was detached, failed or was abandoned.
fn check_refresh_reports(memo: &Memo64, reports: &Reports, keys: u8, killed: &HashSet<Epoch>) {
    // Read first: a read purges an expired entry, which is reported.
    let mut held = Vec::new();
    for key in 0..keys {
        assert_eq!(
            memo.refreshing(&key),
            None,
            "key {key}: a refresh left in flight"
        );
        held.extend(memo.get(&key));
    }
    let reports = reports.lock().unwrap().clone();
    let mut cause = HashMap::new();
    for &(_, epoch, _, c) in &reports {
        assert!(
            cause.insert(epoch.get(), c).is_none(),
            "{epoch:?} reported twice"
        );
    }
    for now in &held {
        assert!(
            !cause.contains_key(&now.epoch().get()),
            "{now:?} reported, yet held"
        );
        assert!(
            !killed.contains(&now.epoch()),
            "{now:?} was invalidated, yet held"
        );
    }
    let stored = reports.iter().map(|r| (r.1, r.2));
    for (epoch, value) in stored.chain(held.iter().map(|e| (e.epoch(), *e.value()))) {
        if killed.contains(&epoch) {
            assert_eq!(
                cause.get(&epoch.get()),
                Some(&RemovalCause::Invalidated),
                "{epoch:?} was stored after its invalidation (an invalidated refresh committed?)"
            );
        }
        if let Some(base) = base_of(value) {
            assert_eq!(
                cause.get(&base),
                Some(&RemovalCause::Replaced),
                "{epoch:?} was refreshed from {base}, which did not leave by that refresh"
            );
        }
    }
}

/// Awaits every task: callers that got the same epoch got the same value (single-flight).
async fn one_value_per_epoch(tasks: Vec<shuttle::future::JoinHandle<Option<Entry<u64>>>>) {
    let mut seen: HashMap<Epoch, u64> = HashMap::new();
    for task in tasks {
        if let Some(entry) = task.await.unwrap() {
            let value = *entry.value();
            assert_eq!(*seen.entry(entry.epoch()).or_insert(value), value);
        }
    }
}

/// After the run, `key` holds its last insert `last`, or a value committed after it by a
/// refresh that started after it — never the value of a refresh the insert detached (which
/// started before the insert: its epoch is lower). The value tells which: an insert's is
/// `INSERTED` or `INSERTED + 1`, a `refresh`'s 3, a `try_refresh`'s 4, and a `refresh_if`'s
/// names the generation it refreshed.
fn holds_the_insert_or_a_later_refresh(memo: &Memo64, key: u8, last: &Entry<u64>) {
    let held = memo
        .get(&key)
        .unwrap_or_else(|| panic!("key {key}: the last insert or a refresh of it"));
    let value = *held.value();
    if held.epoch() == last.epoch() {
        assert_eq!(value, *last.value(), "key {key}: the insert's value");
        return;
    }
    assert!(
        matches!(value, 3 | 4) || base_of(value).is_some(),
        "key {key} holds {held:?}, neither the last insert {last:?} nor a refresh's value"
    );
    assert!(
        held.epoch() > last.epoch(),
        "key {key} holds {held:?}, committed by a refresh that started before the insert \
         {last:?} (the insert detached it: it must never commit)"
    );
    if let Some(base) = base_of(value) {
        assert!(
            base >= last.epoch().get(),
            "key {key} holds {held:?}, a refresh of generation {base}, older than the insert \
             {last:?}"
        );
    }
}

/// The value of the scenarios' inserts during a run (`INSERTED + 1` for an insert over a live
/// refresh); refreshes commit 3, 4 or a `refresh_if` value (see [`base_of`]).
const INSERTED: u64 = 5;

/// Refreshes of two keys — `refresh_if` of the generation the refresher saw, a `refresh` dropped
/// after its first poll (its future woke itself: futures-rs #2706), a `try_refresh` that fails
/// for key 0 — race a task that inserts over each key's refresh in flight (it waits a few
/// scheduling points for one to start), then, for key 0, invalidates its refresh
/// (`invalidate(k, refreshing(k))`), then its entry, then inserts again. Every refresh commits
/// only onto the entry it refreshes (refresh semantics 2–6 and 10): see
/// [`check_refresh_reports`]; an insert detaches the refresh in flight, checked by value: see
/// [`holds_the_insert_or_a_later_refresh`] (key 1 ends with the insert over a live refresh).
/// A `refresh_if` gets a value computed from the generation it saw, or one of a refresh of that
/// same generation, or `None`.
#[test]
fn refreshes_race_invalidations_and_inserts() {
    check(|| {
        block_on(async {
            let (memo, reports) = recording(AsyncMemo::builder());
            for key in 0..2u8 {
                memo.insert(key, 1).unwrap();
            }
            let mut tasks = Vec::new();
            for key in 0..2u8 {
                let m = memo.clone();
                tasks.push(spawn(async move {
                    let seen = m.epoch(&key)?;
                    let refresh =
                        m.refresh_if(key, seen, |old| yield_once(refreshed_from(old.epoch())));
                    let got = refresh.await?;
                    if let Some(base) = base_of(*got.value()) {
                        assert_eq!(base, seen.get(), "refresh_if joined another generation");
                    }
                    Some(got)
                }));
                let m = memo.clone();
                tasks.push(spawn(async move {
                    let _ = poll_once_and_drop(m.refresh(key, || yield_once(3)));
                    None
                }));
                let m = memo.clone();
                tasks.push(spawn(async move {
                    let fail = key == 0;
                    let got = m
                        .try_refresh(key, move || yield_once(if fail { Err(()) } else { Ok(4) }))
                        .await;
                    got.ok()
                }));
            }
            let disturber = {
                let memo = memo.clone();
                spawn(async move {
                    let (mut killed, mut last) = (HashSet::new(), HashMap::new());
                    for key in 0..2u8 {
                        // Over a live refresh, if one starts within a few scheduling points.
                        for _ in 0..3 {
                            if memo.refreshing(&key).is_some() {
                                break;
                            }
                            shuttle::future::yield_now().await;
                        }
                        last.insert(key, memo.insert(key, INSERTED + 1).unwrap());
                    }
                    // Key 0 again: its refresh only (the entry stays), then the entry.
                    let refresh = memo.refreshing(&0);
                    killed.extend(refresh.filter(|&r| memo.invalidate(&0, r)));
                    shuttle::future::yield_now().await;
                    let epoch = memo.epoch(&0);
                    killed.extend(epoch.filter(|&e| memo.invalidate(&0, e)));
                    shuttle::future::yield_now().await;
                    last.insert(0, memo.insert(0, INSERTED).unwrap());
                    (killed, last)
                })
            };
            one_value_per_epoch(tasks).await;
            let (killed, last) = disturber.await.unwrap();
            check_refresh_reports(&memo, &reports, 2, &killed);
            for key in 0..2u8 {
                holds_the_insert_or_a_later_refresh(&memo, key, &last[&key]);
            }
        });
    });
}

/// Refreshes in a bounded, expiring memo (capacity 2, one shard, time to live 10 s on a manual
/// clock): three keys are refreshed (`refresh_if`) and read while a ticker advances the clock and
/// inserts. A refresh whose entry expired or was evicted never commits (refresh semantics 3, 7
/// and 8): see [`check_refresh_reports`]. The bound holds, and after every deadline passes and
/// the memo is purged nothing is left.
#[test]
fn refreshes_race_eviction_and_expiry() {
    check(|| {
        block_on(async {
            let clock = ManualClock::new();
            let (memo, reports) = recording(
                AsyncMemo::builder()
                    .max_capacity(2)
                    .shards(1)
                    .time_to_live(Duration::from_secs(10))
                    .clock(clock.clone()),
            );
            for key in 0..2u8 {
                memo.insert(key, 1).unwrap();
            }
            let mut tasks = Vec::new();
            for key in 0..3u8 {
                let m = memo.clone();
                tasks.push(spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        let Some(seen) = m.epoch(&key) else {
                            got.push(m.get_or_init(key, || yield_once(1)).await);
                            continue;
                        };
                        let refresh =
                            m.refresh_if(key, seen, |old| yield_once(refreshed_from(old.epoch())));
                        got.extend(refresh.await);
                    }
                    got
                }));
            }
            let ticker = {
                let (memo, clock) = (memo.clone(), clock.clone());
                spawn(async move {
                    clock.advance(Duration::from_secs(6));
                    shuttle::future::yield_now().await;
                    memo.insert(2, 5).unwrap();
                    clock.advance(Duration::from_secs(6));
                })
            };
            for task in tasks {
                for entry in task.await.unwrap() {
                    let value = *entry.value();
                    assert!(value == 1 || value == 5 || base_of(value).is_some());
                }
            }
            ticker.await.unwrap();
            assert!(memo.len() <= 2, "the bound holds");
            check_refresh_reports(&memo, &reports, 3, &HashSet::new());
            clock.advance(Duration::from_secs(60));
            memo.purge_expired();
            assert_eq!(memo.len(), 0, "every entry expired and was purged");
        });
    });
}

/// Automatic refresh (`refresh_after`, with a spawner that spawns a shuttle task): stale reads of
/// two keys each start at most one refresh and return at once, while manual refreshes
/// (`refresh_if` of the generation seen) join or race them and a task detaches refreshes
/// (`invalidate(k, refreshing(k))`), invalidates entries and inserts (refresh semantics 1–4, 6,
/// 10 and 11). Key 1's automatic refreshes fail. Every spawned task ends; see
/// [`check_refresh_reports`].
#[test]
fn automatic_refreshes_race_manual_refreshes_and_invalidations() {
    check(|| {
        block_on(async {
            type Handles = Arc<Mutex<Vec<shuttle::future::JoinHandle<()>>>>;
            let clock = ManualClock::new();
            let handles: Handles = Arc::default();
            let (memo, reports) = recording(
                AsyncMemo::builder()
                    .refresh_after(Duration::from_secs(10), {
                        let handles = Arc::clone(&handles);
                        move |task| {
                            // Spawn first: spawning is a scheduling point, and shuttle runs
                            // every task on one thread, so a std lock held across it deadlocks.
                            let handle = spawn(task);
                            handles.lock().unwrap().push(handle);
                        }
                    })
                    .clock(clock.clone()),
            );
            for key in 0..2u8 {
                memo.insert(key, 1).unwrap();
            }
            clock.advance(Duration::from_secs(10)); // every entry is due
            type Reads = Arc<Mutex<Vec<(u8, u64, Entry<u64>)>>>;
            let reads: Reads = Arc::default();
            let mut tasks = Vec::new();
            for key in 0..2u8 {
                for reader in 0..2u64 {
                    let own = 10 + u64::from(key) * 2 + reader;
                    let (m, reads) = (memo.clone(), Arc::clone(&reads));
                    tasks.push(spawn(async move {
                        let read = if key == 1 {
                            m.get_or_try_init(key, || yield_once(Err::<u64, ()>(())))
                                .await
                                .ok()
                        } else {
                            Some(m.get_or_init(key, || yield_once(own)).await)
                        };
                        if let Some(read) = &read {
                            reads.lock().unwrap().push((key, own, read.clone()));
                        }
                        read
                    }));
                }
                let m = memo.clone();
                tasks.push(spawn(async move {
                    let seen = m.epoch(&key)?;
                    m.refresh_if(key, seen, |old| yield_once(refreshed_from(old.epoch())))
                        .await
                }));
            }
            let disturber = {
                let memo = memo.clone();
                spawn(async move {
                    let mut killed = HashSet::new();
                    let refresh = memo.refreshing(&0);
                    let detached = refresh.filter(|&r| memo.invalidate(&0, r));
                    killed.extend(detached);
                    shuttle::future::yield_now().await;
                    let epoch = memo.epoch(&1);
                    killed.extend(epoch.filter(|&e| memo.invalidate(&1, e)));
                    shuttle::future::yield_now().await;
                    memo.insert(1, 5).unwrap();
                    (killed, detached.is_some())
                })
            };
            one_value_per_epoch(tasks).await;
            let (killed, detached) = disturber.await.unwrap();
            loop {
                let spawned: Vec<_> = std::mem::take(&mut *handles.lock().unwrap());
                if spawned.is_empty() {
                    break;
                }
                for handle in spawned {
                    handle.await.unwrap();
                }
            }
            // A stale read is served at once: it returns its own init's value only if it found
            // the key empty (the disturber invalidated what a refresh had committed), never the
            // value of the refresh it started.
            for (key, own, read) in reads.lock().unwrap().iter() {
                if read.value() == own {
                    let reports = reports.lock().unwrap();
                    assert!(
                        reports.iter().any(|r| r.0 == *key
                            && r.1 < read.epoch()
                            && r.3 == RemovalCause::Invalidated),
                        "a stale read of key {key} waited for its refresh: {read:?}, {reports:?}"
                    );
                }
            }
            check_refresh_reports(&memo, &reports, 2, &killed);
            let stats = memo.stats();
            // One automatic refresh per entry and interval (the clock stands still; a refreshed
            // or inserted entry is not due), and the two manual ones — plus one if key 0's
            // refresh was detached by its epoch: that is no failure, so it holds nothing off and
            // the next stale read of key 0 starts another (semantics 20).
            assert!(
                stats.refreshes_started <= 4 + u64::from(detached),
                "{stats:?}"
            );
        });
    });
}
