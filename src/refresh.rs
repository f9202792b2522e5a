//! Refresh and replace: recompute a key while its entry keeps being served, and swap a value in
//! only over the epoch the caller observed.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::call::{Call, Key};
use crate::init::{Fallible, IfCurrent, NoEpoch, Plain, WithEntry};
use crate::shard::Want;
use crate::{AsyncMemo, Entry, Epoch};

impl<K, V, S> AsyncMemo<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
{
    /// Compare-and-swap: stores `value` under a fresh epoch only if `key` holds `observed` — its
    /// ready entry (reported to the listener as `Replaced`), or its flight (detached: its
    /// callers still receive its value, which is never committed). A refresh in flight beside
    /// the entry is detached too. Atomic against every other operation on the key: of two
    /// replaces of one epoch, exactly one wins (quick_cache #73).
    ///
    /// # Errors
    ///
    /// `Err(Some(current))` if the key holds another epoch (the epoch of a refresh in flight is
    /// not what the key holds: its entry's is), `Err(None)` if it holds nothing (an expired
    /// entry counts as nothing, and is purged). Nothing changed; `value` is dropped. A value
    /// heavier than [`max_capacity`](Self::max_capacity) is refused the same way, whatever the
    /// key holds (compare its weight with the bound to tell): a swap that does not store
    /// changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let seen = memo.insert("config", 1).unwrap();
    /// let swapped = memo.replace("config", seen.epoch(), 2).expect("we saw the current one");
    /// // A second writer that saw the same generation loses, and learns the current epoch.
    /// assert_eq!(memo.replace("config", seen.epoch(), 3).unwrap_err(), Some(swapped.epoch()));
    /// assert_eq!(memo.get("config").map(|e| *e.value()), Some(2));
    /// ```
    pub fn replace(&self, key: K, observed: Epoch, value: V) -> Result<Entry<V>, Option<Epoch>> {
        let returned = value.clone();
        let epoch = self.table.replace(key, observed, value)?;
        Ok(Entry::new(returned, epoch))
    }

    /// Recomputes `key` while its ready entry keeps being served: readers get the entry at once
    /// (no waiting, no second computation) until the refresh commits, and only then see the new
    /// value. Concurrent refreshes of one key share one refresh flight (one `init`), with a
    /// fresh epoch newer than the entry's.
    ///
    /// The refresh commits only if the key still holds the entry it refreshes; the entry is then
    /// reported to the listener as `Replaced`. If the entry was invalidated, removed, replaced,
    /// expired or evicted meanwhile (or `invalidate_all` ran), the refresh is detached: it never
    /// commits (Caffeine #193), and its callers still receive its value. With no ready entry,
    /// `refresh` is [`get_or_init`](Self::get_or_init): it joins or starts the key's flight.
    ///
    /// In a memo with [`refresh_after`](crate::MemoBuilder::refresh_after), a manual refresh is
    /// never throttled, and one that fails or is dropped leaves the entry's automatic refresh
    /// as due as it was (Caffeine #498). One that joins an automatic refresh in flight shares
    /// that refresh's outcome, failure included: the next automatic attempt then waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. Dropping the future leaves the memo consistent and the entry untouched;
    /// when the refresh's last caller is dropped, the refresh's future is dropped.
    ///
    /// # Panics
    ///
    /// As for [`get_or_init`](Self::get_or_init); the entry stays in place and served.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo = async_memo::AsyncMemo::new();
    /// let old = memo.get_or_init("tools", || async { vec!["search"] }).await;
    /// let new = memo.refresh("tools", || async { vec!["search", "fetch"] }).await;
    /// assert!(new.epoch() > old.epoch());
    /// assert_eq!(memo.get("tools").map(|e| e.epoch()), Some(new.epoch()));
    /// # });
    /// ```
    pub fn refresh<F, Fut>(&self, key: K, init: F) -> impl Future<Output = Entry<V>>
    where
        K: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let init = Plain(NoEpoch(init));
        Call::new(&self.table, Key::<K, K>::Owned(key), Want::Refresh, init)
    }

    /// [`refresh`](Self::refresh) with a borrowed key, cloned only when needed.
    ///
    /// # Cancel safety
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Panics
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<String, u8> = async_memo::AsyncMemo::new();
    /// memo.insert("k".to_string(), 1).unwrap();
    /// assert_eq!(*memo.refresh_by_ref("k", || async { 2 }).await.value(), 2);
    /// # });
    /// ```
    pub fn refresh_by_ref<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        init: F,
    ) -> impl Future<Output = Entry<V>> + 'a
    where
        K: Send + 'static + Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = V> + Send + 'static,
    {
        let init = Plain(NoEpoch(init));
        Call::new(&self.table, Key::Borrowed(key), Want::Refresh, init)
    }

    /// [`refresh`](Self::refresh) for a computation that can fail.
    ///
    /// # Errors
    ///
    /// An `Err(e)` leaves the entry in place and served; every caller of that refresh expecting
    /// `E` receives the same `Arc<E>`, and the next refresh starts anew (others start over with
    /// their own `init`, as in [`get_or_try_init`](Self::get_or_try_init)).
    ///
    /// # Cancel safety
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Panics
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert("port", 80u16).unwrap();
    /// let failed = memo.try_refresh("port", || async { "x".parse::<u16>() }).await;
    /// assert!(failed.is_err());
    /// assert_eq!(memo.get("port").map(|e| *e.value()), Some(80), "the entry stays");
    /// # });
    /// ```
    pub fn try_refresh<F, Fut, E>(
        &self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>>
    where
        K: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let init = Fallible(NoEpoch(init), PhantomData);
        Call::new(&self.table, Key::<K, K>::Owned(key), Want::Refresh, init)
    }

    /// [`try_refresh`](Self::try_refresh) with a borrowed key, cloned only when needed.
    ///
    /// # Errors
    ///
    /// As for [`try_refresh`](Self::try_refresh).
    ///
    /// # Cancel safety
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Panics
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<String, u8> = async_memo::AsyncMemo::new();
    /// let entry = memo.try_refresh_by_ref("k", || async { Ok::<_, std::io::Error>(1) }).await;
    /// assert_eq!(entry.map(|e| *e.value()).ok(), Some(1));
    /// # });
    /// ```
    pub fn try_refresh_by_ref<'a, Q, F, Fut, E>(
        &'a self,
        key: &'a Q,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>> + 'a
    where
        K: Send + 'static + Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let init = Fallible(NoEpoch(init), PhantomData);
        Call::new(&self.table, Key::Borrowed(key), Want::Refresh, init)
    }

    /// Refreshes only the generation the caller saw: if `key` holds the ready entry of epoch
    /// `observed`, joins or starts its refresh, and `init` (if this call starts it) receives
    /// that entry — for conditional revalidation (an ETag), or "unknown key id: refetch the key
    /// set" without refetching once per caller.
    ///
    /// Returns `None` if the key no longer holds `observed` (someone refreshed, replaced or
    /// removed it already, or it expired: read again), or holds a flight instead.
    ///
    /// # Cancel safety
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Panics
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let keys = async_memo::AsyncMemo::new();
    /// let seen = keys.insert("jwks", vec!["key-1"]).unwrap();
    /// // A token names an unknown key id: refetch the key set, once, for the set we saw.
    /// let fresh = keys
    ///     .refresh_if("jwks", seen.epoch(), |old| async move {
    ///         let mut set = old.into_value();
    ///         set.push("key-2");
    ///         set
    ///     })
    ///     .await
    ///     .expect("we saw the current set");
    /// assert_eq!(fresh.value(), &["key-1", "key-2"]);
    /// // The set we saw is gone: a late caller learns so instead of refetching again.
    /// assert!(keys.refresh_if("jwks", seen.epoch(), |_| async { vec![] }).await.is_none());
    /// # });
    /// ```
    pub fn refresh_if<F, Fut>(
        &self,
        key: K,
        observed: Epoch,
        init: F,
    ) -> impl Future<Output = Option<Entry<V>>>
    where
        K: Send + 'static,
        F: FnOnce(Entry<V>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let init = IfCurrent(Plain(WithEntry(init)));
        let want = Want::RefreshIf(observed);
        Call::new(&self.table, Key::<K, K>::Owned(key), want, init)
    }

    /// [`refresh_if`](Self::refresh_if) with a borrowed key, cloned only when needed.
    ///
    /// # Cancel safety
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Panics
    ///
    /// As for [`refresh`](Self::refresh).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let memo: async_memo::AsyncMemo<String, u8> = async_memo::AsyncMemo::new();
    /// let seen = memo.insert("k".to_string(), 1).unwrap();
    /// let next = memo.refresh_if_by_ref("k", seen.epoch(), |e| async move { e.value() + 1 });
    /// assert_eq!(next.await.map(|e| *e.value()), Some(2));
    /// # });
    /// ```
    pub fn refresh_if_by_ref<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        observed: Epoch,
        init: F,
    ) -> impl Future<Output = Option<Entry<V>>> + 'a
    where
        K: Send + 'static + Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Entry<V>) -> Fut + 'a,
        Fut: Future<Output = V> + Send + 'static,
    {
        let init = IfCurrent(Plain(WithEntry(init)));
        let want = Want::RefreshIf(observed);
        Call::new(&self.table, Key::Borrowed(key), want, init)
    }

    /// The epoch of the refresh in flight for `key`, if any; [`epoch`](Self::epoch) keeps
    /// reporting the entry being served. `invalidate(key, refreshing(key))` detaches only that
    /// refresh (the entry stays), so that the next refresh starts anew: do this when the source
    /// changed, rather than joining a refresh that may carry pre-change data (TanStack Query
    /// #471).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::FutureExt;
    ///
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert("k", 1).unwrap();
    /// let mut refresh = Box::pin(memo.refresh("k", || futures::future::pending()));
    /// assert!((&mut refresh).now_or_never().is_none(), "in flight");
    /// let refreshing = memo.refreshing("k").expect("a refresh is in flight");
    /// assert!(refreshing > entry.epoch());
    /// assert_eq!(memo.epoch("k"), Some(entry.epoch()), "the entry is still served");
    /// assert!(memo.invalidate("k", refreshing), "detaches the refresh only");
    /// assert_eq!(memo.refreshing("k"), None);
    /// assert_eq!(memo.get("k").map(|e| *e.value()), Some(1));
    /// # });
    /// ```
    pub fn refreshing<Q>(&self, key: &Q) -> Option<Epoch>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.refreshing(key)
    }
}
