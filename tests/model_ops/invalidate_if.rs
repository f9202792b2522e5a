//! [`Op::InvalidateIf`]: the real sweep, recorded as seen from its predicate, replayed on
//! the model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use async_memo::{AsyncMemo, Epoch, RemovalCause};

use super::check::absorb;
use super::model::{Event, Log, Model, Slot};
use super::op::Pred;
use super::real::{Live, Val};

/// What happened inside one `invalidate_if`, in order, as seen from its predicate.
pub(super) enum Step {
    /// Removal reports made since the previous predicate call (or the start): those of the
    /// previous chosen item's compare-and-delete.
    Reports(Vec<Event>),
    /// The predicate was shown `key` (an entry's value id and epoch, or a flight) and answered.
    Judged {
        key: u8,
        shown: Option<(u64, Epoch)>,
        chosen: bool,
    },
    /// The predicate inserted a replacement for `key` (value id, epoch) while the memo held
    /// `len_before` entries; the insert made these reports.
    Inserted {
        key: u8,
        id: u64,
        epoch: Epoch,
        len_before: usize,
        reports: Vec<Event>,
    },
}

/// [`Op::InvalidateIf`]: runs the real sweep, recording what its predicate was shown and did,
/// then replays that on the model: each chosen item is `invalidate(key, epoch shown)` right
/// after its predicate call, and the reports made between two predicate calls must be exactly
/// the previous compare-and-delete's (or, after an insert, the insert's).
pub(super) fn invalidate_if(
    pred: Pred,
    memo: &AsyncMemo<u8, Val>,
    log: &Log,
    live: &Arc<Live>,
    model: &mut Model,
) -> Result<String, String> {
    let want: Vec<_> = model.snapshot(true).into_iter().collect();
    // The epoch of each flight shown (the predicate sees `None`; the sweep deletes by it).
    let flight_epochs: BTreeMap<u8, Epoch> = model
        .slots
        .iter()
        .filter_map(|(&key, slot)| match *slot {
            Slot::Flight(f) => Some((key, model.flights[f].epoch)),
            Slot::Ready { .. } => None,
        })
        .collect();
    let mut steps = Vec::new();
    let removed = memo.invalidate_if(|&key, entry| {
        steps.push(Step::Reports(std::mem::take(&mut *log.lock().unwrap())));
        let shown = entry.map(|e| (e.value().id, e.epoch()));
        if pred.replaces(key) {
            // Re-entrant: no lock is held while the predicate runs.
            let len_before = memo.len();
            let id = live.next_id.fetch_add(1, SeqCst);
            let stored = memo.insert(key, Val::new(id, live)).unwrap();
            steps.push(Step::Inserted {
                key,
                id,
                epoch: stored.epoch(),
                len_before,
                reports: std::mem::take(&mut *log.lock().unwrap()),
            });
        }
        let chosen = pred.chooses(key, shown.is_some());
        steps.push(Step::Judged { key, shown, chosen });
        chosen
    });
    let mut got: Vec<_> = steps
        .iter()
        .filter_map(|step| match *step {
            Step::Judged { key, shown, .. } => Some((key, shown)),
            _ => None,
        })
        .collect();
    got.sort();
    if got != want {
        return Err(format!(
            "invalidate_if({pred:?}) showed its predicate {got:?}, the model says {want:?}"
        ));
    }
    // Replay. The compare-and-delete of a chosen item runs after its predicate call, before
    // the next one; the last one's reports are left in the log for `check`.
    let mut chosen_item: Option<(u8, Option<(u64, Epoch)>)> = None;
    let mut want_removed = 0;
    let mut delete = |model: &mut Model, item: Option<(u8, Option<(u64, Epoch)>)>| {
        if let Some((key, shown)) = item {
            // The epoch the predicate was shown: the entry's, or the flight's.
            let epoch = match shown {
                Some((_, epoch)) => epoch,
                None => flight_epochs[&key],
            };
            if model.invalidate(key, epoch) {
                want_removed += 1;
            }
        }
    };
    for step in steps {
        match step {
            Step::Reports(reports) => {
                delete(model, chosen_item.take());
                model.stored = false;
                let len = model.ready_count();
                absorb(model, reports, len)?;
            }
            Step::Inserted {
                key,
                id,
                epoch,
                len_before,
                reports,
            } => {
                model.see_epoch(key, epoch)?;
                model.vacate(key, RemovalCause::Replaced);
                let slot = model.ready(key, epoch, id);
                model.slots.insert(key, slot);
                model.stored = true;
                absorb(model, reports, len_before)?;
            }
            Step::Judged { key, shown, chosen } => {
                if chosen {
                    chosen_item = Some((key, shown));
                }
            }
        }
    }
    delete(model, chosen_item.take());
    model.stored = false;
    if removed != want_removed {
        return Err(format!(
            "invalidate_if({pred:?}) removed {removed}, the model says {want_removed}"
        ));
    }
    Ok(format!("invalidate_if({pred:?}) = {removed} of {got:?}"))
}
