//! The table's side of the budget: gathering capacity across shards for an entry heavier than
//! its shard's limit (invariants in `budget.rs`). It locks shards, so it lives above them.

use crate::budget::Budget;
use crate::removal::Removals;
use crate::shard::{Shard, ShardMap};

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
    store: impl FnOnce(&mut ShardMap<K, V>, &mut Removals<K, V>) -> R,
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
