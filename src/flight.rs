//! A flight: one init future shared by every caller of a key, driven by whoever polls it.
//!
//! There is no fixed leader. The init future is boxed once and parked in the flight; a caller that
//! finds it parked takes it out under the flight lock, releases the lock, polls it, and parks it
//! again (or settles the flight). The waker handed to the init future is the flight itself: when
//! it fires, every registered caller is woken, so any of them can drive next and the work survives
//! the caller that started it.
//!
//! # Invariants
//!
//! 1. `callers` counts the live callers joined to the flight. A flight reachable from a shard map
//!    has `callers >= 1` and is `Polling` or `Idle`: the last caller abandons it and removes it
//!    from the map under the shard write lock, and a driver settles the map slot (commit or
//!    removal) *before* it publishes `Done` or `Panicked`.
//! 2. The init future has exactly one owner: `Drive::Idle`, or the one caller that set
//!    `Drive::Polling` and is polling it (or, for a new flight, is about to create it).
//! 3. `Done`, `Panicked` and `Abandoned` are final. `outcome` is set before `Done` is published
//!    and never afterwards.
//! 4. Lock order: a shard lock, then a flight lock; never the reverse.
//! 5. No waker is woken and no future, value or waker is dropped while the flight lock is held:
//!    such things are handed back to the caller, which drops or wakes them after unlocking.
//! 6. A wake-up that arrives while the future is being polled is remembered (`notified`) and
//!    turned into a new poll by the driver; one that arrives while it is parked wakes every
//!    waiter and is remembered (`woken`) until somebody polls, so a caller that leaves in
//!    between hands the duty to the others (futures-rs #2706). A parked future that was not
//!    woken is not polled: callers register and wait for its wake-up. (Every parked future was
//!    polled once at least — its creator polls it right after creating it — except an automatic
//!    refresh, which is parked unpolled but marked woken, so its first caller polls it.)
//! 7. A refresh flight (`refreshes` is `Some(e)`) lives beside the ready entry of epoch `e`, not
//!    in the key's slot; the shard keeps it in its refresh table (see `shard/refreshes.rs`).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use crate::Epoch;
use crate::measure::Admission;
use crate::sync::{Mutex, ThreadId, current_thread};
use crate::waiters::{WaiterId, Waiters, WakeList};

/// An error of a fallible init future, type-erased so that one flight can serve callers of any
/// error type. It is an `Arc<E>` behind `dyn Any`; a caller expecting `E` downcasts it back.
pub(crate) type ErasedError = Arc<dyn Any + Send + Sync>;

/// What a flight's init future produces.
pub(crate) type Outcome<V> = Result<V, ErasedError>;

/// What a flight's boxed future yields: the outcome, with a value's measurements for the
/// capacity and expiry policies (taken by the future, which has the key, outside every lock).
pub(crate) type Produced<V> = Result<(V, Admission), ErasedError>;

/// The boxed init future a flight owns.
pub(crate) type InitFuture<V> = Pin<Box<dyn Future<Output = Produced<V>> + Send>>;

/// A computation in progress for one key, shared by all its callers.
pub(crate) struct Flight<V> {
    epoch: Epoch,
    /// For a refresh: the epoch of the ready entry it refreshes, and commits onto only.
    refreshes: Option<Epoch>,
    state: Mutex<State<V>>,
    /// Set once by the driver that completed the future, before `Drive::Done` (invariant 3);
    /// callers read it without the lock and clone the value outside every lock.
    outcome: OnceLock<Outcome<V>>,
}

struct State<V> {
    drive: Drive<V>,
    callers: usize,
    waiters: Waiters,
}

/// Who holds the init future, and how the flight ended.
enum Drive<V> {
    /// A caller on `thread` holds the future (or is creating it) and is polling it.
    Polling {
        thread: ThreadId,
        /// The future woke the flight during this poll.
        notified: bool,
    },
    /// The future is parked here, waiting for a caller to poll it.
    Idle {
        future: InitFuture<V>,
        /// The future was woken since it was last polled, and nobody has polled it yet.
        woken: bool,
    },
    /// The future finished; `outcome` holds its output.
    Done,
    /// The init closure or future panicked; its callers start over (or panic, for the creator).
    Panicked,
    /// The last caller went away; the future was dropped.
    Abandoned,
}

/// What a caller must do next, as decided by [`Flight::step`].
pub(crate) enum Step<V> {
    /// Drive: the future is now this caller's to poll ([`Flight::park`] it or settle the flight).
    Drive(InitFuture<V>),
    /// Another caller is driving; this caller's waker is registered.
    Wait,
    /// The driver is polling on this very thread: this caller is part of the flight's own
    /// computation, which awaits its own key and could never finish.
    SelfAwait,
    /// The flight finished: read [`Flight::outcome`] (after [`Flight::leave`]).
    Done,
    /// The flight panicked.
    Panicked,
}

/// What a departing caller must do after [`Flight::leave`], outside every lock.
pub(crate) enum Leave<V> {
    /// Left. Drop the old waker; if `hand_over`, call [`Flight::wake_waiters`]: the future wants
    /// a poll that the departing caller will not give, so every other caller inherits the duty.
    Left { hand_over: bool, old: Option<Waker> },
    /// This is the last caller of an unfinished flight. Nothing was changed: call `leave` again
    /// under the shard write lock with `may_abandon`, so that no caller can join meanwhile.
    Last,
    /// The flight was abandoned: drop the future and the old waker, and free the key.
    Abandoned(Option<InitFuture<V>>, Option<Waker>),
}

impl<V> Flight<V> {
    pub(crate) fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The epoch of the ready entry this flight refreshes; `None` for a flight of an empty key.
    pub(crate) fn refreshes(&self) -> Option<Epoch> {
        self.refreshes
    }
}

impl<V: Send + Sync + 'static> Flight<V> {
    /// A new flight with one caller (its creator), which is about to create and poll the future.
    /// `refreshes` names the ready entry a refresh flight is attached to.
    pub(crate) fn new(epoch: Epoch, refreshes: Option<Epoch>) -> Arc<Self> {
        debug_assert!(
            refreshes.is_none_or(|of| of < epoch),
            "a refresh is newer than its entry"
        );
        Arc::new(Flight {
            epoch,
            refreshes,
            state: Mutex::new(State {
                drive: Drive::Polling {
                    thread: current_thread().id(),
                    notified: false,
                },
                callers: 1,
                waiters: Waiters::new(),
            }),
            outcome: OnceLock::new(),
        })
    }

    /// Adds a caller. Call under the shard lock that made the flight reachable (invariant 1).
    pub(crate) fn join(&self) {
        let mut state = self.state.lock();
        debug_assert!(
            state.callers >= 1 && matches!(state.drive, Drive::Polling { .. } | Drive::Idle { .. }),
            "invariant 1: a flight reachable from the map is live"
        );
        state.callers += 1;
    }

    /// Decides what the caller holding `waiter` does next; registers `waker` if it must wait.
    /// Returns the waker it replaced, to be dropped by the caller after this returns.
    pub(crate) fn step(
        &self,
        waiter: &mut Option<WaiterId>,
        waker: &Waker,
    ) -> (Step<V>, Option<Waker>) {
        let mut state = self.state.lock();
        let state = &mut *state;
        match &mut state.drive {
            // Parked and not woken since its last poll: polling it again would only return
            // `Pending`. Wait for its wake-up instead (which wakes every registered caller), so a
            // stampede of callers does not poll the future once each.
            Drive::Idle { woken: false, .. } => {
                let old = state.waiters.register(waiter, waker);
                (Step::Wait, old)
            }
            Drive::Idle { .. } => {
                let Drive::Idle { future, .. } = std::mem::replace(
                    &mut state.drive,
                    Drive::Polling {
                        thread: current_thread().id(),
                        notified: false,
                    },
                ) else {
                    unreachable!()
                };
                (Step::Drive(future), None)
            }
            Drive::Polling { thread, .. } => {
                if *thread == current_thread().id() {
                    (Step::SelfAwait, None)
                } else {
                    let old = state.waiters.register(waiter, waker);
                    (Step::Wait, old)
                }
            }
            Drive::Done => (Step::Done, None),
            Drive::Panicked => (Step::Panicked, None),
            Drive::Abandoned => {
                debug_assert!(false, "invariant 1: a joined caller keeps its flight alive");
                (Step::Panicked, None)
            }
        }
    }

    /// Polls the init future with the flight as its waker. Call without holding any lock.
    pub(crate) fn poll_future(self: &Arc<Self>, future: &mut InitFuture<V>) -> Poll<Produced<V>> {
        let waker = Waker::from(Arc::clone(self));
        future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    /// Parks the future after a poll that returned `Pending`, and registers the driver's waker.
    ///
    /// Returns the replaced waker (to drop) and whether the future asked to be polled again
    /// during that poll; then the driver must wake itself (invariant 6).
    pub(crate) fn park(
        &self,
        future: InitFuture<V>,
        waiter: &mut Option<WaiterId>,
        waker: &Waker,
    ) -> (Option<Waker>, bool) {
        let mut state = self.state.lock();
        let Drive::Polling { notified, .. } = state.drive else {
            unreachable!("invariant 2: only the driver parks the future");
        };
        // Register first: if cloning the waker panics, the flight is still `Polling` and the
        // driver's guard fails it, instead of leaving a parked future nobody is told about.
        let old = state.waiters.register(waiter, waker);
        state.drive = Drive::Idle {
            future,
            woken: notified,
        };
        (old, notified)
    }

    /// Parks a new flight's future unpolled, marked woken, so that its first caller polls it:
    /// an automatic refresh, created on a reader's thread and handed to the user's spawner.
    ///
    /// A manual refresh of the same entry may have joined while the reader's `init` made the
    /// future (the flight was attached already): it is woken, and may drive the refresh instead
    /// of waiting for the spawned task (invariant 6).
    pub(crate) fn hand_off(&self, future: InitFuture<V>) {
        let mut wake = WakeList::new();
        let more = {
            let mut state = self.state.lock();
            debug_assert!(
                matches!(state.drive, Drive::Polling { .. }),
                "invariant 2: only the creator of a flight hands it off"
            );
            state.drive = Drive::Idle {
                future,
                woken: true,
            };
            state.waiters.drain_into(&mut wake)
        };
        self.wake_rest(wake, more);
    }

    /// Publishes the outcome and wakes every waiter. The map slot must already be settled.
    pub(crate) fn complete(&self, outcome: Outcome<V>) {
        let stored = self.outcome.set(outcome);
        debug_assert!(stored.is_ok(), "invariant 3: the outcome is set once");
        self.finish(Drive::Done);
    }

    /// Marks the flight panicked (unless it already completed) and wakes every waiter.
    pub(crate) fn fail(&self) {
        self.finish(Drive::Panicked);
    }

    fn finish(&self, end: Drive<V>) {
        let mut wake = WakeList::new();
        let more = {
            let mut state = self.state.lock();
            if let Drive::Polling { .. } = state.drive {
                state.drive = end;
                state.waiters.drain_into(&mut wake)
            } else {
                // Already final: a guard reporting a panic after the flight completed.
                false
            }
        };
        self.wake_rest(wake, more);
    }

    /// The outcome of a `Done` flight.
    pub(crate) fn outcome(&self) -> Option<&Outcome<V>> {
        self.outcome.get()
    }

    /// Takes the outcome out, when the caller holds the only handle to the flight.
    pub(crate) fn take_outcome(&mut self) -> Option<Outcome<V>> {
        self.outcome.take()
    }

    /// Removes a caller. `may_abandon` says the shard write lock is held, so the last caller of
    /// an unfinished flight may abandon it; without it, that case returns [`Leave::Last`].
    pub(crate) fn leave(&self, waiter: Option<WaiterId>, may_abandon: bool) -> Leave<V> {
        let mut state = self.state.lock();
        debug_assert!(
            state.callers >= 1,
            "invariant 1: leaving a flight one has joined"
        );
        let live = matches!(state.drive, Drive::Polling { .. } | Drive::Idle { .. });
        if live && state.callers == 1 {
            if !may_abandon {
                return Leave::Last;
            }
            debug_assert!(
                matches!(state.drive, Drive::Idle { .. }),
                "invariant 2: the last caller is not polling while it leaves"
            );
            let old = waiter.and_then(|id| state.waiters.unregister(id));
            state.callers = 0;
            let future = match std::mem::replace(&mut state.drive, Drive::Abandoned) {
                Drive::Idle { future, .. } => Some(future),
                _ => None,
            };
            return Leave::Abandoned(future, old);
        }
        let old = waiter.and_then(|id| state.waiters.unregister(id));
        state.callers -= 1;
        // The future wants a poll and this caller may have been the one meant to give it: hand
        // that duty to every other caller (invariant 6).
        let hand_over = matches!(state.drive, Drive::Idle { woken: true, .. });
        // Seeded bug (.ci/mutants): the wake-up dies with the caller (futures-rs #2706).
        #[cfg(async_memo_mutant = "skip_hand_over_wake")]
        let hand_over = false;
        Leave::Left { hand_over, old }
    }

    /// Wakes every registered caller. Call with no lock held.
    pub(crate) fn wake_waiters(&self) {
        let mut wake = WakeList::new();
        let more = self.state.lock().waiters.drain_into(&mut wake);
        self.wake_rest(wake, more);
    }

    /// Wakes `wake`, then, while `more` wakers were left behind, takes and wakes the next batch.
    fn wake_rest(&self, mut wake: WakeList, mut more: bool) {
        wake.wake_all();
        while more {
            more = self.state.lock().waiters.drain_into(&mut wake);
            wake.wake_all();
        }
    }
}

impl<V: Send + Sync + 'static> Wake for Flight<V> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut wake = WakeList::new();
        let more = {
            let mut state = self.state.lock();
            match &mut state.drive {
                Drive::Polling { notified, .. } => {
                    *notified = true;
                    false
                }
                Drive::Idle { woken, .. } => {
                    *woken = true;
                    state.waiters.drain_into(&mut wake)
                }
                Drive::Done | Drive::Panicked | Drive::Abandoned => false,
            }
        };
        self.wake_rest(wake, more);
    }
}
