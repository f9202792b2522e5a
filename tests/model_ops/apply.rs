//! One op on the memo and on the model ([`apply`]), and one poll of a call on both
//! ([`poll_call`]).

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry, Epoch, ManualClock, RemovalCause};

use super::invalidate_if::invalidate_if;
use super::model::{CState, FState, Log, MCall, Model, Slot};
use super::op::{Init, KEYS, Kind, Op};
use super::real::{
    CREATOR_PANIC, CallFut, INJECTED, InitFut, InitRun, Live, PanicKind, PlainFut, Polled,
    RealCall, Val, payload_text,
};

/// Performs `op` on the memo and on the model; returns a note for the trace.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply<'m>(
    op: Op,
    memo: &'m AsyncMemo<u8, Val>,
    log: &Log,
    clock: &ManualClock,
    live: &Arc<Live>,
    runs: &Arc<Mutex<Vec<InitRun>>>,
    model: &mut Model,
    real: &mut BTreeMap<usize, RealCall<'m>>,
) -> Result<String, String> {
    let pick = |real: &BTreeMap<usize, RealCall<'m>>, i: u8| {
        (!real.is_empty()).then(|| *real.keys().nth(usize::from(i) % real.len()).unwrap())
    };
    Ok(match op {
        Op::Call { key, kind, init } => {
            if kind == Kind::Task {
                return Ok("a task is not a kind of call".into());
            }
            let key = key % KEYS;
            let observed = match kind {
                Kind::RefreshIf => match model.current_epoch(key) {
                    Some(epoch) => Some(epoch),
                    None => return Ok("no epoch to use".into()),
                },
                _ => None,
            };
            let c = model.calls.len();
            model.calls.push(MCall {
                key,
                kind,
                init,
                observed,
                state: CState::Start,
            });
            let fallible = kind.fallible();
            let (live, inits) = (Arc::clone(live), Arc::clone(runs));
            let start = move |epoch: Epoch, base: Option<(u64, Epoch)>| {
                let id = live.next_id.fetch_add(1, SeqCst);
                if init == Init::PanicInClosure {
                    inits.lock().unwrap().push(InitRun {
                        call: c,
                        epoch,
                        id,
                        gate: None,
                        base,
                    });
                    panic!("{INJECTED} in the init of value {id}");
                }
                let (fut, gate) = InitFut::new(id, fallible, init, &live);
                inits.lock().unwrap().push(InitRun {
                    call: c,
                    epoch,
                    id,
                    gate,
                    base,
                });
                fut
            };
            let fut: CallFut<'m> = match kind {
                Kind::Plain => Box::pin(async move {
                    let start = move |e| PlainFut(start(e, None));
                    Ok(Some(memo.get_or_init_with_epoch(key, start).await))
                }),
                Kind::Fallible => Box::pin(async move {
                    let start = move |e| start(e, None);
                    memo.get_or_try_init_with_epoch(key, start).await.map(Some)
                }),
                // `refresh` does not hand its init the flight's epoch: the init reads it back, a
                // re-entrant read that the poll's later results confirm.
                Kind::Refresh => Box::pin(async move {
                    let start = move || PlainFut(start(flight_epoch(memo, key), None));
                    Ok(Some(memo.refresh(key, start).await))
                }),
                Kind::TryRefresh => Box::pin(async move {
                    let start = move || start(flight_epoch(memo, key), None);
                    memo.try_refresh(key, start).await.map(Some)
                }),
                Kind::RefreshIf => Box::pin(async move {
                    let observed = observed.expect("refresh_if observes an epoch");
                    let start = move |old: Entry<Val>| {
                        let base = Some((old.value().id, old.epoch()));
                        PlainFut(start(flight_epoch(memo, key), base))
                    };
                    Ok(memo.refresh_if(key, observed, start).await)
                }),
                Kind::Task => unreachable!("returned above"),
            };
            real.insert(
                c,
                RealCall {
                    fut,
                    waker: Arc::default(),
                    pending_at: None,
                },
            );
            format!("c{c}: {}", poll_call(c, runs, model, real)?)
        }
        Op::Poll { call } => match pick(real, call) {
            Some(c) => format!("c{c}: {}", poll_call(c, runs, model, real)?),
            None => "no live call".into(),
        },
        Op::Drop { call } => match pick(real, call) {
            Some(c) => {
                drop(real.remove(&c));
                model.drop_call(c);
                format!("c{c} dropped")
            }
            None => "no live call".into(),
        },
        Op::Open { gate, outcome } => {
            let open: Vec<usize> = (0..model.flights.len())
                .filter(|&f| {
                    let flight = &model.flights[f];
                    flight.state == FState::Running
                        && flight.gate.is_some()
                        && flight.opened.is_none()
                })
                .collect();
            if open.is_empty() {
                "no closed gate".into()
            } else {
                let f = open[usize::from(gate) % open.len()];
                model.flights[f].opened = Some(outcome);
                let gate = model.flights[f].gate.clone().unwrap();
                gate.open(outcome);
                format!("gate of flight {} opened", model.flights[f].epoch)
            }
        }
        Op::Insert { key } => {
            let key = key % KEYS;
            let id = live.next_id.fetch_add(1, SeqCst);
            let entry = memo.insert(key, Val::new(id, live)).unwrap();
            model.see_epoch(key, entry.epoch())?;
            if entry.value().id != id {
                return Err(format!("insert returned value {}", entry.value().id));
            }
            model.vacate(key, RemovalCause::Replaced);
            let slot = model.ready(key, entry.epoch(), id);
            model.slots.insert(key, slot);
            model.stored = true;
            format!("v{id} at epoch {}", entry.epoch())
        }
        Op::Replace { key, back } => {
            let key = key % KEYS;
            let observed = if back == 0 {
                model.current_epoch(key)
            } else {
                model.older_epoch(back)
            };
            let Some(observed) = observed else {
                return Ok("no epoch to use".into());
            };
            let id = live.next_id.fetch_add(1, SeqCst);
            let got = memo.replace(key, observed, Val::new(id, live));
            let want = match model.slots.get(&key).copied() {
                None => Err(None),
                Some(s) if model.expired(&s) => {
                    model.vacate(key, RemovalCause::Expired);
                    Err(None)
                }
                Some(Slot::Ready { epoch, .. }) if epoch == observed => Ok(()),
                Some(Slot::Flight(f)) if model.flights[f].epoch == observed => Ok(()),
                Some(Slot::Ready { epoch, .. }) => Err(Some(epoch)),
                Some(Slot::Flight(f)) => Err(Some(model.flights[f].epoch)),
            };
            match (got, want) {
                (Ok(entry), Ok(())) => {
                    model.see_epoch(key, entry.epoch())?;
                    if entry.value().id != id {
                        return Err(format!("replace returned value {}", entry.value().id));
                    }
                    model.vacate(key, RemovalCause::Replaced);
                    let slot = model.ready(key, entry.epoch(), id);
                    model.slots.insert(key, slot);
                    model.stored = true;
                    format!(
                        "replace({key}, {observed}): v{id} at epoch {}",
                        entry.epoch()
                    )
                }
                (Err(got), Err(want)) if got == want => {
                    format!("replace({key}, {observed}) refused: the key holds {got:?}")
                }
                (got, want) => {
                    let got = got.map(|e| (e.value().id, e.epoch()));
                    return Err(format!(
                        "replace({key}, {observed}) returned {got:?}, the model says {want:?}"
                    ));
                }
            }
        }
        Op::Invalidate { key } | Op::InvalidateOld { key, .. } | Op::InvalidateRefresh { key } => {
            let key = key % KEYS;
            let epoch = match op {
                Op::InvalidateOld { back, .. } => model.older_epoch(back),
                Op::InvalidateRefresh { .. } => model
                    .flights
                    .iter()
                    .rev()
                    .find(|f| f.key == key && f.refreshes.is_some())
                    .map(|f| f.epoch),
                _ => model.current_epoch(key),
            };
            let Some(epoch) = epoch else {
                return Ok("no epoch to use".into());
            };
            let got = memo.invalidate(&key, epoch);
            let want = model.invalidate(key, epoch);
            if got != want {
                return Err(format!(
                    "invalidate({key}, {epoch}) returned {got}, the model says {want}"
                ));
            }
            format!("invalidate({key}, {epoch}) = {got}")
        }
        Op::Remove { key } => {
            let key = key % KEYS;
            let got = memo.remove(&key).map(|e| (e.value().id, e.epoch()));
            let want = match model.slots.get(&key).copied() {
                Some(s @ Slot::Ready { epoch, id, .. }) if !model.expired(&s) => Some((id, epoch)),
                _ => None,
            };
            model.vacate(key, RemovalCause::Removed);
            if got != want {
                return Err(format!(
                    "remove({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("remove({key}) = {got:?}")
        }
        Op::InvalidateAll => {
            memo.invalidate_all();
            for key in 0..KEYS {
                model.vacate(key, RemovalCause::Cleared);
            }
            "cleared".into()
        }
        Op::Get { key } => {
            let key = key % KEYS;
            let got = memo.get(&key).map(|e| (e.value().id, e.epoch()));
            let want = match model.slots.get(&key).copied() {
                Some(s @ Slot::Ready { epoch, id, .. }) => {
                    if model.expired(&s) {
                        model.vacate(key, RemovalCause::Expired);
                        model.counters.misses += 1;
                        None
                    } else {
                        model.touch(key);
                        model.counters.hits += 1;
                        Some((id, epoch))
                    }
                }
                _ => {
                    model.counters.misses += 1;
                    None
                }
            };
            if got != want {
                return Err(format!(
                    "get({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("get({key}) = {got:?}")
        }
        Op::Epoch { key } => {
            let key = key % KEYS;
            let got = memo.epoch(&key);
            let want = match model.slots.get(&key).copied() {
                Some(s @ Slot::Ready { epoch, .. }) => {
                    if model.expired(&s) {
                        model.vacate(key, RemovalCause::Expired);
                        None
                    } else {
                        Some(epoch)
                    }
                }
                Some(Slot::Flight(f)) => Some(model.flights[f].epoch),
                None => None,
            };
            if got != want {
                return Err(format!(
                    "epoch({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("epoch({key}) = {got:?}")
        }
        Op::Peek { key } => super::quiet::peek(memo, model, key % KEYS)?,
        Op::Refreshing { key } => {
            let key = key % KEYS;
            let got = memo.refreshing(&key);
            let want = model.refreshing(key).map(|r| model.flights[r].epoch);
            if got != want {
                return Err(format!(
                    "refreshing({key}) returned {got:?}, the model says {want:?}"
                ));
            }
            format!("refreshing({key}) = {got:?}")
        }
        Op::Advance { secs } => {
            clock.advance(Duration::from_secs(u64::from(secs)));
            model.now += u64::from(secs);
            format!("now {} s", model.now)
        }
        Op::PurgeExpired => {
            memo.purge_expired();
            for key in 0..KEYS {
                if model.slots.get(&key).is_some_and(|s| model.expired(s)) {
                    model.vacate(key, RemovalCause::Expired);
                }
            }
            "purged".into()
        }
        Op::Iter => {
            let mut got: Vec<(u8, Option<(u64, Epoch)>)> = memo
                .iter()
                .map(|(key, entry)| (key, Some((entry.value().id, entry.epoch()))))
                .collect();
            got.sort();
            let want: Vec<_> = model.snapshot(false).into_iter().collect();
            if got != want {
                return Err(format!("iter() yielded {got:?}, the model says {want:?}"));
            }
            format!("iter() = {got:?}")
        }
        Op::InvalidateIf { pred } => invalidate_if(pred, memo, log, live, model)?,
    })
}

/// The epoch of the flight a `refresh` call just created for `key`, read back by its init
/// (outside every lock): its refresh, or (no ready entry) the key's flight.
pub(super) fn flight_epoch(memo: &AsyncMemo<u8, Val>, key: u8) -> Epoch {
    memo.refreshing(&key)
        .or_else(|| memo.epoch(&key))
        .expect("a refresh's init runs while its flight is in place")
}

/// Polls call `c` once, on the memo and on the model, and compares.
pub(super) fn poll_call(
    c: usize,
    runs: &Arc<Mutex<Vec<InitRun>>>,
    model: &mut Model,
    real: &mut BTreeMap<usize, RealCall<'_>>,
) -> Result<String, String> {
    let call = real.get_mut(&c).expect("a live call");
    let waker = Waker::from(Arc::clone(&call.waker));
    // A wake-up during the poll counts as one after it (it asks for another poll).
    let wakes_before = call.waker.0.load(SeqCst);
    let polled = panic::catch_unwind(AssertUnwindSafe(|| {
        call.fut.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    let (got, error_ptr) = match polled {
        Ok(Poll::Pending) => (Polled::Pending, None),
        Ok(Poll::Ready(Ok(Some(entry)))) => (
            Polled::Value {
                id: entry.value().id,
                epoch: entry.epoch(),
            },
            None,
        ),
        Ok(Poll::Ready(Ok(None))) => (Polled::Gone, None),
        Ok(Poll::Ready(Err(failure))) => (
            Polled::Error { id: failure.0 },
            Some(Arc::as_ptr(&failure) as usize),
        ),
        Err(payload) => {
            let msg = payload_text(payload.as_ref());
            let kind = if msg.contains(INJECTED) {
                PanicKind::Injected
            } else if msg.starts_with(CREATOR_PANIC) {
                PanicKind::Creator
            } else {
                return Err(format!("c{c} panicked unexpectedly: {msg}"));
            };
            (Polled::Panic(kind), None)
        }
    };
    model.inits = std::mem::take(&mut *runs.lock().unwrap());
    let mut want = model.poll(c)?;
    let mut got = got;
    if model.calls[c].kind == Kind::Task {
        // A task ends with `()` whatever its refresh's outcome (a panic ends it quietly).
        if got == Polled::Gone {
            got = Polled::Done;
        }
        if want != Polled::Pending {
            want = Polled::Done;
        }
    }
    if let Some(run) = model.inits.first() {
        return Err(format!(
            "an init ran that the model did not expect (of c{}, epoch {}): single-flight broken",
            run.call, run.epoch
        ));
    }
    if got != want {
        return Err(format!("c{c} polled: {got:?}, the model says {want:?}"));
    }
    if let (Some(ptr), CState::Finished) = (error_ptr, model.calls[c].state) {
        // Every caller of a failed flight gets the same Arc.
        let Polled::Error { id } = got else {
            unreachable!()
        };
        let f = model
            .flights
            .iter()
            .position(|f| f.id == id)
            .expect("the failed flight");
        let first = *model.flights[f].error.get_or_insert(ptr);
        if first != ptr {
            return Err(format!("c{c} received another Arc of the flight's error"));
        }
    }
    let call = real.get_mut(&c).unwrap();
    if got == Polled::Pending {
        call.pending_at = Some(wakes_before);
    } else {
        real.remove(&c);
    }
    Ok(format!("{got:?}"))
}
