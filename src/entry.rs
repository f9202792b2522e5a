//! A value together with the epoch it was committed under.

use crate::Epoch;

/// A value of the memo together with the [`Epoch`] it was committed under.
///
/// Every read returns an `Entry`, so the caller always knows *which* entry it saw and can later
/// [`invalidate`](crate::AsyncMemo::invalidate) exactly that one. `Entry` gives the value through
/// [`value`](Entry::value), [`into_value`](Entry::into_value) and `AsRef<V>`; it does not
/// implement `Deref`, whose method names would shadow `V`'s.
///
/// # Examples
///
/// ```
/// use async_memo::AsyncMemo;
///
/// let memo = AsyncMemo::new();
/// let entry = memo.insert("answer", 42).unwrap();
/// assert_eq!(*entry.value(), 42);
/// assert_eq!(memo.epoch("answer"), Some(entry.epoch()));
/// let n: i32 = entry.into_value();
/// assert_eq!(n, 42);
/// ```
#[derive(Clone, Debug)]
pub struct Entry<V> {
    value: V,
    epoch: Epoch,
}

impl<V> Entry<V> {
    pub(crate) fn new(value: V, epoch: Epoch) -> Self {
        Entry { value, epoch }
    }

    /// The value.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// assert_eq!(memo.insert(1, "one").unwrap().value(), &"one");
    /// ```
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The epoch the value was committed under; pass it to
    /// [`invalidate`](crate::AsyncMemo::invalidate) to remove exactly this entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert(1, "one").unwrap();
    /// assert!(memo.invalidate(&1, entry.epoch()));
    /// ```
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Takes the value out of the entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let s: String = memo.insert(1, "one".to_string()).unwrap().into_value();
    /// assert_eq!(s, "one");
    /// ```
    pub fn into_value(self) -> V {
        self.value
    }
}

impl<V> AsRef<V> for Entry<V> {
    fn as_ref(&self) -> &V {
        &self.value
    }
}
