//! Always-on counters, read as a [`Stats`] snapshot.

use crate::sync::{AtomicU64, Ordering::Relaxed};

use crate::RemovalCause;

/// A snapshot of a memo's counters, from [`AsyncMemo::stats`](crate::AsyncMemo::stats).
///
/// Counters are relaxed atomics read one by one, so a snapshot taken while operations run may mix
/// moments; once the memo is quiet, they add up: `flights_started == flights_committed +
/// flights_detached + flights_failed + flights_panicked + flights_abandoned + flights in
/// progress`.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::new();
/// memo.get_or_init(1, || async { 1 }).await;
/// memo.get_or_init(1, || async { unreachable!() }).await;
/// let stats = memo.stats();
/// assert_eq!((stats.hits, stats.misses, stats.flights_committed), (1, 1, 1));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads (`get`, and `get_or_init` calls) that found a ready entry.
    pub hits: u64,
    /// Reads that found none (a `get_or_init` miss then joins or starts a flight).
    pub misses: u64,
    /// `get_or_init` calls that joined a flight already in progress.
    pub joins: u64,
    /// Flights started.
    pub flights_started: u64,
    /// Flights whose value was committed.
    pub flights_committed: u64,
    /// Flights that finished after being detached: their value went to their callers only.
    pub flights_detached: u64,
    /// Flights whose future returned an error.
    pub flights_failed: u64,
    /// Flights whose `init` or future panicked.
    pub flights_panicked: u64,
    /// Flights dropped because their last caller went away.
    pub flights_abandoned: u64,
    /// Entries removed by `invalidate`.
    pub invalidated: u64,
    /// Entries removed by `remove`.
    pub removed: u64,
    /// Entries replaced by `insert`.
    pub replaced: u64,
    /// Entries that expired.
    pub expired: u64,
    /// Entries evicted for capacity or turned away by admission.
    pub evicted: u64,
    /// Entries removed by `invalidate_all`.
    pub cleared: u64,
    /// Refreshes started (by `refresh`, `try_refresh`, `refresh_if` or `refresh_after`); each
    /// is counted among `flights_started` too.
    pub refreshes_started: u64,
    /// Refreshes whose value replaced the entry they refreshed.
    pub refreshes_committed: u64,
    /// Refreshes that finished after being detached (their entry left, or they were
    /// invalidated): their value went to their callers only.
    pub refreshes_detached: u64,
    /// Refreshes whose future returned an error or whose `init` or future panicked; the entry
    /// they refreshed stayed.
    pub refreshes_failed: u64,
}

/// The counters behind [`Stats`], except hits, which the table counts in a slot per thread
/// (`tally.rs`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) misses: AtomicU64,
    pub(crate) joins: AtomicU64,
    pub(crate) started: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) detached: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) refresh_started: AtomicU64,
    pub(crate) refresh_committed: AtomicU64,
    pub(crate) refresh_detached: AtomicU64,
    pub(crate) refresh_failed: AtomicU64,
    removals: [AtomicU64; 6],
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

fn cause_index(cause: RemovalCause) -> usize {
    match cause {
        RemovalCause::Invalidated => 0,
        RemovalCause::Removed => 1,
        RemovalCause::Replaced => 2,
        RemovalCause::Expired => 3,
        RemovalCause::Evicted => 4,
        RemovalCause::Cleared => 5,
    }
}

impl Counters {
    pub(crate) fn removal(&self, cause: RemovalCause) {
        bump(&self.removals[cause_index(cause)]);
    }

    pub(crate) fn snapshot(&self, hits: u64) -> Stats {
        let removals = |cause| self.removals[cause_index(cause)].load(Relaxed);
        Stats {
            hits,
            misses: self.misses.load(Relaxed),
            joins: self.joins.load(Relaxed),
            flights_started: self.started.load(Relaxed),
            flights_committed: self.committed.load(Relaxed),
            flights_detached: self.detached.load(Relaxed),
            flights_failed: self.failed.load(Relaxed),
            flights_panicked: self.panicked.load(Relaxed),
            flights_abandoned: self.abandoned.load(Relaxed),
            invalidated: removals(RemovalCause::Invalidated),
            removed: removals(RemovalCause::Removed),
            replaced: removals(RemovalCause::Replaced),
            expired: removals(RemovalCause::Expired),
            evicted: removals(RemovalCause::Evicted),
            cleared: removals(RemovalCause::Cleared),
            refreshes_started: self.refresh_started.load(Relaxed),
            refreshes_committed: self.refresh_committed.load(Relaxed),
            refreshes_detached: self.refresh_detached.load(Relaxed),
            refreshes_failed: self.refresh_failed.load(Relaxed),
        }
    }
}
