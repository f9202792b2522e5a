//! Helpers for automatic refresh (`refresh_after`) tests: a spawner whose tasks the test runs
//! when it chooses, and memos built in each layout that keeps an entry's refresh due tick.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock};
use futures::executor::block_on;

pub type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A spawner that queues tasks, so the test decides when each runs (or drops it).
#[derive(Clone, Default)]
pub struct Queue(Arc<Mutex<Vec<Task>>>);

impl Queue {
    pub fn spawner(&self) -> impl Fn(Task) + Send + Sync + 'static {
        let queue = Arc::clone(&self.0);
        move |task| queue.lock().unwrap().push(task)
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn run_all(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.0.lock().unwrap());
        for task in tasks {
            block_on(task);
        }
    }
    /// Takes the tasks out without running them.
    pub fn take(&self) -> Vec<Task> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Where an entry keeps its refresh due tick (`Layout` in src/expiry.rs): in the entry's own
/// word of time, or beside the entry when a time to idle takes that word. Every test that builds
/// its memo with [`memo`] runs in each.
#[derive(Clone, Copy, Debug)]
pub enum Times {
    RefreshOnly,
    WithIdle,
    WithIdleAndLive,
}

pub const EVERY: [Times; 3] = [Times::RefreshOnly, Times::WithIdle, Times::WithIdleAndLive];

/// Longer than any test runs its clock: the idle and live rules are there, never due.
const LONG: Duration = Duration::from_secs(1 << 40);

pub fn memo(
    times: Times,
    after: Duration,
    queue: &Queue,
    clock: &ManualClock,
) -> AsyncMemo<&'static str, u32> {
    memo_spawning(times, after, queue.spawner(), clock)
}

/// [`memo`] with a spawner of the test's own.
pub fn memo_spawning(
    times: Times,
    after: Duration,
    spawn: impl Fn(Task) + Send + Sync + 'static,
    clock: &ManualClock,
) -> AsyncMemo<&'static str, u32> {
    let builder = AsyncMemo::builder();
    let builder = match times {
        Times::RefreshOnly => builder,
        Times::WithIdle => builder.time_to_idle(LONG),
        Times::WithIdleAndLive => builder.time_to_idle(LONG).time_to_live(LONG),
    };
    builder
        .refresh_after(after, spawn)
        .clock(clock.clone())
        .build()
}
