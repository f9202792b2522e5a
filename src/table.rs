//! The sharded table behind a memo: its settings, its counters, and the slot transitions the
//! flight protocol needs.
//!
//! Every method here reads the clock and runs user functions (weigher, `expire_after`) *before*
//! it locks, holds a shard lock for one short critical section, and drops or reports what it
//! displaced (keys, values, flights) only after releasing it.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::budget::Budget;
use crate::clock::{Tick, Timer};
use crate::expiry::{ExpiryRules, Layout, Moment};
use crate::flight::Flight;
use crate::flight::Leave;
use crate::measure::{Admission, Measure};
use crate::removal::{Listener, Removals};
use crate::shard::{Arrival, Claim, End, Found, Shard, ShardMap, Want};
use crate::stats::{Counters, bump};
use crate::tally::Tally;
use crate::waiters::WaiterId;
use crate::{Entry, Epoch};

mod peek;
mod refresh;
mod reserve;

pub(crate) use crate::measure::{ExpireAfter, RefreshAfter, Weigher};
pub(crate) use refresh::{RefreshRule, Task};

/// How many expired entries a write purges on the side (amortized maintenance).
pub(crate) const PURGE_BUDGET: usize = 8;

/// What a memo was built with.
pub(crate) struct Settings<K, V, S> {
    pub(crate) shards: usize,
    pub(crate) capacity: Option<u64>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) rules: ExpiryRules,
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) timer: Option<Timer>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) refresh: Option<RefreshRule<K, V, S>>,
    pub(crate) refresh_after: Option<RefreshAfter<K, V>>,
    pub(crate) name: Option<Arc<str>>,
}

pub(crate) struct Table<K, V, S> {
    shards: Box<[Shard<K, V>]>,
    hasher: S,
    /// `shards.len() - 1`; the shard count is a power of two.
    mask: usize,
    measure: Measure<K, V>,
    rules: ExpiryRules,
    /// What an entry's second word of time holds (fixed by `rules` and `refresh`).
    layout: Layout,
    timer: Option<Timer>,
    listener: Option<Listener<K, V>>,
    refresh: Option<RefreshRule<K, V, S>>,
    /// The capacity of a bounded memo, shared by its shards.
    budget: Option<Arc<Budget>>,
    pub(crate) counters: Counters,
    /// Hits, counted in a slot per thread (`tally.rs`).
    pub(crate) hits: Tally,
    /// The memo's name (`MemoBuilder::name`): read only by `Debug` and the `metrics` export.
    pub(crate) name: Option<Arc<str>>,
}

/// An `insert` the memo turned away: the epoch its entry was given, and why.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusal {
    pub(crate) epoch: Epoch,
    pub(crate) weight: u32,
    pub(crate) max_capacity: u64,
}

/// What a caller of `get_or_init` found under its key.
pub(crate) type Lookup<V> = Claim<V>;

/// A key's hash and the time, as [`Table::hit`] read them for a lookup that missed.
#[derive(Clone, Copy)]
pub(crate) struct Probe {
    hash: u64,
    at: Moment,
    /// Whether the key held nothing: then only the write lock can serve the lookup.
    vacant: bool,
}

impl<K, V, S> Table<K, V, S> {
    pub(crate) fn new(settings: Settings<K, V, S>, hasher: S) -> Self {
        let shards = settings.shards;
        debug_assert!(shards.is_power_of_two());
        // Split the capacity exactly, so the shards' bounds add up to the memo's.
        let share = |i: usize| {
            settings.capacity.map(|cap| {
                let n = shards as u64;
                cap / n + u64::from((i as u64) < cap % n)
            })
        };
        let expires = settings.rules.any();
        let budget = settings.capacity.map(|cap| Arc::new(Budget::new(cap)));
        let bounded = |i: usize| share(i).zip(budget.clone());
        Table {
            shards: (0..shards)
                .map(|i| Shard::new(bounded(i), expires))
                .collect(),
            hasher,
            mask: shards - 1,
            measure: Measure {
                weigher: settings.weigher,
                expire_after: settings.expire_after,
                refresh_after: settings.refresh_after,
            },
            rules: settings.rules,
            layout: Layout::of(settings.rules.time_to_idle, settings.refresh.is_some()),
            timer: settings.timer,
            listener: settings.listener,
            refresh: settings.refresh,
            budget,
            counters: Counters::default(),
            hits: Tally::new(),
            name: settings.name,
        }
    }

    pub(crate) fn shards(&self) -> &[Shard<K, V>] {
        &self.shards
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.read().ready()).sum()
    }

    pub(crate) fn weighted_size(&self) -> u64 {
        self.shards.iter().map(|s| s.map.read().weight()).sum()
    }

    pub(crate) fn measure(&self) -> &Measure<K, V> {
        &self.measure
    }

    /// Which clock the memo reads (`None` without expiry or refresh), for tests of the default.
    #[cfg(test)]
    pub(crate) fn clock_kind(&self) -> Option<&'static str> {
        self.timer.as_ref().map(Timer::kind)
    }

    /// The time, read before locking (the clock is user code); timeless without expiry.
    #[inline]
    pub(crate) fn moment(&self) -> Moment {
        match &self.timer {
            Some(timer) => self.moment_at(timer.now()),
            None => Moment::TIMELESS,
        }
    }

    /// The moment of a reading `now` taken earlier in the same operation.
    #[inline]
    pub(crate) fn moment_at(&self, now: Tick) -> Moment {
        Moment {
            now,
            time_to_idle: self.rules.time_to_idle,
            layout: self.layout,
        }
    }

    /// Counts and reports what an operation removed. Call with no lock held.
    #[inline]
    pub(crate) fn report(&self, removals: Removals<K, V>) {
        removals.report(self.listener.as_ref(), &self.counters);
    }
}

impl<K, V, S> Table<K, V, S>
where
    K: Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn shard(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[self.shard_index(hash)]
    }

    fn shard_index(&self, hash: u64) -> usize {
        // The middle bits: hashbrown takes its bucket index from the low bits and its tag from
        // the top seven, so picking the shard with either would crowd keys within a shard.
        (hash >> 32) as usize & self.mask
    }

    /// Whether a value of `weight` is too heavy to be stored (heavier than `max_capacity`).
    pub(crate) fn refused(&self, weight: u32) -> bool {
        self.max_capacity()
            .is_some_and(|max| u64::from(weight) > max)
    }

    /// The bound on the total weight (`max_capacity`), if the memo is bounded.
    pub(crate) fn max_capacity(&self) -> Option<u64> {
        self.budget.as_ref().map(|budget| budget.total())
    }

    /// Runs `store` under the write lock of `hash`'s shard, once that shard has room for an entry
    /// of `weight`: if its limit is below that weight, capacity is first gathered from the other
    /// shards (`table/reserve.rs`), so that admission never depends on the shard count. An entry
    /// heavier than the whole capacity is stored and turned away at once, like before.
    fn store<R>(
        &self,
        hash: u64,
        weight: u32,
        out: &mut Removals<K, V>,
        store: impl FnOnce(&mut ShardMap<K, V>, &mut Removals<K, V>) -> R,
    ) -> R {
        let index = self.shard_index(hash);
        let Some(budget) = &self.budget else {
            return store(&mut self.shards[index].map.write(), out);
        };
        {
            let mut map = self.shards[index].map.write();
            if u64::from(weight) > budget.total() || map.missing(weight) == 0 {
                return store(&mut map, out);
            }
        }
        reserve::reserve(budget, &self.shards, index, weight, out, store)
    }

    /// The ready entry of `key`, for `get`. An expired entry found here is purged and reported.
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let at = self.moment();
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let expired = {
            let map = shard.map.read();
            match map.get(hash, key, at, true) {
                Found::Ready(ready) => {
                    // The hit path: one read lock, one lookup, a clone of `V` (run under the read
                    // lock: the documented exception to "no user code under a lock").
                    let entry = ready.entry.clone();
                    self.hits.add_one();
                    return Some(entry);
                }
                Found::Expired => true,
                Found::Flight(_) | Found::Vacant => false,
            }
        };
        bump(&self.counters.misses);
        if expired {
            self.purge_one(hash, key, at);
        }
        None
    }

    /// The epoch of what `key` holds (`epoch`). An expired entry found here is purged and
    /// reported.
    pub(crate) fn epoch<Q>(&self, key: &Q) -> Option<Epoch>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.moment();
        let hash = self.hash(key);
        let found = match self.shard(hash).map.read().get(hash, key, at, false) {
            Found::Ready(ready) => Ok(Some(ready.entry.epoch())),
            Found::Flight(flight) => Ok(Some(flight.epoch())),
            Found::Vacant => Ok(None),
            Found::Expired => Err(()),
        };
        found.unwrap_or_else(|()| {
            self.purge_one(hash, key, at);
            None
        })
    }

    /// Purges the entry of `key` if it is expired at `at` (a read found it so).
    #[cold]
    fn purge_one<Q>(&self, hash: u64, key: &Q, at: Moment)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut out = Removals::new();
        // `|_| false`: only an expired entry is removed, whatever else the key holds now.
        let removed = self.shard(hash).map.write().remove_if(
            hash,
            key,
            |_| false,
            crate::RemovalCause::Expired,
            at,
            &mut out,
        );
        debug_assert!(removed.is_none(), "only an expired entry is removed");
        self.report(out);
    }

    /// The hit path of a get-or-init read, kept small enough to inline into the caller's poll:
    /// the ready entry of `key` if it has one whose automatic refresh is not due (a hit,
    /// counted and touched). Otherwise the key's hash and the time read, for the caller to hand
    /// to [`lookup`](Self::lookup), which finds and counts whatever the key holds then (a miss
    /// hashes the key and reads the clock once). Read lock only.
    #[inline]
    pub(crate) fn hit<Q>(&self, key: &Q) -> Result<Entry<V>, Probe>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let (hash, at) = (self.hash(key), self.moment());
        let map = self.shard(hash).map.read();
        let found = map.get(hash, key, at, false);
        if let Found::Ready(ready) = found {
            if !map.refresh_due(hash, ready, at) {
                ready.touch(at);
                let entry = ready.entry.clone();
                drop(map);
                self.hits.add_one();
                return Ok(entry);
            }
        }
        let vacant = matches!(found, Found::Vacant);
        Err(Probe { hash, at, vacant })
    }

    /// Finds the ready entry of `key`, or joins its flight, or creates a flight for it.
    ///
    /// Returns what the lookup purged on the side, *unreported*: the caller reports it once its
    /// own state is consistent (joined to the flight, and the flight it created driven once), so
    /// that a listener re-entering the memo finds no flight half set up (see `call.rs`).
    #[inline]
    pub(crate) fn lookup<Q>(
        &self,
        key: &Q,
        want: Want,
        probe: Option<Probe>,
    ) -> (Lookup<V>, Removals<K, V>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        // A reading taken by `hit` earlier in this same call is a reading within the call.
        let Probe { hash, at, vacant } = probe.unwrap_or_else(|| Probe {
            hash: self.hash(key),
            at: self.moment(),
            vacant: false,
        });
        if want != Want::Get || vacant {
            // A refresh (the refresh table, locked), or a key `hit` just found empty: whatever
            // it holds by now, the write lock decides.
            return self.claim(hash, key, at, want);
        }
        let shard = self.shard(hash);
        {
            let map = shard.map.read();
            match map.get(hash, key, at, true) {
                Found::Ready(ready) => {
                    let entry = ready.entry.clone();
                    self.hits.add_one();
                    // Never true without `refresh_after` (`Layout::Plain`).
                    if map.refresh_due(hash, ready, at) {
                        return (Claim::Due(entry, at.now), Removals::new());
                    }
                    return (Claim::Hit(entry), Removals::new());
                }
                Found::Flight(flight) => {
                    flight.join();
                    let flight = Arc::clone(flight);
                    drop(map);
                    bump(&self.counters.misses);
                    bump(&self.counters.joins);
                    return (Claim::Joined(flight), Removals::new());
                }
                Found::Expired | Found::Vacant => {}
            }
        }
        self.claim(hash, key, at, want)
    }

    /// The miss path of `lookup`: joins or creates the flight under the write lock.
    #[inline(never)]
    fn claim<Q>(&self, hash: u64, key: &Q, at: Moment, want: Want) -> (Lookup<V>, Removals<K, V>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        let shard = self.shard(hash);
        // Clone the key before locking: `Clone` of `K` is user code.
        let owned = key.to_owned();
        let mut out = Removals::new();
        let (claim, spare) = {
            let mut map = shard.map.write();
            let claim = map.claim(hash, key, owned, want, at, &mut out);
            map.purge(at, PURGE_BUDGET, &mut out);
            claim
        };
        drop(spare);
        match &claim {
            Claim::Hit(_) | Claim::Due(..) => self.hits.add_one(),
            Claim::Joined(_) => {
                bump(&self.counters.misses);
                bump(&self.counters.joins);
            }
            Claim::Created(flight, _) => {
                bump(&self.counters.misses);
                self.started(flight);
            }
            Claim::Gone => {}
        }
        (claim, out)
    }

    /// Stores a value under `key` with a fresh epoch (`insert`); returns that epoch, or the
    /// refusal if the value is heavier than the whole capacity (then it replaced what the key
    /// held, and was turned away at once).
    pub(crate) fn insert(&self, key: K, value: V) -> Result<Epoch, Refusal> {
        let admission = self.measure.measure(Some(&key), &value);
        let at = self.moment();
        let hash = self.hash(&key);
        let mut out = Removals::new();
        let (epoch, detached) = self.store(hash, admission.weight, &mut out, |map, out| {
            // Drawn under the write lock, so a key's successive slots have rising epochs.
            let epoch = Epoch::next();
            let arrival = self.arrival(Entry::new(value, epoch), admission, at);
            let detached = map.insert(hash, key, arrival, at, out);
            map.purge(at, PURGE_BUDGET, out);
            (epoch, detached)
        });
        drop(detached);
        self.report(out);
        match self.max_capacity() {
            Some(max_capacity) if u64::from(admission.weight) > max_capacity => Err(Refusal {
                epoch,
                weight: admission.weight,
                max_capacity,
            }),
            _ => Ok(epoch),
        }
    }

    fn arrival(&self, entry: Entry<V>, admission: Admission, at: Moment) -> Arrival<V> {
        let refresh_at = match (&self.refresh, admission.refresh_after) {
            (None, _) => Tick::NEVER,
            (Some(_), Some(own)) => at.now.after(own),
            (Some(rule), None) => at.now.after(rule.after),
        };
        Arrival {
            entry,
            weight: admission.weight,
            deadline: self.rules.deadline(at.now, admission.expire_after),
            refresh_at,
        }
    }

    /// Counts a flight that starts.
    fn started(&self, flight: &Flight<V>) {
        crate::trace::event!(
            epoch = flight.epoch().get(),
            refreshes = flight.refreshes().map(Epoch::get),
            "flight started"
        );
        bump(&self.counters.started);
        if flight.refreshes().is_some() {
            bump(&self.counters.refresh_started);
        }
    }

    /// Commits a completed flight: stores `value` under its epoch if the key still holds the
    /// flight. A detached flight stores nothing (no resurrection). Returns the removals the
    /// commit caused (evictions), for the caller to report once the flight is published.
    pub(crate) fn commit<Q>(
        &self,
        key: &Q,
        flight: &Arc<Flight<V>>,
        value: &V,
        admission: Admission,
    ) -> Removals<K, V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        if flight.refreshes().is_some() && self.refused(admission.weight) {
            // A refresh that could not be stored changes nothing: its entry stays, served (its
            // callers still receive the value), as after a failed refresh — and, automatic, it
            // holds off the next automatic one as a failure does: it would be refused again.
            let retry = self.retry_at(self.moment().now);
            let hash = self.hash(key);
            self.shard(hash).map.write().end_refresh(
                hash,
                flight,
                End::Failed { retry },
                self.layout,
            );
            bump(&self.counters.detached);
            bump(&self.counters.refresh_detached);
            return Removals::new();
        }
        let entry = Entry::new(value.clone(), flight.epoch());
        // A refresh reports the entry it replaces: clone the key before locking (user code).
        let owned = flight.refreshes().map(|_| key.to_owned());
        let at = self.moment();
        let hash = self.hash(key);
        let mut out = Removals::new();
        let committed = self.store(hash, admission.weight, &mut out, |map, out| {
            let arrival = self.arrival(entry, admission, at);
            // What a detached flight hands back (its entry, a key copy) is returned, to be
            // dropped after unlocking: `Drop` of `K` and `V` is user code.
            let committed = match owned {
                Some(owned) => map
                    .commit_refresh(hash, owned, flight, arrival, at, out)
                    .map_err(|(entry, key)| (entry, Some(key))),
                None => map
                    .commit(hash, key, flight, arrival, at, out)
                    .map(drop)
                    .map_err(|entry| (entry, None)),
            };
            map.purge(at, PURGE_BUDGET, out);
            committed
        });
        let refresh = flight.refreshes().is_some();
        match committed {
            Ok(()) => {
                crate::trace::event!(epoch = flight.epoch().get(), "flight committed");
                bump(&self.counters.committed);
                if refresh {
                    bump(&self.counters.refresh_committed);
                }
            }
            Err(handed_back) => {
                drop(handed_back);
                crate::trace::event!(epoch = flight.epoch().get(), "flight detached");
                bump(&self.counters.detached);
                if refresh {
                    bump(&self.counters.refresh_detached);
                }
            }
        }
        out
    }

    /// Removes the flight from its key, if the key still holds it (failed or panicked flights);
    /// a refresh is detached from its entry, which stays (and, if the refresh was automatic,
    /// its next automatic refresh waits an interval). Reports nothing and runs no user code but
    /// `Hash`/`Eq` (and, for a refresh that failed without a panic, the clock), so it is safe
    /// while unwinding.
    pub(crate) fn discard<Q>(&self, key: &Q, flight: &Arc<Flight<V>>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        if flight.refreshes().is_some() {
            // The entry stays; after an automatic refresh, its next one waits an interval from
            // now. While unwinding the clock (user code) is not read: a panic there would abort,
            // and an automatic refresh already moved its retry to an interval after its start.
            let retry = if std::thread::panicking() {
                Tick(0)
            } else {
                self.retry_at(self.moment().now)
            };
            self.shard(hash).map.write().end_refresh(
                hash,
                flight,
                End::Failed { retry },
                self.layout,
            );
            bump(&self.counters.refresh_failed);
            return;
        }
        let removed = self
            .shard(hash)
            .map
            .write()
            .remove_flight(hash, key, flight);
        drop(removed);
    }

    /// A caller leaves its flight without taking a result (it was dropped). The last caller of
    /// an unfinished flight abandons it: the future is dropped and the key freed. An abandoned
    /// refresh is a cancellation, not a failure: its entry's next automatic refresh is not held
    /// off (Guava #3851).
    pub(crate) fn leave<Q>(&self, key: &Q, flight: &Arc<Flight<V>>, waiter: Option<WaiterId>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (leave, removed) = match flight.leave(waiter, false) {
            Leave::Last => {
                // Under the write lock nobody can join, so "last" stays true while we abandon.
                let hash = self.hash(key);
                let mut map = self.shard(hash).map.write();
                let leave = flight.leave(waiter, true);
                let removed = match leave {
                    Leave::Abandoned(..) if flight.refreshes().is_some() => {
                        map.end_refresh(hash, flight, End::Cancelled, self.layout);
                        None
                    }
                    Leave::Abandoned(..) => map.remove_flight(hash, key, flight),
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
                crate::trace::event!(epoch = flight.epoch().get(), "flight abandoned");
                bump(&self.counters.abandoned);
                drop(old);
                drop(future);
            }
            Leave::Last => unreachable!("leave with `may_abandon` never answers `Last`"),
        }
    }
}
