//! How often a call reads the memo's clock. The `refresh_after` target (issue 19): a memo with
//! automatic refresh reads its clock at most once per `get_or_init` call that finds an entry —
//! the same as an expiring memo — including the call that finds the entry due and starts its
//! refresh. A clock that counts its readings (around a `ManualClock`) pins it; no timing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::{AsyncMemo, Clock, ManualClock};
use common::secs;
use futures::executor::block_on;

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A `ManualClock` that counts how often the memo reads it.
#[derive(Clone, Default)]
struct Counting {
    clock: ManualClock,
    reads: Arc<AtomicUsize>,
}

impl Clock for Counting {
    fn now(&self) -> Instant {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.clock.now()
    }
}

impl Counting {
    /// The readings `f` made.
    fn reads_during<T>(&self, f: impl FnOnce() -> T) -> (T, usize) {
        let before = self.reads.load(Ordering::SeqCst);
        let out = f();
        (out, self.reads.load(Ordering::SeqCst) - before)
    }
}

/// The timed rules a memo may have: the three `refresh_after` memos differ in where an entry
/// keeps its due tick (src/expiry.rs, `Layout`); the expiring memo is what the target compares
/// with.
#[derive(Clone, Copy, Debug)]
enum Rules {
    RefreshOnly,
    RefreshWithIdle,
    RefreshWithLive,
    ExpiringOnly,
}

const EVERY: [Rules; 4] = [
    Rules::RefreshOnly,
    Rules::RefreshWithIdle,
    Rules::RefreshWithLive,
    Rules::ExpiringOnly,
];

/// Longer than any test runs its clock.
const LONG: Duration = Duration::from_secs(1 << 40);

/// The refresh interval of the refreshing memos.
const AFTER: Duration = Duration::from_secs(60);

/// A memo with `rules` on `clock`, and the queue its refresh tasks go to (never run here).
fn memo(rules: Rules, clock: &Counting) -> (AsyncMemo<u64, u64>, Arc<Mutex<Vec<Task>>>) {
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let spawn = {
        let tasks = Arc::clone(&tasks);
        move |task: Task| tasks.lock().unwrap().push(task)
    };
    let builder = AsyncMemo::builder().clock(clock.clone());
    let builder = match rules {
        Rules::RefreshOnly => builder.refresh_after(AFTER, spawn),
        Rules::RefreshWithIdle => builder.refresh_after(AFTER, spawn).time_to_idle(LONG),
        Rules::RefreshWithLive => builder.refresh_after(AFTER, spawn).time_to_live(LONG),
        Rules::ExpiringOnly => builder.time_to_live(LONG),
    };
    (builder.build(), tasks)
}

#[test]
fn a_get_or_init_hit_reads_the_clock_once() {
    for rules in EVERY {
        let clock = Counting::default();
        let (memo, _tasks) = memo(rules, &clock);
        for key in 0..100 {
            block_on(memo.get_or_init(key, move || async move { key }));
        }
        clock.clock.advance(secs(1));
        for key in 0..100 {
            let (hit, reads) =
                clock.reads_during(|| block_on(memo.get_or_init(key, || async { u64::MAX })));
            assert_eq!(*hit.value(), key, "{rules:?}: a hit");
            // Once: whether the entry has expired or fallen due needs the time, and no more.
            assert_eq!(reads, 1, "{rules:?}: clock reads of one get_or_init hit");
        }
        let (_, reads) = clock.reads_during(|| {
            block_on(memo.get_or_try_init(7, || async { Err::<u64, ()>(()) })).unwrap()
        });
        assert_eq!(
            reads, 1,
            "{rules:?}: clock reads of one get_or_try_init hit"
        );
    }
}

/// The call that finds its entry due returns it at once and starts the refresh; the time it read
/// to find the entry due is the time the refresh starts at, not a second reading.
#[test]
fn a_due_hit_that_starts_a_refresh_reads_the_clock_once() {
    for rules in [
        Rules::RefreshOnly,
        Rules::RefreshWithIdle,
        Rules::RefreshWithLive,
    ] {
        let clock = Counting::default();
        let (memo, tasks) = memo(rules, &clock);
        block_on(memo.get_or_init(1, || async { 1 }));
        clock.clock.advance(AFTER);
        let (stale, reads) = clock.reads_during(|| block_on(memo.get_or_init(1, || async { 2 })));
        assert_eq!(
            *stale.value(),
            1,
            "{rules:?}: a due entry is served at once"
        );
        assert_eq!(
            tasks.lock().unwrap().len(),
            1,
            "{rules:?}: one refresh started"
        );
        assert_eq!(
            reads, 1,
            "{rules:?}: clock reads of the call that started it"
        );
        // The next reader finds the refresh in flight: a plain hit.
        let (_, reads) = clock.reads_during(|| block_on(memo.get_or_init(1, || async { 3 })));
        assert_eq!(
            reads, 1,
            "{rules:?}: clock reads of a hit during the refresh"
        );
        assert_eq!(
            tasks.lock().unwrap().len(),
            1,
            "{rules:?}: still one refresh"
        );
    }
}
