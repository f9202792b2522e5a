//! The one place where `--naive` differs from the fixed client: what "delete the entry I saw"
//! does, and whether a removal is heard.
//!
//! Fixed: [`AsyncMemo::invalidate`], a compare-and-delete by the observed epoch, and a removal
//! listener (the connection memo's closes every connection that leaves it). Naive: the seed's
//! lodash-style memo, whose `cache.delete(key)` deletes whatever the key holds *now*, even an
//! entry stored after the caller looked, and tells nobody. A listener would close the entry
//! deleted by mistake, and so hide the leak the seed had. Everything else (single flight, errors
//! not cached, cancellation) is the same `AsyncMemo` in both modes. In your own client, use
//! `AsyncMemo` directly: build it with `on_removal_with_memo` and call `invalidate`.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use async_memo::{AsyncMemo, Entry, Epoch, RemovalCause, Stats};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Compare-and-delete by epoch.
    Fixed,
    /// Unconditional delete by key and no removal listener, as in the seed bug.
    Naive,
}

pub struct Memo<K, V> {
    memo: AsyncMemo<K, V>,
    mode: Mode,
}

impl<K, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Memo {
            memo: self.memo.clone(),
            mode: self.mode,
        }
    }
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(mode: Mode) -> Self {
        Memo {
            memo: AsyncMemo::new(),
            mode,
        }
    }

    /// A memo that calls `listener` for every ready entry that leaves it, with the memo itself
    /// (fixed mode only).
    pub fn with_listener(
        mode: Mode,
        listener: impl Fn(&AsyncMemo<K, V>, &K, Entry<V>, RemovalCause) + Send + Sync + 'static,
    ) -> Self
    where
        K: Sync,
    {
        let memo = match mode {
            Mode::Fixed => AsyncMemo::builder().on_removal_with_memo(listener).build(),
            Mode::Naive => AsyncMemo::new(),
        };
        Memo { memo, mode }
    }

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
        self.memo.get_or_try_init(key, init)
    }

    /// `get_or_try_init` whose `init` learns the epoch its value will be committed under.
    pub fn get_or_try_init_with_epoch<F, Fut, E>(
        &self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>>
    where
        F: FnOnce(Epoch) -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        self.memo.get_or_try_init_with_epoch(key, init)
    }

    /// Recomputes `key` while its ready entry keeps being served; commits only onto that entry.
    pub fn try_refresh<F, Fut, E>(
        &self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<Entry<V>, Arc<E>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        self.memo.try_refresh(key, init)
    }

    /// The epoch of the refresh in flight for `key`, if any.
    pub fn refreshing(&self, key: &K) -> Option<Epoch> {
        self.memo.refreshing(key)
    }

    pub fn stats(&self) -> Stats {
        self.memo.stats()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn get(&self, key: &K) -> Option<Entry<V>> {
        self.memo.get(key)
    }

    pub fn epoch(&self, key: &K) -> Option<Epoch> {
        self.memo.epoch(key)
    }

    /// Deletes the entry (or flight) we observed under `observed`.
    pub fn invalidate(&self, key: &K, observed: Epoch) -> bool {
        match self.mode {
            Mode::Fixed => self.memo.invalidate(key, observed),
            // `cache.delete(key)`: the observed epoch is ignored.
            Mode::Naive => self.memo.remove(key).is_some(),
        }
    }

    /// Evicts whatever the key holds: for keys where anything stored is to go (one only this
    /// connection fills, one no config names any more).
    pub fn remove(&self, key: &K) -> Option<Entry<V>> {
        self.memo.remove(key)
    }
}
