//! loom models of the flight protocol: every interleaving of two or three callers of one key and
//! one `invalidate`, `remove` or `insert`, and of a refresh (a flight attached to the entry it
//! refreshes) against the invalidation of that entry or of the refresh, an `insert`, an eviction
//! and a co-refresher dropped mid-flight, up to `LOOM_MAX_PREEMPTIONS` preemptions.
//!
//! Built with `RUSTFLAGS="--cfg loom"`, which swaps the memo's locks and atomics for loom's
//! (`src/sync.rs`). Futures are driven by `loom::future::block_on`, whose waker is a loom
//! notification: a caller left waiting with nobody to wake it is reported as a deadlock, and a
//! value or flight kept alive by a cycle as a leak. Callers that are dropped mid-flight are polled
//! once by hand and dropped.
//!
//! Each model names the guarantees of the crate's front page it checks, and the seeded bugs
//! (`.ci/mutants`) it must catch.
#![cfg(loom)]

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Poll, Waker};

use async_memo::{AsyncMemo, Entry, RemovalCause};
use async_memo_model::poll_once_and_drop;
use loom::future::block_on;
use loom::sync::Mutex;
use loom::thread;

type Memo = AsyncMemo<u8, u32>;

/// A future that wakes itself while it is being polled, returns `Pending` once, then `value`:
/// the shape of futures-rs #2706, and a flight that is parked (`Idle`) between two polls.
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

const INIT_PANIC: &str = "model: the init future panicked";

/// Like [`yield_once`], but panics on its second poll.
fn yield_then_panic() -> impl Future<Output = u32> {
    let mut yielded = false;
    poll_fn(move |cx| {
        if yielded {
            panic!("{INIT_PANIC}");
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// A one-shot event another thread opens: the init future waits on it, parked in its flight.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);

impl Gate {
    fn open(&self) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wait<T>(self, value: T) -> impl Future<Output = T> {
        let mut value = Some(value);
        poll_fn(move |cx| {
            let mut state = self.0.lock().unwrap();
            if state.0 {
                Poll::Ready(value.take().expect("polled after completion"))
            } else {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Silences the panics the models provoke on purpose (every other panic is still printed).
fn quiet_model_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("MODEL_LOUD").is_some() {
            return;
        }
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s == INIT_PANIC || s.starts_with("async-memo: the init future"));
            if !ours {
                default(info);
            }
        }));
    });
}

/// Single-flight (guarantee 1): three concurrent callers, one init, one value, one epoch, whoever
/// polls the parked future.
#[test]
fn single_flight_three_callers() {
    loom::model(|| {
        let memo = Memo::new();
        let inits = Arc::new(AtomicUsize::new(0));
        let call = {
            let memo = memo.clone();
            let inits = Arc::clone(&inits);
            move || {
                block_on(memo.get_or_init(1, || {
                    inits.fetch_add(1, SeqCst);
                    yield_once(7)
                }))
            }
        };
        let a = thread::spawn(call.clone());
        let b = thread::spawn(call.clone());
        let c = call();
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(inits.load(SeqCst), 1, "one init for concurrent callers");
        for entry in [&a, &b, &c] {
            assert_eq!(*entry.value(), 7);
            assert_eq!(entry.epoch(), c.epoch(), "every caller gets the same epoch");
        }
        assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(c.epoch()));
    });
}

/// Compare-and-delete and no resurrection against `insert` (guarantees 3 and 4): a flight runs
/// while another thread observes the key's epoch, inserts a new value and then invalidates the
/// epoch it observed. The inserted entry survives both the late invalidation and the flight's
/// completion.
///
/// Catches `commit_without_epoch_check` (the detached flight overwrites the insert) and
/// `unconditional_late_delete` (the stale invalidation deletes the insert).
#[test]
fn insert_survives_stale_invalidate_and_detached_flight() {
    loom::model(|| {
        let memo = Memo::new();
        let gate = Gate::default();
        let caller = {
            let (memo, gate) = (memo.clone(), gate.clone());
            thread::spawn(move || block_on(memo.get_or_init(1, || gate.wait(1))))
        };
        let observed = memo.epoch(&1);
        let inserted = memo.insert(1, 2).unwrap().epoch();
        if let Some(observed) = observed {
            assert!(
                !memo.invalidate(&1, observed),
                "a stale epoch removes nothing"
            );
        }
        gate.open();
        let got = caller.join().unwrap();
        let now = memo.get(&1).expect("the inserted entry survives");
        assert_eq!(
            (now.epoch(), *now.value()),
            (inserted, 2),
            "the detached flight never commits over the insert"
        );
        if got.epoch() == inserted {
            assert_eq!(*got.value(), 2, "a caller that came late hit the insert");
        } else {
            assert_eq!(*got.value(), 1, "a joined caller gets its flight's value");
            assert!(got.epoch() < inserted);
        }
    });
}

/// No resurrection after `invalidate` (guarantees 3, 4 and 5): a flight is invalidated by its own
/// epoch while a second caller may arrive before or after the detach. The invalidated flight
/// never commits; its joined callers still get its value; a caller that arrived after the detach
/// ran its own init.
///
/// Catches `commit_without_epoch_check` (the detached flight overwrites the second caller's new
/// flight).
#[test]
fn invalidated_flight_never_commits() {
    loom::model(|| {
        let memo = Memo::new();
        let gate = Gate::default();
        let first = {
            let (memo, gate) = (memo.clone(), gate.clone());
            thread::spawn(move || block_on(memo.get_or_init(1, || gate.wait(1))))
        };
        let second = {
            let memo = memo.clone();
            thread::spawn(move || block_on(memo.get_or_init(1, || async { 2 })))
        };
        let invalidated = memo.epoch(&1).filter(|&e| memo.invalidate(&1, e));
        gate.open();
        let (first, second) = (first.join().unwrap(), second.join().unwrap());
        let now = memo.get(&1).map(|e| e.epoch());
        if let Some(detached) = invalidated {
            assert_ne!(now, Some(detached), "an invalidated epoch never comes back");
        } else {
            assert_eq!(
                first.epoch(),
                second.epoch(),
                "nothing detached: one flight"
            );
            assert_eq!(now, Some(first.epoch()));
        }
        check_entry(&first, &[1, 2]);
        check_entry(&second, &[1, 2]);
        if first.epoch() == second.epoch() {
            assert_eq!(first.value(), second.value(), "one flight, one value");
        }
    });
}

/// No resurrection after `remove` (guarantee 4): the flight's caller gets its value, and the key
/// holds nothing afterwards if the remove came after the flight started.
///
/// Catches `commit_without_epoch_check` only when the remove replaced nothing: the key is vacant
/// afterwards, and the mutant overwrites only what a key holds, so this model is a control.
#[test]
fn removed_flight_never_commits() {
    loom::model(|| {
        let memo = Memo::new();
        let gate = Gate::default();
        let caller = {
            let (memo, gate) = (memo.clone(), gate.clone());
            thread::spawn(move || block_on(memo.get_or_init(1, || gate.wait(1))))
        };
        let seen = memo.epoch(&1);
        let removed = memo.remove(&1);
        gate.open();
        let got = caller.join().unwrap();
        assert_eq!(*got.value(), 1);
        let now = memo.get(&1).map(|e| e.epoch());
        match (seen, removed) {
            // The flight was detached: its value is never stored.
            (Some(_), None) if now.is_none() => {}
            (Some(flight), None) => panic!("a removed flight {flight:?} committed {now:?}"),
            // The remove found nothing, or the committed entry: either way it is gone, unless the
            // flight started after the remove.
            (_, removed) => {
                if removed.is_some() || seen.is_some() {
                    assert_eq!(now, None);
                }
            }
        }
    });
}

/// No lost wake-up when a driver is dropped (guarantee 6, futures-rs #2706): the first caller
/// polls the init future once — the future wakes itself during that poll — and is dropped. A
/// second caller that registered meanwhile must be handed the poll.
///
/// Catches `skip_hand_over_wake` (loom reports the second caller asleep forever).
#[test]
fn dropped_driver_hands_over_the_wake_up() {
    loom::model(|| {
        let memo = Memo::new();
        let waiter = {
            let memo = memo.clone();
            thread::spawn(move || block_on(memo.get_or_init(1, || async { 2 })))
        };
        let polled = poll_once_and_drop(memo.get_or_init(1, || yield_once(1)));
        let got = waiter.join().unwrap();
        match polled {
            Poll::Ready(first) => assert_eq!(first.epoch(), got.epoch(), "the dropped caller hit"),
            Poll::Pending => {
                check_entry(&got, &[1, 2]);
            }
        }
        assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(got.epoch()));
    });
}

/// Two waiters and a dropped driver: the hand-over reaches every waiter, and the one flight
/// completes once.
#[test]
fn dropped_driver_two_waiters() {
    loom::model(|| {
        let memo = Memo::new();
        let inits = Arc::new(AtomicUsize::new(0));
        let waiter = |memo: Memo, inits: Arc<AtomicUsize>| {
            thread::spawn(move || {
                block_on(memo.get_or_init(1, || {
                    inits.fetch_add(1, SeqCst);
                    yield_once(2)
                }))
            })
        };
        let a = waiter(memo.clone(), Arc::clone(&inits));
        let b = waiter(memo.clone(), Arc::clone(&inits));
        let _ = poll_once_and_drop(memo.get_or_init(1, || {
            inits.fetch_add(1, SeqCst);
            yield_once(1)
        }));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(a.epoch(), b.epoch(), "the two waiters share one flight");
        assert!(
            inits.load(SeqCst) <= 2,
            "at most the dropped flight and one more"
        );
    });
}

/// Panics hand over (guarantee 7): the init future panics on its second poll. The caller that
/// polls it then gets the panic, and so does its creator; a caller that joined the flight is
/// woken and starts over with its own init; nothing hangs and nothing is stored.
///
/// Catches `panic_without_fail` (loom reports the joined caller asleep forever).
#[test]
fn panic_wakes_joined_callers() {
    quiet_model_panics();
    loom::model(|| {
        let memo = Memo::new();
        let other = {
            let memo = memo.clone();
            thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    block_on(memo.get_or_init(1, || async { 2 }))
                }))
            })
        };
        let creator = catch_unwind(AssertUnwindSafe(|| {
            block_on(memo.get_or_init(1, yield_then_panic))
        }));
        let other = other.join().unwrap();
        let now = memo.get(&1).map(|e| e.epoch());
        match (creator, other) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.epoch(), b.epoch(), "the creator joined the other flight");
                assert_eq!(*b.value(), 2);
                assert_eq!(now, Some(b.epoch()));
            }
            (Err(a), Ok(b)) => {
                assert_eq!(message(&a), INIT_PANIC, "the creator polled its own panic");
                assert_eq!(*b.value(), 2, "the other caller started over");
                assert_eq!(now, Some(b.epoch()));
            }
            (Err(a), Err(b)) => {
                assert!(message(&a).starts_with("async-memo: the init future this call started"));
                assert_eq!(message(&b), INIT_PANIC, "the other caller polled the panic");
                assert_eq!(now, None, "a panicked flight stores nothing");
            }
            (Ok(_), Err(b)) => panic!("only the creator's flight panics: {}", message(&b)),
        }
    });
}

fn message(payload: &Box<dyn std::any::Any + Send>) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
}

/// The hit path (issue 14: a first-poll hit decided inline under the shard's read lock, its
/// miss handed to the write lock) racing an invalidation, an insert and an eviction (guarantees
/// 3, 4 and 10): a reader of key 1 gets the entry it hit whole (its value and epoch belong
/// together) or its own flight's value; an invalidated epoch never comes back; the bound holds.
#[test]
fn hits_racing_invalidate_insert_and_eviction_see_whole_entries() {
    loom::model(|| {
        let memo = AsyncMemo::builder().max_capacity(2).shards(1).build();
        let first = memo.insert(1, 10).unwrap();
        let reader = {
            let memo: Memo = memo.clone();
            thread::spawn(move || {
                let a = block_on(memo.get_or_init(1, || async { 20 }));
                let b = block_on(memo.get_or_init(1, || async { 21 }));
                (a, b)
            })
        };
        assert!(
            memo.invalidate(&1, first.epoch()),
            "nothing else removes it"
        );
        let inserted = memo.insert(1, 30).unwrap();
        memo.insert(2, 40).unwrap();
        memo.insert(3, 50).unwrap(); // evicts one entry of three
        let (a, b) = reader.join().unwrap();
        for got in [&a, &b] {
            match *got.value() {
                10 => assert_eq!(got.epoch(), first.epoch(), "a torn entry"),
                30 => assert_eq!(got.epoch(), inserted.epoch(), "a torn entry"),
                20 | 21 => assert!(got.epoch() != first.epoch() && got.epoch() != inserted.epoch()),
                other => panic!("a value no one stored: {other}"),
            }
        }
        assert!(
            b.epoch() >= a.epoch(),
            "a later read never sees an older entry"
        );
        let now = memo.get(&1);
        assert_ne!(now.map(|e| e.epoch()), Some(first.epoch()), "resurrected");
        assert!(memo.len() <= 2, "the bound holds");
    });
}

fn check_entry(entry: &Entry<u32>, values: &[u32]) {
    assert!(values.contains(entry.value()), "unexpected {entry:?}");
}

// ----------------------------------------------------------------------------------------------
// Refresh (issue 10): a flight attached to the ready entry it refreshes.

type Removed = Arc<std::sync::Mutex<Vec<(u8, async_memo::Epoch, RemovalCause)>>>;

/// A memo whose listener records every removal: (key, epoch, cause).
fn recording(builder: async_memo::MemoBuilder<u8, u32>) -> (Memo, Removed) {
    let removed: Removed = Arc::default();
    let memo = {
        let removed = Arc::clone(&removed);
        builder
            .on_removal(move |key: &u8, entry: Entry<u32>, cause| {
                removed.lock().unwrap().push((*key, entry.epoch(), cause));
            })
            .build()
    };
    (memo, removed)
}

/// Refreshes key 1 on another thread with a future that wakes itself and yields once before
/// returning `value`.
fn refresh_on_a_thread(memo: &Memo, value: u32) -> thread::JoinHandle<Entry<u32>> {
    let memo = memo.clone();
    thread::spawn(move || block_on(memo.refresh(1, move || yield_once(value))))
}

/// How the entry of `epoch` left, if it did; each entry is reported at most once.
fn cause_of(removed: &Removed, epoch: async_memo::Epoch) -> Option<RemovalCause> {
    let removed = removed.lock().unwrap();
    let mut causes = removed.iter().filter(|r| r.1 == epoch).map(|r| r.2);
    let cause = causes.next();
    assert_eq!(causes.next(), None, "{epoch:?} reported twice: {removed:?}");
    cause
}

/// Caffeine #193 (refresh semantics 3 and 4): a refresh of the entry E races `invalidate(k, e)`.
/// The invalidation finds E (a refresh never hides it) unless the refresh committed first; a
/// refresh that was attached to E when E was invalidated never commits, and its caller still
/// receives its value; a refresh that found the key empty is `get_or_init` and commits.
#[test]
fn refresh_never_commits_after_its_entry_is_invalidated() {
    loom::model(|| {
        let (memo, removed) = recording(AsyncMemo::builder());
        let entry = memo.insert(1, 1).unwrap();
        let refresher = refresh_on_a_thread(&memo, 2);
        let invalidated = memo.invalidate(&1, entry.epoch());
        let got = refresher.join().unwrap();
        assert_eq!(*got.value(), 2, "the refresh's caller receives its value");
        assert!(got.epoch() > entry.epoch(), "a refresh has a newer epoch");
        let (stats, now) = (memo.stats(), memo.get(&1).map(|e| e.epoch()));
        let cause = cause_of(&removed, entry.epoch());
        if invalidated {
            assert_eq!(cause, Some(RemovalCause::Invalidated));
            assert_eq!(memo.refreshing(&1), None, "the refresh left with its entry");
            if stats.refreshes_started == 1 {
                assert_eq!(
                    now, None,
                    "a detached refresh never commits (Caffeine #193)"
                );
                assert_eq!(stats.refreshes_detached, 1);
            } else {
                assert_eq!(
                    now,
                    Some(got.epoch()),
                    "on an empty key, refresh is get_or_init"
                );
            }
        } else {
            assert_eq!(
                cause,
                Some(RemovalCause::Replaced),
                "the refresh committed first"
            );
            assert_eq!(stats.refreshes_committed, 1);
            assert_eq!(now, Some(got.epoch()));
        }
    });
}

/// `invalidate(k, refreshing(k))` detaches only the refresh (refresh semantics 4 and 10): E stays
/// and is served, the refresh never commits, and its caller still gets its value.
#[test]
fn invalidating_the_refresh_keeps_its_entry() {
    loom::model(|| {
        let (memo, removed) = recording(AsyncMemo::builder());
        let entry = memo.insert(1, 1).unwrap();
        let gate = Gate::default();
        let refresher = {
            let (memo, gate) = (memo.clone(), gate.clone());
            thread::spawn(move || block_on(memo.refresh(1, || gate.wait(2))))
        };
        let detached = memo
            .refreshing(&1)
            .filter(|&refresh| memo.invalidate(&1, refresh));
        gate.open();
        let got = refresher.join().unwrap();
        let now = memo.get(&1).map(|e| e.epoch());
        match detached {
            Some(refresh) => {
                assert_eq!(got.epoch(), refresh, "its caller still gets its value");
                assert_eq!(now, Some(entry.epoch()), "the entry stays");
                assert_eq!(cause_of(&removed, entry.epoch()), None);
            }
            None => {
                assert_eq!(now, Some(got.epoch()), "an undisturbed refresh commits");
                assert_eq!(
                    cause_of(&removed, entry.epoch()),
                    Some(RemovalCause::Replaced)
                );
            }
        }
    });
}

/// Refresh vs `insert` (refresh semantics 3 and 4): the refresh commits only onto the entry it
/// refreshes. Whatever the interleaving, the inserted entry is the key's, unless the refresh
/// refreshed the inserted entry itself (then its epoch is newer than the insert's).
#[test]
fn refresh_never_commits_over_an_insert() {
    loom::model(|| {
        let (memo, removed) = recording(AsyncMemo::builder());
        let entry = memo.insert(1, 1).unwrap();
        let refresher = refresh_on_a_thread(&memo, 2);
        let inserted = memo.insert(1, 3).unwrap().epoch();
        let got = refresher.join().unwrap();
        let now = memo.get(&1).expect("the key holds an entry");
        if now.epoch() == inserted {
            assert_eq!(*now.value(), 3);
        } else {
            assert_eq!(
                now.epoch(),
                got.epoch(),
                "only the refresh may follow the insert"
            );
            assert!(
                got.epoch() > inserted,
                "a refresh of E committed over the insert that replaced E"
            );
            assert_eq!(cause_of(&removed, inserted), Some(RemovalCause::Replaced));
        }
        assert_eq!(
            cause_of(&removed, entry.epoch()),
            Some(RemovalCause::Replaced)
        );
    });
}

/// Refresh vs eviction (refresh semantics 3 and 8): a memo of capacity 1 refreshes key 1 while
/// key 2 is inserted, which evicts one entry. A refresh in flight is not an entry; if the entry
/// it refreshes is evicted, it never commits.
#[test]
fn refresh_never_commits_after_its_entry_is_evicted() {
    loom::model(|| {
        let (memo, removed) = recording(AsyncMemo::builder().max_capacity(1).shards(1));
        let entry = memo.insert(1, 1).unwrap();
        let refresher = refresh_on_a_thread(&memo, 2);
        memo.insert(2, 20).unwrap();
        let got = refresher.join().unwrap();
        assert_eq!(*got.value(), 2);
        assert!(memo.len() <= 1, "the bound holds");
        let stats = memo.stats();
        let now = memo.epoch(&1);
        match cause_of(&removed, entry.epoch()) {
            Some(RemovalCause::Evicted) if stats.refreshes_started == 1 => {
                assert_ne!(now, Some(got.epoch()), "a detached refresh committed");
                assert_eq!(stats.refreshes_committed, 0);
            }
            Some(RemovalCause::Evicted) => {} // evicted before the refresh: a plain flight
            Some(RemovalCause::Replaced) => assert_eq!(stats.refreshes_committed, 1),
            other => panic!("the entry left as {other:?}"),
        }
    });
}

/// Two refreshers, one dropped mid-flight (refresh semantics 2 and 6, futures-rs #2706): the
/// first polls the refresh once — its future wakes itself during that poll — and is dropped. The
/// other refresher, which joined meanwhile or comes after, finishes and commits; the entry is
/// served all along and reported replaced once.
#[test]
fn dropped_refresher_hands_over_the_wake_up() {
    loom::model(|| {
        let (memo, removed) = recording(AsyncMemo::builder());
        let entry = memo.insert(1, 1).unwrap();
        let waiter = {
            let memo = memo.clone();
            thread::spawn(move || block_on(memo.refresh(1, || async { 3 })))
        };
        let polled = poll_once_and_drop(memo.refresh(1, || yield_once(2)));
        assert!(
            memo.get(&1).is_some(),
            "readers are served while the refresh runs"
        );
        let got = waiter.join().unwrap();
        check_entry(&got, &[2, 3]);
        if let Poll::Ready(first) = polled {
            assert_eq!(first.epoch(), got.epoch(), "the dropped refresher joined");
        }
        assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(got.epoch()));
        assert_eq!(
            cause_of(&removed, entry.epoch()),
            Some(RemovalCause::Replaced)
        );
        assert_eq!(memo.refreshing(&1), None);
    });
}

type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// An automatic refresh (`refresh_after`) is started by a stale read, while a manual `refresh` of
/// the same entry runs on another thread (refresh semantics 2 and 6): whichever starts the entry's
/// refresh, the other joins it or finds it done; the spawned task drives the automatic one; no
/// caller panics or hangs, and no refresh is left in flight.
#[test]
fn automatic_refresh_joined_by_a_manual_refresh() {
    loom::model(|| {
        let tasks: Arc<std::sync::Mutex<Vec<Task>>> = Arc::default();
        let clock = async_memo::ManualClock::new();
        let memo: Memo = AsyncMemo::builder()
            .refresh_after(std::time::Duration::ZERO, {
                let tasks = Arc::clone(&tasks);
                move |task| tasks.lock().unwrap().push(task)
            })
            .clock(clock)
            .build();
        let entry = memo.insert(1, 1).unwrap();
        let manual = {
            let memo = memo.clone();
            thread::spawn(move || block_on(memo.refresh(1, || async { 3 })))
        };
        let read = block_on(memo.get_or_init(1, || yield_once(2)));
        let queued: Vec<Task> = std::mem::take(&mut *tasks.lock().unwrap());
        for task in queued {
            block_on(task);
        }
        let manual = manual.join().unwrap();
        check_entry(&manual, &[2, 3]);
        // A stale read returns the entry at once: never the value of the refresh it started.
        check_entry(&read, &[1, 3]);
        assert!(read.epoch() >= entry.epoch());
        assert_eq!(memo.refreshing(&1), None, "no refresh is left in flight");
    });
}

/// `invalidate(k, r)` with `r` the epoch `refreshing(k)` reported, while that refresh may be
/// committing (refresh semantics 4 and 10): the invalidation either detaches the refresh or
/// removes the entry it committed, so it always succeeds, and the key never holds `r` afterwards.
/// The recipe "after a change, `invalidate(k, refreshing(k))`" relies on this: a refresh that may
/// carry pre-change data is never served after it.
#[test]
fn invalidating_a_committing_refresh() {
    loom::model(|| {
        let memo = Memo::new();
        let entry = memo.insert(1, 1).unwrap();
        let refresher = refresh_on_a_thread(&memo, 2);
        if let Some(refresh) = memo.refreshing(&1) {
            assert!(
                memo.invalidate(&1, refresh),
                "the refresh, or the entry it committed, is there to invalidate"
            );
            let got = refresher.join().unwrap();
            assert_eq!(got.epoch(), refresh);
            let now = memo.get(&1).map(|e| e.epoch());
            assert_ne!(now, Some(refresh), "an invalidated refresh is served");
            if now.is_some() {
                assert_eq!(now, Some(entry.epoch()), "the entry stays");
            }
        } else {
            refresher.join().unwrap();
        }
    });
}

/// A refresh that panics (refresh semantics 5, the crate's semantics 7): its poller gets the
/// panic; a refresher that joined it is woken and starts over with its own init; the entry stays
/// in place and served throughout, and is replaced only by a refresh that completed.
#[test]
fn panicking_refresh_leaves_its_entry() {
    quiet_model_panics();
    loom::model(|| {
        let memo = Memo::new();
        let entry = memo.insert(1, 1).unwrap();
        let other = {
            let memo = memo.clone();
            thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    block_on(memo.refresh(1, || async { 3 }))
                }))
            })
        };
        let creator = catch_unwind(AssertUnwindSafe(|| {
            block_on(memo.refresh(1, yield_then_panic))
        }));
        assert!(memo.get(&1).is_some(), "the entry is served throughout");
        let other = other.join().unwrap();
        let now = memo.get(&1).map(|e| (e.epoch(), *e.value()));
        match (creator, other) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.epoch(), b.epoch(), "the creator joined the other refresh");
                assert_eq!(now, Some((b.epoch(), 3)));
            }
            (Err(a), Ok(b)) => {
                assert_eq!(message(&a), INIT_PANIC);
                assert_eq!(now, Some((b.epoch(), 3)), "the other refresh completed");
            }
            (Err(_), Err(b)) => {
                assert_eq!(
                    message(&b),
                    INIT_PANIC,
                    "the other refresher polled the panic"
                );
                assert_eq!(now, Some((entry.epoch(), 1)), "a panicked refresh leaves E");
            }
            (Ok(_), Err(b)) => panic!("only the creator's refresh panics: {}", message(&b)),
        }
        assert_eq!(memo.refreshing(&1), None);
    });
}
