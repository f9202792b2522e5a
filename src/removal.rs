//! Removal causes, the removal listener, and the list of removals an operation reports.
//!
//! Every operation collects the ready entries it took out of the memo into a [`Removals`] while
//! it holds a shard lock, releases the lock, and only then drops them or hands them to the
//! listener. So the listener (and `Drop` of keys and values) runs after every lock is released,
//! on the thread of the operation that caused the removal, and may call the memo.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::Entry;
use crate::stats::Counters;

/// Why an entry left the memo, as told to the [removal listener](crate::MemoBuilder::on_removal).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use async_memo::{AsyncMemo, RemovalCause};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
///     .on_removal(move |key: &&str, entry, cause| {
///         log.lock().unwrap().push((*key, *entry.value(), cause));
///     })
///     .build();
/// let first = memo.insert("k", 1).unwrap();
/// memo.insert("k", 2).unwrap();
/// assert!(!memo.invalidate("k", first.epoch()), "stale: no removal");
/// memo.remove("k");
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [("k", 1, RemovalCause::Replaced), ("k", 2, RemovalCause::Removed)]
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Removed by [`invalidate`](crate::AsyncMemo::invalidate) (compare-and-delete).
    Invalidated,
    /// Removed by [`remove`](crate::AsyncMemo::remove) (unconditional).
    Removed,
    /// Replaced by [`insert`](crate::AsyncMemo::insert).
    Replaced,
    /// Its time to live, time to idle or per-entry expiry passed.
    Expired,
    /// Evicted to keep the memo within its capacity, or turned away by the admission policy.
    Evicted,
    /// Removed by [`invalidate_all`](crate::AsyncMemo::invalidate_all).
    Cleared,
}

impl RemovalCause {
    /// Whether the memo removed the entry on its own (expiry or capacity), rather than because a
    /// caller asked for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_memo::RemovalCause;
    /// assert!(RemovalCause::Evicted.was_evicted());
    /// assert!(!RemovalCause::Invalidated.was_evicted());
    /// ```
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Expired | RemovalCause::Evicted)
    }
}

pub(crate) type Listener<K, V> = Arc<dyn Fn(&K, Entry<V>, RemovalCause) + Send + Sync>;

/// Entries an operation took out of the memo, to report after releasing its locks.
pub(crate) struct Removals<K, V> {
    items: Vec<(K, Entry<V>, RemovalCause)>,
}

impl<K, V> Removals<K, V> {
    pub(crate) const fn new() -> Self {
        Removals { items: Vec::new() }
    }

    pub(crate) fn push(&mut self, key: K, entry: Entry<V>, cause: RemovalCause) {
        self.items.push((key, entry, cause));
    }

    /// A copy of the entry removed under `cause` (for `remove`, which returns it while the
    /// listener receives it too).
    pub(crate) fn cloned(&self, cause: RemovalCause) -> Option<Entry<V>>
    where
        V: Clone,
    {
        self.items
            .iter()
            .find(|(_, _, c)| *c == cause)
            .map(|(_, entry, _)| entry.clone())
    }

    /// Counts every removal and reports it to `listener` (or just drops it). Call with no lock
    /// held.
    ///
    /// A panicking listener does not stop the others: every removal is reported, then the first
    /// panic resumes in the caller — unless the caller is already unwinding (a drop guard
    /// reporting on the way out), where a second panic would abort: then it is swallowed.
    #[inline]
    pub(crate) fn report(self, listener: Option<&Listener<K, V>>, counters: &Counters) {
        // Most operations remove nothing: keep that case to one branch on the caller's side.
        if !self.items.is_empty() {
            self.report_some(listener, counters);
        }
    }

    #[inline(never)]
    fn report_some(self, listener: Option<&Listener<K, V>>, counters: &Counters) {
        for (_, _entry, cause) in &self.items {
            crate::trace::event!(epoch = _entry.epoch().get(), cause = ?cause, "entry removed");
            counters.removal(*cause);
        }
        let Some(listener) = listener else {
            return;
        };
        let mut first_panic: Option<Box<dyn Any + Send>> = None;
        for (key, entry, cause) in self.items {
            let call = AssertUnwindSafe(|| listener(&key, entry, cause));
            if let Err(payload) = panic::catch_unwind(call) {
                first_panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = first_panic {
            if !std::thread::panicking() {
                panic::resume_unwind(payload);
            }
        }
    }
}
