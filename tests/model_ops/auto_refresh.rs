//! The model of automatic refresh (`refresh_after`): when an entry is tried again, the
//! hold-off after a failed automatic refresh, and the refresh a read of a due entry starts.

use super::model::{CState, FState, MCall, Model, Origin, Slot, flight_of};
use super::op::{Init, Kind};
use super::real::{PanicKind, Polled};

impl Model {
    /// When an automatic refresh that starts or fails now is tried again.
    pub(super) fn retry_at(&self) -> Option<u64> {
        (self.config.refresh_after).map(|after| self.now + u64::from(after))
    }

    /// Refresh `f` ended without committing (`end`): if it is still attached, it is detached
    /// and its entry's next automatic refresh settles (semantics 20). Only a failed automatic
    /// refresh holds it off: until an interval from an error (`retry`; a panic keeps the retry
    /// its start set). A manual refresh that failed, and any refresh cancelled (its last caller
    /// dropped) or detached by its epoch, put back the due tick stale reads moved on while it
    /// was in flight. A refresh detached already changes nothing.
    pub(super) fn end_refresh(&mut self, f: usize, end: End) {
        if !self.flights[f].attached {
            return;
        }
        self.free(f);
        let flight = &self.flights[f];
        let (key, of, origin, moved_from) = (
            flight.key,
            flight_of(flight),
            flight.origin,
            flight.moved_from,
        );
        let Some(Slot::Ready {
            epoch, refresh_at, ..
        }) = self.slots.get_mut(&key)
        else {
            unreachable!("an attached refresh is beside its entry")
        };
        debug_assert_eq!(*epoch, of);
        match (end, origin) {
            (End::Failed { retry }, Origin::Automatic) => *refresh_at = (*refresh_at).max(retry),
            (End::Failed { .. } | End::Cancelled, _) => {
                if let Some(due) = moved_from {
                    *refresh_at = Some(due);
                }
            }
        }
    }

    /// The `get_or_init`-family call `c` hit the ready entry `slot`: if it is due, its next
    /// automatic attempt moves an interval on (the refresh in flight remembers from when), and
    /// unless a refresh is in flight beside it, one starts with `c`'s init and its task goes to
    /// the spawner. `Some` if that init panicked in its closure: the refresh fails, and the
    /// panic goes to `c` instead of the hit.
    pub(super) fn auto_refresh(&mut self, c: usize, slot: Slot) -> Result<Option<Polled>, String> {
        let Slot::Ready {
            epoch,
            refresh,
            refresh_at,
            ..
        } = slot
        else {
            unreachable!()
        };
        let Some(due) = refresh_at.filter(|&at| self.now >= at) else {
            return Ok(None);
        };
        let key = self.calls[c].key;
        let retry = self.retry_at();
        if let Some(Slot::Ready { refresh_at, .. }) = self.slots.get_mut(&key) {
            *refresh_at = retry;
        }
        if let Some(r) = refresh {
            self.flights[r].moved_from.get_or_insert(due);
            return Ok(None); // one refresh at a time
        }
        let run = self.take_init(c)?;
        self.see_epoch(key, run.epoch)?;
        let (init, fallible) = (self.calls[c].init, self.calls[c].kind.fallible());
        let task = self.calls.len();
        self.calls.push(MCall {
            key,
            kind: Kind::Task,
            init,
            observed: None,
            state: CState::Start,
        });
        let f = self.start_flight(task, run, Some(epoch));
        self.counters.misses -= 1; // started by a hit
        self.flights[f].fallible = fallible;
        self.flights[f].origin = Origin::Automatic;
        self.flights[f].moved_from = Some(due);
        if let Some(Slot::Ready { refresh, .. }) = self.slots.get_mut(&key) {
            *refresh = Some(f);
        }
        if init != Init::PanicInClosure {
            self.spawned.push(task);
            return Ok(None);
        }
        // The reader's init closure panicked before a task existed.
        self.calls[task].state = CState::Finished;
        self.counters.panicked += 1;
        self.counters.refresh_failed += 1;
        self.end_refresh(f, End::Failed { retry: None });
        self.flights[f].state = FState::Panicked;
        self.flights[f].callers.clear();
        Ok(Some(Polled::Panic(PanicKind::Injected)))
    }
}

/// How a refresh ended without committing, as its entry's next automatic refresh sees it.
#[derive(Clone, Copy, Debug)]
pub(super) enum End {
    /// An error (`retry`: an interval from now) or a panic (`None`: the clock is not read).
    Failed { retry: Option<u64> },
    /// Its last caller was dropped, or it was detached by its epoch.
    Cancelled,
}
