//! [`Op::Peek`](super::Op::Peek): the quiet reads, `peek` and `entry_info`, checked against
//! the model without changing it — no touch, no counter, no purge — so any side effect of the
//! real read (an idle deadline moved, a hit counted, an expired entry purged) shows up as a
//! later divergence.

use std::time::Duration;

use async_memo::AsyncMemo;

use super::model::{Model, Slot};
use super::real::Val;

/// Checks `peek(key)` and `entry_info(key)` against the model; returns the trace line.
pub(super) fn peek(memo: &AsyncMemo<u8, Val>, model: &Model, key: u8) -> Result<String, String> {
    let peeked = memo.peek(&key).map(|e| (e.value().id, e.epoch()));
    let ready = match model.slots.get(&key).copied() {
        Some(s @ Slot::Ready { .. }) if !model.expired(&s) => Some(s),
        _ => None,
    };
    let want = ready.map(|s| match s {
        Slot::Ready { id, epoch, .. } => (id, epoch),
        Slot::Flight(_) => unreachable!(),
    });
    if peeked != want {
        return Err(format!(
            "peek({key}) returned {peeked:?}, the model says {want:?}"
        ));
    }
    let info = memo.entry_info(&key);
    let Some(Slot::Ready {
        epoch,
        deadline,
        last_read,
        refresh_at,
        ..
    }) = ready
    else {
        if info.is_some() {
            return Err(format!(
                "entry_info({key}) returned {info:?}, the model has no entry"
            ));
        }
        return Ok(format!("peek({key}) = None"));
    };
    let now = model.now;
    let left = |at: u64| Duration::from_secs(at.saturating_sub(now));
    let want = (
        epoch,
        deadline.map(left),
        model.config.tti.map(|t| left(last_read + u64::from(t))),
        refresh_at.map(left),
    );
    let got = info.map(|i| {
        (
            i.epoch(),
            i.time_to_live_left(),
            i.time_to_idle_left(),
            i.refresh_due_in(),
        )
    });
    if got != Some(want) {
        return Err(format!(
            "entry_info({key}) returned (epoch, live, idle, refresh) {got:?}, the model says \
             {want:?}"
        ));
    }
    Ok(format!(
        "peek({key}) = {peeked:?}; info (epoch, live, idle, refresh) {want:?}"
    ))
}
