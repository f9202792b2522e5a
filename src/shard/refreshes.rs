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
//! 4. Each refresh here knows who started it ([`Origin`]) and, if reads moved its entry's due
//!    tick on while it was in flight (its own start, or stale reads that found it), the tick
//!    they moved it from. When it ends without committing, that tick is put back unless it was
//!    automatic and failed (shard/refresh.rs, `end_refresh`): only a failed automatic refresh
//!    holds off the next one (semantics 20).

use std::sync::Arc;

use hashbrown::HashTable;

use crate::Epoch;
use crate::clock::Tick;
use crate::flight::Flight;

/// Who started a refresh: a stale read (`refresh_after`), or a caller of `refresh`,
/// `try_refresh` or `refresh_if`. A refresh belongs to whoever started it, whoever joins it
/// later: only an automatic one holds off the next automatic attempt when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Automatic,
    Manual,
}

struct Refresh<V> {
    hash: u64,
    flight: Arc<Flight<V>>,
    origin: Origin,
    /// The entry's due tick before reads moved it on while this refresh is in flight
    /// (invariant 4); `None` while none did.
    moved_from: Option<Tick>,
}

/// What a refresh leaves behind when it is detached from its entry (invariant 4).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DetachedRefresh {
    pub(crate) origin: Origin,
    pub(crate) moved_from: Option<Tick>,
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

    /// Attaches `flight`, started by `origin`, to the entry `(hash, flight.refreshes())`, which
    /// has none (invariant 1). `moved_from`: the due tick its start moved on (invariant 4).
    pub(crate) fn attach(
        &mut self,
        hash: u64,
        flight: Arc<Flight<V>>,
        origin: Origin,
        moved_from: Option<Tick>,
    ) {
        let of = flight
            .refreshes()
            .expect("invariant 1: a refresh names its entry");
        debug_assert!(
            self.get(hash, of).is_none(),
            "invariant 1: one refresh per entry"
        );
        let refresh = Refresh {
            hash,
            flight,
            origin,
            moved_from,
        };
        self.table.insert_unique(hash, refresh, |r| r.hash);
    }

    /// A stale read moved the due tick of the entry `(hash, of)` on from `due`: if a refresh is
    /// in flight beside it, remembers the first such tick (invariant 4) and returns `true`.
    pub(crate) fn moved(&mut self, hash: u64, of: Epoch, due: Tick) -> bool {
        if self.table.is_empty() {
            return false;
        }
        let found = self
            .table
            .find_mut(hash, |r| r.hash == hash && r.of() == Some(of));
        match found {
            Some(refresh) => {
                refresh.moved_from.get_or_insert(due);
                true
            }
            None => false,
        }
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

    /// Detaches exactly `flight` (a refresh that failed, panicked or was abandoned or
    /// detached by its epoch, or that commits now). `Some` if it was still attached.
    pub(crate) fn detach_exact(
        &mut self,
        hash: u64,
        flight: &Arc<Flight<V>>,
    ) -> Option<DetachedRefresh> {
        let found = self
            .table
            .find_entry(hash, |r| Arc::ptr_eq(&r.flight, flight))
            .ok()?;
        let (refresh, _) = found.remove();
        let detached = DetachedRefresh {
            origin: refresh.origin,
            moved_from: refresh.moved_from,
        };
        release(refresh.flight);
        Some(detached)
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
