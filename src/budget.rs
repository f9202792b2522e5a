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
//! 3. A limit shrinks below its shard's share or resident weight only in [`reserve`], which runs
//!    under `admission`; `give_back` only returns what is above both. So the limit a reserver
//!    grants to the shard it is filling is not taken away before, in the same critical section,
//!    the entry is stored.
//! 4. [`reserve`] locks one shard at a time, never two, and never while holding a shard lock it
//!    waits for `admission` (nothing that holds a shard lock takes `admission`): no lock-order
//!    deadlock. What it evicts goes into the caller's `Removals`, reported after every lock.

use crate::removal::Removals;
use crate::shard::Shard;
use crate::sync::{AtomicU64, Mutex, Ordering::Relaxed};

/// The capacity of a bounded memo, as its shards share it.
pub(crate) struct Budget {
    /// `max_capacity`.
    total: u64,
    /// Capacity no shard holds right now (invariant 2).
    spare: AtomicU64,
    /// Held while making room for an entry heavier than its shard's limit (invariant 3).
    admission: Mutex<()>,
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

/// Makes room for an entry of `weight` in shard `target` whose limit is below it: gathers the
/// missing capacity from the spare and from the other shards (evicting there, into `out`), then
/// runs `store` under `target`'s write lock with that capacity granted to it, still holding
/// `admission` so that the limit cannot shrink in between (invariant 3).
///
/// `weight` must be at most `budget.total()`. `store` runs no user code (invariant 4).
pub(crate) fn reserve<K, V, R>(
    budget: &Budget,
    shards: &[Shard<K, V>],
    target: usize,
    weight: u32,
    out: &mut Removals<K, V>,
    store: impl FnOnce(&mut crate::shard::ShardMap<K, V>, &mut Removals<K, V>) -> R,
) -> R {
    debug_assert!(u64::from(weight) <= budget.total());
    let _admission = budget.admission.lock();
    let mut held = 0u64;
    loop {
        let mut map = shards[target].map.write();
        map.grant(held);
        held = 0;
        let missing = map.missing(weight);
        if missing == 0 {
            return store(&mut map, out);
        }
        drop(map);
        // Take what is missing: first the spare, then what the other shards do not use, then
        // (evicting there) the rest of their limits; one lock at a time. The capacity taken is
        // in hand (invariant 1) until the next pass grants it.
        held += budget.take_spare(missing);
        for evicting in [false, true] {
            for offset in 1..shards.len() {
                if held >= missing {
                    break;
                }
                let lender = (target + offset) % shards.len();
                held += shards[lender]
                    .map
                    .write()
                    .lend(missing - held, evicting, out);
            }
        }
        // Others may have taken spare capacity into their limits meanwhile (only up to their
        // share): the next pass takes it from them. Every pass gathers what was missing unless
        // the others took it, which they can do only until they reach their shares.
    }
}
