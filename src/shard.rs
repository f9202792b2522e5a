//! One shard of the memo: a hash table from keys to slots, behind a read-write lock, with the
//! shard's share of the capacity policy and its expiry deadlines.
//!
//! # Invariants
//!
//! 1. A key holds one [`Slot`]: a ready entry or a flight. Every change of a slot is decided under
//!    the shard write lock by comparing epochs (or, for a flight, its identity).
//! 2. `ready` is the number of `Slot::Ready` in `table`; every ready entry of a bounded shard is
//!    resident in `policy` (its weight counted once), and every ready entry with a deadline has
//!    a token in `deadlines`.
//! 3. Nothing displaced from the table (keys, values, flights) is dropped here: ready entries go
//!    into a [`Removals`] with their cause, flights are handed back, and the caller drops or
//!    reports them after releasing the lock.
//! 4. An expired entry is never returned as present: whoever finds it removes it (compare on its
//!    epoch) and reports it as `Expired`, once.
//! 5. The table never calls `Hash` of `K`: buckets keep their hash, so a resize runs no user
//!    code under the lock.
//! 6. A ready entry has at most one refresh in flight, kept in `refreshes` under the entry's
//!    hash and epoch. Whatever removes or replaces the entry detaches its refresh in the same
//!    critical section (`retire`, the policy's `evict`, `clear`), so a refresh commits only onto
//!    the very entry it refreshes.

use std::borrow::Borrow;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::budget::Budget;
use crate::clock::Tick;
use crate::expiry::{Deadlines, Expiry, Layout, Moment};
use crate::flight::Flight;
use crate::policy::{Policy, Residency, Residents, Token};
use crate::removal::Removals;
use crate::sync::RwLock;
use crate::{Entry, Epoch, RemovalCause};

mod budget;
mod claim;
mod peek;
mod refresh;
mod refreshes;
mod snapshot;

pub(crate) use claim::{Claim, Want};
pub(crate) use peek::Times;
pub(crate) use refresh::End;
use refreshes::Refreshes;
pub(crate) use snapshot::Seen;

/// What a key holds.
pub(crate) enum Slot<V> {
    /// A committed value.
    Ready(Ready<V>),
    /// A computation in progress.
    Flight(Arc<Flight<V>>),
}

/// A committed value with what eviction and expiry need to know about it.
pub(crate) struct Ready<V> {
    pub(crate) entry: Entry<V>,
    residency: Option<Residency>,
    /// Its deadline, and its last read or refresh due tick (see [`Layout`]).
    expiry: Expiry,
}

impl<V> Ready<V> {
    /// Records a read (recency for the policy, last read for time to idle). Read lock only.
    #[inline]
    pub(crate) fn touch(&self, at: Moment) {
        if let Some(residency) = &self.residency {
            residency.touch();
        }
        self.expiry.touch(at);
    }

    #[inline]
    pub(crate) fn is_expired(&self, at: Moment) -> bool {
        self.expiry.is_expired(at)
    }
}

impl<V: Send + Sync + 'static> Slot<V> {
    pub(crate) fn epoch(&self) -> Epoch {
        match self {
            Slot::Ready(ready) => ready.entry.epoch(),
            Slot::Flight(flight) => flight.epoch(),
        }
    }
}

impl<V> Slot<V> {
    /// Whether this slot is exactly `flight` (not merely another flight with the same key).
    pub(crate) fn is_flight(&self, flight: &Arc<Flight<V>>) -> bool {
        matches!(self, Slot::Flight(f) if Arc::ptr_eq(f, flight))
    }
}

struct Bucket<K, V> {
    hash: u64,
    key: K,
    slot: Slot<V>,
}

/// A flight taken off its key, with the key: both to drop after unlocking (invariant 3).
pub(crate) type Detached<K, V> = (K, Arc<Flight<V>>);

/// What a new ready entry brings: its value and epoch, weight and fixed deadline.
pub(crate) struct Arrival<V> {
    pub(crate) entry: Entry<V>,
    pub(crate) weight: u32,
    pub(crate) deadline: Tick,
    pub(crate) refresh_at: Tick,
}

/// A shard, padded to its own cache lines so that two shards never share one.
#[repr(align(128))]
pub(crate) struct Shard<K, V> {
    pub(crate) map: RwLock<ShardMap<K, V>>,
}

impl<K, V> Shard<K, V> {
    /// A shard with `share` of the memo's `budget` if it is bounded.
    pub(crate) fn new(capacity: Option<(u64, Arc<Budget>)>, expires: bool) -> Self {
        Shard {
            map: RwLock::new(ShardMap {
                table: HashTable::new(),
                refreshes: Refreshes::new(),
                ready: 0,
                policy: capacity.map(|(share, budget)| Policy::new(share, budget)),
                deadlines: expires.then(Deadlines::default),
            }),
        }
    }
}

pub(crate) struct ShardMap<K, V> {
    table: HashTable<Bucket<K, V>>,
    refreshes: Refreshes<V>,
    ready: usize,
    policy: Option<Policy>,
    deadlines: Option<Deadlines>,
}

/// What a key holds, as a read sees it.
pub(crate) enum Found<'a, V> {
    Ready(&'a Ready<V>),
    Expired,
    Flight(&'a Arc<Flight<V>>),
    Vacant,
}

impl<K, V> ShardMap<K, V> {
    pub(crate) fn ready(&self) -> usize {
        self.ready
    }

    /// The total weight of the ready entries: the policy's resident weight in a bounded shard
    /// (invariant 2), one per entry otherwise.
    pub(crate) fn weight(&self) -> u64 {
        self.policy
            .as_ref()
            .map_or(self.ready as u64, |policy| policy.weight())
    }
}

/// The table seen by the policy: tokens are found by hash and checked by epoch.
struct Table<'a, K, V> {
    table: &'a mut HashTable<Bucket<K, V>>,
    refreshes: &'a mut Refreshes<V>,
    ready: &'a mut usize,
    out: &'a mut Removals<K, V>,
}

impl<K, V> Residents for Table<'_, K, V> {
    fn residency(&mut self, token: Token) -> Option<&mut Residency> {
        match &mut self.table.find_mut(token.hash, |b| holds(b, token))?.slot {
            Slot::Ready(ready) => ready.residency.as_mut(),
            Slot::Flight(_) => None,
        }
    }

    fn evict(&mut self, token: Token) {
        if let Ok(found) = self.table.find_entry(token.hash, |b| holds(b, token)) {
            let (bucket, _) = found.remove();
            if let Slot::Ready(ready) = bucket.slot {
                *self.ready -= 1;
                self.refreshes.detach(token.hash, token.epoch);
                self.out
                    .push(bucket.key, ready.entry, RemovalCause::Evicted);
            }
        }
    }
}

/// Whether a bucket is the one of `key` (its stored hash is compared first, cheaply).
fn is_key<K, V, Q>(hash: u64, key: &Q) -> impl Fn(&Bucket<K, V>) -> bool + '_
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    move |b| b.hash == hash && b.key.borrow() == key
}

fn holds<K, V>(bucket: &Bucket<K, V>, token: Token) -> bool {
    bucket.hash == token.hash
        && matches!(&bucket.slot, Slot::Ready(ready) if ready.entry.epoch() == token.epoch)
}

impl<K, V> ShardMap<K, V>
where
    V: Send + Sync + 'static,
{
    #[inline]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<&Bucket<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table.find(hash, is_key(hash, key))
    }

    /// What `key` holds at `at`, for a reader under the read lock. A ready entry is touched
    /// (counted as read by the policy and for time to idle) if `read`.
    #[inline]
    pub(crate) fn get<Q>(&self, hash: u64, key: &Q, at: Moment, read: bool) -> Found<'_, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match self.find(hash, key).map(|b| &b.slot) {
            None => Found::Vacant,
            Some(Slot::Flight(flight)) => Found::Flight(flight),
            Some(Slot::Ready(ready)) if ready.is_expired(at) => Found::Expired,
            Some(Slot::Ready(ready)) => {
                if read {
                    ready.touch(at);
                }
                Found::Ready(ready)
            }
        }
    }

    /// Stores `arrival` under `key` (an `insert`). What the key held is replaced: a ready entry
    /// is reported (`Replaced`, or `Expired`), a flight is detached and handed back.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        arrival: Arrival<V>,
        at: Moment,
        out: &mut Removals<K, V>,
    ) -> Option<Detached<K, V>>
    where
        K: Eq,
    {
        let token = Token {
            hash,
            epoch: arrival.entry.epoch(),
        };
        let ready = arrive(&mut self.policy, &mut self.refreshes, arrival, token, at);
        let displaced = match self.table.find_entry(hash, is_key(hash, &key)) {
            Ok(mut found) => {
                let old = std::mem::replace(&mut found.get_mut().slot, Slot::Ready(ready));
                // The table keeps its key; the spare one reports the replaced entry.
                Some((key, old))
            }
            Err(_) => {
                let bucket = Bucket {
                    hash,
                    key,
                    slot: Slot::Ready(ready),
                };
                self.table.insert_unique(hash, bucket, |b| b.hash);
                None
            }
        };
        self.ready += 1;
        let detached = match displaced {
            Some((key, Slot::Ready(old))) => {
                self.retire(hash, key, old, RemovalCause::Replaced, at, out);
                None
            }
            Some((key, Slot::Flight(flight))) => Some((key, flight)),
            None => None,
        };
        self.settle(token, at, out);
        detached
    }

    /// Commits a flight: replaces it with `arrival` if the key still holds exactly that flight.
    /// A detached flight stores nothing: the entry is handed back, to be dropped after unlocking.
    pub(crate) fn commit<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        flight: &Arc<Flight<V>>,
        arrival: Arrival<V>,
        at: Moment,
        out: &mut Removals<K, V>,
    ) -> Result<Arc<Flight<V>>, Entry<V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(bucket) = self
            .table
            .find_mut(hash, is_key(hash, key))
            // Seeded bug (.ci/mutants): commit over whatever the key holds now.
            .filter(|b| {
                b.slot.is_flight(flight) || cfg!(async_memo_mutant = "commit_without_epoch_check")
            })
        else {
            return Err(arrival.entry);
        };
        let token = Token {
            hash,
            epoch: arrival.entry.epoch(),
        };
        let ready = arrive(&mut self.policy, &mut self.refreshes, arrival, token, at);
        let old = match std::mem::replace(&mut bucket.slot, Slot::Ready(ready)) {
            Slot::Flight(old) => old,
            #[cfg(not(async_memo_mutant = "commit_without_epoch_check"))]
            Slot::Ready(_) => unreachable!(),
            #[cfg(async_memo_mutant = "commit_without_epoch_check")]
            Slot::Ready(overwritten) => {
                self.ready -= 1;
                if let (Some(policy), Some(residency)) = (&mut self.policy, &overwritten.residency)
                {
                    policy.forget(residency);
                }
                Arc::clone(flight)
            }
        };
        self.ready += 1;
        self.settle(token, at, out);
        Ok(old)
    }

    /// After a ready entry arrived under `token`: evicts it at once if the policy turned it
    /// away, registers its deadline, and makes room.
    fn settle(&mut self, token: Token, at: Moment, out: &mut Removals<K, V>) {
        let Some(bucket) = self.table.find(token.hash, |b| holds(b, token)) else {
            unreachable!("the entry just arrived")
        };
        let Slot::Ready(ready) = &bucket.slot else {
            unreachable!()
        };
        if self.policy.is_some() && ready.residency.is_none() {
            // Heavier than the whole capacity: turned away, which counts as evicted.
            Table {
                table: &mut self.table,
                refreshes: &mut self.refreshes,
                ready: &mut self.ready,
                out,
            }
            .evict(token);
            return;
        }
        if let Some(deadlines) = &mut self.deadlines {
            deadlines.push(ready.expiry.expires_at(at.time_to_idle), token);
        }
        if let Some(policy) = &mut self.policy {
            policy.make_room(
                token,
                &mut Table {
                    table: &mut self.table,
                    refreshes: &mut self.refreshes,
                    ready: &mut self.ready,
                    out,
                },
            );
        }
        debug_assert!(
            self.refreshes.dues() <= self.ready,
            "refreshes invariant 3: no due tick outlives its entry"
        );
    }

    /// Takes the ready entry out of a bucket being removed or replaced, reporting it.
    fn retire(
        &mut self,
        hash: u64,
        key: K,
        ready: Ready<V>,
        cause: RemovalCause,
        at: Moment,
        out: &mut Removals<K, V>,
    ) {
        self.ready -= 1;
        self.refreshes.detach(hash, ready.entry.epoch());
        if let (Some(policy), Some(residency)) = (&mut self.policy, &ready.residency) {
            policy.forget(residency);
        }
        let cause = if ready.is_expired(at) {
            RemovalCause::Expired
        } else {
            cause
        };
        out.push(key, ready.entry, cause);
    }

    /// Removes the slot of `key` if `matches` says so. An expired entry is removed (and reported
    /// as expired) whatever `matches` says, and counts as absent.
    ///
    /// Returns what was removed: `Ok(epoch)` for a ready entry (reported in `out` under
    /// `cause`), `Err` for a detached flight (to drop after unlocking).
    pub(crate) fn remove_if<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        matches: impl FnOnce(&Slot<V>) -> bool,
        cause: RemovalCause,
        at: Moment,
        out: &mut Removals<K, V>,
    ) -> Option<Result<Epoch, Detached<K, V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let found = self.table.find_entry(hash, is_key(hash, key)).ok()?;
        let expired = matches!(&found.get().slot, Slot::Ready(r) if r.is_expired(at));
        if !expired && !matches(&found.get().slot) {
            return None;
        }
        let (bucket, _) = found.remove();
        let removed = match bucket.slot {
            Slot::Ready(ready) => {
                let epoch = ready.entry.epoch();
                self.retire(hash, bucket.key, ready, cause, at, out);
                (!expired).then_some(Ok(epoch))
            }
            Slot::Flight(flight) => Some(Err((bucket.key, flight))),
        };
        self.tidy(out);
        removed
    }

    /// Removes exactly `flight` from `key` (a failed, panicked or abandoned flight of an empty
    /// key; a refresh ends through `end_refresh`); touches nothing else, so it reports nothing
    /// and can run while unwinding.
    pub(crate) fn remove_flight<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        flight: &Arc<Flight<V>>,
    ) -> Option<Detached<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        debug_assert!(
            flight.refreshes().is_none(),
            "a refresh is not in its key's slot"
        );
        let found = self
            .table
            .find_entry(hash, is_key(hash, key))
            .ok()
            .filter(|found| found.get().slot.is_flight(flight))?;
        let (bucket, _) = found.remove();
        match bucket.slot {
            Slot::Flight(flight) => Some((bucket.key, flight)),
            Slot::Ready(_) => unreachable!(),
        }
    }

    /// Purges up to `budget` entries whose deadline has passed.
    pub(crate) fn purge(&mut self, at: Moment, mut budget: usize, out: &mut Removals<K, V>) {
        if self.deadlines.is_none() {
            return; // a memo without expiry: nothing is ever due
        }
        while budget > 0 {
            let Some(token) = self.deadlines.as_mut().and_then(|d| d.pop_due(at.now)) else {
                break;
            };
            let Ok(found) = self.table.find_entry(token.hash, |b| holds(b, token)) else {
                continue; // stale
            };
            let Slot::Ready(ready) = &found.get().slot else {
                unreachable!("`holds` matches ready entries only")
            };
            let due = ready.expiry.expires_at(at.time_to_idle);
            if due > at.now {
                // Read since the deadline was queued: its idle deadline moved.
                if let Some(deadlines) = &mut self.deadlines {
                    deadlines.push(due, token);
                }
                continue;
            }
            budget -= 1;
            let (bucket, _) = found.remove();
            let Slot::Ready(ready) = bucket.slot else {
                unreachable!()
            };
            self.retire(
                token.hash,
                bucket.key,
                ready,
                RemovalCause::Expired,
                at,
                out,
            );
        }
        self.tidy(out);
    }

    /// Drops stale policy and deadline tokens once they pile up.
    fn tidy(&mut self, out: &mut Removals<K, V>) {
        if let Some(policy) = &mut self.policy {
            policy.tidy(&mut Table {
                table: &mut self.table,
                refreshes: &mut self.refreshes,
                ready: &mut self.ready,
                out,
            });
        }
        if let Some(deadlines) = &mut self.deadlines {
            if deadlines.len() > 2 * self.ready + 64 {
                let table = &self.table;
                deadlines.retain(|token| table.find(token.hash, |b| holds(b, token)).is_some());
            }
        }
    }

    /// Empties the shard. Returns the ready entries (reported in `out` as `Cleared`, or
    /// `Expired`) and the flights it detached, to drop after unlocking.
    pub(crate) fn clear(&mut self, at: Moment, out: &mut Removals<K, V>) -> Vec<Detached<K, V>> {
        let mut detached = Vec::new();
        for bucket in self.table.drain() {
            match bucket.slot {
                Slot::Ready(ready) => {
                    let cause = if ready.is_expired(at) {
                        RemovalCause::Expired
                    } else {
                        RemovalCause::Cleared
                    };
                    out.push(bucket.key, ready.entry, cause);
                }
                Slot::Flight(flight) => detached.push((bucket.key, flight)),
            }
        }
        self.ready = 0;
        self.refreshes.clear();
        if let Some(policy) = &mut self.policy {
            policy.clear();
        }
        if let Some(deadlines) = &mut self.deadlines {
            deadlines.clear();
        }
        detached
    }
}

/// A new ready entry: admitted by the policy (if the shard is bounded), with its expiry and,
/// in the `RefreshBeside` layout, its refresh due tick kept beside it.
fn arrive<V>(
    policy: &mut Option<Policy>,
    refreshes: &mut Refreshes<V>,
    arrival: Arrival<V>,
    token: Token,
    at: Moment,
) -> Ready<V> {
    let residency = match policy {
        Some(policy) => policy.admit(token, arrival.weight),
        None => None,
    };
    if at.layout == Layout::RefreshBeside {
        refreshes.set_due(token.hash, token.epoch, arrival.refresh_at);
    }
    Ready {
        expiry: Expiry::new(arrival.deadline, arrival.refresh_at, at),
        entry: arrival.entry,
        residency,
    }
}
