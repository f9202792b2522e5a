//! The checks after every op, and the matching of removal reports against the model.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

use async_memo::{AsyncMemo, RemovalCause};

use super::model::{CState, Event, FState, Log, Model, Slot, Wants};
use super::op::KEYS;
use super::real::{InitRun, Live, RealCall, Val};

/// The checks after every op.
pub(super) fn check(
    memo: &AsyncMemo<u8, Val>,
    log: &Log,
    live: &Arc<Live>,
    runs: &Arc<Mutex<Vec<InitRun>>>,
    model: &mut Model,
    real: &BTreeMap<usize, RealCall<'_>>,
    len_before: usize,
) -> Result<(), String> {
    if let Some(run) = runs.lock().unwrap().first() {
        return Err(format!(
            "an init ran outside a poll (of c{}, epoch {})",
            run.call, run.epoch
        ));
    }
    // Removals.
    let events = std::mem::take(&mut *log.lock().unwrap());
    absorb(model, events, len_before)?;
    if let Some(capacity) = model.config.capacity {
        if memo.len() > usize::from(capacity) {
            return Err(format!("len {} above the capacity {capacity}", memo.len()));
        }
    }
    if memo.len() != model.ready_count() {
        return Err(format!(
            "len {} but the model holds {} ready entries: {:?}",
            memo.len(),
            model.ready_count(),
            model.slots
        ));
    }
    // Every entry weighs 1 (no weigher): the weighted size is the length, bounded or not.
    if memo.weighted_size() != model.ready_count() as u64 {
        return Err(format!(
            "weighted_size {} but the model holds {} ready entries",
            memo.weighted_size(),
            model.ready_count()
        ));
    }
    if memo.max_capacity() != model.config.capacity.map(u64::from) {
        return Err(format!("max_capacity {:?}", memo.max_capacity()));
    }
    // The refresh in flight beside each entry.
    for key in 0..KEYS {
        let got = memo.refreshing(&key);
        let want = model.refreshing(key).map(|r| model.flights[r].epoch);
        if got != want {
            return Err(format!(
                "refreshing({key}) is {got:?}, the model says {want:?}"
            ));
        }
    }
    // Init futures alive = running flights.
    let running = model
        .flights
        .iter()
        .filter(|f| f.state == FState::Running)
        .count();
    let futures = live.futures.load(SeqCst);
    if futures != running as isize {
        return Err(format!(
            "{futures} init futures alive, but {running} flights are running"
        ));
    }
    // No lost wake-up: a finished flight wakes each pending caller; a future that was woken
    // (its gate opened, or it yielded) has at least one pending caller woken to poll it — also
    // after the caller that was to poll it went away.
    let mut woken: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (&c, call) in real {
        let (Some(at), CState::Joined { flight: f, .. }) = (call.pending_at, model.calls[c].state)
        else {
            continue;
        };
        let was_woken = call.waker.0.load(SeqCst) > at;
        if model.wants(f) == Wants::EveryCaller && !was_woken {
            return Err(format!(
                "lost wake-up: c{c}'s flight finished but c{c} was not woken since it returned Pending"
            ));
        }
        let tally = woken.entry(f).or_default();
        tally.0 += 1;
        tally.1 += usize::from(was_woken);
    }
    for (f, (pending, woken)) in woken {
        if model.wants(f) == Wants::SomeCaller && woken == 0 {
            let epoch = model.flights[f].epoch;
            return Err(format!(
                "lost wake-up: flight {epoch} wants a poll, but none of its {pending} pending \
                 callers was woken"
            ));
        }
    }
    // Stats.
    let stats = memo.stats();
    let m = model.counters;
    let got = [
        stats.hits,
        stats.misses,
        stats.joins,
        stats.flights_started,
        stats.flights_committed,
        stats.flights_detached,
        stats.flights_failed,
        stats.flights_panicked,
        stats.flights_abandoned,
        stats.refreshes_started,
        stats.refreshes_committed,
        stats.refreshes_detached,
        stats.refreshes_failed,
    ];
    let want = [
        m.hits,
        m.misses,
        m.joins,
        m.started,
        m.committed,
        m.detached,
        m.failed,
        m.panicked,
        m.abandoned,
        m.refresh_started,
        m.refresh_committed,
        m.refresh_detached,
        m.refresh_failed,
    ];
    if got != want {
        return Err(format!(
            "stats [hits, misses, joins, started, committed, detached, failed, panicked, \
             abandoned, refreshes started, committed, detached, failed] = {got:?}, the model \
             says {want:?}"
        ));
    }
    let by_cause = |cause| model.removals.get(&cause).copied().unwrap_or(0);
    let got = [
        stats.invalidated,
        stats.removed,
        stats.replaced,
        stats.expired,
        stats.evicted,
        stats.cleared,
    ];
    let want = [
        by_cause(RemovalCause::Invalidated),
        by_cause(RemovalCause::Removed),
        by_cause(RemovalCause::Replaced),
        by_cause(RemovalCause::Expired),
        by_cause(RemovalCause::Evicted),
        by_cause(RemovalCause::Cleared),
    ];
    if got != want {
        return Err(format!("stats by cause {got:?}, the listener saw {want:?}"));
    }
    Ok(())
}

/// Matches removal reports against the model: each one the op was expected to make (then none
/// may be missing), or an expiry of an expired entry, or (by an op that stored an entry, in a
/// full bounded memo) an eviction of a ready entry; `len_before` is the memo's length before the
/// reports' cause ran.
pub(super) fn absorb(
    model: &mut Model,
    events: Vec<Event>,
    len_before: usize,
) -> Result<(), String> {
    let mut evicted = 0;
    for event @ (key, epoch, cause, id) in events {
        if !model.reported.insert(epoch) {
            return Err(format!("{event:?}: epoch {epoch} reported twice"));
        }
        *model.removals.entry(cause).or_default() += 1;
        if let Some(i) = model.expected.iter().position(|e| *e == event) {
            model.expected.remove(i);
            continue;
        }
        let slot = model.slots.get(&key).copied();
        let holds =
            matches!(slot, Some(Slot::Ready { epoch: e, id: v, .. }) if e == epoch && v == id);
        let ok = match cause {
            RemovalCause::Expired => holds && model.expired(&slot.unwrap()),
            RemovalCause::Evicted => holds && model.stored && model.config.capacity.is_some(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "unexpected removal report {event:?}; the key holds {slot:?}, the op stored: {}",
                model.stored
            ));
        }
        if cause == RemovalCause::Evicted {
            evicted += 1;
        }
        model.take_slot(key);
    }
    if !model.expected.is_empty() {
        return Err(format!("removals not reported: {:?}", model.expected));
    }
    // Evictions only when full, and no more than needed.
    if let Some(capacity) = model.config.capacity {
        let room = usize::from(capacity).saturating_sub(len_before);
        if evicted > usize::from(room == 0) {
            return Err(format!(
                "{evicted} evicted with room for {room} more (len before: {len_before})"
            ));
        }
    }
    Ok(())
}
