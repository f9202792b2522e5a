//! The real side: values, init futures with gates, counting wakers, the panic hook that
//! silences injected panics, and what a poll of a real call gave.

use std::fmt;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};

use async_memo::{Entry, Epoch};

use super::op::{Init, Outcome};

pub(super) const INJECTED: &str = "model: injected panic";
pub(super) const CREATOR_PANIC: &str = "async-memo: the init future this call started panicked";

/// Replaces the panic hook once: injected panics (and the creator's hand-over panic) are
/// expected and silent; any other panic prints, and aborts the process if `abort_on_other` (a
/// fuzzer needs that to record a crash).
pub fn quiet_injected_panics(abort_on_other: bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let msg = payload_text(info.payload());
            if msg.contains(INJECTED) || msg.starts_with(CREATOR_PANIC) {
                return;
            }
            default(info);
            if abort_on_other {
                std::process::abort();
            }
        }));
    });
}

pub(super) fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Counts live values and init futures.
#[derive(Default)]
pub(super) struct Live {
    pub(super) values: AtomicIsize,
    pub(super) futures: AtomicIsize,
    pub(super) next_id: AtomicU64,
}

#[derive(Debug)]
pub struct Val {
    pub(super) id: u64,
    live: Arc<Live>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

impl Val {
    pub(super) fn new(id: u64, live: &Arc<Live>) -> Self {
        live.values.fetch_add(1, SeqCst);
        Val {
            id,
            live: Arc::clone(live),
        }
    }
}

impl Clone for Val {
    fn clone(&self) -> Self {
        Val::new(self.id, &self.live)
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        self.live.values.fetch_sub(1, SeqCst);
    }
}

/// The error of a failing init: the id its value would have had.
#[derive(Debug)]
pub struct Failure(pub(super) u64);

#[derive(Default)]
pub(super) struct Gate {
    state: Mutex<(Option<Outcome>, Option<Waker>)>,
}

impl Gate {
    pub(super) fn open(&self, outcome: Outcome) {
        let waker = {
            let mut state = self.state.lock().unwrap();
            state.0 = Some(outcome);
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

pub(super) struct InitFut {
    id: u64,
    fallible: bool,
    now: Option<Outcome>,
    gate: Option<Arc<Gate>>,
    /// `Init::Yield` before its first poll.
    yields: bool,
    live: Arc<Live>,
}

impl InitFut {
    pub(super) fn new(
        id: u64,
        fallible: bool,
        init: Init,
        live: &Arc<Live>,
    ) -> (Self, Option<Arc<Gate>>) {
        let gate = (init == Init::Gated).then(|| Arc::new(Gate::default()));
        let now = match init {
            Init::Value => Some(Outcome::Value),
            Init::Error => Some(Outcome::Error),
            Init::PanicInFuture => Some(Outcome::Panic),
            Init::Yield => Some(Outcome::Value),
            Init::Gated | Init::PanicInClosure => None,
        };
        live.futures.fetch_add(1, SeqCst);
        let fut = InitFut {
            id,
            fallible,
            now,
            gate: gate.clone(),
            yields: init == Init::Yield,
            live: Arc::clone(live),
        };
        (fut, gate)
    }
}

impl Future for InitFut {
    type Output = Result<Val, Failure>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yields {
            self.yields = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let outcome = match (&self.now, &self.gate) {
            (Some(outcome), _) => *outcome,
            (None, Some(gate)) => {
                let mut state = gate.state.lock().unwrap();
                match state.0 {
                    Some(outcome) => outcome,
                    None => {
                        state.1 = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            }
            (None, None) => unreachable!(),
        };
        Poll::Ready(match outcome {
            Outcome::Panic => panic!("{INJECTED} in the future of value {}", self.id),
            Outcome::Error if self.fallible => Err(Failure(self.id)),
            Outcome::Value | Outcome::Error => Ok(Val::new(self.id, &self.live)),
        })
    }
}

impl Drop for InitFut {
    fn drop(&mut self) {
        self.live.futures.fetch_sub(1, SeqCst);
    }
}

/// A `Plain` call's future: an `InitFut` that cannot fail.
pub(super) struct PlainFut(pub(super) InitFut);

impl Future for PlainFut {
    type Output = Val;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Val> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| unreachable!("a plain init never fails")))
    }
}

#[derive(Default)]
pub(super) struct CountingWaker(pub(super) AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// One init that ran: the call it belonged to, the flight's epoch, its value id and gate.
pub(super) struct InitRun {
    pub(super) call: usize,
    pub(super) epoch: Epoch,
    pub(super) id: u64,
    pub(super) gate: Option<Arc<Gate>>,
    /// The entry a `refresh_if` init was given: its value id and epoch.
    pub(super) base: Option<(u64, Epoch)>,
}

/// A call's output; `Ok(None)` is `refresh_if`'s "the key no longer holds that entry".
pub(super) type CallOut = Result<Option<Entry<Val>>, Arc<Failure>>;
pub(super) type CallFut<'m> = Pin<Box<dyn Future<Output = CallOut> + 'm>>;

pub(super) struct RealCall<'m> {
    pub(super) fut: CallFut<'m>,
    pub(super) waker: Arc<CountingWaker>,
    /// The waker's count when the last poll (which returned `Pending`) began.
    pub(super) pending_at: Option<usize>,
}

/// What one poll gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Polled {
    Pending,
    Value {
        id: u64,
        epoch: Epoch,
    },
    Error {
        id: u64,
    },
    /// `refresh_if`: the key no longer holds the entry observed.
    Gone,
    Panic(PanicKind),
    /// An automatic refresh's task ended (whatever its refresh's outcome).
    Done,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum PanicKind {
    /// The injected panic of the init or future this call was running.
    Injected,
    /// The creator's panic when another caller's poll of its future panicked.
    Creator,
    Other,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gate")
    }
}
