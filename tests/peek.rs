//! Quiet reads (`peek`, `entry_info`, issue 22): they return what `get` would, with no side
//! effect — no stats, no time-to-idle touch, no recency for eviction, no automatic refresh, no
//! purge — and `entry_info`'s numbers are exact on a `ManualClock`.

mod common;

use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock};
use common::auto_refresh::{EVERY, Queue, memo};
use common::secs;
use futures::executor::block_on;

fn ttl_memo(clock: &ManualClock, ttl: Duration) -> AsyncMemo<&'static str, u32> {
    AsyncMemo::builder()
        .time_to_live(ttl)
        .clock(clock.clone())
        .build()
}

#[test]
fn quiet_reads_count_no_hit_and_no_miss() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    memo.insert("k", 1).unwrap();
    let before = memo.stats();
    for _ in 0..3 {
        assert_eq!(memo.peek("k").map(|e| *e.value()), Some(1));
        assert!(memo.peek("absent").is_none());
        assert!(memo.entry_info("k").is_some());
        assert!(memo.entry_info("absent").is_none());
    }
    assert_eq!(memo.stats(), before);
    // The control: the same reads through `get` are counted.
    memo.get("k");
    memo.get("absent");
    let after = memo.stats();
    assert_eq!(
        (after.hits, after.misses),
        (before.hits + 1, before.misses + 1)
    );
}

#[test]
fn a_peek_does_not_extend_the_time_to_idle() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_idle(secs(10))
        .clock(clock.clone())
        .build();
    memo.insert("peeked", 1).unwrap();
    memo.insert("read", 2).unwrap();
    clock.advance(secs(6));
    assert!(memo.peek("peeked").is_some());
    assert!(memo.entry_info("peeked").is_some());
    assert!(memo.get("read").is_some(), "the control: a real read");
    clock.advance(secs(4));
    assert!(
        memo.peek("peeked").is_none(),
        "expired ten seconds after its commit, as if never read"
    );
    assert!(memo.get("peeked").is_none());
    assert!(
        memo.get("read").is_some(),
        "the read moved its idle deadline"
    );
}

/// The S3-FIFO scan of `tests/capacity.rs` (`a_hot_set_survives_a_one_pass_scan` and its
/// control): entries read three times survive a one-pass scan, unread ones do not.
fn survivors_of_a_scan(read: impl Fn(&AsyncMemo<u64, u64>, u64)) -> usize {
    let memo: AsyncMemo<u64, u64> = AsyncMemo::builder().max_capacity(100).shards(1).build();
    for k in 0..20 {
        memo.insert(k, k).unwrap();
        for _ in 0..3 {
            read(&memo, k);
        }
    }
    for cold in 1_000..1_200 {
        memo.insert(cold, cold).unwrap();
    }
    (0..20).filter(|k| memo.epoch(k).is_some()).count()
}

#[test]
fn a_peek_does_not_save_an_entry_from_eviction() {
    let read = survivors_of_a_scan(|memo, k| assert!(memo.get(&k).is_some()));
    assert_eq!(read, 20, "the control: read entries survive the scan");
    let peeked = survivors_of_a_scan(|memo, k| {
        assert!(memo.peek(&k).is_some());
        assert!(memo.entry_info(&k).is_some());
    });
    assert_eq!(peeked, 0, "peeked entries are evicted as if never read");
}

#[test]
fn a_quiet_read_of_a_due_entry_starts_no_refresh() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(30), &queue, &clock);
        let first = block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(30));
        let info = memo.entry_info("k").unwrap();
        assert!(info.is_refresh_due(), "{times:?}");
        assert_eq!(memo.peek("k").map(|e| e.epoch()), Some(first.epoch()));
        assert_eq!(
            queue.len(),
            0,
            "{times:?}: no refresh handed to the spawner"
        );
        assert_eq!(memo.refreshing("k"), None);
        assert_eq!(memo.stats().refreshes_started, 0);
        assert!(memo.entry_info("k").unwrap().is_refresh_due(), "still due");
        // The control: a get-or-init read starts it.
        block_on(memo.get_or_init("k", || async { 2 }));
        assert_eq!(queue.len(), 1, "{times:?}");
    }
}

#[test]
fn a_quiet_read_never_returns_an_expired_entry_and_purges_nothing() {
    let clock = ManualClock::new();
    let log = common::log();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_live(secs(10))
        .expire_after(|_, v: &u32| (*v == 2).then(|| secs(3)))
        .on_removal(common::recorder(&log))
        .clock(clock.clone())
        .build();
    memo.insert("ttl", 1).unwrap();
    memo.insert("own", 2).unwrap();
    clock.advance(secs(3));
    assert!(memo.peek("own").is_none(), "past its expire_after deadline");
    assert!(memo.entry_info("own").is_none());
    assert_eq!(memo.peek("ttl").map(|e| *e.value()), Some(1));
    clock.advance(secs(7));
    assert!(memo.peek("ttl").is_none(), "exactly at its time to live");
    assert!(memo.entry_info("ttl").is_none());
    assert_eq!(memo.len(), 2, "a quiet read purges nothing (no write lock)");
    assert!(common::take(&log).is_empty(), "and reports nothing");
    assert_eq!(memo.stats().expired, 0);
    memo.purge_expired();
    assert_eq!(memo.len(), 0);
}

#[test]
fn a_flight_is_not_a_ready_entry() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let mut call = Box::pin(memo.get_or_init("k", std::future::pending::<u32>));
    assert!(common::poll_once(call.as_mut()).is_pending());
    assert!(memo.epoch("k").is_some(), "a flight holds the key");
    assert!(memo.peek("k").is_none());
    assert!(memo.entry_info("k").is_none());
}

#[test]
fn entry_info_numbers_are_exact_with_a_time_to_live() {
    let clock = ManualClock::new();
    let memo = ttl_memo(&clock, secs(60));
    let entry = memo.insert("k", 1).unwrap();
    clock.advance(Duration::from_nanos(7_000_000_001));
    let info = memo.entry_info("k").unwrap();
    assert_eq!(info.epoch(), entry.epoch());
    assert_eq!(info.weight(), 1, "unbounded: each entry counts 1");
    assert_eq!(info.age(), Some(Duration::from_nanos(7_000_000_001)));
    assert_eq!(
        info.time_to_live_left(),
        Some(Duration::from_nanos(52_999_999_999))
    );
    assert_eq!(info.time_to_idle_left(), None);
    assert_eq!(info.expires_in(), info.time_to_live_left());
    assert_eq!(info.refresh_due_in(), None);
    assert!(!info.is_refresh_due());
    assert_eq!(info.refreshing(), None);
    clock.advance(Duration::from_nanos(52_999_999_998));
    let last = memo.entry_info("k").unwrap();
    assert_eq!(last.time_to_live_left(), Some(Duration::from_nanos(1)));
    assert_eq!(last.age(), Some(secs(60) - Duration::from_nanos(1)));
    clock.advance(Duration::from_nanos(1));
    assert!(memo.entry_info("k").is_none(), "expired");
}

#[test]
fn entry_info_numbers_are_exact_with_live_and_idle_times() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_live(secs(60))
        .time_to_idle(secs(10))
        .clock(clock.clone())
        .build();
    memo.insert("k", 1).unwrap();
    clock.advance(secs(4));
    memo.get("k"); // a real read, at 4 s
    clock.advance(secs(3));
    let info = memo.entry_info("k").unwrap();
    assert_eq!(
        info.age(),
        Some(secs(7)),
        "from the TTL deadline: no expire_after"
    );
    assert_eq!(info.time_to_live_left(), Some(secs(53)));
    assert_eq!(
        info.time_to_idle_left(),
        Some(secs(7)),
        "read at 4 s, idle until 14 s"
    );
    assert_eq!(info.expires_in(), Some(secs(7)));
    clock.advance(secs(6));
    let info = memo.entry_info("k").unwrap();
    assert_eq!(
        info.time_to_idle_left(),
        Some(secs(1)),
        "entry_info did not touch it"
    );
}

#[test]
fn entry_info_age_is_none_where_the_entry_does_not_keep_its_commit() {
    let clock = ManualClock::new();
    let timeless: AsyncMemo<&str, u32> = AsyncMemo::new();
    let idle_only: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_idle(secs(10))
        .clock(clock.clone())
        .build();
    let own_and_idle: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .time_to_live(secs(60))
        .time_to_idle(secs(10))
        .expire_after(|_, _| Some(secs(30)))
        .clock(clock.clone())
        .build();
    let own_only: AsyncMemo<&str, u32> = AsyncMemo::builder()
        .expire_after(|_, _| Some(secs(30)))
        .clock(clock.clone())
        .build();
    for memo in [&timeless, &idle_only, &own_and_idle, &own_only] {
        memo.insert("k", 1).unwrap();
    }
    clock.advance(secs(2));
    let age = |memo: &AsyncMemo<&str, u32>| memo.entry_info("k").unwrap().age();
    assert_eq!(age(&timeless), None);
    assert_eq!(age(&idle_only), None);
    assert_eq!(age(&own_and_idle), None);
    assert_eq!(age(&own_only), Some(secs(2)));
    let info = own_and_idle.entry_info("k").unwrap();
    assert_eq!(
        info.time_to_live_left(),
        Some(secs(28)),
        "expire_after wins"
    );
    assert_eq!(info.time_to_idle_left(), Some(secs(8)));
}

#[test]
fn entry_info_tracks_the_automatic_refresh() {
    for times in EVERY {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let memo = memo(times, secs(30), &queue, &clock);
        block_on(memo.get_or_init("k", || async { 1 }));
        clock.advance(secs(20));
        let info = memo.entry_info("k").unwrap();
        assert_eq!(info.refresh_due_in(), Some(secs(10)), "{times:?}");
        assert!(!info.is_refresh_due());
        // No layout here keeps the commit: the helper's time to live (2^40 s) saturates to
        // "never", so the deadline does not tell it either.
        assert_eq!(info.age(), None, "{times:?}");
        clock.advance(secs(15));
        let due = memo.entry_info("k").unwrap();
        assert_eq!(due.refresh_due_in(), Some(Duration::ZERO), "{times:?}");
        assert!(due.is_refresh_due());
        // A stale read starts the refresh; its next automatic attempt moves an interval on.
        block_on(memo.get_or_init("k", || async { 2 }));
        let refreshing = memo.entry_info("k").unwrap();
        assert_eq!(refreshing.epoch(), due.epoch(), "still served");
        assert_eq!(refreshing.refreshing(), memo.refreshing("k"));
        assert!(refreshing.refreshing().is_some());
        assert_eq!(refreshing.refresh_due_in(), Some(secs(30)), "{times:?}");
        queue.run_all();
        let refreshed = memo.entry_info("k").unwrap();
        assert!(refreshed.epoch() > due.epoch());
        assert_eq!(refreshed.refreshing(), None);
        assert_eq!(refreshed.refresh_due_in(), Some(secs(30)), "{times:?}");
    }
}

#[test]
fn entry_info_age_with_refresh_after_comes_from_the_time_to_live() {
    for idle in [None, Some(secs(600))] {
        let (queue, clock) = (Queue::default(), ManualClock::new());
        let builder = AsyncMemo::builder()
            .time_to_live(secs(3600))
            .refresh_after(secs(30), queue.spawner())
            .clock(clock.clone());
        let builder = match idle {
            Some(idle) => builder.time_to_idle(idle),
            None => builder,
        };
        let memo: AsyncMemo<&str, u32> = builder.build();
        memo.insert("k", 1).unwrap();
        clock.advance(secs(45));
        let info = memo.entry_info("k").unwrap();
        assert_eq!(info.age(), Some(secs(45)), "{idle:?}");
        assert!(info.is_refresh_due());
        assert_eq!(info.time_to_live_left(), Some(secs(3555)));
        assert_eq!(info.time_to_idle_left(), idle.map(|d| d - secs(45)));
    }
}

#[test]
fn entry_info_weight_is_the_weighers_in_a_bounded_memo() {
    let memo: AsyncMemo<&str, String> = AsyncMemo::builder()
        .max_capacity(100)
        .weigher(|_, v: &String| v.len() as u32)
        .build();
    memo.insert("empty", String::new()).unwrap();
    memo.insert("five", "hello".to_string()).unwrap();
    assert_eq!(memo.entry_info("empty").map(|i| i.weight()), Some(0));
    assert_eq!(memo.entry_info("five").map(|i| i.weight()), Some(5));
    assert_eq!(memo.weighted_size(), 5);
}

#[test]
fn entry_info_saturates_at_the_ends_of_time() {
    let clock = ManualClock::new();
    let memo = ttl_memo(&clock, Duration::MAX);
    memo.insert("k", 1).unwrap();
    clock.advance(Duration::MAX);
    let info = memo
        .entry_info("k")
        .expect("a time to live of Duration::MAX never ends");
    assert_eq!(info.time_to_live_left(), None, "saturated to never");
    assert_eq!(info.expires_in(), None);
    assert!(
        info.age()
            .is_some_and(|age| age > secs(500 * 365 * 24 * 3600))
    );
}

#[test]
fn a_replaced_entrys_old_epoch_no_longer_matches() {
    let clock = ManualClock::new();
    let memo = ttl_memo(&clock, secs(60));
    memo.insert("k", 1).unwrap();
    let old = memo.entry_info("k").unwrap();
    clock.advance(secs(5));
    memo.insert("k", 2).unwrap();
    let new = memo.entry_info("k").unwrap();
    assert!(new.epoch() > old.epoch());
    assert_eq!(
        new.age(),
        Some(Duration::ZERO),
        "the replacement's own commit"
    );
    assert_eq!(memo.peek("k").map(|e| e.epoch()), Some(new.epoch()));
    assert!(
        !memo.invalidate("k", old.epoch()),
        "the old info acts on nothing"
    );
    assert_eq!(memo.peek("k").map(|e| *e.value()), Some(2));
    assert!(memo.invalidate("k", new.epoch()));
    assert!(memo.peek("k").is_none() && memo.entry_info("k").is_none());
}
