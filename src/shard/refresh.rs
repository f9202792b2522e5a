//! The slot transitions of refresh and replace: a refresh commits only onto the entry it
//! refreshes (compare-and-swap on that entry's epoch), and `replace` stores a value only over the
//! epoch its caller observed. Caffeine #193 (a refresh finishing after an invalidation stored its
//! stale value) cannot happen: whatever removes the entry detaches its refresh (invariant 6).

use std::borrow::Borrow;
use std::sync::Arc;

use super::{Arrival, Bucket, Detached, Ready, Refreshes, ShardMap, Slot, arrive, is_key};
use crate::clock::Tick;
use crate::expiry::{Layout, Moment};
use crate::flight::Flight;
use crate::policy::Token;
use crate::removal::Removals;
use crate::{Entry, Epoch, RemovalCause};

/// A `replace` that did not swap: the epoch the key holds, and the key and arrival it did not
/// store.
pub(crate) type Unswapped<K, V> = (Option<Epoch>, K, Arrival<V>);

impl<K, V> ShardMap<K, V>
where
    V: Send + Sync + 'static,
{
    /// Whether the automatic refresh of `ready` (the entry of `hash`) is due at `at`: never
    /// without `refresh_after`.
    #[inline]
    pub(crate) fn refresh_due(&self, hash: u64, ready: &Ready<V>, at: Moment) -> bool {
        at.now >= Self::refresh_at(&self.refreshes, hash, ready, at.layout)
    }

    /// When the automatic refresh of `ready` (the entry of `hash`) is due.
    #[inline]
    pub(super) fn refresh_at(
        refreshes: &Refreshes<V>,
        hash: u64,
        ready: &Ready<V>,
        layout: Layout,
    ) -> Tick {
        match ready.expiry.refresh_at(layout) {
            Some(due) => due,
            None => refreshes.due(hash, ready.entry.epoch()),
        }
    }

    /// Moves the automatic refresh of `ready` (the entry of `hash`) to `due`.
    fn set_refresh_at(
        refreshes: &mut Refreshes<V>,
        hash: u64,
        ready: &Ready<V>,
        due: Tick,
        layout: Layout,
    ) {
        match layout {
            Layout::Plain => {}
            Layout::Refresh => ready.expiry.set_refresh_at(due),
            Layout::RefreshBeside => refreshes.set_due(hash, ready.entry.epoch(), due),
        }
    }

    /// Commits a refresh flight onto the entry it refreshes, if that entry still holds the key
    /// and the refresh is still attached to it. `owned` is a copy of the key, made before
    /// locking, that finds the entry and reports it replaced. A detached refresh stores nothing: the entry and
    /// the key copy are handed back, to be dropped after unlocking.
    pub(crate) fn commit_refresh(
        &mut self,
        hash: u64,
        owned: K,
        flight: &Arc<Flight<V>>,
        arrival: Arrival<V>,
        at: Moment,
        out: &mut Removals<K, V>,
    ) -> Result<(), (Entry<V>, K)>
    where
        K: Eq,
    {
        let of = flight.refreshes().expect("a refresh flight");
        if !self.refreshes.detach_exact(hash, flight) {
            // Seeded bug (.ci/mutants): a detached refresh stores its value anyway (Caffeine #193).
            #[cfg(async_memo_mutant = "refresh_commits_after_detach")]
            return Ok(drop(self.insert(hash, owned, arrival, at, out)));
            #[cfg(not(async_memo_mutant = "refresh_commits_after_detach"))]
            return Err((arrival.entry, owned)); // detached: its entry left, or it was invalidated
        }
        let Ok(mut found) = self.table.find_entry(hash, is_key(hash, &owned)) else {
            unreachable!("invariant 6: an attached refresh's entry is in the table")
        };
        let expired = match &found.get().slot {
            Slot::Ready(ready) => {
                debug_assert_eq!(ready.entry.epoch(), of, "invariant 6");
                ready.is_expired(at)
            }
            Slot::Flight(_) => unreachable!("invariant 6: a refresh is beside a ready entry"),
        };
        if expired {
            // An entry past its deadline is never served: its expiry detached the refresh.
            let (bucket, _) = found.remove();
            let Slot::Ready(ready) = bucket.slot else {
                unreachable!()
            };
            self.retire(hash, bucket.key, ready, RemovalCause::Expired, at, out);
            return Err((arrival.entry, owned));
        }
        let token = Token {
            hash,
            epoch: arrival.entry.epoch(),
        };
        let ready = arrive(&mut self.policy, &mut self.refreshes, arrival, token, at);
        let Slot::Ready(old) = std::mem::replace(&mut found.get_mut().slot, Slot::Ready(ready))
        else {
            unreachable!()
        };
        // The table keeps its key; the copy reports the replaced entry.
        self.retire(hash, owned, old, RemovalCause::Replaced, at, out);
        self.ready += 1;
        self.settle(token, at, out);
        Ok(())
    }

    /// A refresh failed or panicked: detaches it, and holds off the entry's next automatic
    /// refresh until `retry` (one attempt per interval while the source is down).
    pub(crate) fn fail_refresh(
        &mut self,
        hash: u64,
        flight: &Arc<Flight<V>>,
        retry: Tick,
        layout: Layout,
    ) {
        self.refreshes.detach_exact(hash, flight);
        let Some(of) = flight.refreshes() else {
            return;
        };
        let entry = self.table.find_mut(hash, |b| {
            b.hash == hash && matches!(&b.slot, Slot::Ready(r) if r.entry.epoch() == of)
        });
        if let Some(Bucket {
            slot: Slot::Ready(ready),
            ..
        }) = entry
        {
            let due = Self::refresh_at(&self.refreshes, hash, ready, layout);
            Self::set_refresh_at(&mut self.refreshes, hash, ready, due.max(retry), layout);
        }
    }

    /// Detaches the refresh of `key` if its epoch is `observed`; the entry stays.
    pub(crate) fn detach_refresh<Q>(&mut self, hash: u64, key: &Q, observed: Epoch) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(Bucket {
            slot: Slot::Ready(ready),
            ..
        }) = self.table.find(hash, is_key(hash, key))
        else {
            return false;
        };
        match self.refreshes.get(hash, ready.entry.epoch()) {
            Some(flight) if flight.epoch() == observed => {
                let flight = Arc::clone(flight);
                self.refreshes.detach_exact(hash, &flight)
            }
            _ => false,
        }
    }

    /// The epoch of the refresh in flight for the ready entry of `key`.
    pub(crate) fn refreshing<Q>(&self, hash: u64, key: &Q, at: Moment) -> Option<Epoch>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match &self.table.find(hash, is_key(hash, key))?.slot {
            Slot::Ready(ready) if !ready.is_expired(at) => self
                .refreshes
                .get(hash, ready.entry.epoch())
                .map(|flight| flight.epoch()),
            _ => None,
        }
    }

    /// Starts the automatic refresh of the entry `of`, if it is still the key's, unexpired, due,
    /// and has no refresh in flight. Its next automatic attempt moves to `retry` either way, so
    /// a burst of stale reads takes the write lock a few times, not once each.
    pub(crate) fn begin_auto_refresh<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        of: Epoch,
        at: Moment,
        retry: Tick,
    ) -> Option<Arc<Flight<V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Slot::Ready(ready) = &mut self.table.find_mut(hash, is_key(hash, key))?.slot else {
            return None;
        };
        if ready.entry.epoch() != of || ready.is_expired(at) {
            return None;
        }
        if at.now < Self::refresh_at(&self.refreshes, hash, ready, at.layout) {
            return None;
        }
        Self::set_refresh_at(&mut self.refreshes, hash, ready, retry, at.layout);
        if self.refreshes.get(hash, of).is_some() {
            return None; // a manual refresh is already in flight
        }
        let flight = Flight::new(Epoch::next(), Some(of));
        self.refreshes.attach(hash, Arc::clone(&flight));
        Some(flight)
    }

    /// Compare-and-swap: stores `arrival` under `key` only if the key holds `observed` (a ready
    /// entry, reported as `Replaced`, or a flight, detached and handed back). Otherwise changes
    /// nothing (but purges an expired entry) and returns the epoch the key holds now, with the
    /// key and the arrival, to be dropped after unlocking.
    pub(crate) fn replace(
        &mut self,
        hash: u64,
        key: K,
        observed: Epoch,
        arrival: Arrival<V>,
        at: Moment,
        out: &mut Removals<K, V>,
    ) -> Result<Option<Detached<K, V>>, Unswapped<K, V>>
    where
        K: Eq,
    {
        let current = match self.table.find_entry(hash, is_key(hash, &key)) {
            Err(_) => return Err((None, key, arrival)),
            Ok(found) => match &found.get().slot {
                Slot::Ready(ready) if ready.is_expired(at) => {
                    let (bucket, _) = found.remove();
                    let Slot::Ready(ready) = bucket.slot else {
                        unreachable!()
                    };
                    self.retire(hash, bucket.key, ready, RemovalCause::Expired, at, out);
                    return Err((None, key, arrival));
                }
                slot => slot.epoch(),
            },
        };
        if current != observed {
            return Err((Some(current), key, arrival));
        }
        Ok(self.insert(hash, key, arrival, at, out))
    }
}
