//! `WeakMemo`: a handle that does not keep its memo alive (for removal listeners).

use std::fmt;
use std::sync::Weak;

use crate::table::Table;
use crate::{AsyncMemo, DefaultHashBuilder};

/// A weak handle to an [`AsyncMemo`], from [`AsyncMemo::downgrade`]; it does not keep the memo
/// alive.
///
/// # Examples
///
/// ```
/// use async_memo::{AsyncMemo, WeakMemo};
///
/// let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
/// let weak: WeakMemo<&str, u32> = memo.downgrade();
/// if let Some(memo) = weak.upgrade() {
///     memo.insert("k", 1).unwrap();
/// }
/// assert_eq!(memo.len(), 1);
/// ```
pub struct WeakMemo<K, V, S = DefaultHashBuilder> {
    table: Weak<Table<K, V, S>>,
}

impl<K, V, S> WeakMemo<K, V, S> {
    pub(crate) fn new(table: Weak<Table<K, V, S>>) -> Self {
        WeakMemo { table }
    }

    /// A strong handle, if the memo is still alive.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::new();
    /// assert!(memo.downgrade().upgrade().is_some());
    /// ```
    pub fn upgrade(&self) -> Option<AsyncMemo<K, V, S>> {
        self.table.upgrade().map(AsyncMemo::from_shared)
    }
}

impl<K, V, S> Clone for WeakMemo<K, V, S> {
    fn clone(&self) -> Self {
        WeakMemo {
            table: Weak::clone(&self.table),
        }
    }
}

impl<K, V, S> fmt::Debug for WeakMemo<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakMemo")
            .field("alive", &(self.table.strong_count() > 0))
            .finish()
    }
}
