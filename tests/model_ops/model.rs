//! The model: the sequential state of the contract (slots, flights, calls, counters) and its
//! bookkeeping of entries (expiry, epochs, vacating, invalidate, snapshots, dropped calls).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_memo::{Epoch, RemovalCause};

use super::auto_refresh::End;
use super::op::{Config, Init, Kind, Outcome, own_interval};
use super::real::{Gate, InitRun};

#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Ready {
        epoch: Epoch,
        id: u64,
        /// Fixed deadline (time to live), in seconds since the start.
        deadline: Option<u64>,
        last_read: u64,
        /// The refresh flight attached to this entry.
        refresh: Option<usize>,
        /// When a read finds it due for an automatic refresh (`None`: never).
        refresh_at: Option<u64>,
    },
    Flight(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FState {
    Running,
    Done { ok: bool },
    Panicked,
    Abandoned,
}

#[derive(Debug)]
pub(super) struct MFlight {
    pub(super) key: u8,
    pub(super) epoch: Epoch,
    pub(super) id: u64,
    pub(super) init: Init,
    pub(super) fallible: bool,
    /// A refresh: the epoch of the ready entry it refreshes (and commits onto only).
    pub(super) refreshes: Option<Epoch>,
    /// A refresh's starter: only a failed automatic refresh holds off the next one.
    pub(super) origin: Origin,
    /// The due tick stale reads moved a refresh's entry on from while it was in flight (its
    /// own start, for an automatic one), to put back if it ends without holding off.
    pub(super) moved_from: Option<u64>,
    pub(super) callers: BTreeSet<usize>,
    /// In its key's slot (a flight), or beside the entry it refreshes (a refresh).
    pub(super) attached: bool,
    pub(super) state: FState,
    pub(super) gate: Option<Arc<Gate>>,
    pub(super) opened: Option<Outcome>,
    /// An `Init::Yield` future has been polled once (it woke itself: it wants another poll).
    pub(super) yielded: bool,
    /// The `Arc<Failure>` the first receiver of this flight's error got.
    pub(super) error: Option<usize>,
}

/// Who started a refresh: a stale read (`refresh_after`) or a manual call. A refresh belongs
/// to its starter, whoever joins it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    Automatic,
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CState {
    Start,
    Joined { flight: usize, created: bool },
    Finished,
}

#[derive(Debug)]
pub(super) struct MCall {
    pub(super) key: u8,
    pub(super) kind: Kind,
    pub(super) init: Init,
    /// The epoch a `refresh_if` observed.
    pub(super) observed: Option<Epoch>,
    pub(super) state: CState,
}

#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct Counters {
    pub(super) hits: u64,
    pub(super) misses: u64,
    pub(super) joins: u64,
    pub(super) started: u64,
    pub(super) committed: u64,
    pub(super) detached: u64,
    pub(super) failed: u64,
    pub(super) panicked: u64,
    pub(super) abandoned: u64,
    pub(super) refresh_started: u64,
    pub(super) refresh_committed: u64,
    pub(super) refresh_detached: u64,
    pub(super) refresh_failed: u64,
}

pub(super) type Event = (u8, Epoch, RemovalCause, u64);

pub(super) type Log = Arc<Mutex<Vec<Event>>>;

pub(super) struct Model {
    pub(super) config: Config,
    pub(super) now: u64,
    pub(super) slots: BTreeMap<u8, Slot>,
    pub(super) flights: Vec<MFlight>,
    pub(super) calls: Vec<MCall>,
    pub(super) counters: Counters,
    /// Every epoch seen, in order (they must rise).
    pub(super) epochs: Vec<Epoch>,
    /// The last epoch each key held.
    pub(super) last_epoch: HashMap<u8, Epoch>,
    pub(super) reported: BTreeSet<Epoch>,
    pub(super) removals: HashMap<RemovalCause, u64>,
    /// Removals the current op must report: (key, epoch, cause, value id).
    pub(super) expected: Vec<Event>,
    /// Whether the current op stored an entry (only such ops may evict).
    pub(super) stored: bool,
    /// Inits the current op ran, in order.
    pub(super) inits: Vec<InitRun>,
    /// The task calls of the automatic refreshes the current op started, in order: the
    /// spawner must have received exactly these.
    pub(super) spawned: Vec<usize>,
}

/// The entry a refresh flight refreshes.
pub(super) fn flight_of(flight: &MFlight) -> Epoch {
    flight.refreshes.expect("a refresh flight")
}

impl Model {
    pub(super) fn expired(&self, slot: &Slot) -> bool {
        match *slot {
            Slot::Ready {
                deadline,
                last_read,
                ..
            } => {
                let idle = self.config.tti.map(|t| last_read + u64::from(t));
                let due = match (deadline, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                due.is_some_and(|due| self.now >= due)
            }
            Slot::Flight(_) => false,
        }
    }

    fn deadline(&self) -> Option<u64> {
        self.config.ttl.map(|t| self.now + u64::from(t))
    }

    pub(super) fn ready(&self, key: u8, epoch: Epoch, id: u64) -> Slot {
        let _ = key;
        let own = own_interval(id).filter(|_| self.config.per_entry);
        Slot::Ready {
            epoch,
            id,
            deadline: self.deadline(),
            last_read: self.now,
            refresh: None,
            refresh_at: (self.config.refresh_after)
                .map(|after| self.now + own.unwrap_or(u64::from(after))),
        }
    }

    /// The epoch `key` holds (its entry's or its flight's), or held last.
    pub(super) fn current_epoch(&self, key: u8) -> Option<Epoch> {
        match self.slots.get(&key) {
            Some(Slot::Ready { epoch, .. }) => Some(*epoch),
            Some(Slot::Flight(f)) => Some(self.flights[*f].epoch),
            None => self.last_epoch.get(&key).copied(),
        }
    }

    /// The `back`-th most recent epoch seen, of any key.
    pub(super) fn older_epoch(&self, back: u8) -> Option<Epoch> {
        let n = self.epochs.len();
        (n > 0).then(|| self.epochs[n - 1 - usize::from(back) % n])
    }

    pub(super) fn see_epoch(&mut self, key: u8, epoch: Epoch) -> Result<(), String> {
        if let Some(&last) = self.epochs.last() {
            if epoch <= last {
                return Err(format!(
                    "epoch {epoch} of key {key} is not above the last one issued ({last})"
                ));
            }
        }
        self.epochs.push(epoch);
        self.last_epoch.insert(key, epoch);
        Ok(())
    }

    /// Takes `key`'s slot out, expecting a report of a ready entry under `cause` (or `Expired`);
    /// a flight is detached, and so is a ready entry's refresh.
    pub(super) fn vacate(&mut self, key: u8, cause: RemovalCause) -> Option<Slot> {
        let slot = self.take_slot(key)?;
        match slot {
            Slot::Ready { epoch, id, .. } => {
                let cause = if self.expired(&slot) {
                    RemovalCause::Expired
                } else {
                    cause
                };
                self.expected.push((key, epoch, cause, id));
            }
            Slot::Flight(f) => self.flights[f].attached = false,
        }
        Some(slot)
    }

    /// Takes `key`'s slot out without expecting a report; the refresh of a ready entry is
    /// detached with it (it commits only onto that entry).
    pub(super) fn take_slot(&mut self, key: u8) -> Option<Slot> {
        let slot = self.slots.remove(&key)?;
        if let Slot::Ready {
            refresh: Some(r), ..
        } = slot
        {
            self.flights[r].attached = false;
        }
        Some(slot)
    }

    /// The refresh in flight beside `key`'s ready entry, as `refreshing` reports it (none once
    /// the entry expired).
    pub(super) fn refreshing(&self, key: u8) -> Option<usize> {
        match self.slots.get(&key) {
            Some(s @ Slot::Ready { refresh, .. }) if !self.expired(s) => *refresh,
            _ => None,
        }
    }

    pub(super) fn ready_count(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Ready { .. }))
            .count()
    }

    /// A read of a ready entry (time to idle restarts).
    pub(super) fn touch(&mut self, key: u8) {
        let now = self.now;
        if let Some(Slot::Ready { last_read, .. }) = self.slots.get_mut(&key) {
            *last_read = now;
        }
    }

    /// `invalidate(key, epoch)`: compare-and-delete of the entry, the flight, or the refresh
    /// beside the entry (the entry stays); an expired entry is purged instead.
    pub(super) fn invalidate(&mut self, key: u8, epoch: Epoch) -> bool {
        match self.slots.get(&key).copied() {
            Some(
                s @ Slot::Ready {
                    epoch: e, refresh, ..
                },
            ) => {
                if self.expired(&s) {
                    self.vacate(key, RemovalCause::Expired);
                    false
                } else if e == epoch {
                    self.vacate(key, RemovalCause::Invalidated);
                    true
                } else if let Some(r) = refresh.filter(|&r| self.flights[r].epoch == epoch) {
                    // The refresh only: the entry stays, as due as the refresh found it.
                    self.end_refresh(r, End::Cancelled);
                    true
                } else {
                    false
                }
            }
            Some(Slot::Flight(f)) if self.flights[f].epoch == epoch => {
                self.vacate(key, RemovalCause::Invalidated);
                true
            }
            _ => false,
        }
    }

    /// What `iter` and `invalidate_if` must show: every ready, unexpired entry (`Some((value
    /// id, epoch))`) and every flight of a key with no entry (`None`, only if `flights`).
    pub(super) fn snapshot(&self, flights: bool) -> BTreeMap<u8, Option<(u64, Epoch)>> {
        self.slots
            .iter()
            .filter_map(|(&key, slot)| match *slot {
                Slot::Ready { epoch, id, .. } if !self.expired(slot) => {
                    Some((key, Some((id, epoch))))
                }
                Slot::Ready { .. } => None,
                Slot::Flight(_) => flights.then_some((key, None)),
            })
            .collect()
    }

    /// Call `c` is dropped.
    pub(super) fn drop_call(&mut self, c: usize) {
        if let CState::Joined { flight: f, .. } = self.calls[c].state {
            let flight = &mut self.flights[f];
            flight.callers.remove(&c);
            if flight.state == FState::Running && flight.callers.is_empty() {
                flight.state = FState::Abandoned;
                self.counters.abandoned += 1;
                if flight.refreshes.is_some() {
                    self.end_refresh(f, End::Cancelled); // not a failure: nothing held off
                }
                self.free(f);
            }
        }
        self.calls[c].state = CState::Finished;
    }

    /// Flights that want a poll from some caller (their future was woken), and finished
    /// flights whose pending callers each need one poll to take the outcome.
    pub(super) fn wants(&self, f: usize) -> Wants {
        let flight = &self.flights[f];
        match flight.state {
            FState::Running if flight.opened.is_some() || flight.yielded => Wants::SomeCaller,
            FState::Running => Wants::Nothing,
            _ => Wants::EveryCaller,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wants {
    Nothing,
    SomeCaller,
    EveryCaller,
}
