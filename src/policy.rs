//! Capacity eviction: S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023), one instance per shard.
//!
//! New entries enter a small FIFO (a tenth of the capacity). An entry read more than once while
//! there moves to the main FIFO when it reaches the head; the others are evicted and their hash is
//! remembered in a ghost FIFO, so that an entry that comes back soon goes straight to main. The
//! main FIFO gives an entry read since its last pass another round (up to three) before evicting
//! it. One-pass scans thus flow through the small queue without displacing the working set, and a
//! read costs one relaxed atomic store at most (`Residency::touch`), under the shard *read* lock.
//!
//! # Invariants
//!
//! 1. Every resident entry has exactly one token in the queue its `Residency::queue` names; a
//!    token whose entry is gone (removed, replaced, expired) is stale and skipped when met.
//! 2. `small.weight + main.weight` is the total weight of resident entries, so after
//!    `make_room` it is at most `limit`: the shard's share of the memo's capacity, plus what it
//!    borrowed for an entry heavier than that share, minus what it lent (see `budget.rs`).
//! 3. Queues hold at most `2 * residents + SLACK` tokens: `compact` drops stale ones beyond that.
//! 4. `make_room` never evicts the entry that just arrived: an entry that fits the limit is
//!    admitted whatever the queues hold (with a tenth of the capacity for the small queue, an
//!    entry heavier than that would otherwise be the small queue's only, and first, victim).

use std::collections::VecDeque;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::Epoch;
use crate::budget::Budget;
use crate::sync::{AtomicU8, Ordering::Relaxed};

/// The most a read can raise an entry's frequency to.
const MAX_FREQ: u8 = 3;

/// Stale tokens tolerated before a queue is compacted.
const SLACK: usize = 64;

/// Names one resident entry: its hash (to find it) and epoch (to know it is still the same one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Token {
    pub(crate) hash: u64,
    pub(crate) epoch: Epoch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    Small,
    Main,
}

/// The policy's state kept in each resident entry.
#[derive(Debug)]
pub(crate) struct Residency {
    freq: AtomicU8,
    queue: Queue,
    weight: u32,
}

impl Residency {
    /// The weight the entry counts for against the capacity.
    pub(crate) fn weight(&self) -> u32 {
        self.weight
    }

    /// Records a read. Runs under the shard read lock, so it writes only to this entry, and not
    /// at all once the counter is full.
    #[inline]
    pub(crate) fn touch(&self) {
        let freq = self.freq.load(Relaxed);
        if freq < MAX_FREQ {
            self.freq.store(freq + 1, Relaxed);
        }
    }
}

/// The shard's resident entries, as the policy sees them.
pub(crate) trait Residents {
    /// The residency of the live entry `token` names, or `None` if the token is stale.
    fn residency(&mut self, token: Token) -> Option<&mut Residency>;
    /// Evicts the live entry `token` names.
    fn evict(&mut self, token: Token);
}

#[derive(Default)]
struct Fifo {
    tokens: VecDeque<Token>,
    weight: u64,
}

/// Hashes of entries recently evicted from the small queue.
#[derive(Default)]
struct Ghost {
    order: VecDeque<u64>,
    /// Hash -> how many times it is in `order`.
    present: HashTable<(u64, u32)>,
}

impl Ghost {
    fn contains(&self, hash: u64) -> bool {
        self.present.find(hash, |&(h, _)| h == hash).is_some()
    }

    fn remember(&mut self, hash: u64, limit: usize) {
        self.order.push_back(hash);
        match self.present.find_mut(hash, |&(h, _)| h == hash) {
            Some((_, count)) => *count += 1,
            None => {
                self.present.insert_unique(hash, (hash, 1), |&(h, _)| h);
            }
        }
        while self.order.len() > limit.max(1) {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Ok(mut slot) = self.present.find_entry(old, |&(h, _)| h == old) {
                slot.get_mut().1 -= 1;
                if slot.get().1 == 0 {
                    slot.remove();
                }
            }
        }
    }
}

pub(crate) struct Policy {
    /// The resident weight this shard may hold now (invariant 2).
    limit: u64,
    /// The shard's exact share of the memo's capacity, which `limit` returns to.
    share: u64,
    budget: Arc<Budget>,
    small: Fifo,
    main: Fifo,
    ghost: Ghost,
    residents: usize,
}

impl Policy {
    pub(crate) fn new(share: u64, budget: Arc<Budget>) -> Self {
        Policy {
            limit: share,
            share,
            budget,
            small: Fifo::default(),
            main: Fifo::default(),
            ghost: Ghost::default(),
            residents: 0,
        }
    }

    pub(crate) fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }

    /// How much more limit an entry of `weight` needs in this shard, after taking what it can
    /// from the spare capacity. Zero: it fits (once the others are evicted).
    pub(crate) fn missing(&mut self, weight: u32) -> u64 {
        let weight = u64::from(weight);
        if weight > self.limit {
            let want = weight.max(self.share) - self.limit;
            self.limit += self.budget.take_spare(want);
        }
        weight.saturating_sub(self.limit)
    }

    /// Adds capacity gathered for this shard by `table/reserve.rs`.
    pub(crate) fn grant(&mut self, amount: u64) {
        self.limit += amount;
    }

    /// Gives up to `want` of this shard's limit to `table/reserve.rs`: only the part its residents
    /// do not use unless `evicting`, else evicting to stay within what is left. Returns what it
    /// gave.
    pub(crate) fn lend(
        &mut self,
        want: u64,
        evicting: bool,
        residents: &mut impl Residents,
    ) -> u64 {
        let free = if evicting {
            self.limit
        } else {
            self.limit.saturating_sub(self.weight())
        };
        let lent = want.min(free);
        self.limit -= lent;
        self.evict_to_limit(None, residents);
        self.compact(residents);
        lent
    }

    /// Gives back to the spare the limit above the share that the resident weight does not use
    /// (budget.rs, invariant 2).
    fn give_back(&mut self) {
        if self.limit > self.share {
            let keep = self.weight().max(self.share);
            if self.limit > keep {
                self.budget.give_spare(self.limit - keep);
                self.limit = keep;
            }
        }
    }

    /// A new entry arrives. Returns its residency, or `None` if it can never fit (its weight
    /// exceeds the memo's whole capacity): then it is turned away (refused).
    pub(crate) fn admit(&mut self, token: Token, weight: u32) -> Option<Residency> {
        if u64::from(weight) > self.budget.total() {
            return None;
        }
        let queue = if self.ghost.contains(token.hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        let fifo = self.fifo(queue);
        fifo.tokens.push_back(token);
        fifo.weight += u64::from(weight);
        self.residents += 1;
        Some(Residency {
            freq: AtomicU8::new(0),
            queue,
            weight,
        })
    }

    /// A resident entry left by other means (invalidated, removed, replaced, expired, cleared).
    /// Its token stays behind, stale, until met or compacted away.
    pub(crate) fn forget(&mut self, residency: &Residency) {
        let fifo = self.fifo(residency.queue);
        fifo.weight -= u64::from(residency.weight);
        self.residents -= 1;
        self.give_back();
    }

    /// Forgets everything (the shard was cleared).
    pub(crate) fn clear(&mut self) {
        self.small = Fifo::default();
        self.main = Fifo::default();
        self.residents = 0;
        self.give_back();
    }

    fn fifo(&mut self, queue: Queue) -> &mut Fifo {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    /// After `arriving` was admitted: evicts others until the resident weight is within the
    /// limit (invariants 2 and 4), taking spare capacity first if the shard is below its share.
    pub(crate) fn make_room(&mut self, arriving: Token, residents: &mut impl Residents) {
        if self.weight() > self.limit && self.limit < self.share {
            self.limit += self.budget.take_spare(self.share - self.limit);
        }
        self.evict_to_limit(Some(arriving), residents);
        self.give_back();
        self.compact(residents);
    }

    fn evict_to_limit(&mut self, arriving: Option<Token>, residents: &mut impl Residents) {
        let small_target = (self.limit / 10).max(1);
        while self.weight() > self.limit {
            // As in the paper: evict from small once it holds its tenth (`>=`, not `>`: with a
            // tiny capacity, `>` would evict from main the entry the ghost just sent there).
            let evicted = if self.small.weight >= small_target || self.main.tokens.is_empty() {
                self.evict_small(arriving, residents)
            } else {
                self.evict_main(arriving, residents) || self.evict_small(arriving, residents)
            };
            if !evicted {
                debug_assert!(false, "invariant 2: weight without a resident to evict");
                break;
            }
        }
    }

    fn evict_small(&mut self, arriving: Option<Token>, residents: &mut impl Residents) -> bool {
        while let Some(token) = self.small.tokens.pop_front() {
            if Some(token) == arriving {
                // Invariant 4: the new entry goes to the back; alone there, small has nothing
                // else to evict.
                self.small.tokens.push_back(token);
                if self.small.tokens.len() == 1 {
                    break;
                }
                continue;
            }
            let Some(residency) = residents.residency(token) else {
                continue; // stale
            };
            let weight = u64::from(residency.weight);
            self.small.weight -= weight;
            if residency.freq.load(Relaxed) > 1 {
                residency.freq.store(0, Relaxed);
                residency.queue = Queue::Main;
                self.main.tokens.push_back(token);
                self.main.weight += weight;
                if self.weight() <= self.limit {
                    return true;
                }
            } else {
                residents.evict(token);
                self.residents -= 1;
                let limit = self.main.tokens.len().max(self.residents);
                self.ghost.remember(token.hash, limit);
                return true;
            }
        }
        // Everything in small was promoted; make room in main instead.
        self.evict_main(arriving, residents)
    }

    fn evict_main(&mut self, arriving: Option<Token>, residents: &mut impl Residents) -> bool {
        while let Some(token) = self.main.tokens.pop_front() {
            if Some(token) == arriving {
                // Invariant 4 (an entry back from the ghost arrives in main).
                self.main.tokens.push_back(token);
                if self.main.tokens.len() == 1 {
                    return false;
                }
                continue;
            }
            let Some(residency) = residents.residency(token) else {
                continue; // stale
            };
            let freq = residency.freq.load(Relaxed);
            if freq > 0 {
                residency.freq.store(freq - 1, Relaxed);
                self.main.tokens.push_back(token);
            } else {
                self.main.weight -= u64::from(residency.weight);
                residents.evict(token);
                self.residents -= 1;
                return true;
            }
        }
        false
    }

    /// Drops stale tokens once the queues hold far more tokens than residents (invariant 3).
    fn compact(&mut self, residents: &mut impl Residents) {
        if self.small.tokens.len() + self.main.tokens.len() <= 2 * self.residents + SLACK {
            return;
        }
        self.small.tokens.retain(|&t| {
            residents
                .residency(t)
                .is_some_and(|r| r.queue == Queue::Small)
        });
        self.main.tokens.retain(|&t| {
            residents
                .residency(t)
                .is_some_and(|r| r.queue == Queue::Main)
        });
    }

    /// Compacts after removals that did not go through `make_room`.
    pub(crate) fn tidy(&mut self, residents: &mut impl Residents) {
        self.compact(residents);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A toy shard: hash -> (epoch, residency).
    #[derive(Default)]
    struct Toy {
        live: HashMap<u64, (Epoch, Residency)>,
        evicted: Vec<u64>,
    }

    impl Residents for Toy {
        fn residency(&mut self, token: Token) -> Option<&mut Residency> {
            match self.live.get_mut(&token.hash) {
                Some((epoch, residency)) if *epoch == token.epoch => Some(residency),
                _ => None,
            }
        }
        fn evict(&mut self, token: Token) {
            self.live.remove(&token.hash);
            self.evicted.push(token.hash);
        }
    }

    /// A policy alone with the whole capacity, as in a one-shard memo.
    fn solo(capacity: u64) -> Policy {
        Policy::new(capacity, Arc::new(Budget::new(capacity)))
    }

    fn insert(policy: &mut Policy, toy: &mut Toy, hash: u64) {
        let token = Token {
            hash,
            epoch: Epoch::next(),
        };
        let residency = policy.admit(token, 1).expect("fits");
        toy.live.insert(hash, (token.epoch, residency));
        policy.make_room(token, toy);
    }

    #[test]
    fn bound_holds_and_frequent_entries_survive_a_scan() {
        let mut policy = solo(10);
        let mut toy = Toy::default();
        for hash in 0..5 {
            insert(&mut policy, &mut toy, hash);
            for _ in 0..3 {
                toy.live[&hash].1.touch();
            }
        }
        for hash in 100..1000 {
            insert(&mut policy, &mut toy, hash);
            assert!(toy.live.len() <= 10, "the bound holds after every insert");
        }
        for hash in 0..5 {
            assert!(
                toy.live.contains_key(&hash),
                "hot entry {hash} survived the scan"
            );
        }
    }

    #[test]
    fn stale_tokens_are_skipped_and_compacted() {
        let mut policy = solo(4);
        let mut toy = Toy::default();
        for round in 0..1000u64 {
            insert(&mut policy, &mut toy, round % 3);
            // Replace the entry behind the policy's back, as `insert` over a key does.
            let (_, residency) = toy.live.remove(&(round % 3)).unwrap();
            policy.forget(&residency);
        }
        assert!(policy.small.tokens.len() + policy.main.tokens.len() <= SLACK + 2 * 3 + 1);
        assert_eq!(policy.small.weight + policy.main.weight, 0);
    }

    #[test]
    fn a_key_back_from_the_ghost_is_not_evicted_by_its_own_return() {
        let mut policy = solo(1);
        let mut toy = Toy::default();
        insert(&mut policy, &mut toy, 1);
        insert(&mut policy, &mut toy, 2); // evicts 1 into the ghost
        insert(&mut policy, &mut toy, 1); // back from the ghost, into main
        assert!(toy.live.contains_key(&1) && !toy.live.contains_key(&2));
    }

    #[test]
    fn an_entry_heavier_than_the_capacity_is_turned_away() {
        let mut policy = solo(4);
        let token = Token {
            hash: 1,
            epoch: Epoch::next(),
        };
        assert!(policy.admit(token, 5).is_none());
    }

    #[test]
    fn an_entry_heavier_than_a_tenth_is_not_evicted_by_its_own_arrival() {
        let mut policy = solo(10);
        let mut toy = Toy::default();
        for hash in 0..10 {
            insert(&mut policy, &mut toy, hash);
            toy.live[&hash].1.touch();
            toy.live[&hash].1.touch();
        }
        insert(&mut policy, &mut toy, 100); // cycle the readers into main
        let token = Token {
            hash: 200,
            epoch: Epoch::next(),
        };
        let residency = policy.admit(token, 6).expect("fits");
        toy.live.insert(200, (token.epoch, residency));
        policy.make_room(token, &mut toy);
        assert!(
            toy.live.contains_key(&200),
            "the arriving entry was its own victim"
        );
        assert!(policy.weight() <= 10);
    }
}
