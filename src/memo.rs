//! `AsyncMemo`: the public handle and its methods.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::removal::Removals;
use crate::stats::Stats;
use crate::table::Table;
use crate::{DefaultHashBuilder, Entry, Epoch, MemoBuilder, Refused, RemovalCause, WeakMemo};

/// An async memo: runs an async computation once per key, shares it with every concurrent
/// caller, and keeps the result until it is invalidated, removed or replaced.
///
/// See the [crate documentation](crate) for the semantics every method keeps. Cloning an
/// `AsyncMemo` gives another handle to the same memo.
///
/// # Examples
///
/// ```
/// use async_memo::AsyncMemo;
///
/// # futures::executor::block_on(async {
/// let memo: AsyncMemo<String, u64> = AsyncMemo::new();
/// let first = memo.get_or_init("a".to_string(), || async { 1 }).await;
/// // The second init never runs: the value is memoized.
/// let again = memo.get_or_init_by_ref("a", || async { unreachable!() }).await;
/// assert_eq!((first.value(), first.epoch()), (again.value(), again.epoch()));
///
/// // Compare-and-delete: only the entry we observed is removed.
/// assert!(memo.invalidate("a", first.epoch()));
/// assert!(memo.get("a").is_none());
/// # });
/// ```
pub struct AsyncMemo<K, V, S = DefaultHashBuilder> {
    pub(crate) table: Arc<Table<K, V, S>>,
}

impl<K, V, S> AsyncMemo<K, V, S> {
    pub(crate) fn from_shared(table: Arc<Table<K, V, S>>) -> Self {
        AsyncMemo { table }
    }
}

impl<K, V, S> Clone for AsyncMemo<K, V, S> {
    fn clone(&self) -> Self {
        AsyncMemo {
            table: Arc::clone(&self.table),
        }
    }
}

impl<K, V, S> fmt::Debug for AsyncMemo<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncMemo")
            .field("name", &self.table.name)
            .field("len", &self.table.len())
            .field("shards", &self.table.shards().len())
            .finish_non_exhaustive()
    }
}

impl<K, V> AsyncMemo<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
{
    /// An empty memo with the default hasher and shard count.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u32, String> = async_memo::AsyncMemo::new();
    /// assert!(memo.is_empty());
    /// ```
    pub fn new() -> Self {
        MemoBuilder::new().build()
    }

    /// A builder, to choose the hasher and the shard count.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u32, u32> = async_memo::AsyncMemo::builder().shards(4).build();
    /// assert!(memo.is_empty());
    /// ```
    pub fn builder() -> MemoBuilder<K, V> {
        MemoBuilder::new()
    }
}

impl<K, V> Default for AsyncMemo<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> AsyncMemo<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
{
    pub(crate) fn from_table(table: Table<K, V, S>) -> Self {
        Self::from_shared(Arc::new(table))
    }

    /// The ready entry of `key`, if any. Never starts or waits for a flight.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// assert!(memo.get(&1).is_none());
    /// memo.insert(1, "one").unwrap();
    /// assert_eq!(memo.get(&1).map(|e| *e.value()), Some("one"));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.get(key)
    }

    /// The epoch of what `key` holds now: its ready entry, or its flight in progress.
    ///
    /// During a flight this is `Some` while [`get`](Self::get) is `None`. A caller that received
    /// a value from a flight can compare its epoch with this one to learn whether the value is
    /// still current (the flight may have been detached after it joined).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert("k", 1).unwrap();
    /// assert_eq!(memo.epoch("k"), Some(entry.epoch()));
    /// memo.insert("k", 2).unwrap();
    /// assert_ne!(memo.epoch("k"), Some(entry.epoch()), "replaced");
    /// ```
    pub fn epoch<Q>(&self, key: &Q) -> Option<Epoch>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.epoch(key)
    }

    /// Stores `value` under `key` with a fresh epoch, replacing what the key held. A flight in
    /// progress is detached: its callers still receive its value, which is never committed.
    ///
    /// # Errors
    ///
    /// [`Refused`] if the value's weight is above [`max_capacity`](Self::max_capacity) (any
    /// value at capacity 0, unless its weight is 0): it can never be stored. It still replaced
    /// what the key held and was reported to the removal listener as evicted; the key is empty
    /// and the value comes back in the error. Any value within `max_capacity` is stored,
    /// whatever the shard count, evicting others as needed.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), async_memo::Refused<i32>> {
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert("k", 1)?;
    /// assert_eq!(*entry.value(), 1);
    /// assert_eq!(memo.get("k").map(|e| e.epoch()), Some(entry.epoch()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<Entry<V>, Refused<V>> {
        let returned = value.clone();
        match self.table.insert(key, value) {
            Ok(epoch) => Ok(Entry::new(returned, epoch)),
            Err(refusal) => Err(Refused::new(
                Entry::new(returned, refusal.epoch),
                refusal.weight,
                refusal.max_capacity,
            )),
        }
    }

    /// The bound on the total weight of ready entries (on their number without a weigher), or
    /// `None` if the memo is unbounded.
    ///
    /// The rule every store follows: a value whose weight is at most `max_capacity` is stored
    /// (evicting others as needed, whatever the shard count); a heavier one never is.
    /// [`insert`](Self::insert) says so in its result. A flight's value that is too heavy still
    /// goes to every caller of the flight, and the key is left empty ([`epoch`](Self::epoch)
    /// returns `None`): compare the weight with this bound, or `epoch(k)` with the entry's, to
    /// tell. A refresh or [`replace`](Self::replace) that is too heavy changes nothing instead:
    /// the entry it would have replaced stays. An entry of weight 0 counts for nothing against the bound: it is stored at any
    /// capacity, 0 included, and never makes room by evicting (the policy may still evict it
    /// when making room for others).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<&str, Vec<u8>> = async_memo::AsyncMemo::builder()
    ///     .max_capacity(1_000)
    ///     .weigher(|_, v: &Vec<u8>| v.len() as u32)
    ///     .build();
    /// assert_eq!(memo.max_capacity(), Some(1_000));
    /// let big = memo.get_or_init("big", || async { vec![0; 2_000] }).await;
    /// assert_eq!(big.value().len(), 2_000, "the callers receive it...");
    /// assert_eq!(memo.epoch("big"), None, "...but it is not stored");
    /// # });
    /// ```
    pub fn max_capacity(&self) -> Option<u64> {
        self.table.max_capacity()
    }

    /// Compare-and-delete: removes the ready entry of `key`, or detaches its flight, only if its
    /// epoch is `observed`. Returns whether it did. A stale epoch changes nothing, so a newer
    /// entry stored meanwhile (by a reconnect, say) survives.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let old = memo.insert("conn", "A").unwrap();
    /// let new = memo.insert("conn", "B").unwrap(); // e.g. a close handler reconnected
    /// assert!(!memo.invalidate("conn", old.epoch()), "B is not the entry we saw");
    /// assert!(memo.invalidate("conn", new.epoch()));
    /// ```
    pub fn invalidate<Q>(&self, key: &Q, observed: Epoch) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let matches = |epoch: Epoch| epoch == observed;
        // Seeded bug (.ci/mutants): a late delete that ignores the observed epoch.
        #[cfg(async_memo_mutant = "unconditional_late_delete")]
        let matches = |_: Epoch| true;
        // Not the entry or flight: perhaps the refresh in flight beside the entry.
        self.remove_where(
            key,
            RemovalCause::Invalidated,
            matches,
            false,
            Some(observed),
        )
        .is_some()
    }

    /// Removes whatever `key` holds, unconditionally. Returns the ready entry it held; a flight
    /// in progress is detached (its callers still receive its value, which is never committed)
    /// and `None` is returned.
    ///
    /// Prefer [`invalidate`](Self::invalidate) whenever you observed the entry you mean to
    /// remove: `remove` after an `.await` is exactly the bug this crate exists to prevent.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert(1, "one").unwrap();
    /// assert_eq!(memo.remove(&1).map(|e| e.into_value()), Some("one"));
    /// assert!(memo.remove(&1).is_none());
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_where(key, RemovalCause::Removed, |_| true, true, None)?
    }

    /// Removes the slot of `key` if `matches` its epoch, or else detaches the refresh beside its
    /// entry if that refresh's epoch is `refresh`. Returns `Some` if it removed a slot or
    /// detached a refresh, holding (if `keep`) a copy of the ready entry it removed and reported
    /// under `cause`. An expired entry is purged and reported as expired, and counts as absent.
    ///
    /// Both looks happen in one critical section: a refresh that commits between two would
    /// escape both (it is no longer beside the entry, and its epoch was not the key's yet).
    fn remove_where<Q>(
        &self,
        key: &Q,
        cause: RemovalCause,
        matches: impl FnOnce(Epoch) -> bool,
        keep: bool,
        refresh: Option<Epoch>,
    ) -> Option<Option<Entry<V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.table.moment();
        let hash = self.table.hash(key);
        let mut out = Removals::new();
        let (removed, detached) = {
            let mut map = self.table.shard(hash).map.write();
            let removed =
                map.remove_if(hash, key, |slot| matches(slot.epoch()), cause, at, &mut out);
            let detached = removed.is_none()
                && refresh
                    .is_some_and(|observed| map.detach_refresh(hash, key, observed, at.layout));
            (removed, detached)
        };
        let result = match removed {
            Some(Ok(_)) if keep => Some(out.cloned(cause)),
            Some(Ok(_) | Err(_)) => Some(None),
            None if detached => Some(None),
            // Nothing matched, or only an expired entry was purged: that one is reported too.
            None => None,
        };
        self.table.report(out);
        result
    }

    /// Removes every ready entry and detaches every flight.
    ///
    /// Shards are cleared one after another, not atomically: an entry stored in an
    /// already-cleared shard while this runs survives.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert(1, 1).unwrap();
    /// memo.insert(2, 2).unwrap();
    /// memo.invalidate_all();
    /// assert!(memo.is_empty());
    /// ```
    pub fn invalidate_all(&self) {
        let at = self.table.moment();
        // Clear every shard before reporting, so a panicking listener cannot stop the clear.
        let mut out = Removals::new();
        for shard in self.table.shards() {
            let detached = shard.map.write().clear(at, &mut out);
            drop(detached);
        }
        self.table.report(out);
    }

    /// The number of ready entries (flights in progress are not counted).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert("a", 1).unwrap();
    /// assert_eq!(memo.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the memo holds no ready entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::new();
    /// assert!(memo.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name given at build time ([`MemoBuilder::name`]), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::new();
    /// assert_eq!(memo.name(), None);
    /// let named: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::builder().name("users").build();
    /// assert_eq!(named.name(), Some("users"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.table.name.as_deref()
    }

    /// A snapshot of the memo's counters: hits, misses, flights and removals by cause.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert(1, "one").unwrap();
    /// memo.get(&1);
    /// memo.get(&2);
    /// let stats = memo.stats();
    /// assert_eq!((stats.hits, stats.misses), (1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        self.table.counters.snapshot(self.table.hits.sum())
    }

    /// Purges every expired entry now, reporting each to the removal listener as `Expired`.
    ///
    /// Purging otherwise happens on the side of other operations: reads treat an expired entry
    /// as absent at once, and every write purges a few expired entries of its shard. Call this
    /// (from a periodic task of your own, say) to release expired values eagerly. A memo without
    /// expiry has nothing to purge.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
    ///     .time_to_live(Duration::from_secs(1))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(memo.len(), 1, "expired, but not purged yet");
    /// memo.purge_expired();
    /// assert_eq!(memo.len(), 0);
    /// ```
    pub fn purge_expired(&self) {
        let at = self.table.moment();
        // Purge every shard before reporting, so a panicking listener cannot stop the purge.
        let mut out = Removals::new();
        for shard in self.table.shards() {
            shard.map.write().purge(at, usize::MAX, &mut out);
        }
        self.table.report(out);
    }

    /// A weak handle, which does not keep the memo alive. Give one to a removal listener that
    /// needs to call its own memo: a strong handle there would be a reference cycle (memo ->
    /// listener -> memo) that never frees the memo or anything in it.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::new();
    /// let weak = memo.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(memo);
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakMemo<K, V, S> {
        WeakMemo::new(Arc::downgrade(&self.table))
    }
}
