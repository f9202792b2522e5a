//! The sharded table behind a memo, and the slot transitions the flight protocol needs.
//!
//! Every method here takes a shard lock for one short, non-blocking critical section and drops
//! whatever it displaced (keys, values, flights) only after releasing it.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::flight::{Flight, Leave};
use crate::shard::{Shard, Slot};
use crate::waiters::WaiterId;
use crate::{Entry, Epoch};

pub(crate) struct Table<K, V, S> {
    shards: Box<[Shard<K, V, S>]>,
    hasher: S,
    /// `shards.len() - 1`; the shard count is a power of two.
    mask: usize,
}

/// What a caller of `get_or_init` found under its key.
pub(crate) enum Lookup<V> {
    /// A ready entry.
    Hit(Entry<V>),
    /// A flight in progress, which the caller has joined.
    Joined(Arc<Flight<V>>),
    /// Nothing: the caller created this flight and must create and drive its future.
    Created(Arc<Flight<V>>),
}

impl<K, V, S: Clone> Table<K, V, S> {
    pub(crate) fn new(shards: usize, hasher: S) -> Self {
        debug_assert!(shards.is_power_of_two());
        Table {
            shards: (0..shards).map(|_| Shard::new(hasher.clone())).collect(),
            hasher,
            mask: shards - 1,
        }
    }
}

impl<K, V, S> Table<K, V, S> {
    pub(crate) fn shards(&self) -> &[Shard<K, V, S>] {
        &self.shards
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.read().ready()).sum()
    }
}

impl<K, V, S> Table<K, V, S>
where
    K: Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn shard<Q>(&self, key: &Q) -> &Shard<K, V, S>
    where
        Q: Hash + ?Sized,
    {
        // The middle bits: std's map takes its bucket index from the low bits and its tag from
        // the top seven, so picking the shard with either would crowd keys within a shard.
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash >> 32) as usize & self.mask]
    }

    /// Finds the ready entry of `key`, or joins its flight, or creates a flight for it.
    pub(crate) fn lookup<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        let shard = self.shard(key);
        {
            let map = shard.map.read();
            match map.get(key) {
                // The hit path: one read lock, one lookup, a clone of `V` (run under the read
                // lock: the documented exception to "no user code under a lock").
                Some(Slot::Ready(entry)) => return Lookup::Hit(entry.clone()),
                Some(Slot::Flight(flight)) => {
                    flight.join();
                    return Lookup::Joined(Arc::clone(flight));
                }
                None => {}
            }
        }
        // Clone the key before locking: `Clone` of `K` is user code.
        let owned = key.to_owned();
        let mut map = shard.map.write();
        let found = match map.get(key) {
            Some(Slot::Ready(entry)) => Lookup::Hit(entry.clone()),
            Some(Slot::Flight(flight)) => {
                flight.join();
                Lookup::Joined(Arc::clone(flight))
            }
            None => {
                // Drawn under the write lock, so a key's successive slots have rising epochs.
                let flight = Flight::new(Epoch::next());
                let displaced = map.insert(owned, Slot::Flight(Arc::clone(&flight)));
                debug_assert!(matches!(displaced, (None, None)));
                return Lookup::Created(flight);
            }
        };
        drop(map);
        drop(owned);
        found
    }

    /// Commits a completed flight: stores `value` under its epoch if the key still holds the
    /// flight. A detached flight stores nothing (no resurrection).
    pub(crate) fn commit<Q>(&self, key: &Q, flight: &Arc<Flight<V>>, value: &V)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let entry = Entry::new(value.clone(), flight.epoch());
        let displaced = self.shard(key).map.write().commit(key, flight, entry);
        drop(displaced);
    }

    /// Removes the flight from its key, if the key still holds it (failed or panicked flights).
    pub(crate) fn discard<Q>(&self, key: &Q, flight: &Arc<Flight<V>>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self
            .shard(key)
            .map
            .write()
            .remove_if(key, |slot| slot.is_flight(flight));
        drop(removed);
    }

    /// A caller leaves its flight without taking a result (it was dropped). The last caller of
    /// an unfinished flight abandons it: the future is dropped and the key freed.
    pub(crate) fn leave<Q>(&self, key: &Q, flight: &Arc<Flight<V>>, waiter: Option<WaiterId>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (leave, removed) = match flight.leave(waiter, false) {
            Leave::Last => {
                // Under the write lock nobody can join, so "last" stays true while we abandon.
                let mut map = self.shard(key).map.write();
                let leave = flight.leave(waiter, true);
                let removed = match leave {
                    Leave::Abandoned(..) => map.remove_if(key, |slot| slot.is_flight(flight)),
                    _ => None,
                };
                (leave, removed)
            }
            leave => (leave, None),
        };
        drop(removed);
        match leave {
            Leave::Left { hand_over, old } => {
                drop(old);
                if hand_over {
                    flight.wake_waiters();
                }
            }
            Leave::Abandoned(future, old) => {
                drop(old);
                drop(future);
            }
            Leave::Last => unreachable!("leave with `may_abandon` never answers `Last`"),
        }
    }
}
