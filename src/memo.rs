//! `AsyncMemo`: the public handle and its methods.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::call::{Call, Fallible, Key, Plain};
use crate::shard::Slot;
use crate::table::Table;
use crate::{Entry, Epoch, MemoBuilder};

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
pub struct AsyncMemo<K, V, S = RandomState> {
    table: Arc<Table<K, V, S>>,
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
        AsyncMemo {
            table: Arc::new(table),
        }
    }

    /// The entry of `key`: the ready one, or the one computed now by `init` and shared with every
    /// concurrent caller of the same key.
    ///
    /// If the key holds a ready entry, it is returned and `init` is dropped without being called.
    /// If a flight is in progress, this call joins it. Otherwise this call starts a flight: `init`
    /// is called once, and its future is driven by whichever caller polls (so it keeps running if
    /// this caller goes away while others wait). The value is committed under the flight's epoch
    /// unless the flight was detached meanwhile (by [`invalidate`](Self::invalidate),
    /// [`remove`](Self::remove), [`insert`](Self::insert) or
    /// [`invalidate_all`](Self::invalidate_all)); callers already joined receive it either way.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. Dropping the future leaves the memo consistent: other callers of the flight
    /// keep driving it; if this was the last caller, the init future is dropped and the key is
    /// free again, as if the call had never been made.
    ///
    /// # Panics
    ///
    /// If `init` or its future panics, the panic propagates to the caller that was polling it
    /// and to the caller whose `init` started the flight. The key is left free (nothing is
    /// stored) and every other caller of the flight starts over with its own `init`. The memo is
    /// never poisoned.
    ///
    /// Panics if the init future of `key` awaits `key` itself (on the same thread), which could
    /// never finish; the key is freed. Awaiting one's own key from another task deadlocks that
    /// flight instead: don't.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.get_or_init(7, || async { "seven" }).await;
    /// assert_eq!(*entry.value(), "seven");
    /// assert_eq!(memo.epoch(&7), Some(entry.epoch()));
    /// # });
    /// ```
    pub fn get_or_init<F, Fut>(&self, key: K, init: F) -> impl Future<Output = Entry<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        Call::new(&*self.table, Key::<K, K>::Owned(key), Plain(init))
    }

    /// [`get_or_init`](Self::get_or_init) with a borrowed key, which is cloned into the memo
    /// only on a miss: a hit on a `String` key does not allocate.
    ///
    /// # Cancel safety
    ///
    /// As for [`get_or_init`](Self::get_or_init).
    ///
    /// # Panics
    ///
    /// As for [`get_or_init`](Self::get_or_init).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<String, usize> = async_memo::AsyncMemo::new();
    /// let entry = memo.get_or_init_by_ref("abc", || async { 3 }).await;
    /// assert_eq!(*entry.value(), 3);
    /// # });
    /// ```
    pub fn get_or_init_by_ref<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        init: F,
    ) -> impl Future<Output = Entry<V>> + 'a
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = V> + Send + 'static,
    {
        Call::new(&*self.table, Key::Borrowed(key), Plain(init))
    }

    /// Like [`get_or_init`](Self::get_or_init), for a computation that can fail.
    ///
    /// # Errors
    ///
    /// If the flight's future returns `Err(e)`, nothing is stored (the key is free again, the
    /// next call starts a new flight) and every caller of that flight that expects the error
    /// type `E` receives the same `Arc<E>`. A key has one flight whatever its callers' types: a
    /// joined caller that cannot receive that error (one expecting another error type, or a
    /// [`get_or_init`](Self::get_or_init) caller) starts over with its own `init` instead.
    ///
    /// # Cancel safety
    ///
    /// As for [`get_or_init`](Self::get_or_init).
    ///
    /// # Panics
    ///
    /// As for [`get_or_init`](Self::get_or_init).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<&str, u16> = async_memo::AsyncMemo::new();
    /// let err = memo.get_or_try_init("port", || async { "x".parse::<u16>() }).await;
    /// assert!(err.is_err());
    /// assert!(memo.get("port").is_none(), "errors are not cached");
    /// let ok = memo.get_or_try_init("port", || async { "80".parse::<u16>() }).await;
    /// assert_eq!(ok.map(|e| *e.value()), Ok(80));
    /// # });
    /// ```
    pub fn get_or_try_init<F, Fut, E>(
        &self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        Call::new(
            &*self.table,
            Key::<K, K>::Owned(key),
            Fallible(init, PhantomData),
        )
    }

    /// [`get_or_try_init`](Self::get_or_try_init) with a borrowed key, cloned only on a miss.
    ///
    /// # Errors
    ///
    /// As for [`get_or_try_init`](Self::get_or_try_init).
    ///
    /// # Cancel safety
    ///
    /// As for [`get_or_init`](Self::get_or_init).
    ///
    /// # Panics
    ///
    /// As for [`get_or_init`](Self::get_or_init).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<String, u8> = async_memo::AsyncMemo::new();
    /// let entry = memo.get_or_try_init_by_ref("k", || async { Ok::<_, std::io::Error>(1) }).await;
    /// assert_eq!(entry.map(|e| *e.value()).ok(), Some(1));
    /// # });
    /// ```
    pub fn get_or_try_init_by_ref<'a, Q, F, Fut, E>(
        &'a self,
        key: &'a Q,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>> + 'a
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        Call::new(
            &*self.table,
            Key::Borrowed(key),
            Fallible(init, PhantomData),
        )
    }

    /// The ready entry of `key`, if any. Never starts or waits for a flight.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// assert!(memo.get(&1).is_none());
    /// memo.insert(1, "one");
    /// assert_eq!(memo.get(&1).map(|e| *e.value()), Some("one"));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.table.shard(key).map.read().get(key)? {
            Slot::Ready(entry) => Some(entry.clone()),
            Slot::Flight(_) => None,
        }
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
    /// let entry = memo.insert("k", 1);
    /// assert_eq!(memo.epoch("k"), Some(entry.epoch()));
    /// memo.insert("k", 2);
    /// assert_ne!(memo.epoch("k"), Some(entry.epoch()), "replaced");
    /// ```
    pub fn epoch<Q>(&self, key: &Q) -> Option<Epoch>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .shard(key)
            .map
            .read()
            .get(key)
            .map(|slot| slot.epoch())
    }

    /// Stores `value` under `key` with a fresh epoch, replacing what the key held. A flight in
    /// progress is detached: its callers still receive its value, which is never committed.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert("k", 1);
    /// assert_eq!(*entry.value(), 1);
    /// assert_eq!(memo.get("k").map(|e| e.epoch()), Some(entry.epoch()));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Entry<V> {
        let returned = value.clone();
        let shard = self.table.shard(&key);
        let mut map = shard.map.write();
        let epoch = Epoch::next();
        let displaced = map.insert(key, Slot::Ready(Entry::new(value, epoch)));
        drop(map);
        drop(displaced);
        Entry::new(returned, epoch)
    }

    /// Compare-and-delete: removes the ready entry of `key`, or detaches its flight, only if its
    /// epoch is `observed`. Returns whether it did. A stale epoch changes nothing, so a newer
    /// entry stored meanwhile (by a reconnect, say) survives.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let old = memo.insert("conn", "A");
    /// let new = memo.insert("conn", "B"); // e.g. a close handler reconnected
    /// assert!(!memo.invalidate("conn", old.epoch()), "B is not the entry we saw");
    /// assert!(memo.invalidate("conn", new.epoch()));
    /// ```
    pub fn invalidate<Q>(&self, key: &Q, observed: Epoch) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self
            .table
            .shard(key)
            .map
            .write()
            .remove_if(key, |slot| slot.epoch() == observed);
        removed.is_some()
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
    /// memo.insert(1, "one");
    /// assert_eq!(memo.remove(&1).map(|e| e.into_value()), Some("one"));
    /// assert!(memo.remove(&1).is_none());
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self.table.shard(key).map.write().remove_if(key, |_| true);
        match removed? {
            (_, Slot::Ready(entry)) => Some(entry),
            (_, Slot::Flight(_)) => None,
        }
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
    /// memo.insert(1, 1);
    /// memo.insert(2, 2);
    /// memo.invalidate_all();
    /// assert!(memo.is_empty());
    /// ```
    pub fn invalidate_all(&self) {
        for shard in self.table.shards() {
            let taken = shard.map.write().take_all();
            drop(taken);
        }
    }

    /// The number of ready entries (flights in progress are not counted).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert("a", 1);
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
}
