//! Counters of the invalidation log, and the snapshot users read.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The state of the link to the log, as the reader task last saw it.
///
/// # Examples
///
/// ```
/// assert_ne!(async_memo_redis::Link::Connected, async_memo_redis::Link::Bypassing);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// The last read succeeded: the memo is as current as the log.
    Connected,
    /// Reads fail; the memo still serves, within the [`WhenDisconnected`](crate::WhenDisconnected)
    /// bound.
    Disconnected,
    /// Reads have failed for longer than the bound, under
    /// [`WhenDisconnected::Bypass`](crate::WhenDisconnected::Bypass):
    /// [`NearMemo::get_or_init`](crate::NearMemo::get_or_init) runs every `init` itself and
    /// stores nothing.
    Bypassing,
}

/// What the invalidation log did in this process, from [`NearMemo::stats`](crate::NearMemo::stats).
///
/// Counters move after the event they count has reached the memo and the
/// [`on_apply`](crate::NearMemoBuilder::on_apply) listener: once `applied` reads `n`, the
/// `n`-th record's key is gone from the memo.
///
/// # Examples
///
/// ```
/// let stats = async_memo_redis::LogStats::default();
/// assert_eq!(stats.applied, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Records this process published (`invalidate`, `invalidate_all`,
    /// `commit_and_invalidate` that succeeded).
    pub published: u64,
    /// Records of other processes applied to the memo.
    pub applied: u64,
    /// This process's own records, skipped by its reader (they were applied at once).
    pub own: u64,
    /// Gaps detected (trimmed past, deleted, recreated, restarted): each one reset the memo.
    pub gaps: u64,
    /// Times the whole memo was invalidated for any reason: gaps, records invalidating all,
    /// undecodable keys, and the disconnected policy.
    pub resets: u64,
    /// Times the reader read successfully again after failing.
    pub reconnects: u64,
    /// Records the log held after the reader's cursor at its last read: how far behind it is.
    pub lag: u64,
    /// The apply lag of the last record applied (publisher's clock to this process's clock,
    /// so it includes their skew).
    pub last_apply_lag: Option<Duration>,
    /// The largest apply lag seen.
    pub max_apply_lag: Duration,
    /// The link's state: `None` before the reader's first read.
    pub link: Option<Link>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) own: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) lag: AtomicU64,
    /// Microseconds plus one; 0 means none yet.
    last_apply_lag_us: AtomicU64,
    max_apply_lag_us: AtomicU64,
    link: AtomicU8,
}

const LINK_NONE: u8 = 0;

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn apply_lag(&self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX - 1);
        self.last_apply_lag_us.store(us + 1, Relaxed);
        self.max_apply_lag_us.fetch_max(us, Relaxed);
    }

    pub(crate) fn set_link(&self, link: Link) {
        self.link.store(link as u8 + 1, Relaxed);
    }

    pub(crate) fn link(&self) -> Option<Link> {
        match self.link.load(Relaxed) {
            LINK_NONE => None,
            1 => Some(Link::Connected),
            2 => Some(Link::Disconnected),
            _ => Some(Link::Bypassing),
        }
    }

    pub(crate) fn snapshot(&self) -> LogStats {
        let last = self.last_apply_lag_us.load(Relaxed);
        LogStats {
            published: self.published.load(Relaxed),
            applied: self.applied.load(Relaxed),
            own: self.own.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            resets: self.resets.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            lag: self.lag.load(Relaxed),
            last_apply_lag: last.checked_sub(1).map(Duration::from_micros),
            max_apply_lag: Duration::from_micros(self.max_apply_lag_us.load(Relaxed)),
            link: self.link(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_round_trips_through_the_atomic() {
        let c = Counters::default();
        assert_eq!(c.link(), None);
        for link in [Link::Connected, Link::Disconnected, Link::Bypassing] {
            c.set_link(link);
            assert_eq!(c.link(), Some(link));
        }
    }

    #[test]
    fn an_absurd_lag_saturates() {
        let c = Counters::default();
        c.apply_lag(Duration::MAX);
        assert!(c.snapshot().last_apply_lag.is_some());
    }
}
