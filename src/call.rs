//! The future behind `get_or_init` and `get_or_try_init`: one caller of a key.
//!
//! A call looks the key up; on a hit it is done. Otherwise it joins (or creates) the key's
//! flight and from then on, at every poll, asks the flight what to do: drive the init future,
//! wait, or take the outcome. A call that cannot use the outcome (the flight panicked, or failed
//! with an error the call cannot receive) starts over with its own `init`.
//!
//! # Invariants
//!
//! 1. A call in `Joined` is counted in its flight's `callers` until it leaves: on `Done` and
//!    `Panicked` through `Flight::leave`, on drop through `Table::leave`.
//! 2. While a call drives, an armed [`Abort`] guard exists: if anything unwinds before the flight
//!    is settled (the init closure, the future's `poll` or `Drop`, `Clone` of `V`, `Hash` of `K`),
//!    the guard frees the key and marks the flight panicked, so no caller waits forever.
//! 3. Only the creator has given up its `init`; every other call keeps its own to start over.
//! 4. What a lookup purged on the side is reported only once the call's state is consistent:
//!    joined to its flight, and a flight it created driven once (parked or settled). A removal
//!    listener that re-enters the memo then never meets a flight half set up.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::flight::{Flight, InitFuture, Leave, Outcome, Step};
use crate::init::Init;
use crate::removal::Removals;
use crate::shard::Want;
use crate::stats::bump;
use crate::table::{Lookup, Probe, Table};
use crate::waiters::WaiterId;
use crate::{Entry, Epoch};

pub(crate) mod refresher;

/// The key of a call: owned (`get_or_init`) or borrowed (the `_by_ref` variants).
pub(crate) enum Key<'a, K, Q: ?Sized> {
    Owned(K),
    Borrowed(&'a Q),
}

impl<K: Borrow<Q>, Q: ?Sized> Key<'_, K, Q> {
    fn get(&self) -> &Q {
        match self {
            Key::Owned(key) => key.borrow(),
            Key::Borrowed(key) => key,
        }
    }
}

enum State<V> {
    /// Not joined to any flight: look the key up.
    Start,
    Joined {
        flight: Arc<Flight<V>>,
        waiter: Option<WaiterId>,
        created: bool,
    },
    Finished,
}

pub(crate) struct Call<'a, K, V, S, Q, I>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    /// The handle's `Arc`, borrowed: a hit costs no reference count, and an automatic refresh
    /// can hand a clone of it to its task.
    table: &'a Arc<Table<K, V, S>>,
    key: Key<'a, K, Q>,
    want: Want,
    init: Option<I>,
    state: State<V>,
}

// No field is ever pinned (the init future is boxed), so the call can move freely.
impl<K, V, S, Q, I> Unpin for Call<'_, K, V, S, Q, I>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
}

impl<'a, K, V, S, Q, I> Call<'a, K, V, S, Q, I>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    pub(crate) fn new(
        table: &'a Arc<Table<K, V, S>>,
        key: Key<'a, K, Q>,
        want: Want,
        init: I,
    ) -> Self {
        Call {
            table,
            key,
            want,
            init: Some(init),
            state: State::Start,
        }
    }

    /// A call that takes over a flight another caller created and handed off (an automatic
    /// refresh): it counts as that flight's creator, and has no `init` of its own.
    pub(crate) fn resume(
        table: &'a Arc<Table<K, V, S>>,
        key: Key<'a, K, Q>,
        flight: Arc<Flight<V>>,
    ) -> Self {
        Call {
            table,
            key,
            want: Want::Refresh,
            init: None,
            state: State::Joined {
                flight,
                waiter: None,
                created: true,
            },
        }
    }
}

const SELF_AWAIT: &str = "async-memo: a flight awaits its own key. The init future of a key \
     called get_or_init for that same key and polled it from inside its own poll; that call could \
     never finish. The flight is discarded and the key is free again.";

const CREATOR_PANIC: &str = "async-memo: the init future this call started panicked while \
     another caller of its flight was polling it; the memo holds nothing for the key";

impl<K, V, S, Q, I> Future for Call<'_, K, V, S, Q, I>
where
    K: Hash + Eq + Borrow<Q>,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    I: Init<K, V>,
{
    type Output = I::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<I::Output> {
        let call = self.get_mut();
        // The hit path, inlined where the call is polled; everything else is out of line.
        let mut probe = None;
        if matches!((&call.state, call.want), (State::Start, Want::Get)) {
            match call.table.hit(call.key.get()) {
                Ok(entry) => {
                    call.state = State::Finished;
                    return Poll::Ready(I::hit(entry));
                }
                Err(missed) => probe = Some(missed),
            }
        }
        call.poll_slow(cx, probe)
    }
}

impl<K, V, S, Q, I> Call<'_, K, V, S, Q, I>
where
    K: Hash + Eq + Borrow<Q>,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    I: Init<K, V>,
{
    /// Everything but a first-poll hit: the lookup (with the hash and time `hit` read, if it
    /// ran), joining or starting the flight, driving it and waiting for it.
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>, mut probe: Option<Probe>) -> Poll<I::Output> {
        let Call {
            table: shared,
            key,
            want,
            init,
            state,
        } = self;
        let shared: &Arc<Table<K, V, S>> = shared;
        let table: &Table<K, V, S> = shared;
        let key = key.get();
        loop {
            match state {
                State::Start => {
                    let (claim, removals) = table.lookup(key, *want, probe.take());
                    // Reports what the lookup purged once this call's state is consistent, even
                    // if `init` panics (declared before the abort guard, so dropped after it).
                    let report = Report {
                        table,
                        removals: Some(removals),
                    };
                    match claim {
                        Lookup::Hit(entry) => {
                            *state = State::Finished;
                            report.finish();
                            return Poll::Ready(I::hit(entry));
                        }
                        Lookup::Due(entry, now) => {
                            *state = State::Finished;
                            report.finish();
                            let init = init.take().expect("invariant 3: a new call has its init");
                            refresher::start(shared, key, entry.epoch(), now, init);
                            return Poll::Ready(I::hit(entry));
                        }
                        Lookup::Gone => {
                            *state = State::Finished;
                            report.finish();
                            return Poll::Ready(I::gone());
                        }
                        Lookup::Joined(flight) => {
                            *state = State::Joined {
                                flight,
                                waiter: None,
                                created: false,
                            };
                            report.finish();
                        }
                        Lookup::Created(flight, base) => {
                            *state = State::Joined {
                                flight: Arc::clone(&flight),
                                waiter: None,
                                created: true,
                            };
                            let State::Joined { waiter, .. } = state else {
                                unreachable!()
                            };
                            let guard = Abort::arm(table, key, &flight);
                            let start = init.take().expect("invariant 3: a new call has its init");
                            let measure = table.measure().clone();
                            let owned = measure.needs_key().then(|| key.to_owned());
                            let future = start.start(flight.epoch(), base, measure, owned);
                            // The listener runs after the first poll: by then the flight is
                            // parked or settled, so a listener that calls `get_or_init` for
                            // this key joins it (or hits its entry) instead of finding it
                            // mid-poll on this very thread.
                            let polled = drive(guard, future, waiter, cx);
                            report.finish();
                            if polled.is_pending() {
                                return Poll::Pending;
                            }
                        }
                    }
                }
                State::Joined { flight, waiter, .. } => {
                    let (step, old) = flight.step(waiter, cx.waker());
                    drop(old);
                    match step {
                        Step::Drive(future) => {
                            let guard = Abort::arm(table, key, flight);
                            if drive(guard, future, waiter, cx).is_pending() {
                                return Poll::Pending;
                            }
                        }
                        Step::Wait => return Poll::Pending,
                        Step::SelfAwait => panic!("{SELF_AWAIT}"),
                        Step::Done => {
                            if let Some(output) = receive::<K, V, I>(state) {
                                return Poll::Ready(output);
                            }
                        }
                        Step::Panicked => {
                            let State::Joined { created, .. } = leave_finished(state) else {
                                unreachable!()
                            };
                            if created {
                                *state = State::Finished;
                                panic!("{CREATOR_PANIC}");
                            }
                        }
                    }
                }
                State::Finished => {
                    panic!("async-memo: a get_or_init future polled after it completed")
                }
            }
        }
    }
}

/// Polls the init future once as the driver. `Ready` means the flight is settled and
/// published; the caller's next step reads the outcome.
fn drive<K, V, S, Q>(
    guard: Abort<'_, K, V, S, Q>,
    future: InitFuture<V>,
    waiter: &mut Option<WaiterId>,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    K: Hash + Eq + Borrow<Q>,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    // On unwind locals drop last-declared first: the guard publishes `Panicked` before the
    // future is dropped, so calls owned by the future (a self-await) leave a finished flight.
    let mut future = future;
    let guard = guard;
    match guard.flight.poll_future(&mut future) {
        Poll::Pending => {
            let (old, again) = guard.flight.park(future, waiter, cx.waker());
            guard.disarm();
            drop(old);
            if again {
                // The future woke itself during the poll: poll again soon (futures-rs #2706).
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
        Poll::Ready(produced) => {
            drop(future);
            let (outcome, removals) = match produced {
                Ok((value, admission)) => {
                    let removals = guard
                        .table
                        .commit(guard.key, guard.flight, &value, admission);
                    (Ok(value), Some(removals))
                }
                Err(error) => {
                    guard.table.discard(guard.key, guard.flight);
                    crate::trace::event!(epoch = guard.flight.epoch().get(), "flight failed");
                    bump(&guard.table.counters.failed);
                    (Err(error), None)
                }
            };
            guard.flight.complete(outcome);
            let table = guard.table;
            guard.disarm();
            // Evictions the commit caused are reported once the flight is settled, so a
            // panicking listener cannot leave a caller waiting.
            if let Some(removals) = removals {
                table.report(removals);
            }
            Poll::Ready(())
        }
    }
}

/// Leaves a finished (`Done` or `Panicked`) flight; returns the call's former state.
fn leave_finished<V: Send + Sync + 'static>(state: &mut State<V>) -> State<V> {
    let joined = std::mem::replace(state, State::Start);
    let State::Joined { flight, waiter, .. } = &joined else {
        unreachable!("only a joined call leaves a flight")
    };
    match flight.leave(*waiter, false) {
        Leave::Left { hand_over, old } => {
            drop(old);
            if hand_over {
                flight.wake_waiters();
            }
        }
        Leave::Last | Leave::Abandoned(..) => {
            unreachable!("flight invariant 3: a finished flight is never abandoned")
        }
    }
    joined
}

/// Takes the outcome of a `Done` flight. `None`: this call cannot receive it and starts over.
fn receive<K, V, I>(state: &mut State<V>) -> Option<I::Output>
where
    V: Clone + Send + Sync + 'static,
    I: Init<K, V>,
{
    let State::Joined {
        mut flight,
        created,
        ..
    } = leave_finished(state)
    else {
        unreachable!()
    };
    let epoch: Epoch = flight.epoch();
    // The last handle may move the value out instead of cloning it.
    let outcome: Outcome<V> = match Arc::get_mut(&mut flight).and_then(Flight::take_outcome) {
        Some(outcome) => outcome,
        None => match flight
            .outcome()
            .expect("flight invariant 3: Done has an outcome")
        {
            Ok(value) => Ok(value.clone()),
            Err(error) => Err(Arc::clone(error)),
        },
    };
    let output = match outcome {
        Ok(value) => Some(I::hit(Entry::new(value, epoch))),
        Err(error) => I::failed(&error),
    };
    match output {
        Some(output) => {
            *state = State::Finished;
            Some(output)
        }
        None => {
            debug_assert!(
                !created,
                "invariant 3: the creator can receive its own error"
            );
            None
        }
    }
}

/// Reports removals a lookup purged: normally through `finish`, else (unwinding) on drop.
struct Report<'a, K, V, S> {
    table: &'a Table<K, V, S>,
    removals: Option<Removals<K, V>>,
}

impl<K, V, S> Report<'_, K, V, S> {
    #[inline]
    fn finish(mut self) {
        if let Some(removals) = self.removals.take() {
            self.table.report(removals);
        }
    }
}

impl<K, V, S> Drop for Report<'_, K, V, S> {
    fn drop(&mut self) {
        if let Some(removals) = self.removals.take() {
            self.table.report(removals);
        }
    }
}

/// Frees the key and fails the flight if a driver unwinds before settling it (invariant 2).
pub(crate) struct Abort<'a, K, V, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    table: &'a Table<K, V, S>,
    key: &'a Q,
    flight: &'a Arc<Flight<V>>,
    armed: bool,
}

impl<'a, K, V, S, Q> Abort<'a, K, V, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    pub(crate) fn arm(table: &'a Table<K, V, S>, key: &'a Q, flight: &'a Arc<Flight<V>>) -> Self {
        Abort {
            table,
            key,
            flight,
            armed: true,
        }
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl<K, V, S, Q> Drop for Abort<'_, K, V, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    fn drop(&mut self) {
        if self.armed {
            // Settle the slot before publishing `Panicked` (flight invariant 1).
            self.table.discard(self.key, self.flight);
            crate::trace::event!(epoch = self.flight.epoch().get(), "flight panicked");
            bump(&self.table.counters.panicked);
            // Seeded bug (.ci/mutants): a panic leaves the flight's waiters asleep.
            #[cfg(not(async_memo_mutant = "panic_without_fail"))]
            self.flight.fail();
        }
    }
}

impl<K, V, S, Q, I> Drop for Call<'_, K, V, S, Q, I>
where
    K: Hash + Eq + Borrow<Q>,
    V: Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    #[inline]
    fn drop(&mut self) {
        if !matches!(self.state, State::Joined { .. }) {
            return; // a hit, or never polled: nothing to leave
        }
        if let State::Joined { flight, waiter, .. } =
            std::mem::replace(&mut self.state, State::Finished)
        {
            self.table.leave(self.key.get(), &flight, waiter);
        }
    }
}
