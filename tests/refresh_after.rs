//! Automatic refresh (`refresh_after`, semantics 20 and the builder's rules): a stale read
//! returns at once and hands one refresh to the user's spawner.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock, MemoBuilder};
use common::auto_refresh::{EVERY, Queue, memo};
use common::{counted, secs};
use futures::executor::block_on;

#[test]
fn a_stale_read_returns_at_once_and_spawns_one_refresh() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        let first = block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(59));
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 0, "not yet due");
        clock.advance(secs(1));
        memo.get("k");
        assert_eq!(queue.len(), 0, "a plain get never starts a refresh");
        let calls = Arc::new(AtomicUsize::new(0));
        let stale = block_on(memo.get_or_init("k", counted(&calls, 2)));
        assert_eq!(stale.epoch(), first.epoch(), "served at once");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the stale reader's init started the refresh"
        );
        block_on(memo.get_or_init("k", counted(&calls, 3)));
        assert_eq!(queue.len(), 1, "one refresh, however many stale reads");
        assert!(memo.refreshing("k").is_some());
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
        let stats = memo.stats();
        assert_eq!((stats.refreshes_started, stats.refreshes_committed), (1, 1));
    }
}

/// Caffeine #286: a failing automatic refresh was retried on every stale read, hammering a source
/// that was down. Here the next automatic attempt waits the interval from the failure.
#[test]
fn caffeine_286_a_failed_automatic_refresh_waits_an_interval() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        let down = || async { Err::<u32, &str>("down") };
        block_on(memo.get_or_try_init("k", || async { Ok::<_, &str>(1) })).unwrap();
        clock.advance(secs(60));
        assert!(
            block_on(memo.get_or_try_init("k", down)).is_ok(),
            "stale, served"
        );
        clock.advance(secs(5)); // the refresh fails five seconds later
        queue.run_all();
        assert_eq!(memo.stats().refreshes_failed, 1);
        assert_eq!(
            memo.get("k").map(|e| *e.value()),
            Some(1),
            "the entry stays"
        );
        clock.advance(secs(59));
        block_on(memo.get_or_try_init("k", down)).unwrap();
        assert_eq!(
            queue.len(),
            0,
            "within the interval since the failure: no new attempt"
        );
        clock.advance(secs(1));
        block_on(memo.get_or_try_init("k", || async { Ok::<_, &str>(2) })).unwrap();
        assert_eq!(queue.len(), 1, "one attempt per interval");
        queue.run_all();
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
        // A manual refresh is not throttled.
        block_on(memo.try_refresh("k", down)).unwrap_err();
        block_on(memo.try_refresh("k", down)).unwrap_err();
        assert_eq!(memo.stats().refreshes_failed, 3);
    }
}

#[test]
fn a_panicking_automatic_refresh_ends_its_task_quietly() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        let first = block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(60));
        block_on(memo.get_or_init("k", || async { panic!("the source broke") }));
        queue.run_all(); // does not panic
        assert_eq!(memo.get("k").map(|e| e.epoch()), Some(first.epoch()));
        assert_eq!(memo.stats().refreshes_failed, 1);
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 0, "throttled for an interval from its start");
        clock.advance(secs(60));
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 1);
    }
}

#[test]
fn a_spawner_that_drops_the_task_abandons_the_refresh() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .refresh_after(secs(60), drop)
        .clock(clock.clone())
        .build();
    let first = block_on(memo.get_or_init("k", || async { 1 }));
    clock.advance(secs(60));
    block_on(memo.get_or_init("k", || async { 2 }));
    assert_eq!(memo.refreshing("k"), None, "abandoned");
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(first.epoch()));
    assert_eq!(memo.stats().flights_abandoned, 1);
}

#[test]
fn a_refresh_interval_at_or_above_the_time_to_live_never_fires() {
    let (queue, clock) = (Queue::default(), ManualClock::new());
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_live(secs(60))
        .refresh_after(secs(60), queue.spawner())
        .clock(clock.clone())
        .build();
    block_on(memo.get_or_init("k", || async { 1 }));
    clock.advance(secs(60));
    block_on(memo.get_or_init("k", || async { 2 }));
    assert_eq!(
        queue.len(),
        0,
        "expired first: a new flight, never a refresh"
    );
}

#[test]
fn zero_refreshes_on_every_read_and_max_never() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let eager = memo(times, Duration::ZERO, &queue, &clock);
        block_on(eager.get_or_init("k", || async { 1 }));
        block_on(eager.get_or_init("k", || async { 2 }));
        block_on(eager.get_or_init("k", || async { 3 }));
        assert_eq!(queue.len(), 1, "one at a time");
        queue.run_all();
        block_on(eager.get_or_init("k", || async { 4 }));
        assert_eq!(
            queue.len(),
            1,
            "the next read after a commit starts the next"
        );

        let never = memo(times, Duration::MAX, &queue, &clock);
        block_on(never.get_or_init("k", || async { 1 }));
        clock.advance(Duration::MAX);
        block_on(never.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 1, "Duration::MAX never fires");
    }
}

#[derive(Clone)]
struct Token {
    expires_in: Duration,
}

#[test]
fn a_token_refreshes_a_minute_before_its_own_expiry() {
    let (queue, clock) = (Queue::default(), ManualClock::new());
    let tokens: AsyncMemo<&str, Token> = AsyncMemo::builder()
        .expire_after(|_, t: &Token| Some(t.expires_in))
        .refresh_after(secs(3600), queue.spawner())
        .refresh_after_entry(|_, t: &Token| t.expires_in.checked_sub(secs(60)))
        .clock(clock.clone())
        .build();
    let login = |secs_left| {
        move || async move {
            Token {
                expires_in: secs(secs_left),
            }
        }
    };
    block_on(tokens.get_or_init("api", login(600)));
    clock.advance(secs(539));
    block_on(tokens.get_or_init("api", login(600)));
    assert_eq!(queue.len(), 0);
    clock.advance(secs(1));
    block_on(tokens.get_or_init("api", login(300)));
    queue.run_all();
    clock.advance(secs(239));
    block_on(tokens.get_or_init("api", login(300)));
    assert_eq!(queue.len(), 0, "the new token's own interval: 240 s");
    clock.advance(secs(1));
    block_on(tokens.get_or_init("api", login(300)));
    assert_eq!(queue.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_after_with_a_tokio_spawner() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .refresh_after(secs(1), |task| {
            tokio::spawn(task);
        })
        .clock(clock.clone())
        .build();
    memo.get_or_init("k", || async { 1 }).await;
    clock.advance(secs(1));
    let (done, committed) = tokio::sync::oneshot::channel();
    let stale = memo
        .get_or_init("k", || async move {
            let _ = done.send(());
            2
        })
        .await;
    assert_eq!(*stale.value(), 1);
    common::within(committed).await.unwrap();
    common::within(async {
        while memo.get("k").map(|e| *e.value()) != Some(2) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[test]
fn builder_misuse_panics_with_a_clear_message() {
    let late_hasher = catch_unwind(AssertUnwindSafe(|| {
        let builder: MemoBuilder<u8, u8> = AsyncMemo::builder().refresh_after(secs(1), drop);
        builder.hasher(std::collections::hash_map::RandomState::new())
    }));
    let message = late_hasher.unwrap_err();
    assert!(
        message
            .downcast_ref::<&str>()
            .unwrap()
            .contains("hasher before refresh_after")
    );
    let no_interval = catch_unwind(|| {
        AsyncMemo::<u8, u8>::builder()
            .refresh_after_entry(|_, _| None)
            .build()
    });
    assert!(no_interval.is_err());
}

/// Regression (found by the loom model `automatic_refresh_joined_by_a_manual_refresh`): a
/// manual `refresh` of the entry can join an automatic refresh in the moment between its start
/// and its hand-off to the spawner (while the reader's `init` makes its future). The hand-off
/// asserted that nobody had joined (a debug-build panic in the stale read), and did not wake the
/// caller that had: it waited for the spawned task instead of driving the refresh itself.
#[test]
fn hand_off_race_a_refresh_joined_before_the_hand_off_is_woken_and_drives_it() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(60), &queue, &clock);
        memo.insert("k", 1).unwrap();
        clock.advance(secs(60));
        type Joined =
            std::pin::Pin<Box<dyn std::future::Future<Output = async_memo::Entry<u32>> + Send>>;
        let (counter, waker) = common::counting_waker();
        let joined: Arc<Mutex<Option<Joined>>> = Arc::default();
        let read = block_on(memo.get_or_init("k", || {
            // Another thread refreshes the same entry now: it joins the automatic refresh.
            let (memo, joined, waker) = (memo.clone(), Arc::clone(&joined), waker.clone());
            std::thread::spawn(move || {
                let mut refresh: Joined =
                    Box::pin(async move { memo.refresh("k", || async { 3 }).await });
                let polled = refresh
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(&waker));
                assert!(polled.is_pending(), "joined the automatic refresh");
                *joined.lock().unwrap() = Some(refresh);
            })
            .join()
            .unwrap();
            async { 2 }
        }));
        assert_eq!(*read.value(), 1, "the stale read is served at once");
        assert_eq!(queue.len(), 1, "the automatic refresh went to the spawner");
        assert!(
            counter.wakes() >= 1,
            "the joined caller is woken: it may drive the refresh"
        );
        let mut refresh = joined.lock().unwrap().take().unwrap();
        let entry = common::ready(
            refresh
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker)),
        );
        assert_eq!(
            *entry.value(),
            2,
            "the joined caller drove the automatic refresh"
        );
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
        queue.run_all();
        assert_eq!(memo.refreshing("k"), None);
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
    }
}

/// A key whose `Clone` panics while a stale read hands its refresh to the spawner: the panic
/// reaches that reader and the refresh is failed and detached, not left attached with a caller
/// that no longer exists (which blocked every later automatic refresh of the entry).
#[test]
fn a_key_clone_panicking_during_the_hand_off_detaches_the_refresh() {
    use std::sync::atomic::AtomicBool;
    static CLONE_PANICS: AtomicBool = AtomicBool::new(false);
    #[derive(PartialEq, Eq, Hash, Debug)]
    struct Key(u8);
    impl Clone for Key {
        fn clone(&self) -> Self {
            assert!(!CLONE_PANICS.load(Ordering::SeqCst), "Key::clone panicked");
            Key(self.0)
        }
    }
    let (queue, clock) = (Queue::default(), ManualClock::new());
    let memo: AsyncMemo<Key, u32> = AsyncMemo::builder()
        .refresh_after(secs(60), queue.spawner())
        .clock(clock.clone())
        .build();
    let first = block_on(memo.get_or_init(Key(1), || async { 1 }));
    clock.advance(secs(60));
    CLONE_PANICS.store(true, Ordering::SeqCst);
    let stale = catch_unwind(AssertUnwindSafe(|| {
        block_on(memo.get_or_init_by_ref(&Key(1), || async { 2 }))
    }));
    CLONE_PANICS.store(false, Ordering::SeqCst);
    assert!(
        stale.is_err(),
        "the panic reaches the reader that started the refresh"
    );
    assert_eq!(memo.refreshing(&Key(1)), None, "the refresh was detached");
    assert_eq!(queue.len(), 0);
    assert_eq!(memo.get(&Key(1)).map(|e| e.epoch()), Some(first.epoch()));
    clock.advance(secs(60));
    block_on(memo.get_or_init(Key(1), || async { 3 }));
    assert_eq!(
        queue.len(),
        1,
        "the next interval starts a new automatic refresh"
    );
    queue.run_all();
    assert_eq!(memo.get(&Key(1)).map(|e| *e.value()), Some(3));
}

/// With a time to idle, each entry's refresh due tick is kept beside it, in the shard (see
/// `Layout::RefreshBeside`); every way an entry leaves must take its tick along. The shard
/// checks (a debug assertion on every arrival) that it never keeps more ticks than entries.
#[test]
fn due_ticks_kept_beside_entries_leave_with_them() {
    let (queue, clock) = (Queue::default(), ManualClock::new());
    let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
        .shards(1)
        .max_capacity(4)
        .time_to_idle(secs(100))
        .refresh_after(secs(10), queue.spawner())
        .clock(clock.clone())
        .build();
    for round in 0..50 {
        let key = round % 8; // eviction: twice as many keys as room
        let entry = block_on(memo.get_or_init(key, move || async move { round }));
        match round % 5 {
            0 => assert!(memo.invalidate(&key, entry.epoch())),
            1 => drop(memo.remove(&key)),
            2 => drop(memo.insert(key, round).unwrap()),
            3 => drop(memo.replace(key, entry.epoch(), round)),
            _ => {
                clock.advance(secs(10));
                block_on(memo.get_or_init(key, move || async move { round + 1 }));
                queue.run_all(); // a refresh commits: the old entry's tick goes
            }
        }
    }
    clock.advance(secs(1000)); // every entry idles out
    for key in 0..8 {
        assert!(memo.get(&key).is_none());
    }
    block_on(memo.get_or_init(0, || async { 0 }));
    assert_eq!(memo.len(), 1);
}
