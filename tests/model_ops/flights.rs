//! The model's flights and calls: driving an init, committing a refresh, starting, joining
//! and freeing flights, and one poll of a call as the contract has it.

use std::collections::BTreeSet;

use async_memo::{Epoch, RemovalCause};

use super::auto_refresh::End;
use super::model::{CState, FState, MFlight, Model, Origin, Slot};
use super::op::{Init, Outcome};
use super::real::{InitRun, PanicKind, Polled};

impl Model {
    pub(super) fn take_init(&mut self, call: usize) -> Result<InitRun, String> {
        if self.inits.is_empty() {
            return Err(format!(
                "call c{call} should have started a flight, but its init did not run"
            ));
        }
        let run = self.inits.remove(0);
        if run.call != call {
            return Err(format!(
                "call c{call} should have started a flight, but the init of c{} ran",
                run.call
            ));
        }
        Ok(run)
    }

    /// Drives flight `f` once (a poll of its init future). `Some(outcome)` if it finished.
    fn drive(&mut self, f: usize) -> Option<Outcome> {
        let flight = &self.flights[f];
        let outcome = match flight.init {
            Init::Value => Some(Outcome::Value),
            Init::Error => Some(Outcome::Error),
            Init::PanicInFuture => Some(Outcome::Panic),
            Init::Gated => flight.opened,
            Init::Yield if !flight.yielded => {
                self.flights[f].yielded = true;
                return None;
            }
            Init::Yield => Some(Outcome::Value),
            Init::PanicInClosure => unreachable!("never parked"),
        }?;
        let outcome = match outcome {
            Outcome::Error if !flight.fallible => Outcome::Value,
            o => o,
        };
        let (key, epoch, id, attached) = (flight.key, flight.epoch, flight.id, flight.attached);
        let refresh = flight.refreshes.is_some();
        if refresh {
            match outcome {
                Outcome::Value => self.commit_refresh(f),
                Outcome::Error => {
                    self.counters.failed += 1;
                    let retry = self.retry_at();
                    self.end_refresh(f, End::Failed { retry });
                }
                Outcome::Panic => {
                    self.counters.panicked += 1;
                    self.end_refresh(f, End::Failed { retry: None });
                }
            }
            if outcome != Outcome::Value {
                self.counters.refresh_failed += 1; // the entry stays
            }
            self.flights[f].state = match outcome {
                Outcome::Value => FState::Done { ok: true },
                Outcome::Error => FState::Done { ok: false },
                Outcome::Panic => FState::Panicked,
            };
            return Some(outcome);
        }
        match outcome {
            Outcome::Value => {
                if attached {
                    let slot = self.ready(key, epoch, id);
                    self.slots.insert(key, slot);
                    self.flights[f].attached = false;
                    self.counters.committed += 1;
                    self.stored = true;
                } else {
                    self.counters.detached += 1;
                }
                self.flights[f].state = FState::Done { ok: true };
            }
            Outcome::Error => {
                self.counters.failed += 1;
                self.free(f);
                self.flights[f].state = FState::Done { ok: false };
            }
            Outcome::Panic => {
                self.counters.panicked += 1;
                self.free(f);
                self.flights[f].state = FState::Panicked;
            }
        }
        Some(outcome)
    }

    /// A refresh's value arrived: it replaces the entry it refreshes if it is still attached to
    /// it (and the entry has not expired meanwhile: then the entry is purged, and the refresh was
    /// detached by that expiry).
    fn commit_refresh(&mut self, f: usize) {
        let (key, epoch, id) = (
            self.flights[f].key,
            self.flights[f].epoch,
            self.flights[f].id,
        );
        if !self.flights[f].attached {
            self.counters.detached += 1;
            self.counters.refresh_detached += 1;
            return;
        }
        let slot = self.slots.get(&key).copied();
        let Some(s @ Slot::Ready { refresh, .. }) = slot else {
            unreachable!("an attached refresh is beside its entry: {slot:?}")
        };
        debug_assert_eq!(refresh, Some(f));
        if self.expired(&s) {
            self.vacate(key, RemovalCause::Expired);
            self.counters.detached += 1;
            self.counters.refresh_detached += 1;
            return;
        }
        self.vacate(key, RemovalCause::Replaced);
        let slot = self.ready(key, epoch, id);
        self.slots.insert(key, slot);
        self.counters.committed += 1;
        self.counters.refresh_committed += 1;
        self.stored = true;
    }

    /// Removes flight `f` from its key if it is still there (no report: flights are not entries);
    /// a refresh is detached from its entry, which stays.
    pub(super) fn free(&mut self, f: usize) {
        if !self.flights[f].attached {
            return;
        }
        self.flights[f].attached = false;
        let key = self.flights[f].key;
        match self.slots.get_mut(&key) {
            Some(Slot::Ready { refresh, .. }) if *refresh == Some(f) => *refresh = None,
            Some(Slot::Flight(g)) if *g == f => {
                self.slots.remove(&key);
            }
            slot => unreachable!("flight {f} attached, but its key holds {slot:?}"),
        }
    }

    /// A call starts flight `f` for `key` with the init that ran (`run`): a refresh of the
    /// ready entry of epoch `of`, or the key's flight.
    pub(super) fn start_flight(&mut self, c: usize, run: InitRun, of: Option<Epoch>) -> usize {
        let key = self.calls[c].key;
        let (init, kind) = (self.calls[c].init, self.calls[c].kind);
        let f = self.flights.len();
        self.flights.push(MFlight {
            key,
            epoch: run.epoch,
            id: run.id,
            init,
            fallible: kind.fallible(),
            refreshes: of,
            origin: Origin::Manual,
            moved_from: None,
            callers: BTreeSet::from([c]),
            attached: true,
            state: FState::Running,
            gate: run.gate,
            opened: None,
            yielded: false,
            error: None,
        });
        self.counters.misses += 1;
        self.counters.started += 1;
        if of.is_some() {
            self.counters.refresh_started += 1;
        }
        self.calls[c].state = CState::Joined {
            flight: f,
            created: true,
        };
        f
    }

    /// One poll of call `c`, as the contract has it.
    pub(super) fn poll(&mut self, c: usize) -> Result<Polled, String> {
        let key = self.calls[c].key;
        loop {
            match self.calls[c].state {
                CState::Finished => unreachable!("finished calls are not polled"),
                CState::Start => {
                    let slot = self.slots.get(&key).copied();
                    let refreshes = self.calls[c].kind.refreshes();
                    if let Some(observed) = self.calls[c].observed {
                        // `refresh_if`: only the ready entry observed (an expired one is purged).
                        let current = match slot {
                            Some(s @ Slot::Ready { epoch, .. }) if !self.expired(&s) => {
                                epoch == observed
                            }
                            Some(s) if self.expired(&s) => {
                                self.vacate(key, RemovalCause::Expired);
                                false
                            }
                            _ => false,
                        };
                        if !current {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Gone);
                        }
                    }
                    match slot {
                        // A refresh of a ready entry: joins its refresh, or starts one beside
                        // it. It is not a read of the entry.
                        Some(s @ Slot::Ready { epoch, refresh, .. })
                            if refreshes && !self.expired(&s) =>
                        {
                            if let Some(r) = refresh {
                                self.join(c, r);
                                continue;
                            }
                            let run = self.take_init(c)?;
                            self.see_epoch(key, run.epoch)?;
                            let Some(Slot::Ready { id, .. }) = slot else {
                                unreachable!()
                            };
                            let want = self.calls[c].observed.map(|_| (id, epoch));
                            if run.base != want {
                                return Err(format!(
                                    "c{c}'s init was given the entry {:?}, the model says {want:?}",
                                    run.base
                                ));
                            }
                            let f = self.start_flight(c, run, Some(epoch));
                            if let Some(Slot::Ready { refresh, .. }) = self.slots.get_mut(&key) {
                                *refresh = Some(f);
                            }
                            if let Some(panic) = self.panic_in_closure(c, f) {
                                return Ok(panic);
                            }
                        }
                        Some(s @ Slot::Ready { epoch, id, .. }) if !self.expired(&s) => {
                            self.touch(key);
                            self.counters.hits += 1;
                            self.calls[c].state = CState::Finished;
                            if let Some(panic) = self.auto_refresh(c, s)? {
                                return Ok(panic);
                            }
                            return Ok(Polled::Value { id, epoch });
                        }
                        Some(Slot::Flight(f)) => self.join(c, f),
                        _ => {
                            if slot.is_some() {
                                self.vacate(key, RemovalCause::Expired);
                            }
                            let run = self.take_init(c)?;
                            self.see_epoch(key, run.epoch)?;
                            let f = self.start_flight(c, run, None);
                            self.slots.insert(key, Slot::Flight(f));
                            if let Some(panic) = self.panic_in_closure(c, f) {
                                return Ok(panic);
                            }
                        }
                    }
                }
                CState::Joined { flight: f, created } => match self.flights[f].state {
                    FState::Running => match self.drive(f) {
                        None => return Ok(Polled::Pending),
                        Some(Outcome::Panic) => {
                            self.flights[f].callers.remove(&c);
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Panic(PanicKind::Injected));
                        }
                        Some(_) => {}
                    },
                    FState::Done { ok } => {
                        self.flights[f].callers.remove(&c);
                        let flight = &self.flights[f];
                        if ok {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Value {
                                id: flight.id,
                                epoch: flight.epoch,
                            });
                        }
                        if self.calls[c].kind.fallible() {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Error { id: flight.id });
                        }
                        self.calls[c].state = CState::Start;
                    }
                    FState::Panicked => {
                        self.flights[f].callers.remove(&c);
                        if created {
                            self.calls[c].state = CState::Finished;
                            return Ok(Polled::Panic(PanicKind::Creator));
                        }
                        self.calls[c].state = CState::Start;
                    }
                    FState::Abandoned => unreachable!("a joined caller keeps its flight alive"),
                },
            }
        }
    }

    /// Call `c` joins flight `f` (the key's, or a refresh).
    fn join(&mut self, c: usize, f: usize) {
        self.counters.misses += 1;
        self.counters.joins += 1;
        self.flights[f].callers.insert(c);
        self.calls[c].state = CState::Joined {
            flight: f,
            created: false,
        };
    }

    /// The creator's init closure panicked (`Init::PanicInClosure`): the flight it just started
    /// fails at once, and the panic goes to the creator.
    fn panic_in_closure(&mut self, c: usize, f: usize) -> Option<Polled> {
        if self.calls[c].init != Init::PanicInClosure {
            return None;
        }
        self.counters.panicked += 1;
        if self.flights[f].refreshes.is_some() {
            self.counters.refresh_failed += 1;
            self.end_refresh(f, End::Failed { retry: None });
        }
        self.free(f);
        self.flights[f].state = FState::Panicked;
        self.flights[f].callers.remove(&c);
        self.calls[c].state = CState::Finished;
        Some(Polled::Panic(PanicKind::Injected))
    }
}
