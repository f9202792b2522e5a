//! Each option of `#[memoize(...)]` reaches the memo: capacity, shards, time to live, time to
//! idle (with a `ManualClock` through `clock`), and a chosen key.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_memo::{ManualClock, memoize};
use futures::executor::block_on;

#[memoize(max_capacity = 4, shards = 1)]
async fn bounded(n: u32) -> u32 {
    n
}

#[test]
fn max_capacity_bounds_the_memo() {
    for n in 0..100 {
        assert_eq!(block_on(bounded(n)), n);
    }
    assert!(bounded_memo().len() <= 4);
    assert_eq!(
        bounded_memo().stats().evicted,
        100 - bounded_memo().len() as u64
    );
}

const SHARDS: usize = 3;

#[memoize(shards = SHARDS)]
async fn sharded(n: u32) -> u32 {
    n
}

#[test]
fn shards_sets_the_shard_count() {
    block_on(sharded(1));
    let debug = format!("{:?}", sharded_memo());
    assert!(debug.contains("shards: 4"), "3 rounds up to 4: {debug}");
}

static TTL_CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize(time_to_live = Duration::from_secs(60), clock = TTL_CLOCK.clone())]
async fn token(user: &str) -> String {
    let run = TTL_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{user}-{run}")
}

#[test]
fn time_to_live_expires_a_result_after_it_was_stored() {
    assert_eq!(block_on(token("ann")), "ann-0");
    TTL_CLOCK.advance(Duration::from_secs(59));
    assert_eq!(block_on(token("ann")), "ann-0", "still fresh");
    TTL_CLOCK.advance(Duration::from_secs(1));
    assert_eq!(
        block_on(token("ann")),
        "ann-1",
        "expired, the body ran again"
    );
}

static TTI_CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static TTI_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize(time_to_idle = Duration::from_secs(10), clock = TTI_CLOCK.clone())]
async fn session(user: &str) -> String {
    let run = TTI_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{user}-{run}")
}

#[test]
fn time_to_idle_expires_a_result_not_read_for_that_long() {
    assert_eq!(block_on(session("bo")), "bo-0");
    TTI_CLOCK.advance(Duration::from_secs(9));
    assert_eq!(
        block_on(session("bo")),
        "bo-0",
        "a read restarts the idle time"
    );
    TTI_CLOCK.advance(Duration::from_secs(9));
    assert_eq!(block_on(session("bo")), "bo-0");
    TTI_CLOCK.advance(Duration::from_secs(10));
    assert_eq!(block_on(session("bo")), "bo-1");
}

static CUSTOM_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The key ignores case: `key` is any expression over the arguments.
#[memoize(key: String = name.to_lowercase())]
async fn by_lowercase(name: &str) -> String {
    CUSTOM_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("first spelling: {name}")
}

#[test]
fn key_chooses_the_key() {
    assert_eq!(block_on(by_lowercase("Ann")), "first spelling: Ann");
    assert_eq!(block_on(by_lowercase("ANN")), "first spelling: Ann");
    assert_eq!(CUSTOM_RUNS.load(Ordering::SeqCst), 1);
    assert!(by_lowercase_memo().get("ann").is_some());
}

#[memoize(max_capacity = 8, time_to_live = Duration::from_secs(1), time_to_idle = Duration::from_secs(1), shards = 2, key: u8 = a)]
async fn everything(a: u8, b: u8) -> u16 {
    u16::from(a) + u16::from(b)
}

#[test]
fn all_options_together() {
    assert_eq!(block_on(everything(1, 2)), 3);
    assert_eq!(block_on(everything(1, 5)), 3, "keyed by `a` only");
}
