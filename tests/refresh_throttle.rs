//! Which ends of a refresh hold off the next automatic refresh (semantics 17 and 20): only an
//! automatic refresh that fails, panics or is too heavy to store makes the next automatic
//! attempt for its entry wait the interval. A manual refresh that fails, a refresh that is
//! cancelled (its last caller dropped, its task dropped by the spawner) and a refresh detached
//! by its epoch hold nothing off: the next stale read starts a new refresh. A refresh belongs
//! to whoever started it: a manual call that joins an automatic refresh shares its hold-off,
//! and a stale read that finds a manual refresh in flight does not make it automatic.
//! (The retry-storm guarantee itself, Caffeine #286, is pinned in `tests/refresh_after.rs`.)

mod common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_memo::{AsyncMemo, ManualClock};
use common::auto_refresh::{EVERY, Queue, memo, memo_spawning};
use common::{poll_once, ready, secs};
use futures::channel::oneshot;
use futures::executor::block_on;

type Fallible = Result<u32, &'static str>;

async fn down() -> Fallible {
    Err("down")
}

/// An init whose future waits for the test to send its outcome.
fn gated<T: Send + 'static>() -> (
    oneshot::Sender<T>,
    impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = T> + Send>>,
) {
    let (send, receive) = oneshot::channel();
    let init = move || -> std::pin::Pin<Box<dyn Future<Output = T> + Send>> {
        Box::pin(async move { receive.await.expect("the test sends the outcome") })
    };
    (send, init)
}

/// Caffeine #498: a failed explicit refresh stopped the automatic refreshes of its entry. Here a
/// manual `try_refresh` that fails, or a manual `refresh` that panics, moves nothing: before
/// the entry is due it stays due at its own time, and once it is due the next stale read
/// starts the automatic refresh at once.
#[test]
fn caffeine_498_a_failed_manual_refresh_does_not_hold_off_automatic_refreshes() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(30));
        block_on(memo.try_refresh("k", down)).unwrap_err();
        clock.advance(secs(30));
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 1, "{times:?}: due at its own time, 60 s");
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));

        clock.advance(secs(60)); // due again
        block_on(memo.try_refresh("k", down)).unwrap_err();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            block_on(memo.refresh("k", || async { panic!("a manual refresh panics") }))
        }));
        assert!(panicked.is_err());
        assert_eq!(queue.len(), 0, "manual refreshes are not spawned");
        block_on(memo.get_or_init("k", || async { 3 }));
        assert_eq!(
            queue.len(),
            1,
            "{times:?}: the next stale read starts the automatic refresh"
        );
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(3));
        let stats = memo.stats();
        assert_eq!((stats.refreshes_failed, stats.refreshes_committed), (3, 2));
    }
}

/// How a manual refresh ends without committing.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Fails,
    Dropped,
}

/// Stale reads that find a manual refresh in flight start nothing (it is the refresh), and move
/// the entry's next automatic attempt on meanwhile (so that a burst of them takes the write lock
/// once). If the manual refresh then fails or is dropped, that move is undone: the refresh was
/// not automatic, and the next stale read starts one.
#[test]
fn a_failed_manual_refresh_that_stale_reads_found_holds_nothing_off() {
    for times in EVERY {
        for ending in [Ending::Fails, Ending::Dropped] {
            let (queue, clock) = (Queue::default(), ManualClock::new());
            let memo = memo(times, secs(60), &queue, &clock);
            let first = block_on(memo.get_or_init("k", || async { 1 }));
            clock.advance(secs(60));
            let (send, init) = gated::<Fallible>();
            let mut manual = Box::pin(memo.try_refresh("k", init));
            assert!(poll_once(manual.as_mut()).is_pending());
            for _ in 0..3 {
                let stale = block_on(memo.get_or_init("k", || async { 2 }));
                assert_eq!(stale.epoch(), first.epoch(), "served at once");
            }
            assert_eq!(queue.len(), 0, "the manual refresh is the refresh");
            match ending {
                Ending::Fails => {
                    send.send(Err("down")).unwrap();
                    assert!(ready(poll_once(manual.as_mut())).is_err());
                }
                Ending::Dropped => drop(manual),
            }
            assert_eq!(memo.refreshing("k"), None);
            block_on(memo.get_or_init("k", || async { 3 }));
            assert_eq!(
                queue.len(),
                1,
                "{times:?}, {ending:?}: the next stale read starts the automatic refresh"
            );
            queue.run_all();
            assert_eq!(memo.get("k").map(|e| *e.value()), Some(3));
        }
    }
}

/// Guava #3851 (and #2774): a refresh task that a full executor discarded was never run, and
/// the entry was never refreshed again. Here a task the spawner drops unpolled cancels its
/// refresh: the entry is untouched, nothing counts as failed, and the next stale read hands a
/// new refresh to the spawner — which, once it has room again, runs it.
#[test]
fn guava_3851_a_refresh_task_the_spawner_drops_is_a_cancellation() {
    for times in EVERY {
        let clock = ManualClock::new();
        let (queue, full, spawned) = (
            Queue::default(),
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicUsize::new(0)),
        );
        let spawn = {
            let (queue, full, spawned) = (queue.spawner(), Arc::clone(&full), Arc::clone(&spawned));
            move |task| {
                spawned.fetch_add(1, Ordering::SeqCst);
                if !full.load(Ordering::SeqCst) {
                    queue(task);
                } // else dropped, unpolled
            }
        };
        let memo = memo_spawning(times, secs(60), spawn, &clock);
        let first = block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(60));
        for round in 1..=3 {
            let stale = block_on(memo.get_or_init("k", || async { 2 }));
            assert_eq!(stale.epoch(), first.epoch());
            assert_eq!(
                spawned.load(Ordering::SeqCst),
                round,
                "{times:?}: every stale read hands a new refresh to the spawner"
            );
            assert_eq!(memo.refreshing("k"), None, "the dropped task cancelled it");
        }
        let stats = memo.stats();
        assert_eq!((stats.flights_abandoned, stats.refreshes_failed), (3, 0));
        full.store(false, Ordering::SeqCst);
        block_on(memo.get_or_init("k", || async { 4 }));
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(4));
    }
}

/// A refresh task dropped after it started (a runtime shutting down, say) cancels its refresh
/// too: the next stale read starts a new one.
#[test]
fn a_refresh_task_dropped_mid_flight_is_a_cancellation() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(60));
        let (_send, init) = gated::<u32>();
        block_on(memo.get_or_init("k", init));
        let mut task = queue.take().pop().expect("a refresh was spawned");
        assert!(poll_once(task.as_mut()).is_pending(), "in flight");
        drop(task);
        assert_eq!(memo.refreshing("k"), None);
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 1, "{times:?}: a new automatic refresh");
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
        assert_eq!(memo.stats().refreshes_failed, 0);
    }
}

/// A manual `try_refresh` that finds an automatic refresh in flight joins it (one refresh per
/// entry). If that refresh fails, it is an automatic refresh that failed, whoever drove it:
/// the joined caller receives its error and the next automatic attempt waits the interval from
/// the failure. Manual refreshes are still not throttled.
#[test]
fn a_manual_refresh_that_joins_a_failing_automatic_refresh_shares_its_hold_off() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(60));
        let (send, init) = gated::<Fallible>();
        block_on(memo.get_or_try_init("k", init)).unwrap();
        assert_eq!(queue.len(), 1, "an automatic refresh");
        let automatic = memo.refreshing("k").expect("in flight");
        let mut manual = Box::pin(memo.try_refresh("k", || async { Ok::<_, &str>(9) }));
        assert!(poll_once(manual.as_mut()).is_pending(), "joined it");
        assert_eq!(memo.refreshing("k"), Some(automatic), "one refresh");
        clock.advance(secs(5));
        send.send(Err("down")).unwrap();
        let error = ready(poll_once(manual.as_mut())).unwrap_err();
        assert_eq!(*error, "down", "the automatic refresh's error");
        queue.run_all();
        let stats = memo.stats();
        assert_eq!((stats.refreshes_started, stats.refreshes_failed), (1, 1));
        clock.advance(secs(59));
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(
            queue.len(),
            0,
            "{times:?}: within the interval since the failure"
        );
        clock.advance(secs(1));
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 1, "{times:?}: one attempt per interval");
        queue.take();
        let manual = block_on(memo.try_refresh("k", || async { Ok::<_, &str>(7) }));
        assert_eq!(manual.map(|e| *e.value()), Ok(7), "not throttled");
    }
}

/// `invalidate(k, refreshing(k))` detaches an automatic refresh (the source changed, say): it
/// will never commit, and it did not fail. The next stale read starts a new one.
#[test]
fn detaching_an_automatic_refresh_lets_the_next_stale_read_start_another() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(60));
        block_on(memo.get_or_init("k", || async { 2 }));
        let detached = memo.refreshing("k").expect("in flight");
        assert!(memo.invalidate("k", detached));
        block_on(memo.get_or_init("k", || async { 3 }));
        assert_eq!(queue.len(), 2, "{times:?}: a new automatic refresh");
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(3), "never 2");
    }
}

/// A refresh whose value is too heavy to store changes nothing (semantics 17). Automatic, it
/// would be recomputed and refused again on every stale read: it holds off the next automatic
/// attempt as a failure does. Manual, it holds nothing off.
#[test]
fn a_refresh_too_heavy_to_store_holds_off_only_an_automatic_one() {
    let (queue, clock) = (Queue::default(), ManualClock::new());
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .max_capacity(10)
        .weigher(|_, v: &u32| *v)
        .refresh_after(secs(60), queue.spawner())
        .clock(clock.clone())
        .build();
    let first = block_on(memo.get_or_init("k", || async { 1 }));
    clock.advance(secs(60));
    assert_eq!(*block_on(memo.refresh("k", || async { 20 })).value(), 20);
    block_on(memo.get_or_init("k", || async { 30 }));
    assert_eq!(queue.len(), 1, "a manual one holds nothing off");
    clock.advance(secs(5));
    queue.run_all(); // refused
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(first.epoch()));
    clock.advance(secs(59));
    block_on(memo.get_or_init("k", || async { 2 }));
    assert_eq!(queue.len(), 0, "within the interval since the refused one");
    clock.advance(secs(1));
    block_on(memo.get_or_init("k", || async { 2 }));
    assert_eq!(queue.len(), 1);
    queue.run_all();
    assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
    assert_eq!(memo.stats().refreshes_detached, 2);
}
