//! The get-or-compute family: `get_or_init`, `get_or_try_init`, their `_by_ref` forms (a
//! borrowed key, cloned only on a miss) and their `_with_epoch` forms (the init is given the
//! epoch its value will be committed under).

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::call::{Call, Key};
use crate::init::{Fallible, NoEpoch, Plain, WithEpoch};
use crate::shard::Want;
use crate::{AsyncMemo, Entry, Epoch};

impl<K, V, S> AsyncMemo<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
{
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
        K: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        Call::new(
            &self.table,
            Key::<K, K>::Owned(key),
            Want::Get,
            Plain(NoEpoch(init)),
        )
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
        K: Send + 'static,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = V> + Send + 'static,
    {
        Call::new(
            &self.table,
            Key::Borrowed(key),
            Want::Get,
            Plain(NoEpoch(init)),
        )
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
        K: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        Call::new(
            &self.table,
            Key::<K, K>::Owned(key),
            Want::Get,
            Fallible(NoEpoch(init), PhantomData),
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
        K: Send + 'static,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        Call::new(
            &self.table,
            Key::Borrowed(key),
            Want::Get,
            Fallible(NoEpoch(init), PhantomData),
        )
    }

    /// [`get_or_init`](Self::get_or_init) whose `init` is given the epoch of the flight it
    /// starts: the epoch its value will be committed under. A value that must know its own
    /// epoch — a connection whose close handler will
    /// [`invalidate`](Self::invalidate) exactly itself — gets it here, race-free (reading
    /// [`epoch`](Self::epoch) inside `init` could see a newer flight if this one was detached
    /// in between).
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
    /// let memo: async_memo::AsyncMemo<&str, String> = async_memo::AsyncMemo::new();
    /// let entry = memo
    ///     .get_or_init_with_epoch("conn", |epoch| async move { format!("connection of epoch {epoch}") })
    ///     .await;
    /// assert_eq!(*entry.value(), format!("connection of epoch {}", entry.epoch()));
    /// # });
    /// ```
    pub fn get_or_init_with_epoch<F, Fut>(&self, key: K, init: F) -> impl Future<Output = Entry<V>>
    where
        K: Send + 'static,
        F: FnOnce(Epoch) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        Call::new(
            &self.table,
            Key::<K, K>::Owned(key),
            Want::Get,
            Plain(WithEpoch(init)),
        )
    }

    /// [`get_or_try_init`](Self::get_or_try_init) whose `init` is given the epoch of the flight
    /// it starts (see [`get_or_init_with_epoch`](Self::get_or_init_with_epoch)).
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
    /// let memo: async_memo::AsyncMemo<&str, u64> = async_memo::AsyncMemo::new();
    /// let entry = memo
    ///     .get_or_try_init_with_epoch("k", |epoch| async move { Ok::<_, std::io::Error>(epoch.get()) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(*entry.value(), entry.epoch().get());
    /// # });
    /// ```
    pub fn get_or_try_init_with_epoch<F, Fut, E>(
        &self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>>
    where
        K: Send + 'static,
        F: FnOnce(Epoch) -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        Call::new(
            &self.table,
            Key::<K, K>::Owned(key),
            Want::Get,
            Fallible(WithEpoch(init), PhantomData),
        )
    }

    /// [`get_or_try_init_with_epoch`](Self::get_or_try_init_with_epoch) with a borrowed key,
    /// cloned only on a miss: a hit costs what a [`get_or_try_init_by_ref`](Self::get_or_try_init_by_ref)
    /// hit costs. For a wrapper whose `init` needs the key and its flight's epoch only on a
    /// miss (the Redis adapter's shared tier).
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
    /// let memo: async_memo::AsyncMemo<String, u64> = async_memo::AsyncMemo::new();
    /// let entry = memo
    ///     .get_or_try_init_with_epoch_by_ref("k", |epoch| async move { Ok::<_, std::io::Error>(epoch.get()) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(*entry.value(), entry.epoch().get());
    /// # });
    /// ```
    pub fn get_or_try_init_with_epoch_by_ref<'a, Q, F, Fut, E>(
        &'a self,
        key: &'a Q,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>> + 'a
    where
        K: Send + 'static,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Epoch) -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        Call::new(
            &self.table,
            Key::Borrowed(key),
            Want::Get,
            Fallible(WithEpoch(init), PhantomData),
        )
    }
}
