//! The slot transitions of refresh and replace: a refresh commits only onto the entry it
//! refreshes (compare-and-swap on that entry's epoch), and `replace` stores a value only over the
//! epoch its caller observed. Caffeine #193 (a refresh finishing after an invalidation stored its
//! stale value) cannot happen: whatever removes the entry detaches its refresh (invariant 6).
//!
//! A refresh that ends without committing moves its entry's next automatic refresh only if it
//! was automatic and failed (`end_refresh`, refreshes invariant 4): a failed manual refresh
//! (Caffeine #498), a cancelled one (its spawned task dropped: Guava #3851) and one detached by
//! its epoch leave the entry as due as they found it.

use std::borrow::Borrow;
use std::sync::Arc;

use super::refreshes::{DetachedRefresh, Origin};
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

/// How a refresh ended without committing, as its entry's next automatic refresh sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum End {
    /// An error, a panic, or a value too heavy to store. If the refresh was automatic, the
    /// entry's next automatic refresh waits until `retry` (Caffeine #286).
    Failed { retry: Tick },
    /// Its last caller went away (a dropped task included), or it was detached by its epoch
    /// while its entry stays: nothing failed, and nothing is held off.
    Cancelled,
}

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
        if self.refreshes.detach_exact(hash, flight).is_none() {
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

    /// A refresh ended without committing (`end`): detaches it if it is still attached, and
    /// settles its entry's next automatic refresh. Only a failed automatic refresh holds it off
    /// (until `retry`, or later if it was due later); any other end puts back the due tick that
    /// reads moved on while the refresh was in flight (refreshes invariant 4). A refresh that
    /// was detached already changes nothing: it no longer speaks for any entry. Runs no user
    /// code, so it is safe while unwinding.
    pub(crate) fn end_refresh(
        &mut self,
        hash: u64,
        flight: &Arc<Flight<V>>,
        end: End,
        layout: Layout,
    ) {
        let Some(detached) = self.refreshes.detach_exact(hash, flight) else {
            return;
        };
        let of = flight.refreshes().expect("a refresh flight");
        let entry = self.table.find(hash, |b| {
            b.hash == hash && matches!(&b.slot, Slot::Ready(r) if r.entry.epoch() == of)
        });
        let Some(Bucket {
            slot: Slot::Ready(ready),
            ..
        }) = entry
        else {
            debug_assert!(
                false,
                "invariant 6: an attached refresh's entry is in the table"
            );
            return;
        };
        Self::settle_due(&mut self.refreshes, hash, ready, detached, end, layout);
    }

    /// Sets the due tick of `ready`, whose refresh `detached` ended by `end`.
    fn settle_due(
        refreshes: &mut Refreshes<V>,
        hash: u64,
        ready: &Ready<V>,
        detached: DetachedRefresh,
        end: End,
        layout: Layout,
    ) {
        let due = match (end, detached.origin) {
            (End::Failed { retry }, Origin::Automatic) => {
                Self::refresh_at(refreshes, hash, ready, layout).max(retry)
            }
            // A manual refresh is its caller's business (Caffeine #498); a cancelled one did
            // not fail (Guava #3851): the entry is as due as before reads found the refresh.
            (End::Failed { .. } | End::Cancelled, _) => match detached.moved_from {
                Some(due) => due,
                None => return,
            },
        };
        Self::set_refresh_at(refreshes, hash, ready, due, layout);
    }

    /// Detaches the refresh of `key` if its epoch is `observed`; the entry stays, as due as
    /// the refresh found it (a detach is not a failure: see `end_refresh`).
    pub(crate) fn detach_refresh<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        observed: Epoch,
        layout: Layout,
    ) -> bool
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
                self.end_refresh(hash, &flight, End::Cancelled, layout);
                true
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
    /// a burst of stale reads takes the write lock a few times, not once each; the refresh in
    /// flight remembers the tick it moved from, to put back if it ends without holding off
    /// (a manual refresh that fails, or any refresh cancelled: `end_refresh`).
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
        let due = Self::refresh_at(&self.refreshes, hash, ready, at.layout);
        if at.now < due {
            return None;
        }
        Self::set_refresh_at(&mut self.refreshes, hash, ready, retry, at.layout);
        if self.refreshes.moved(hash, of, due) {
            return None; // a refresh is in flight already (a manual one, say)
        }
        let flight = Flight::new(Epoch::next(), Some(of));
        let origin = Origin::Automatic;
        self.refreshes
            .attach(hash, Arc::clone(&flight), origin, Some(due));
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
