//! Refresh: recompute while serving, commit only onto the entry refreshed (semantics 15–18 in
//! the crate docs, and "Keeping values fresh").

mod common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock, RemovalCause};
use common::{DropCounted, counted, log, poll_once, ready, recorder, take};
use futures::channel::oneshot;

type Gated<V> = Pin<Box<dyn Future<Output = V> + Send>>;

/// An init future that waits for its gate, then yields `value`.
fn gated<V: Send + 'static>(gate: oneshot::Receiver<()>, value: V) -> impl FnOnce() -> Gated<V> {
    move || {
        Box::pin(async move {
            gate.await.unwrap();
            value
        })
    }
}

#[test]
fn readers_keep_the_entry_while_a_refresh_is_in_flight() {
    let memo = AsyncMemo::new();
    let old = memo.insert("k", 1).unwrap();
    let (open, gate) = oneshot::channel();
    let mut refresh = pin!(memo.refresh("k", gated(gate, 2)));
    assert!(poll_once(refresh.as_mut()).is_pending());

    let refreshing = memo.refreshing("k").expect("a refresh is in flight");
    assert!(
        refreshing > old.epoch(),
        "a refresh has its own, newer epoch"
    );
    assert_eq!(
        memo.epoch("k"),
        Some(old.epoch()),
        "epoch reports the served entry"
    );
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(old.epoch()));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut read = pin!(memo.get_or_init("k", counted(&calls, 9)));
    let hit = ready(poll_once(read.as_mut()));
    assert_eq!(
        (hit.epoch(), *hit.value()),
        (old.epoch(), 1),
        "served at once"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no second computation");

    open.send(()).unwrap();
    let new = ready(poll_once(refresh.as_mut()));
    assert_eq!((new.epoch(), *new.value()), (refreshing, 2));
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(refreshing));
    assert_eq!(memo.refreshing("k"), None);
}

#[test]
fn concurrent_refreshes_share_one_refresh_flight() {
    let memo = AsyncMemo::new();
    let old = memo.insert("k", 1).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (open, gate) = oneshot::channel();
    let first_calls = Arc::clone(&calls);
    let mut first = pin!(memo.refresh("k", move || {
        first_calls.fetch_add(1, Ordering::SeqCst);
        gated(gate, 2)()
    }));
    assert!(poll_once(first.as_mut()).is_pending());
    let mut second = pin!(memo.refresh("k", counted(&calls, 3)));
    let mut third = pin!(memo.refresh_if("k", old.epoch(), |_| counted(&calls, 4)()));
    let mut fourth = pin!(memo.try_refresh("k", || async { Ok::<_, ()>(5) }));
    assert!(poll_once(second.as_mut()).is_pending());
    assert!(poll_once(third.as_mut()).is_pending());
    assert!(poll_once(fourth.as_mut()).is_pending());
    open.send(()).unwrap();
    let a = ready(poll_once(first.as_mut()));
    let b = ready(poll_once(second.as_mut()));
    let c = ready(poll_once(third.as_mut())).expect("joined the refresh of the entry it saw");
    let d = ready(poll_once(fourth.as_mut())).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one init for every refresh caller"
    );
    assert!(
        [b.epoch(), c.epoch(), d.epoch()]
            .iter()
            .all(|&e| e == a.epoch())
    );
    assert_eq!(*d.value(), 2);
}

#[test]
fn a_committed_refresh_reports_the_entry_it_replaced() {
    let removed = log();
    let memo = AsyncMemo::builder().on_removal(recorder(&removed)).build();
    let old = memo.insert("k", 1).unwrap();
    let new = futures::executor::block_on(memo.refresh("k", || async { 2 }));
    assert_eq!(
        take(&removed),
        vec![("k", old.epoch(), RemovalCause::Replaced)]
    );
    assert_eq!(
        memo.get("k").map(|e| (e.epoch(), *e.value())),
        Some((new.epoch(), 2))
    );
    let stats = memo.stats();
    assert_eq!((stats.refreshes_started, stats.refreshes_committed), (1, 1));
}

/// What may happen to the refreshed entry while its refresh is in flight.
const DETACHERS: [&str; 7] = [
    "invalidate",
    "remove",
    "insert",
    "replace",
    "invalidate_all",
    "expire",
    "evict",
];

/// Caffeine #193: a refresh that finished after its entry was invalidated stored its stale
/// value. Here, whatever removes or replaces the entry detaches its refresh, which then never
/// commits; its callers still receive its value.
#[test]
fn caffeine_193_a_refresh_never_commits_after_its_entry_left() {
    for detacher in DETACHERS {
        let clock = ManualClock::new();
        let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
            .max_capacity(1)
            .shards(1)
            .time_to_live(Duration::from_secs(10))
            .clock(clock.clone())
            .build();
        let old = memo.insert("k", 1).unwrap();
        let (open, gate) = oneshot::channel();
        let mut refresh = pin!(memo.refresh("k", gated(gate, 2)));
        assert!(poll_once(refresh.as_mut()).is_pending());
        let refreshing = memo.refreshing("k").unwrap();
        match detacher {
            "invalidate" => assert!(memo.invalidate("k", old.epoch())),
            "remove" => assert!(memo.remove("k").is_some()),
            "insert" => drop(memo.insert("k", 7).unwrap()),
            "replace" => drop(memo.replace("k", old.epoch(), 7).unwrap()),
            "invalidate_all" => memo.invalidate_all(),
            "expire" => clock.advance(Duration::from_secs(10)),
            "evict" => drop(memo.insert("other", 7).unwrap()),
            _ => unreachable!(),
        }
        let after = memo.epoch("k");
        assert_eq!(memo.refreshing("k"), None, "{detacher}: detached");
        open.send(()).unwrap();
        let value = ready(poll_once(refresh.as_mut()));
        assert_eq!(
            (value.epoch(), *value.value()),
            (refreshing, 2),
            "{detacher}"
        );
        assert_eq!(
            memo.epoch("k"),
            after,
            "{detacher}: the refresh stored nothing"
        );
        assert_ne!(memo.epoch("k"), Some(refreshing), "{detacher}");
        assert_eq!(memo.stats().refreshes_detached, 1, "{detacher}");
    }
}

#[test]
fn invalidating_the_refresh_detaches_only_the_refresh() {
    let memo = AsyncMemo::new();
    let old = memo.insert("k", 1).unwrap();
    let (open, gate) = oneshot::channel();
    let mut stale = pin!(memo.refresh("k", gated(gate, 2)));
    assert!(poll_once(stale.as_mut()).is_pending());
    let refreshing = memo.refreshing("k").unwrap();
    assert!(
        memo.invalidate("k", refreshing),
        "the refresh's epoch names the refresh"
    );
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(old.epoch()),
        "the entry stays"
    );
    assert!(!memo.invalidate("k", refreshing), "already detached");

    // The next refresh starts anew: it never joins the detached one (TanStack Query #471).
    let calls = Arc::new(AtomicUsize::new(0));
    let fresh = futures::executor::block_on(memo.refresh("k", counted(&calls, 3)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(fresh.epoch() > refreshing);
    open.send(()).unwrap();
    assert_eq!(
        *ready(poll_once(stale.as_mut())).value(),
        2,
        "its caller still gets it"
    );
    assert_eq!(
        memo.get("k").map(|e| *e.value()),
        Some(3),
        "the detached one stored nothing"
    );
}

#[test]
fn a_failed_refresh_leaves_the_entry_and_shares_one_error() {
    let memo = AsyncMemo::new();
    let old = memo.insert("k", 1).unwrap();
    let (open, gate) = oneshot::channel::<()>();
    let mut first = pin!(memo.try_refresh("k", move || async move {
        gate.await.unwrap();
        Err::<u32, _>("down")
    }));
    let mut second = pin!(memo.try_refresh("k", || async { Ok::<_, &str>(9) }));
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    open.send(()).unwrap();
    let a = ready(poll_once(first.as_mut())).unwrap_err();
    let b = ready(poll_once(second.as_mut())).unwrap_err();
    assert!(Arc::ptr_eq(&a, &b), "one shared Arc<E>");
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(old.epoch()),
        "still served"
    );
    assert_eq!(memo.refreshing("k"), None);
    assert_eq!(memo.stats().refreshes_failed, 1);
    let next = futures::executor::block_on(memo.refresh("k", || async { 2 }));
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(next.epoch()),
        "the next starts fresh"
    );
}

#[test]
fn a_panicking_refresh_leaves_the_entry_served() {
    let memo = AsyncMemo::new();
    let old = memo.insert("k", 1).unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(memo.refresh("k", || async { panic!("refresh failed") }))
    }));
    assert!(
        panicked.is_err(),
        "the panic reaches the caller that polled it"
    );
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(old.epoch()));
    assert_eq!(memo.refreshing("k"), None);
    let next = futures::executor::block_on(memo.refresh("k", || async { 2 }));
    assert!(next.epoch() > old.epoch());
}

#[test]
fn dropping_every_refresh_caller_drops_the_refresh_and_keeps_the_entry() {
    let memo = AsyncMemo::new();
    let old = memo.insert("k", 1).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let future = DropCounted {
        future: futures::future::pending::<u32>(),
        drops: Arc::clone(&drops),
    };
    let mut first = Box::pin(memo.refresh("k", move || future));
    let mut second = Box::pin(memo.refresh("k", || async { unreachable!() }));
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    drop(first);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "a caller still waits");
    assert!(memo.refreshing("k").is_some());
    drop(second);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the last caller dropped the refresh"
    );
    assert_eq!(memo.refreshing("k"), None);
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(old.epoch()),
        "untouched"
    );
    assert_eq!(memo.stats().flights_abandoned, 1);
}

/// Semantics 18: an expired entry is never served, and a read after it expired starts a new
/// flight instead of joining its refresh (Guava joins, and hangs on a stuck reload).
#[test]
fn a_read_after_expiry_never_joins_the_expired_entrys_refresh() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    memo.insert("k", 1).unwrap();
    let mut stuck = pin!(memo.refresh("k", futures::future::pending));
    assert!(poll_once(stuck.as_mut()).is_pending());
    clock.advance(Duration::from_secs(10));
    assert!(
        memo.get("k").is_none(),
        "expired: never served, refresh or not"
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut read = pin!(memo.get_or_init("k", counted(&calls, 2)));
    assert_eq!(
        *ready(poll_once(read.as_mut())).value(),
        2,
        "a new flight, not the stuck one"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_refreshed_entry_lives_from_its_commit_and_a_refresh_is_not_a_read() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_live(Duration::from_secs(10))
        .time_to_idle(Duration::from_secs(4))
        .clock(clock.clone())
        .build();
    memo.insert("k", 1).unwrap();
    clock.advance(Duration::from_secs(3));
    let (open, gate) = oneshot::channel();
    let mut refresh = pin!(memo.refresh("k", gated(gate, 2)));
    assert!(poll_once(refresh.as_mut()).is_pending());
    clock.advance(Duration::from_secs(1));
    // The refresh did not count as a read: idle since t=0, the entry expired at t=4.
    assert!(memo.get("k").is_none());
    assert_eq!(
        memo.refreshing("k"),
        None,
        "its expiry detached the refresh"
    );
    open.send(()).unwrap();
    ready(poll_once(refresh.as_mut()));
    assert!(memo.get("k").is_none(), "a detached refresh stores nothing");

    let fresh = futures::executor::block_on(memo.refresh("k", || async { 3 }));
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(fresh.epoch()),
        "lives from its commit"
    );
}

#[test]
fn a_refresh_in_flight_is_not_an_entry() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder().max_capacity(1).shards(1).build();
    memo.insert("k", 1).unwrap();
    let mut refresh = pin!(memo.refresh("k", futures::future::pending));
    assert!(poll_once(refresh.as_mut()).is_pending());
    assert_eq!(memo.len(), 1, "the refresh is not counted");
    assert!(memo.get("k").is_some(), "nor does it crowd the entry out");
}

#[test]
fn refresh_of_a_key_without_entry_is_get_or_init() {
    let memo = AsyncMemo::new();
    let (open, gate) = oneshot::channel();
    let mut load = pin!(memo.get_or_init("k", gated(gate, 1)));
    assert!(poll_once(load.as_mut()).is_pending());
    let mut refresh = pin!(memo.refresh("k", || async { unreachable!() }));
    assert!(
        poll_once(refresh.as_mut()).is_pending(),
        "joins the key's flight"
    );
    open.send(()).unwrap();
    let a = ready(poll_once(load.as_mut()));
    let b = ready(poll_once(refresh.as_mut()));
    assert_eq!(a.epoch(), b.epoch());
    let empty: AsyncMemo<&str, u32> = AsyncMemo::new();
    let made = futures::executor::block_on(empty.refresh("x", || async { 5 }));
    assert_eq!(empty.get("x").map(|e| e.epoch()), Some(made.epoch()));
}

#[test]
fn refresh_if_refreshes_only_the_generation_it_saw() {
    let memo = AsyncMemo::new();
    let seen = memo.insert("jwks", 1).unwrap();
    let next =
        futures::executor::block_on(
            memo.refresh_if("jwks", seen.epoch(), |old| async move { old.value() + 1 }),
        );
    let next = next.expect("current");
    assert_eq!(*next.value(), 2, "init received the entry it refreshes");
    let calls = Arc::new(AtomicUsize::new(0));
    let late = futures::executor::block_on(
        memo.refresh_if("jwks", seen.epoch(), |_| counted(&calls, 9)()),
    );
    assert!(late.is_none(), "someone refreshed it already: read again");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(
        futures::executor::block_on(memo.refresh_if("none", seen.epoch(), |_| async { 0 }))
            .is_none()
    );
}

/// "Keeping values fresh": the listener sees the refreshed entry as `Replaced` even when the refresh
/// returned the same resource, and can tell by reading the memo, which already holds the new one.
#[test]
fn a_listener_can_tell_a_refresh_that_returned_the_same_resource() {
    let shared = Arc::new("connection");
    let kept = Arc::new(AtomicUsize::new(0));
    let memo: AsyncMemo<&str, Arc<&str>> = {
        let me = Arc::new(std::sync::OnceLock::<async_memo::WeakMemo<&str, Arc<&str>>>::new());
        let weak = Arc::clone(&me);
        let kept = Arc::clone(&kept);
        let memo = AsyncMemo::builder()
            .on_removal(
                move |key: &&str, entry: async_memo::Entry<Arc<&str>>, cause| {
                    assert_eq!(cause, RemovalCause::Replaced);
                    let memo = weak.get().and_then(|w| w.upgrade()).unwrap();
                    let now = memo.get(key).unwrap();
                    if Arc::ptr_eq(now.value(), entry.value()) {
                        kept.fetch_add(1, Ordering::SeqCst); // same resource: do not close it
                    }
                },
            )
            .build();
        me.set(memo.downgrade()).unwrap();
        memo
    };
    memo.insert("c", Arc::clone(&shared)).unwrap();
    let again = Arc::clone(&shared);
    futures::executor::block_on(memo.refresh("c", move || async move { again }));
    assert_eq!(kept.load(Ordering::SeqCst), 1);
}

/// A key whose `Hash` runs a hook once the first `skip` hashes armed by [`arm_after`] have
/// passed: user code that the memo runs outside its locks, used to commit a refresh at an exact
/// point of another operation.
#[derive(Clone, PartialEq, Eq)]
struct HookedKey(u8);

type Hook = (usize, Box<dyn FnOnce()>);

thread_local! {
    static HOOK: std::cell::RefCell<Option<Hook>> = const { std::cell::RefCell::new(None) };
}

/// Runs `hook` at the `skip + 1`-th hash of a `HookedKey` on this thread from now on.
fn arm_after(skip: usize, hook: impl FnOnce() + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some((skip, Box::new(hook))));
}

impl std::hash::Hash for HookedKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let due = HOOK.with(|h| {
            let mut h = h.borrow_mut();
            match h.as_mut() {
                Some((0, _)) => h.take().map(|(_, hook)| hook),
                Some((skip, _)) => {
                    *skip -= 1;
                    None
                }
                None => None,
            }
        });
        if let Some(hook) = due {
            hook(); // taken out first: the hook may hash keys itself
        }
        self.0.hash(state);
    }
}

/// Regression (found by the loom model `invalidating_a_committing_refresh`): `invalidate(k, r)`
/// with `r` the epoch `refreshing(k)` reported looked for `r` in two critical sections, first as
/// the key's epoch, then as its refresh's. A refresh that committed between the two escaped both
/// (it was no longer beside the entry, and its epoch was not the key's yet): `invalidate`
/// returned `false` and the refresh's value, possibly computed before the change that prompted the
/// invalidation, stayed served (TanStack Query #471). `Hash` of the key ran between the two looks;
/// the hook commits the refresh there. Now both looks are one critical section.
#[test]
fn refresh_invalidation_race_a_refresh_committing_during_invalidate_is_invalidated() {
    let memo: AsyncMemo<HookedKey, u32> = AsyncMemo::new();
    let old = memo.insert(HookedKey(0), 1).unwrap();
    let (open, gate) = oneshot::channel();
    let refresher = memo.clone();
    let refresh = Arc::new(std::sync::Mutex::new(Box::pin(async move {
        refresher.refresh(HookedKey(0), gated(gate, 2)).await
    })));
    assert!(poll_once(refresh.lock().unwrap().as_mut()).is_pending());
    let refreshing = memo.refreshing(&HookedKey(0)).expect("in flight");
    let committed = Arc::new(AtomicUsize::new(0));
    {
        let (refresh, committed) = (Arc::clone(&refresh), Arc::clone(&committed));
        // invalidate hashes the key for its first look; the hook runs at any later hash.
        arm_after(1, move || {
            open.send(()).unwrap();
            let entry = ready(poll_once(refresh.lock().unwrap().as_mut()));
            assert_eq!(entry.epoch(), refreshing);
            committed.fetch_add(1, Ordering::SeqCst);
        });
    }
    let invalidated = memo.invalidate(&HookedKey(0), refreshing);
    HOOK.with(|h| h.borrow_mut().take());
    let now = memo.get(&HookedKey(0)).map(|e| e.epoch());
    assert!(
        invalidated,
        "the refresh, or the entry it committed, was there"
    );
    assert_ne!(now, Some(refreshing), "an invalidated refresh is served");
    if committed.load(Ordering::SeqCst) == 0 {
        assert_eq!(now, Some(old.epoch()), "detached: the entry stays");
    }
}

/// A refresh whose value is heavier than `max_capacity` is not stored (semantics 14) and, unlike
/// a plain commit, does not leave the key empty: the entry it refreshed stays served.
#[test]
fn a_refresh_too_heavy_to_store_leaves_its_entry() {
    let memo: AsyncMemo<&str, Vec<u8>> = AsyncMemo::builder()
        .max_capacity(10)
        .weigher(|_, v: &Vec<u8>| v.len() as u32)
        .build();
    let old = memo.insert("k", vec![0; 5]).unwrap();
    let heavy = futures::executor::block_on(memo.refresh("k", || async { vec![0; 20] }));
    assert_eq!(heavy.value().len(), 20, "its callers still receive it");
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(old.epoch()),
        "the entry stays"
    );
    assert_eq!(memo.refreshing("k"), None);
    let stats = memo.stats();
    assert_eq!((stats.refreshes_detached, stats.evicted), (1, 0));
}
