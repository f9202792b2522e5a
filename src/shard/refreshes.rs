//! The refreshes in flight of one shard: each attached to the ready entry it refreshes.
//!
//! A refresh is a flight that lives *beside* a ready entry, not in the key's slot, so readers
//! keep hitting the entry while it runs (Caffeine keeps its refreshes in a side map for the same
//! reason). It is found by the entry's hash and epoch, which names exactly one entry: when that
//! entry leaves the table for any reason, its refresh is detached with it (see `retire`).
//!
//! # Invariants
//!
//! 1. Each refresh here is keyed by the epoch `e` of a ready entry the shard holds now, and its
//!    flight's `refreshes()` is `Some(e)`; an entry has at most one refresh.
//! 2. A flight here has at least one caller holding it (flight invariant 1), so the handle this
//!    table drops when it detaches one is never the last: no init future is dropped under the
//!    shard lock.
//! 3. In a memo with both a time to idle and automatic refresh (`Layout::RefreshBeside`), each
//!    ready entry's refresh due tick is kept in `dues` under its hash and epoch, set when the
//!    entry arrives and removed by the same `detach` that detaches its refresh: every path that
//!    removes an entry calls it (shard invariant 6), so no due tick outlives its entry.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::Epoch;
use crate::clock::Tick;
use crate::flight::Flight;

struct Refresh<V> {
    hash: u64,
    flight: Arc<Flight<V>>,
}

impl<V> Refresh<V> {
    fn of(&self) -> Option<Epoch> {
        self.flight.refreshes()
    }
}

/// When the automatic refresh of the entry `(hash, of)` is due (invariant 3).
struct Due {
    hash: u64,
    of: Epoch,
    at: Tick,
}

/// The refresh flights of a shard, by the hash and epoch of the entry each refreshes.
pub(crate) struct Refreshes<V> {
    table: HashTable<Refresh<V>>,
    dues: HashTable<Due>,
}

impl<V> Refreshes<V> {
    pub(crate) const fn new() -> Self {
        Refreshes {
            table: HashTable::new(),
            dues: HashTable::new(),
        }
    }

    /// The tick the automatic refresh of the entry `(hash, of)` is due, kept beside it
    /// (invariant 3); `NEVER` if none is kept.
    pub(crate) fn due(&self, hash: u64, of: Epoch) -> Tick {
        let found = self.dues.find(hash, |d| d.hash == hash && d.of == of);
        found.map_or(Tick::NEVER, |d| d.at)
    }

    /// How many due ticks are kept (at most one per ready entry: invariant 3).
    pub(crate) fn dues(&self) -> usize {
        self.dues.len()
    }

    /// Keeps `at` as the due tick of the entry `(hash, of)` (invariant 3).
    pub(crate) fn set_due(&mut self, hash: u64, of: Epoch, at: Tick) {
        match self.dues.find_mut(hash, |d| d.hash == hash && d.of == of) {
            Some(due) => due.at = at,
            None if at == Tick::NEVER => {}
            None => {
                self.dues
                    .insert_unique(hash, Due { hash, of, at }, |d| d.hash);
            }
        }
    }

    /// The refresh of the entry `(hash, of)`, if one is in flight.
    pub(crate) fn get(&self, hash: u64, of: Epoch) -> Option<&Arc<Flight<V>>> {
        if self.table.is_empty() {
            return None;
        }
        let found = self
            .table
            .find(hash, |r| r.hash == hash && r.of() == Some(of));
        found.map(|r| &r.flight)
    }

    /// Attaches `flight` to the entry `(hash, flight.refreshes())`, which has none (invariant 1).
    pub(crate) fn attach(&mut self, hash: u64, flight: Arc<Flight<V>>) {
        let of = flight
            .refreshes()
            .expect("invariant 1: a refresh names its entry");
        debug_assert!(
            self.get(hash, of).is_none(),
            "invariant 1: one refresh per entry"
        );
        self.table
            .insert_unique(hash, Refresh { hash, flight }, |r| r.hash);
    }

    /// Detaches the refresh of the entry `(hash, of)`, if any: it will never commit. The entry
    /// is leaving the table: its due tick goes too (invariant 3).
    pub(crate) fn detach(&mut self, hash: u64, of: Epoch) {
        if !self.dues.is_empty() {
            if let Ok(due) = self.dues.find_entry(hash, |d| d.hash == hash && d.of == of) {
                due.remove();
            }
        }
        if self.table.is_empty() {
            return;
        }
        if let Ok(found) = self
            .table
            .find_entry(hash, |r| r.hash == hash && r.of() == Some(of))
        {
            let (refresh, _) = found.remove();
            release(refresh.flight);
        }
    }

    /// Detaches exactly `flight` (a refresh that failed, panicked or was abandoned, or that
    /// commits now). Returns whether it was still attached.
    pub(crate) fn detach_exact(&mut self, hash: u64, flight: &Arc<Flight<V>>) -> bool {
        match self
            .table
            .find_entry(hash, |r| Arc::ptr_eq(&r.flight, flight))
        {
            Ok(found) => {
                let (refresh, _) = found.remove();
                release(refresh.flight);
                true
            }
            Err(_) => false,
        }
    }

    /// Detaches every refresh (the shard is being cleared).
    pub(crate) fn clear(&mut self) {
        self.dues.clear();
        for refresh in self.table.drain() {
            release(refresh.flight);
        }
    }
}

/// Drops the table's handle of a detached refresh, never the last one (invariant 2).
fn release<V>(flight: Arc<Flight<V>>) {
    debug_assert!(
        Arc::strong_count(&flight) > 1,
        "invariant 2: a refresh's callers hold it"
    );
    drop(flight);
}
