//! The model of automatic refresh (`refresh_after`): when an entry is tried again, the
//! throttle after a failed refresh, and the refresh a read of a due entry starts.

use async_memo::Epoch;

use super::model::{CState, FState, MCall, Model, Slot};
use super::op::{Init, Kind};
use super::real::{PanicKind, Polled};

impl Model {
    /// When an automatic refresh that starts or fails now is tried again.
    fn retry_at(&self) -> Option<u64> {
        (self.config.refresh_after).map(|after| self.now + u64::from(after))
    }

    /// A refresh of the entry `of` failed without a panic: the entry's next automatic refresh
    /// waits an interval from now (semantics 20; a panic keeps the retry its start set).
    pub(super) fn throttle(&mut self, key: u8, of: Epoch) {
        let retry = self.retry_at();
        if let Some(Slot::Ready {
            epoch, refresh_at, ..
        }) = self.slots.get_mut(&key)
        {
            if *epoch == of {
                *refresh_at = (*refresh_at).max(retry);
            }
        }
    }

    /// The `get_or_init`-family call `c` hit the ready entry `slot`: if it is due, its next
    /// automatic attempt moves an interval on, and unless a refresh is in flight beside it,
    /// one starts with `c`'s init and its task goes to the spawner. `Some` if that init
    /// panicked in its closure: the refresh fails, and the panic goes to `c` instead of the hit.
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
        if refresh_at.is_none_or(|at| self.now < at) {
            return Ok(None);
        }
        let key = self.calls[c].key;
        let retry = self.retry_at();
        if let Some(Slot::Ready { refresh_at, .. }) = self.slots.get_mut(&key) {
            *refresh_at = retry;
        }
        if refresh.is_some() {
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
        self.free(f);
        self.flights[f].state = FState::Panicked;
        self.flights[f].callers.clear();
        Ok(Some(Polled::Panic(PanicKind::Injected)))
    }
}
