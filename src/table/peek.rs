//! The table's quiet reads (`peek`, `entry_info`): one clock reading before locking, then the
//! shard's read lock only. Nothing is counted, touched, purged or started: an expired entry is
//! reported absent and left for a write to purge.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use super::Table;
use crate::Entry;
use crate::info::EntryInfo;
use crate::shard::Found;

impl<K, V, S> Table<K, V, S>
where
    K: Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// The ready, unexpired entry of `key`, read quietly (`peek`). Runs `Clone` of `V` under the
    /// read lock, as a hit does.
    pub(crate) fn peek<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let at = self.moment();
        let hash = self.hash(key);
        let map = self.shard(hash).map.read();
        match map.get(hash, key, at, false) {
            Found::Ready(ready) => Some(ready.entry.clone()),
            Found::Expired | Found::Flight(_) | Found::Vacant => None,
        }
    }

    /// The metadata of the ready, unexpired entry of `key`, read quietly (`entry_info`).
    pub(crate) fn entry_info<Q>(&self, key: &Q) -> Option<EntryInfo>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.moment();
        let hash = self.hash(key);
        let times = self
            .shard(hash)
            .map
            .read()
            .times(hash, key, at, &self.rules)?;
        Some(EntryInfo::new(times, at.now))
    }
}
