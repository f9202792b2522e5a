//! `MemoBuilder`: the knobs of a memo, set before it is built.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use crate::AsyncMemo;
use crate::table::Table;

/// The most shards the default picks (and the most [`MemoBuilder::shards`] accepts).
const MAX_SHARDS: usize = 1 << 16;

/// Builds an [`AsyncMemo`] with a chosen hasher and shard count.
///
/// # Examples
///
/// ```
/// use std::collections::hash_map::RandomState;
/// use async_memo::AsyncMemo;
///
/// let memo: AsyncMemo<String, u32, RandomState> = AsyncMemo::builder()
///     .shards(16)
///     .hasher(RandomState::new())
///     .build();
/// assert!(memo.is_empty());
/// ```
pub struct MemoBuilder<K, V, S = RandomState> {
    shards: Option<usize>,
    hasher: S,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> fmt::Debug for MemoBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoBuilder")
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl<K, V> MemoBuilder<K, V> {
    pub(crate) fn new() -> Self {
        MemoBuilder {
            shards: None,
            hasher: RandomState::new(),
            _types: PhantomData,
        }
    }
}

impl<K, V, S> MemoBuilder<K, V, S> {
    /// The number of shards (independently locked parts of the map), rounded up to a power of
    /// two and capped at 65,536. The default is four per available CPU, rounded up.
    ///
    /// # Panics
    ///
    /// Panics if `shards` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::builder().shards(3).build();
    /// assert!(format!("{memo:?}").contains("shards: 4"));
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(shards > 0, "async-memo: a memo needs at least one shard");
        self.shards = Some(shards.min(MAX_SHARDS).next_power_of_two());
        self
    }

    /// The hasher used to pick a key's shard and slot (the default is std's `RandomState`,
    /// which resists hash flooding).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::hash::BuildHasherDefault;
    /// use std::collections::hash_map::DefaultHasher;
    ///
    /// let memo: async_memo::AsyncMemo<u64, u64, BuildHasherDefault<DefaultHasher>> =
    ///     async_memo::AsyncMemo::builder().hasher(BuildHasherDefault::default()).build();
    /// memo.insert(1, 1);
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> MemoBuilder<K, V, S2> {
        MemoBuilder {
            shards: self.shards,
            hasher,
            _types: PhantomData,
        }
    }

    /// Builds the memo.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::builder().build();
    /// assert!(memo.is_empty());
    /// ```
    pub fn build(self) -> AsyncMemo<K, V, S>
    where
        K: Hash + Eq + Clone,
        V: Clone + Send + Sync + 'static,
        S: BuildHasher + Clone,
    {
        let shards = self.shards.unwrap_or_else(default_shards);
        AsyncMemo::from_table(Table::new(shards, self.hasher))
    }
}

fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus * 4).min(MAX_SHARDS).next_power_of_two()
}
