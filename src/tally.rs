//! The hit counter, striped: each thread adds to the slot its index picks, so that readers on
//! different cores write different cache lines (issue 14: every hit used to add to one counter
//! per shard, and that line moved between cores on nearly every read).
//!
//! # Invariants
//!
//! 1. Every count is one `fetch_add` on some slot, whichever thread shares it: nothing is lost,
//!    and once the memo is quiet the sum is exact, like every other counter of
//!    [`Stats`](crate::Stats).
//! 2. A thread keeps the index it drew first for its whole life; indices are handed out in
//!    turn, so up to `slots` threads count on lines of their own.

use std::sync::OnceLock;

use crate::sync::{AtomicU64, Ordering::Relaxed};

/// A counter with a slot per thread, up to twice the CPU count (at least 4, at most 64).
pub(crate) struct Tally {
    slots: Box<[Slot]>,
}

/// One slot, alone on its cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[repr(align(128))]
struct Slot(AtomicU64);

impl Tally {
    pub(crate) fn new() -> Self {
        static CPUS: OnceLock<usize> = OnceLock::new();
        let cpus =
            *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let slots = if cfg!(any(loom, shuttle)) {
            1 // see `thread_index`
        } else {
            (cpus * 2).clamp(4, 64).next_power_of_two()
        };
        Tally {
            slots: (0..slots).map(|_| Slot(AtomicU64::new(0))).collect(),
        }
    }

    /// Counts one.
    #[inline]
    pub(crate) fn add_one(&self) {
        let slot = &self.slots[thread_index() & (self.slots.len() - 1)];
        slot.0.fetch_add(1, Relaxed);
    }

    /// The total so far.
    pub(crate) fn sum(&self) -> u64 {
        let slots = self.slots.iter().map(|slot| slot.0.load(Relaxed));
        slots.fold(0, u64::wrapping_add)
    }
}

/// The running thread's index (invariant 2); 0 while its thread-locals are being destroyed.
#[cfg(not(any(loom, shuttle)))]
#[inline]
fn thread_index() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.try_with(|index| *index).unwrap_or(0)
}

/// Model checkers run every model thread on one OS thread: one slot serves them all.
#[cfg(any(loom, shuttle))]
fn thread_index() -> usize {
    0
}
