//! What a call finds under its key, and the write-locked lookup that joins or creates a flight
//! (or, for a refresh, the refresh attached to the entry).

use std::borrow::Borrow;
use std::sync::Arc;

use super::refreshes::Origin;
use super::{Bucket, ShardMap, Slot, is_key};
use crate::clock::Tick;
use crate::expiry::Moment;
use crate::flight::Flight;
use crate::removal::Removals;
use crate::{Entry, Epoch, RemovalCause};

/// What a call wants of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// `get_or_init` and friends: the ready entry, or the key's flight.
    Get,
    /// `refresh`: a new value; the ready entry's refresh, or (no ready entry) the key's flight.
    Refresh,
    /// `refresh_if`: the refresh of the ready entry of this epoch, and nothing else.
    RefreshIf(Epoch),
}

/// What a caller found under its key.
pub(crate) enum Claim<V> {
    /// A ready entry.
    Hit(Entry<V>),
    /// A ready entry whose automatic refresh is due at the time the lookup read (the tick): the
    /// caller returns it, and may start one at that same time, without reading the clock again.
    Due(Entry<V>, Tick),
    /// A flight in progress (the key's, or a refresh), which the caller has joined.
    Joined(Arc<Flight<V>>),
    /// The caller created this flight. A refresh created for `refresh_if` comes with a copy of
    /// the entry it refreshes, for its `init`.
    Created(Arc<Flight<V>>, Option<Entry<V>>),
    /// `refresh_if`: the key no longer holds the observed entry.
    Gone,
}

impl<K, V> ShardMap<K, V>
where
    V: Send + Sync + 'static,
{
    /// For a `get_or_init` caller that found no usable entry under the read lock: looks again
    /// under the write lock, and joins or creates the flight. `owned` is a copy of the key made
    /// before locking; it is handed back when the table did not need it.
    pub(crate) fn claim<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        owned: K,
        want: Want,
        at: Moment,
        out: &mut Removals<K, V>,
    ) -> (Claim<V>, Option<K>)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let Ok(mut found) = self.table.find_entry(hash, is_key(hash, key)) else {
            if let Want::RefreshIf(_) = want {
                return (Claim::Gone, Some(owned));
            }
            // Drawn under the write lock, so a key's successive slots have rising epochs.
            let flight = Flight::new(Epoch::next(), None);
            let bucket = Bucket {
                hash,
                key: owned,
                slot: Slot::Flight(Arc::clone(&flight)),
            };
            self.table.insert_unique(hash, bucket, |b| b.hash);
            return (Claim::Created(flight, None), None);
        };
        let bucket = found.get_mut();
        match (&bucket.slot, want) {
            (Slot::Ready(ready), Want::Get) if !ready.is_expired(at) => {
                ready.touch(at);
                let entry = ready.entry.clone();
                let due = Self::refresh_at(&self.refreshes, hash, ready, at.layout);
                let claim = if at.now >= due {
                    Claim::Due(entry, at.now)
                } else {
                    Claim::Hit(entry)
                };
                return (claim, Some(owned));
            }
            (Slot::Ready(ready), Want::Refresh | Want::RefreshIf(_)) if !ready.is_expired(at) => {
                let of = ready.entry.epoch();
                if matches!(want, Want::RefreshIf(observed) if observed != of) {
                    return (Claim::Gone, Some(owned));
                }
                // A refresh does not count as a read of the entry it replaces.
                if let Some(flight) = self.refreshes.get(hash, of) {
                    flight.join();
                    return (Claim::Joined(Arc::clone(flight)), Some(owned));
                }
                let base = matches!(want, Want::RefreshIf(_)).then(|| ready.entry.clone());
                let flight = Flight::new(Epoch::next(), Some(of));
                self.refreshes
                    .attach(hash, Arc::clone(&flight), Origin::Manual, None);
                return (Claim::Created(flight, base), Some(owned));
            }
            (Slot::Flight(_), Want::RefreshIf(_)) => return (Claim::Gone, Some(owned)),
            (Slot::Flight(flight), Want::Get | Want::Refresh) => {
                flight.join();
                return (Claim::Joined(Arc::clone(flight)), Some(owned));
            }
            (Slot::Ready(_), _) => {}
        }
        // Expired: purged; a new flight takes its place, unless the caller wanted only it.
        if let Want::RefreshIf(_) = want {
            let (bucket, _) = found.remove();
            let Slot::Ready(ready) = bucket.slot else {
                unreachable!()
            };
            self.retire(hash, bucket.key, ready, RemovalCause::Expired, at, out);
            return (Claim::Gone, Some(owned));
        }
        let flight = Flight::new(Epoch::next(), None);
        let old = std::mem::replace(&mut bucket.slot, Slot::Flight(Arc::clone(&flight)));
        let Slot::Ready(ready) = old else {
            unreachable!()
        };
        // The owned key reports the removal.
        self.retire(hash, owned, ready, RemovalCause::Expired, at, out);
        (Claim::Created(flight, None), None)
    }
}
