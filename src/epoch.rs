//! Epochs: stamps from one process-wide monotonic counter.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// The process-wide counter every epoch is drawn from.
///
/// `Relaxed` is enough: a read-modify-write on one atomic sees every earlier write to it (the
/// modification order is total), so each `fetch_add` returns a value larger than every value
/// returned before it, on any thread, in any memo. It stays a `std` atomic under loom and shuttle
/// too (see `src/sync.rs`): every epoch is drawn under a shard write lock, which they model.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A stamp that identifies one entry or one flight of a memo.
///
/// Every flight and every [`insert`](crate::AsyncMemo::insert) draws its epoch from one counter
/// shared by the whole process, so an epoch is never issued twice, each epoch is greater than every
/// epoch issued before it, and an epoch observed in one memo can never match an entry of another.
/// An entry committed by a flight carries that flight's epoch.
///
/// Keep the epoch you observed and hand it to [`invalidate`](crate::AsyncMemo::invalidate): it
/// removes the entry only if it is still the one you saw.
///
/// # Examples
///
/// ```
/// use async_memo::AsyncMemo;
///
/// let memo = AsyncMemo::new();
/// let first = memo.insert("config", 1).unwrap();
/// let second = memo.insert("config", 2).unwrap();
/// assert!(second.epoch() > first.epoch());
/// // The stale epoch no longer matches anything: the newer entry survives.
/// assert!(!memo.invalidate("config", first.epoch()));
/// assert_eq!(memo.get("config").map(|e| *e.value()), Some(2));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(NonZeroU64);

impl Epoch {
    /// Draws a fresh epoch from the process-wide counter.
    pub(crate) fn next() -> Self {
        let raw = NEXT.fetch_add(1, Ordering::Relaxed);
        // At a billion epochs a second the counter wraps after 584 years; treat it as impossible.
        Epoch(NonZeroU64::new(raw).expect("the epoch counter wrapped around"))
    }

    /// The epoch as a number, for logs and metrics. Numbers only ever grow.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert(1u8, ()).unwrap();
    /// assert!(entry.epoch().get() > 0);
    /// ```
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({})", self.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Epoch;

    #[test]
    fn epochs_strictly_increase() {
        let a = Epoch::next();
        let b = Epoch::next();
        assert!(b > a);
        assert_eq!(format!("{b:?}"), format!("Epoch({b})"));
    }
}
