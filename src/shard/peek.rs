//! Quiet reads of a shard, for `peek` and `entry_info`: what a ready entry's words of time say,
//! read under the shard's read lock without touching anything (no recency, no last read).

use std::borrow::Borrow;

use super::{Found, ShardMap};
use crate::Epoch;
use crate::clock::Tick;
use crate::expiry::{ExpiryRules, Moment};

/// A ready, unexpired entry's metadata, in ticks (`NEVER`: no such deadline).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    pub(crate) epoch: Epoch,
    /// What it counts for against the capacity: 1 in an unbounded memo, as `weighted_size`.
    pub(crate) weight: u32,
    /// Its commit, if its words of time still tell it (`Expiry::committed_at`).
    pub(crate) committed: Option<Tick>,
    /// The time to live or `expire_after` deadline, fixed at commit.
    pub(crate) fixed: Tick,
    /// The last read plus the time to idle.
    pub(crate) idle: Tick,
    /// When its automatic refresh is due.
    pub(crate) refresh_at: Tick,
    /// The epoch of the refresh in flight beside it.
    pub(crate) refreshing: Option<Epoch>,
}

impl<K, V> ShardMap<K, V>
where
    V: Send + Sync + 'static,
{
    /// The times of the ready entry of `key` at `at`, or `None` if it has none (or only an
    /// expired one, which is left for a write to purge). Touches nothing: read lock only.
    pub(crate) fn times<Q>(
        &self,
        hash: u64,
        key: &Q,
        at: Moment,
        rules: &ExpiryRules,
    ) -> Option<Times>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Found::Ready(ready) = self.get(hash, key, at, false) else {
            return None;
        };
        let epoch = ready.entry.epoch();
        Some(Times {
            epoch,
            weight: ready.residency.as_ref().map_or(1, |r| r.weight()),
            committed: ready.expiry.committed_at(at, rules),
            fixed: ready.expiry.fixed_deadline(),
            idle: ready.expiry.idle_deadline(at.time_to_idle),
            refresh_at: Self::refresh_at(&self.refreshes, hash, ready, at.layout),
            refreshing: self.refreshes.get(hash, epoch).map(|flight| flight.epoch()),
        })
    }
}
