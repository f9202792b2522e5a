//! Snapshots of a shard, for `iter` and `invalidate_if`: copies taken under the read lock, so
//! the caller can look at them (and run user code) with no lock held.

use super::{ShardMap, Slot};
use crate::expiry::Moment;
use crate::{Entry, Epoch};

/// What a key held when the snapshot was taken.
pub(crate) enum Seen<V> {
    /// A ready, unexpired entry (a copy).
    Ready(Entry<V>),
    /// A flight in progress, by its epoch.
    Flight(Epoch),
}

impl<K, V> ShardMap<K, V> {
    /// Appends a copy of every ready, unexpired entry (and, if `flights`, every flight of a key
    /// with no entry) to `out`. Runs `Clone` of `K` and `V` under the read lock: the documented
    /// exception, as on a hit. A refresh in flight is not listed: it belongs to its entry.
    pub(crate) fn snapshot(&self, at: Moment, flights: bool, out: &mut Vec<(K, Seen<V>)>)
    where
        K: Clone,
        V: Clone,
    {
        out.reserve(self.table.len());
        for bucket in &self.table {
            let seen = match &bucket.slot {
                Slot::Ready(ready) if !ready.is_expired(at) => Seen::Ready(ready.entry.clone()),
                Slot::Ready(_) => continue,
                Slot::Flight(flight) if flights => Seen::Flight(flight.epoch()),
                Slot::Flight(_) => continue,
            };
            out.push((bucket.key.clone(), seen));
        }
    }
}
