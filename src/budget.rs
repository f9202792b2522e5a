//! The capacity a bounded memo's shards share, and how a shard borrows more of it than its share
//! for an entry heavier than that share (issue 9: whether an entry is admitted must never depend
//! on the shard count; quick_cache #26 is the bug of a per-shard bound).
//!
//! Each shard's policy holds a *limit* (at first its exact share of `max_capacity`) and keeps its
//! resident weight within it. Capacity moves between shards, never appears or vanishes:
//!
//! # Invariants
//!
//! 1. The limits of all shards, plus `spare`, plus what a reserver holds in hand, is exactly the
//!    total capacity. Each shard's resident weight is within its limit after every critical
//!    section, so the total resident weight is within `max_capacity` at all times: the bound
//!    stays exact.
//! 2. A shard whose limit is above its share gives the excess back to `spare` once its resident
//!    weight no longer needs it; a shard below its share takes from `spare` before evicting.
//! 3. A limit shrinks below its shard's share or resident weight only in `reserve` (the table's
//!    side of the budget, `table/reserve.rs`: it locks shards, so it sits above them), which runs
//!    under `admission`; `give_back` only returns what is above both. So the limit a reserver
//!    grants to the shard it is filling is not taken away before, in the same critical section,
//!    the entry is stored.
//! 4. `reserve` locks one shard at a time, never two, and never while holding a shard lock it
//!    waits for `admission` (nothing that holds a shard lock takes `admission`): no lock-order
//!    deadlock. What it evicts goes into the caller's `Removals`, reported after every lock.

use crate::sync::{AtomicU64, Mutex, Ordering::Relaxed};

/// The capacity of a bounded memo, as its shards share it.
pub(crate) struct Budget {
    /// `max_capacity`.
    total: u64,
    /// Capacity no shard holds right now (invariant 2).
    spare: AtomicU64,
    /// Held while making room for an entry heavier than its shard's limit (invariant 3).
    pub(crate) admission: Mutex<()>,
}

impl Budget {
    pub(crate) fn new(total: u64) -> Self {
        Budget {
            total,
            spare: AtomicU64::new(0),
            admission: Mutex::new(()),
        }
    }

    /// `max_capacity`: the heaviest entry a memo admits.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Takes up to `want` from the spare capacity; returns what it took.
    pub(crate) fn take_spare(&self, want: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        let mut spare = self.spare.load(Relaxed);
        while spare > 0 {
            let take = spare.min(want);
            match self
                .spare
                .compare_exchange_weak(spare, spare - take, Relaxed, Relaxed)
            {
                Ok(_) => return take,
                Err(actual) => spare = actual,
            }
        }
        0
    }

    /// Returns capacity a shard no longer needs.
    pub(crate) fn give_spare(&self, amount: u64) {
        if amount > 0 {
            self.spare.fetch_add(amount, Relaxed);
        }
    }
}
