//! `Refused`: a value the memo turned away, handed back to the caller who tried to store it.

use std::error::Error;
use std::fmt;

use crate::Entry;

/// A value [`insert`](crate::AsyncMemo::insert) could not store: its weight is above the memo's
/// [`max_capacity`](crate::MemoBuilder::max_capacity) (so it could never fit), and it was turned
/// away at once. The value comes back to you, with the epoch it was given.
///
/// The refused value still replaced what the key held (you said that was outdated: its entry
/// was removed as [`Replaced`](crate::RemovalCause::Replaced), its flight detached), and it was
/// reported to the removal listener as [`Evicted`](crate::RemovalCause::Evicted), so a listener
/// that closes what leaves the memo closes it too. The key is left empty.
///
/// # Examples
///
/// ```
/// use async_memo::AsyncMemo;
///
/// let memo: AsyncMemo<&str, String> = AsyncMemo::builder()
///     .max_capacity(10)
///     .weigher(|_, s: &String| s.len() as u32)
///     .build();
/// let refused = memo.insert("big", "x".repeat(11)).unwrap_err();
/// assert_eq!((refused.weight(), refused.max_capacity()), (11, 10));
/// assert!(memo.get("big").is_none());
/// assert_eq!(refused.into_value().len(), 11, "the value comes back");
/// ```
#[derive(Clone)]
pub struct Refused<V> {
    entry: Entry<V>,
    weight: u32,
    max_capacity: u64,
}

impl<V> Refused<V> {
    pub(crate) fn new(entry: Entry<V>, weight: u32, max_capacity: u64) -> Self {
        Refused {
            entry,
            weight,
            max_capacity,
        }
    }

    /// The value and the epoch it was given (an epoch nothing in the memo holds).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> =
    ///     async_memo::AsyncMemo::builder().max_capacity(0).build();
    /// let refused = memo.insert(1, 7).unwrap_err();
    /// assert_eq!(*refused.entry().value(), 7);
    /// assert_ne!(memo.epoch(&1), Some(refused.entry().epoch()));
    /// ```
    pub fn entry(&self) -> &Entry<V> {
        &self.entry
    }

    /// Takes the entry out.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> =
    ///     async_memo::AsyncMemo::builder().max_capacity(0).build();
    /// let entry = memo.insert(1, 7).unwrap_err().into_entry();
    /// assert_eq!(entry.into_value(), 7);
    /// ```
    pub fn into_entry(self) -> Entry<V> {
        self.entry
    }

    /// Takes the value out.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> =
    ///     async_memo::AsyncMemo::builder().max_capacity(0).build();
    /// assert_eq!(memo.insert(1, 7).unwrap_err().into_value(), 7);
    /// ```
    pub fn into_value(self) -> V {
        self.entry.into_value()
    }

    /// The weight the weigher gave the value (1 without a weigher).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> =
    ///     async_memo::AsyncMemo::builder().max_capacity(0).build();
    /// assert_eq!(memo.insert(1, 7).unwrap_err().weight(), 1);
    /// ```
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The memo's `max_capacity`, which the weight exceeds.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> =
    ///     async_memo::AsyncMemo::builder().max_capacity(0).build();
    /// assert_eq!(memo.insert(1, 7).unwrap_err().max_capacity(), 0);
    /// ```
    pub fn max_capacity(&self) -> u64 {
        self.max_capacity
    }
}

impl<V> fmt::Display for Refused<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "async-memo: value of weight {} refused: above the memo's max_capacity of {}",
            self.weight, self.max_capacity
        )
    }
}

/// Without the value, so that `insert(..).unwrap()` works for any `V`.
impl<V> fmt::Debug for Refused<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("epoch", &self.entry.epoch())
            .field("weight", &self.weight)
            .field("max_capacity", &self.max_capacity)
            .finish_non_exhaustive()
    }
}

impl<V> Error for Refused<V> {}
