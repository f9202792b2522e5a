//! Inspecting and sweeping a memo: quiet reads of one key (`peek`, `entry_info`), a snapshot
//! iterator, and compare-and-delete by predicate.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::shard::Seen;
use crate::table::Table;
use crate::{AsyncMemo, Entry, EntryInfo};

/// An iterator over a weakly consistent snapshot of a memo's ready entries, from
/// [`AsyncMemo::iter`]. It copies one shard at a time, under that shard's read lock.
///
/// Each item is a key and its [`Entry`]: a clone of the value with the epoch it was stored
/// under, so that what the iterator showed can be removed by compare-and-delete
/// ([`AsyncMemo::invalidate`]) without removing a newer entry stored since. The order is
/// unspecified.
///
/// # Examples
///
/// ```
/// use async_memo::AsyncMemo;
///
/// let prices: AsyncMemo<&str, u32> = AsyncMemo::new();
/// prices.insert("apple", 3).unwrap();
/// prices.insert("melon", 0).unwrap();
///
/// let shown: Vec<_> = prices.iter().filter(|(_, entry)| *entry.value() == 0).collect();
/// // Meanwhile another task stores a good price for "melon".
/// prices.insert("melon", 7).unwrap();
/// // The zero price the iterator showed is gone already: invalidating by its epoch keeps the
/// // newer entry.
/// for (key, entry) in shown {
///     assert!(!prices.invalidate(key, entry.epoch()));
/// }
/// assert_eq!(prices.get("melon").map(|e| *e.value()), Some(7));
/// assert_eq!(prices.iter().count(), 2);
/// ```
pub struct Iter<K, V, S> {
    table: Arc<Table<K, V, S>>,
    /// The next shard to copy.
    shard: usize,
    /// The current shard's copies, in reverse (popped from the end).
    copied: Vec<(K, Seen<V>)>,
}

impl<K, V, S> fmt::Debug for Iter<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("shard", &self.shard)
            .field("buffered", &self.copied.len())
            .finish_non_exhaustive()
    }
}

impl<K, V, S> Iterator for Iter<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    type Item = (K, Entry<V>);

    fn next(&mut self) -> Option<(K, Entry<V>)> {
        loop {
            match self.copied.pop() {
                Some((key, Seen::Ready(entry))) => return Some((key, entry)),
                Some((_, Seen::Flight(_))) => unreachable!("iter copies no flights"),
                None => {}
            }
            let shard = self.table.shards().get(self.shard)?;
            self.shard += 1;
            // The clock is user code: read it before locking. Each shard is judged at its own
            // moment, so an entry that expires while iterating is never yielded after it did.
            let at = self.table.moment();
            shard.map.read().snapshot(at, false, &mut self.copied);
        }
    }
}

impl<K, V, S> AsyncMemo<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
{
    /// The ready entry of `key`, read quietly: as [`get`](Self::get) would return it, with no
    /// side effect at all. It counts no hit or miss in [`stats`](Self::stats), does not move the
    /// entry's time to idle, does not count as a use for eviction (the S3-FIFO frequency), starts
    /// no automatic refresh, and never returns an expired entry (which it leaves for a write to
    /// purge, reporting nothing). For dashboards and health checks that must look without
    /// steering the memo (Caffeine's `getIfPresentQuietly`, quick_cache's `peek`; issue 22).
    ///
    /// It takes the shard's read lock only, reads the clock once before locking (in a memo with
    /// expiry or refresh), and runs no user code under the lock but `Eq` of the key and `Clone`
    /// of `V`, as a hit does (semantics 9). Never starts or waits for a flight.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert("k", 7).unwrap();
    /// let before = memo.stats();
    /// assert_eq!(memo.peek("k").map(|e| *e.value()), Some(7));
    /// assert!(memo.peek("other").is_none());
    /// assert_eq!(memo.stats(), before, "no hit, no miss");
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.peek(key)
    }

    /// The metadata of the ready entry of `key` — its epoch, age, time left to live and to
    /// idle, when its automatic refresh is due, its weight — read as quietly as
    /// [`peek`](Self::peek) reads (no stats, no idle or recency touch, no refresh started), and
    /// `None` where `peek` would be. It clones nothing and runs no user code under the lock
    /// but `Eq` of the key (its `Hash` and the clock run before locking); shard read lock
    /// only.
    ///
    /// The info names the entry by its [`epoch`](EntryInfo::epoch): act on exactly what you
    /// saw with [`invalidate`](Self::invalidate) or [`replace`](Self::replace), and a newer
    /// entry stored since is left alone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let configs: AsyncMemo<&str, String> = AsyncMemo::builder()
    ///     .time_to_live(Duration::from_secs(300))
    ///     .clock(clock.clone())
    ///     .build();
    /// configs.insert("app", "v1".to_string()).unwrap();
    /// clock.advance(Duration::from_secs(120));
    ///
    /// let info = configs.entry_info("app").expect("present");
    /// assert_eq!(info.age(), Some(Duration::from_secs(120)));
    /// assert_eq!(info.time_to_live_left(), Some(Duration::from_secs(180)));
    ///
    /// // Meanwhile a reload stored a newer config...
    /// configs.insert("app", "v2".to_string()).unwrap();
    /// // ...so dropping "the config older than a minute" by the epoch we saw keeps it.
    /// if info.age().is_some_and(|age| age > Duration::from_secs(60)) {
    ///     assert!(!configs.invalidate("app", info.epoch()));
    /// }
    /// assert_eq!(configs.peek("app").map(|e| e.into_value()), Some("v2".to_string()));
    /// ```
    pub fn entry_info<Q>(&self, key: &Q) -> Option<EntryInfo>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.entry_info(key)
    }

    /// The total weight of the ready entries: what counts against
    /// [`max_capacity`](Self::max_capacity). In a bounded memo it is the weigher's sum (each
    /// entry weighed once, at its commit); without a bound no weight is kept and each entry
    /// counts 1, so it equals [`len`](Self::len). Like `len`, it counts an expired entry until it
    /// is purged, and is read shard by shard (not atomic while writers run).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<&str, String> = async_memo::AsyncMemo::builder()
    ///     .max_capacity(100)
    ///     .weigher(|_, v: &String| v.len() as u32)
    ///     .build();
    /// memo.insert("a", "xyz".to_string()).unwrap();
    /// memo.insert("b", "hello".to_string()).unwrap();
    /// assert_eq!(memo.weighted_size(), 8);
    /// assert_eq!(memo.max_capacity(), Some(100));
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.table.weighted_size()
    }

    /// A weakly consistent snapshot of the ready, unexpired entries, shard by shard: each shard
    /// is copied under its read lock when the iterator reaches it (writers to that shard wait for
    /// one shard's copy, never longer), so an entry stored or removed meanwhile may or may not be
    /// seen. Flights in progress are not listed. Iterating is not a read: it counts as no hit
    /// and does not extend a time to idle.
    ///
    /// The only user code run under a lock is `Clone` of `K` and `V`, as on a hit: they must not
    /// call the memo.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert("a", 1).unwrap();
    /// memo.insert("b", 2).unwrap();
    /// let mut seen: Vec<_> = memo.iter().map(|(k, e)| (k, *e.value())).collect();
    /// seen.sort();
    /// assert_eq!(seen, [("a", 1), ("b", 2)]);
    /// ```
    pub fn iter(&self) -> Iter<K, V, S> {
        Iter {
            table: Arc::clone(&self.table),
            shard: 0,
            copied: Vec::new(),
        }
    }

    /// Calls `predicate` for every ready entry (`Some`) and every flight of a key with no entry
    /// (`None`), with no lock held, and compare-and-deletes each one it returns `true` for, by
    /// the epoch it was shown: an entry or flight replaced after the predicate saw it survives.
    /// Returns how many it removed. Removed entries are reported to the listener as
    /// `Invalidated`; a removed flight is detached and never commits (its callers still receive
    /// its value); a removed entry's refresh is detached with it.
    ///
    /// Works shard by shard, like [`iter`](Self::iter): it is not atomic, and what is stored in
    /// a shard already swept survives. A flight shown to the predicate that commits before its
    /// removal is the same generation (its entry has the flight's epoch) and is removed. The
    /// predicate may call the memo.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert(("tenant-a", 1), "x").unwrap();
    /// memo.insert(("tenant-a", 2), "y").unwrap();
    /// memo.insert(("tenant-b", 1), "z").unwrap();
    /// // A permission change: drop everything of tenant-a.
    /// let removed = memo.invalidate_if(|(tenant, _), _| *tenant == "tenant-a");
    /// assert_eq!((removed, memo.len()), (2, 1));
    /// ```
    pub fn invalidate_if<P>(&self, mut predicate: P) -> usize
    where
        P: FnMut(&K, Option<&Entry<V>>) -> bool,
    {
        let mut removed = 0;
        let mut copied = Vec::new();
        for shard in self.table.shards() {
            let at = self.table.moment();
            shard.map.read().snapshot(at, true, &mut copied);
            for (key, seen) in copied.drain(..) {
                let (chosen, epoch) = match &seen {
                    Seen::Ready(entry) => (predicate(&key, Some(entry)), entry.epoch()),
                    Seen::Flight(epoch) => (predicate(&key, None), *epoch),
                };
                if chosen && self.invalidate(&key, epoch) {
                    removed += 1;
                }
            }
        }
        removed
    }
}
