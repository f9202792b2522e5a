//! One shard of the memo: a map from keys to slots, behind a read-write lock.
//!
//! # Invariants
//!
//! 1. A key holds one [`Slot`]: a ready entry or a flight. Every change of a slot is decided under
//!    the shard write lock by comparing epochs (or, for a flight, its identity).
//! 2. `ready` is the number of `Slot::Ready` in `map`.
//! 3. Nothing displaced from the map (keys, values, flights) is dropped here: every method hands
//!    it back, and the caller drops it after releasing the lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::flight::Flight;
use crate::{Entry, Epoch};

/// What a key holds.
pub(crate) enum Slot<V> {
    /// A committed value.
    Ready(Entry<V>),
    /// A computation in progress.
    Flight(Arc<Flight<V>>),
}

impl<V> Slot<V> {
    pub(crate) fn epoch(&self) -> Epoch
    where
        V: Send + Sync + 'static,
    {
        match self {
            Slot::Ready(entry) => entry.epoch(),
            Slot::Flight(flight) => flight.epoch(),
        }
    }

    fn is_ready(&self) -> bool {
        matches!(self, Slot::Ready(_))
    }

    /// Whether this slot is exactly `flight` (not merely another flight with the same key).
    pub(crate) fn is_flight(&self, flight: &Arc<Flight<V>>) -> bool {
        matches!(self, Slot::Flight(f) if Arc::ptr_eq(f, flight))
    }
}

/// A shard, padded to its own cache lines so that two shards' locks never share one.
#[repr(align(128))]
pub(crate) struct Shard<K, V, S> {
    pub(crate) map: RwLock<ShardMap<K, V, S>>,
}

impl<K, V, S> Shard<K, V, S> {
    pub(crate) fn new(hasher: S) -> Self {
        Shard {
            map: RwLock::new(ShardMap {
                map: HashMap::with_hasher(hasher),
                ready: 0,
            }),
        }
    }
}

pub(crate) struct ShardMap<K, V, S> {
    map: HashMap<K, Slot<V>, S>,
    ready: usize,
}

impl<K, V, S> ShardMap<K, V, S> {
    pub(crate) fn ready(&self) -> usize {
        self.ready
    }
}

/// A key and slot taken out of the map, to be dropped after the lock is released.
pub(crate) type Displaced<K, V> = (Option<K>, Option<Slot<V>>);

impl<K: Hash + Eq, V, S: BuildHasher> ShardMap<K, V, S> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&Slot<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// Puts `slot` under `key`. Returns the displaced slot and, if the key was present, the
    /// spare `key` (the map keeps the one it had).
    pub(crate) fn insert(&mut self, key: K, slot: Slot<V>) -> Displaced<K, V> {
        self.ready += usize::from(slot.is_ready());
        match self.map.get_mut(&key) {
            Some(current) => {
                let old = std::mem::replace(current, slot);
                self.ready -= usize::from(old.is_ready());
                (Some(key), Some(old))
            }
            None => {
                self.map.insert(key, slot);
                (None, None)
            }
        }
    }

    /// Removes the slot of `key` if `matches` says so.
    pub(crate) fn remove_if<Q>(
        &mut self,
        key: &Q,
        matches: impl FnOnce(&Slot<V>) -> bool,
    ) -> Option<(K, Slot<V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !matches(self.map.get(key)?) {
            return None;
        }
        let (key, slot) = self.map.remove_entry(key)?;
        self.ready -= usize::from(slot.is_ready());
        Some((key, slot))
    }

    /// Commits a flight: replaces it with `entry` if the key still holds exactly that flight.
    /// Returns what must be dropped after unlocking: the flight handle on success, `entry` itself
    /// when the flight was detached.
    pub(crate) fn commit<Q>(
        &mut self,
        key: &Q,
        flight: &Arc<Flight<V>>,
        entry: Entry<V>,
    ) -> Result<Slot<V>, Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(slot) if slot.is_flight(flight) => {
                self.ready += 1;
                Ok(std::mem::replace(slot, Slot::Ready(entry)))
            }
            _ => Err(entry),
        }
    }

    /// Empties the map, handing everything back.
    pub(crate) fn take_all(&mut self) -> HashMap<K, Slot<V>, S>
    where
        S: Clone,
    {
        self.ready = 0;
        let empty = HashMap::with_hasher(self.map.hasher().clone());
        std::mem::replace(&mut self.map, empty)
    }
}
