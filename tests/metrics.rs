//! The `metrics` feature (issue 22, point 4): `AsyncMemo::record_metrics` exports exactly what
//! `stats`, `len` and `weighted_size` say, under the documented names and labels, into the
//! current recorder, and only when called.
//!
//! Each test renders a `metrics-exporter-prometheus` recorder of its own, set for the test's
//! thread with `metrics::with_local_recorder`, so the tests share no global state.
#![cfg(feature = "metrics")]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock, Stats};
use common::{poll_once, ready};
use futures::channel::oneshot;
use futures::executor::block_on;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// Runs `record_metrics` for each memo into a fresh recorder and returns the sample lines of
/// its Prometheus text (comments dropped), sorted.
fn scrape(record: impl FnOnce()) -> Vec<String> {
    let (recorder, text) = render(record);
    drop(recorder);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn render(record: impl FnOnce()) -> (PrometheusRecorder, String) {
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, record);
    let text = recorder.handle().render();
    (recorder, text)
}

/// The sample lines `record_metrics` must produce for `stats`, `len` and `weighted_size`,
/// sorted, written out from the documented table.
fn expected(memo: &str, s: Stats, len: u64, weight: u64) -> Vec<String> {
    let plain = |name: &str, value: u64| format!("{name}{{memo=\"{memo}\"}} {value}");
    let by = |name: &str, label: &str, value: &str, n: u64| {
        format!("{name}{{memo=\"{memo}\",{label}=\"{value}\"}} {n}")
    };
    let mut lines = vec![
        plain("async_memo_hits_total", s.hits),
        plain("async_memo_misses_total", s.misses),
        plain("async_memo_joins_total", s.joins),
        plain("async_memo_flights_started_total", s.flights_started),
        plain("async_memo_refreshes_started_total", s.refreshes_started),
        plain("async_memo_entries", len),
        plain("async_memo_weighted_size", weight),
    ];
    let flights = "async_memo_flights_finished_total";
    lines.push(by(flights, "outcome", "committed", s.flights_committed));
    lines.push(by(flights, "outcome", "detached", s.flights_detached));
    lines.push(by(flights, "outcome", "failed", s.flights_failed));
    lines.push(by(flights, "outcome", "panicked", s.flights_panicked));
    lines.push(by(flights, "outcome", "abandoned", s.flights_abandoned));
    let removals = "async_memo_removals_total";
    lines.push(by(removals, "cause", "invalidated", s.invalidated));
    lines.push(by(removals, "cause", "removed", s.removed));
    lines.push(by(removals, "cause", "replaced", s.replaced));
    lines.push(by(removals, "cause", "expired", s.expired));
    lines.push(by(removals, "cause", "evicted", s.evicted));
    lines.push(by(removals, "cause", "cleared", s.cleared));
    let refreshes = "async_memo_refreshes_finished_total";
    lines.push(by(refreshes, "outcome", "committed", s.refreshes_committed));
    lines.push(by(refreshes, "outcome", "detached", s.refreshes_detached));
    lines.push(by(refreshes, "outcome", "failed", s.refreshes_failed));
    lines.sort();
    lines
}

/// A named, weighed, expiring memo taken through every kind of counted event but `cleared`
/// (which would empty it), each exported with its exact value and labels.
#[test]
fn record_metrics_exports_every_counter_and_gauge_with_the_memo_label() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<u32, String> = AsyncMemo::builder()
        .name("users")
        .max_capacity(100)
        .weigher(|_, v: &String| v.len() as u32)
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    block_on(async {
        // Expired: an entry past its time to live, purged.
        memo.insert(1, "old".into()).unwrap();
        clock.advance(Duration::from_secs(10));
        memo.purge_expired();
        // Evicted: heavier than the bound, turned away.
        assert!(memo.insert(1, "x".repeat(101)).is_err());
        // A miss whose flight commits, then two hits.
        memo.get_or_init(1, || async { "ada".to_string() }).await;
        memo.get_or_init(1, || async { unreachable!() }).await;
        assert!(memo.get(&1).is_some());
        // A miss of `get`, and a flight that fails.
        assert!(memo.get(&9).is_none());
        let failed = memo.get_or_try_init(2, || async { Err::<String, _>("down") });
        assert!(failed.await.is_err());
        // A join: the second caller finds the first one's flight in progress.
        let (tx, rx) = oneshot::channel::<String>();
        let mut leader = pin!(memo.get_or_init(4, || async { rx.await.unwrap() }));
        let mut joiner = pin!(memo.get_or_init(4, || async { unreachable!() }));
        assert!(poll_once(leader.as_mut()).is_pending());
        assert!(poll_once(joiner.as_mut()).is_pending());
        tx.send("zoe".into()).unwrap();
        ready(poll_once(leader.as_mut()));
        ready(poll_once(joiner.as_mut()));
        // Replaced, removed, invalidated.
        memo.insert(5, "grace".into()).unwrap();
        memo.insert(5, "hopper".into()).unwrap();
        assert!(memo.remove(&5).is_some());
        let entry = memo.insert(6, "bob".into()).unwrap();
        assert!(memo.invalidate(&6, entry.epoch()));
        // A refresh that commits onto key 1.
        memo.refresh(1, || async { "lovelace".to_string() }).await;
    });
    // A flight that panics.
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        block_on(memo.get_or_init(3, || async { panic!("init panics") }))
    }));
    assert!(panicked.is_err());

    let stats = memo.stats();
    let mut pinned = Stats::default();
    pinned.hits = 2;
    // keys 1, 9, 2, 3, 4 (leader and joiner) and the refresh, which `Stats` counts as a miss.
    pinned.misses = 7;
    pinned.joins = 1;
    pinned.flights_started = 5;
    pinned.flights_committed = 3;
    pinned.flights_failed = 1;
    pinned.flights_panicked = 1;
    pinned.invalidated = 1;
    pinned.removed = 1;
    // `insert` over key 5, and the refresh's commit over key 1.
    pinned.replaced = 2;
    pinned.expired = 1;
    pinned.evicted = 1;
    pinned.refreshes_started = 1;
    pinned.refreshes_committed = 1;
    assert_eq!(stats, pinned, "the scenario's counters");
    assert_eq!((memo.len(), memo.weighted_size()), (2, 8 + 3));

    let lines = scrape(|| memo.record_metrics());
    assert_eq!(lines, expected("users", pinned, 2, 11));
}

/// The text a user scrapes: kinds and help from the descriptions, one `# TYPE` per metric.
#[test]
fn record_metrics_describes_each_metric_with_its_kind() {
    let memo: AsyncMemo<u8, u8> = AsyncMemo::builder().name("users").build();
    let (_recorder, text) = render(|| memo.record_metrics());
    for counter in [
        "hits_total",
        "misses_total",
        "joins_total",
        "flights_started_total",
        "flights_finished_total",
        "removals_total",
        "refreshes_started_total",
        "refreshes_finished_total",
    ] {
        let kind = format!("# TYPE async_memo_{counter} counter");
        assert!(text.contains(&kind), "{kind} missing from\n{text}");
    }
    for gauge in ["entries", "weighted_size"] {
        let kind = format!("# TYPE async_memo_{gauge} gauge");
        assert!(text.contains(&kind), "{kind} missing from\n{text}");
    }
    assert!(text.contains("# HELP async_memo_hits_total Reads that found a ready entry."));
    assert_eq!(text.matches("# TYPE").count(), 10, "{text}");
}

/// A memo built without a name, or with an empty one, exports as `memo="unnamed"`.
#[test]
fn record_metrics_labels_an_unnamed_memo_unnamed() {
    let unnamed: AsyncMemo<u8, u8> = AsyncMemo::new();
    let empty: AsyncMemo<u8, u8> = AsyncMemo::builder().name("").build();
    assert_eq!((unnamed.name(), empty.name()), (None, None));
    for memo in [unnamed, empty] {
        memo.insert(1, 1).unwrap();
        let lines = scrape(|| memo.record_metrics());
        assert_eq!(lines, expected("unnamed", Stats::default(), 1, 1));
    }
}

/// Two memos with names of their own write separate series into one recorder; a second call
/// moves the counters to their new values (`absolute`), the gauges both ways.
#[test]
fn record_metrics_keeps_memos_apart_and_follows_their_counters() {
    let users: AsyncMemo<u8, u8> = AsyncMemo::builder().name("users").build();
    let pages: AsyncMemo<u8, u8> = AsyncMemo::builder().name("pages").build();
    users.insert(1, 1).unwrap();
    users.get(&1);
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        users.record_metrics();
        pages.record_metrics();
    });
    let text = recorder.handle().render();
    assert!(
        text.contains("async_memo_hits_total{memo=\"users\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("async_memo_hits_total{memo=\"pages\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("async_memo_entries{memo=\"users\"} 1\n"),
        "{text}"
    );

    users.get(&1);
    users.get(&1);
    users.invalidate_all();
    metrics::with_local_recorder(&recorder, || users.record_metrics());
    let text = recorder.handle().render();
    assert!(
        text.contains("async_memo_hits_total{memo=\"users\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("async_memo_entries{memo=\"users\"} 0\n"),
        "{text}"
    );
    let cleared = "async_memo_removals_total{memo=\"users\",cause=\"cleared\"} 1\n";
    assert!(text.contains(cleared), "{text}");
}

/// Export is on demand: hits, misses, flights and removals record nothing by themselves.
#[test]
fn a_memo_records_nothing_until_record_metrics_is_called() {
    let memo: AsyncMemo<u8, u8> = AsyncMemo::builder().name("users").build();
    let (_recorder, text) = render(|| {
        block_on(memo.get_or_init(1, || async { 1 }));
        memo.get(&1);
        memo.get(&2);
        memo.insert(1, 2).unwrap();
        memo.remove(&1);
    });
    assert_eq!(text, "");
}
