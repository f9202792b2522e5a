//! The shard's side of capacity sharing (`budget.rs`).

use super::{ShardMap, Table};
use crate::removal::Removals;

/// Capacity sharing between shards (budget.rs): what an entry heavier than this shard's limit
/// needs, and the shard's side of `table/reserve.rs`.
impl<K, V> ShardMap<K, V> {
    /// How much more capacity this shard needs to admit an entry of `weight` (zero if it fits,
    /// or if the shard is unbounded), after taking what it can from the spare.
    pub(crate) fn missing(&mut self, weight: u32) -> u64 {
        self.policy
            .as_mut()
            .map_or(0, |policy| policy.missing(weight))
    }

    /// Adds capacity `table/reserve.rs` gathered for this shard.
    pub(crate) fn grant(&mut self, amount: u64) {
        if let Some(policy) = &mut self.policy {
            policy.grant(amount);
        }
    }

    /// Lends up to `want` of this shard's capacity to `table/reserve.rs`: only what its residents
    /// do not use, unless `evicting` (into `out`) to stay within what is left. Returns what it
    /// lent.
    pub(crate) fn lend(&mut self, want: u64, evicting: bool, out: &mut Removals<K, V>) -> u64 {
        let Some(policy) = &mut self.policy else {
            return 0;
        };
        policy.lend(
            want,
            evicting,
            &mut Table {
                table: &mut self.table,
                refreshes: &mut self.refreshes,
                ready: &mut self.ready,
                out,
            },
        )
    }
}
