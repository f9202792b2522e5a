//! Each option of `#[memoize(...)]` reaches the memo: capacity, shards, time to live, time to
//! idle (with a `ManualClock` through `clock`), a chosen key, and `result` deciding whether an
//! `Err` is stored. (`in_impl` is in `methods.rs`, `crate` in the `renamed` test package.)

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

/// An alias named otherwise than `Result`: the macro sees only tokens, so on its own it takes
/// this for a plain value.
type Fallible<T> = Result<T, String>;

static ALIAS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn alias_unmarked(n: u32) -> Fallible<u32> {
    ALIAS_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(format!("{n} failed"))
}

#[test]
fn without_result_an_alias_named_otherwise_is_stored_err_included() {
    assert_eq!(block_on(alias_unmarked(1)), Err("1 failed".to_string()));
    assert_eq!(block_on(alias_unmarked(1)), Err("1 failed".to_string()));
    assert_eq!(
        ALIAS_RUNS.load(Ordering::SeqCst),
        1,
        "the error was memoized"
    );
    let _: &'static async_memo::AsyncMemo<u32, Fallible<u32>> = alias_unmarked_memo();
}

static MARKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize(result = true)]
async fn alias_marked(n: u32) -> Fallible<u32> {
    let run = MARKED_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        Err(format!("{n} failed"))
    } else {
        Ok(n * 10)
    }
}

#[test]
fn result_true_gives_an_alias_the_result_behaviour() {
    assert_eq!(block_on(alias_marked(1)), Err("1 failed".to_string()));
    assert!(alias_marked_memo().is_empty(), "the error was not stored");
    assert_eq!(block_on(alias_marked(1)), Ok(10), "the body ran again");
    assert_eq!(block_on(alias_marked(1)), Ok(10));
    assert_eq!(MARKED_RUNS.load(Ordering::SeqCst), 2, "the Ok was memoized");
    let memo: &'static async_memo::AsyncMemo<u32, u32> = alias_marked_memo();
    assert_eq!(memo.get(&1).map(|e| e.into_value()), Some(10));
}

static KEPT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A negative answer worth keeping: `result = false` stores the `Result` as it is.
#[memoize(result = false)]
async fn user_exists(name: &str) -> Result<u64, String> {
    KEPT_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(format!("no user {name}"))
}

#[test]
fn result_false_stores_a_result_err_included() {
    assert_eq!(block_on(user_exists("zed")), Err("no user zed".to_string()));
    assert_eq!(block_on(user_exists("zed")), Err("no user zed".to_string()));
    assert_eq!(
        KEPT_RUNS.load(Ordering::SeqCst),
        1,
        "the error was memoized"
    );
    let _: &'static async_memo::AsyncMemo<String, Result<u64, String>> = user_exists_memo();
}
