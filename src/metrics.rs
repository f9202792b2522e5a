//! The `metrics` feature: a memo's counters and gauges through the `metrics` facade, on demand.
//!
//! Export reads what [`AsyncMemo::stats`], [`AsyncMemo::len`] and [`AsyncMemo::weighted_size`]
//! read, when the user asks: nothing here runs on a hit, a miss or a write, so the feature costs
//! a memo nothing until `record_metrics` is called.

use std::hash::{BuildHasher, Hash};

use metrics::{SharedString, Unit, counter, describe_counter, describe_gauge, gauge};

use crate::{AsyncMemo, Stats};

/// The label every metric carries: the memo's name.
const MEMO: &str = "memo";
/// The `memo` label's value for a memo built without [`name`](crate::MemoBuilder::name).
const UNNAMED: &str = "unnamed";

const HITS: &str = "async_memo_hits_total";
const MISSES: &str = "async_memo_misses_total";
const JOINS: &str = "async_memo_joins_total";
const FLIGHTS_STARTED: &str = "async_memo_flights_started_total";
const FLIGHTS_FINISHED: &str = "async_memo_flights_finished_total";
const REMOVALS: &str = "async_memo_removals_total";
const REFRESHES_STARTED: &str = "async_memo_refreshes_started_total";
const REFRESHES_FINISHED: &str = "async_memo_refreshes_finished_total";
const ENTRIES: &str = "async_memo_entries";
const WEIGHTED_SIZE: &str = "async_memo_weighted_size";

impl<K, V, S> AsyncMemo<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
{
    /// Records the memo's [`Stats`] counters and its [`len`](Self::len) and
    /// [`weighted_size`](Self::weighted_size) gauges into the current
    /// [`metrics`](https://docs.rs/metrics) recorder (the global one, or a local one set with
    /// `metrics::with_local_recorder`). Feature `metrics`, off by default.
    ///
    /// Export is on demand: the memo keeps its counters as always, and this reads them and
    /// hands them to the recorder. Call it from your scrape handler just before rendering, or
    /// from a timer of your own; the crate never spawns a thread or a task. Counters are
    /// recorded with `Counter::absolute`, which is correct because every one of them only ever
    /// grows. The memo is not locked while the recorder runs; `len` and `weighted_size` take
    /// each shard's read lock in turn, as they always do, so a call costs two passes over the
    /// shards' locks and 31 recorder calls (21 values and 10 descriptions).
    ///
    /// Every metric carries the label `memo`, the name given with
    /// [`MemoBuilder::name`](crate::MemoBuilder::name) (`"unnamed"` without one). Give each
    /// memo you export its own name; two memos sharing one write the same series. Names,
    /// kinds, units and descriptions (the descriptions are registered on every call, so a
    /// recorder installed late still gets them):
    ///
    /// | Metric | Kind | Unit | Extra label | Meaning ([`Stats`] field) |
    /// |---|---|---|---|---|
    /// | `async_memo_hits_total` | counter | count | | reads that found a ready entry (`hits`) |
    /// | `async_memo_misses_total` | counter | count | | reads that found none (`misses`) |
    /// | `async_memo_joins_total` | counter | count | | `get_or_init` calls that joined a flight in progress (`joins`) |
    /// | `async_memo_flights_started_total` | counter | count | | flights started, refreshes among them (`flights_started`) |
    /// | `async_memo_flights_finished_total` | counter | count | `outcome`: `committed`, `detached`, `failed`, `panicked`, `abandoned` | flights by how they ended (`flights_committed` … `flights_abandoned`) |
    /// | `async_memo_removals_total` | counter | count | `cause`: `invalidated`, `removed`, `replaced`, `expired`, `evicted`, `cleared` | entries that left, by [`RemovalCause`](crate::RemovalCause) (`invalidated` … `cleared`) |
    /// | `async_memo_refreshes_started_total` | counter | count | | refreshes started (`refreshes_started`) |
    /// | `async_memo_refreshes_finished_total` | counter | count | `outcome`: `committed`, `detached`, `failed` | refreshes by how they ended (`refreshes_committed` … `refreshes_failed`) |
    /// | `async_memo_entries` | gauge | count | | ready entries, as [`len`](Self::len) |
    /// | `async_memo_weighted_size` | gauge | the weigher's | | total weight of the ready entries, as [`weighted_size`](Self::weighted_size) (the entry count without a weigher) |
    ///
    /// Once the memo is quiet, `flights_started_total` equals the sum of
    /// `flights_finished_total` over its outcomes (see [`Stats`]); while flights run, the
    /// difference is the number in progress. Gauges are `f64` in the facade: exact up to 2^53.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_memo::AsyncMemo;
    /// use metrics_exporter_prometheus::PrometheusBuilder;
    ///
    /// let recorder = PrometheusBuilder::new().build_recorder();
    /// let handle = recorder.handle();
    ///
    /// let users: AsyncMemo<u64, String> = AsyncMemo::builder().name("users").build();
    /// users.insert(7, "ada".to_string())?;
    /// users.get(&7);
    ///
    /// // In a service: `metrics::set_global_recorder(recorder)` once, then `record_metrics`
    /// // in the scrape handler.
    /// metrics::with_local_recorder(&recorder, || users.record_metrics());
    /// let text = handle.render();
    /// assert!(text.contains(r#"async_memo_hits_total{memo="users"} 1"#));
    /// assert!(text.contains(r#"async_memo_entries{memo="users"} 1"#));
    /// # Ok::<(), async_memo::Refused<String>>(())
    /// ```
    pub fn record_metrics(&self) {
        // Destructured field by field, so that a counter added to `Stats` fails to compile
        // here until it is exported.
        let Stats {
            hits,
            misses,
            joins,
            flights_started,
            flights_committed,
            flights_detached,
            flights_failed,
            flights_panicked,
            flights_abandoned,
            invalidated,
            removed,
            replaced,
            expired,
            evicted,
            cleared,
            refreshes_started,
            refreshes_committed,
            refreshes_detached,
            refreshes_failed,
        } = self.stats();
        let (entries, weighted_size) = (self.len(), self.weighted_size());
        describe();
        let memo: SharedString = match &self.table.name {
            Some(name) => SharedString::from(std::sync::Arc::clone(name)),
            None => SharedString::const_str(UNNAMED),
        };
        let count = |name: &'static str, value: u64| {
            counter!(name, MEMO => memo.clone()).absolute(value);
        };
        count(HITS, hits);
        count(MISSES, misses);
        count(JOINS, joins);
        count(FLIGHTS_STARTED, flights_started);
        count(REFRESHES_STARTED, refreshes_started);
        let by = |name: &'static str, label: &'static str, value: &'static str, n: u64| {
            counter!(name, MEMO => memo.clone(), label => value).absolute(n);
        };
        for (outcome, n) in [
            ("committed", flights_committed),
            ("detached", flights_detached),
            ("failed", flights_failed),
            ("panicked", flights_panicked),
            ("abandoned", flights_abandoned),
        ] {
            by(FLIGHTS_FINISHED, "outcome", outcome, n);
        }
        for (cause, n) in [
            ("invalidated", invalidated),
            ("removed", removed),
            ("replaced", replaced),
            ("expired", expired),
            ("evicted", evicted),
            ("cleared", cleared),
        ] {
            by(REMOVALS, "cause", cause, n);
        }
        for (outcome, n) in [
            ("committed", refreshes_committed),
            ("detached", refreshes_detached),
            ("failed", refreshes_failed),
        ] {
            by(REFRESHES_FINISHED, "outcome", outcome, n);
        }
        // Gauges are f64 in the facade: exact up to 2^53 entries or units of weight.
        gauge!(ENTRIES, MEMO => memo.clone()).set(entries as f64);
        gauge!(WEIGHTED_SIZE, MEMO => memo).set(weighted_size as f64);
    }
}

/// Registers the descriptions (help text and unit) with the current recorder.
fn describe() {
    let counters = [
        (HITS, "Reads that found a ready entry."),
        (MISSES, "Reads that found no ready entry."),
        (JOINS, "get_or_init calls that joined a flight in progress."),
        (FLIGHTS_STARTED, "Flights started, refreshes among them."),
        (FLIGHTS_FINISHED, "Flights finished, by outcome."),
        (REMOVALS, "Entries removed, by cause."),
        (REFRESHES_STARTED, "Refreshes started."),
        (REFRESHES_FINISHED, "Refreshes finished, by outcome."),
    ];
    for (name, help) in counters {
        describe_counter!(name, Unit::Count, help);
    }
    describe_gauge!(ENTRIES, Unit::Count, "Ready entries in the memo.");
    describe_gauge!(
        WEIGHTED_SIZE,
        "Total weight of the ready entries (their count without a weigher)."
    );
}
