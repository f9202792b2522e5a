//! The built-in clocks on real time: `CoarseClock` (the default of a memo whose only timed rule
//! is `refresh_after`) and `SystemClock`. Only lower bounds are asserted (a sleep of `d` lets at
//! least `d` pass); the due-time semantics themselves are pinned with `ManualClock` in
//! tests/refresh_after.rs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::{AsyncMemo, Clock, CoarseClock, SystemClock};
use futures::executor::block_on;

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The coarsest tick of a platform coarsetime supports (Windows: 15.6 ms), with room.
const TICK: Duration = Duration::from_millis(20);

#[test]
fn coarse_clock_is_monotonic_and_keeps_up_with_real_time() {
    let (t0, precise0) = (CoarseClock.now(), Instant::now());
    let mut last = t0;
    for _ in 0..100_000 {
        let now = CoarseClock.now();
        assert!(now >= last, "CoarseClock went back");
        last = now;
    }
    std::thread::sleep(Duration::from_millis(100));
    let (coarse, precise) = (CoarseClock.now() - t0, precise0.elapsed());
    assert!(
        coarse + 2 * TICK >= precise.min(Duration::from_millis(100)),
        "after sleeping 100 ms the coarse clock moved only {coarse:?}"
    );
}

/// A spawner that queues the refresh tasks it is handed.
fn queue() -> (Arc<Mutex<Vec<Task>>>, impl Fn(Task) + Send + Sync + 'static) {
    let queue = Arc::new(Mutex::new(Vec::new()));
    let push = {
        let queue = Arc::clone(&queue);
        move |task| queue.lock().unwrap().push(task)
    };
    (queue, push)
}

/// The default (coarse) and the precise clock both start a refresh once `after` has passed by
/// the wall clock, plus one coarse tick; the refresh then commits.
#[test]
fn a_refresh_only_memo_refreshes_on_real_time_with_either_built_in_clock() {
    let after = Duration::from_millis(30);
    for precise in [false, true] {
        let (tasks, spawn) = queue();
        let builder = AsyncMemo::builder().refresh_after(after, spawn);
        let builder = if precise {
            builder.clock(SystemClock)
        } else {
            builder
        };
        let memo: AsyncMemo<&str, u32> = builder.build();
        memo.insert("k", 1).unwrap();
        std::thread::sleep(after + 2 * TICK);
        let stale = block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(*stale.value(), 1, "a due entry is served at once");
        let task = tasks.lock().unwrap().pop();
        let task = task.unwrap_or_else(|| {
            panic!("precise = {precise}: due after `after` plus two ticks, yet no refresh")
        });
        block_on(task);
        assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
    }
}

/// An expiring memo keeps the precise clock: an entry with a 1 ns time to live is gone on the
/// next read, never served a coarse tick late.
#[test]
fn an_expiring_memo_reads_the_precise_clock() {
    let (_tasks, spawn) = queue();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .refresh_after(Duration::from_secs(60), spawn)
        .time_to_live(Duration::from_nanos(1))
        .build();
    for _ in 0..1_000 {
        memo.insert("k", 1).unwrap();
        let precise0 = Instant::now();
        while precise0.elapsed() < Duration::from_micros(1) {}
        assert!(memo.get("k").is_none(), "served past its time to live");
    }
}
