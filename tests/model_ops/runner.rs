//! The interpreter: builds the memo and the model, runs the ops, adopts the spawned refresh
//! tasks, and winds down checking that nothing is left alive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry, ManualClock};

use super::apply::apply;
use super::check::check;
use super::model::{Counters, Log, Model};
use super::op::{Config, Op, own_interval};
use super::real::{CallFut, InitRun, Live, RealCall, Val, payload_text};

/// Runs `ops` against a memo built with `config` and against the model. `Err` holds the first
/// violation, followed by a trace of the run.
pub fn run(config: Config, ops: &[Op]) -> Result<(), String> {
    let mut trace = String::new();
    let result = panic::catch_unwind(AssertUnwindSafe(|| run_inner(config, ops, &mut trace)))
        .unwrap_or_else(|payload| {
            Err(format!(
                "unexpected panic: {}",
                payload_text(payload.as_ref())
            ))
        });
    if std::env::var_os("MODEL_TRACE").is_some() {
        eprintln!("{config:?}\ntrace:\n{trace}");
    }
    result.map_err(|violation| format!("{violation}\n\n{config:?}\ntrace:\n{trace}"))
}

/// What the spawner of `refresh_after` received.
pub(super) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;
pub(super) type Spawned = Arc<Mutex<Vec<Task>>>;

pub(super) fn run_inner(config: Config, ops: &[Op], trace: &mut String) -> Result<(), String> {
    let live = Arc::new(Live::default());
    let clock = ManualClock::new();
    let log: Log = Arc::default();
    let mut builder = AsyncMemo::<u8, Val>::builder()
        .shards(1)
        .clock(clock.clone());
    if let Some(capacity) = config.capacity {
        builder = builder.max_capacity(u64::from(capacity));
    }
    if let Some(ttl) = config.ttl {
        builder = builder.time_to_live(Duration::from_secs(u64::from(ttl)));
    }
    if let Some(tti) = config.tti {
        builder = builder.time_to_idle(Duration::from_secs(u64::from(tti)));
    }
    let spawned: Spawned = Arc::default();
    if let Some(after) = config.refresh_after {
        let queue = Arc::clone(&spawned);
        let spawn = move |task| queue.lock().unwrap().push(task);
        builder = builder.refresh_after(Duration::from_secs(u64::from(after)), spawn);
        if config.per_entry {
            builder = builder
                .refresh_after_entry(|_, v: &Val| own_interval(v.id).map(Duration::from_secs));
        }
    }
    let memo = {
        let log = Arc::clone(&log);
        builder
            .on_removal(move |key: &u8, entry: Entry<Val>, cause| {
                let event = (*key, entry.epoch(), cause, entry.value().id);
                log.lock().unwrap().push(event);
            })
            .build()
    };
    let runs: Arc<Mutex<Vec<InitRun>>> = Arc::default();
    let mut model = Model {
        config,
        now: 0,
        slots: BTreeMap::new(),
        flights: Vec::new(),
        calls: Vec::new(),
        counters: Counters::default(),
        epochs: Vec::new(),
        last_epoch: HashMap::new(),
        reported: BTreeSet::new(),
        removals: HashMap::new(),
        expected: Vec::new(),
        stored: false,
        inits: Vec::new(),
        spawned: Vec::new(),
    };
    let mut real: BTreeMap<usize, RealCall<'_>> = BTreeMap::new();

    for (i, &op) in ops.iter().enumerate() {
        let _ = write!(trace, "{i:>3}: {op:?}");
        let len_before = memo.len();
        model.stored = false;
        let note = apply(op, &memo, &log, &clock, &live, &runs, &mut model, &mut real)?;
        let _ = writeln!(trace, "  => {note}");
        adopt_tasks(&spawned, &mut model, &mut real)?;
        check(&memo, &log, &live, &runs, &mut model, &real, len_before)?;
    }

    // Wind down: drop every call, then clear the memo; nothing may be left alive.
    let _ = writeln!(trace, "end: drop every call, then invalidate_all");
    let ids: Vec<usize> = real.keys().copied().collect();
    for c in ids {
        let len_before = memo.len();
        model.stored = false;
        drop(real.remove(&c));
        model.drop_call(c);
        check(&memo, &log, &live, &runs, &mut model, &real, len_before)?;
    }
    let len_before = memo.len();
    model.stored = false;
    apply(
        Op::InvalidateAll,
        &memo,
        &log,
        &clock,
        &live,
        &runs,
        &mut model,
        &mut real,
    )?;
    check(&memo, &log, &live, &runs, &mut model, &real, len_before)?;
    if !memo.is_empty() {
        return Err(format!("len {} after invalidate_all", memo.len()));
    }
    drop(real);
    drop(memo);
    let values = live.values.load(SeqCst);
    let futures = live.futures.load(SeqCst);
    if values != 0 || futures != 0 {
        return Err(format!(
            "leak: {values} values and {futures} init futures alive after the memo was dropped"
        ));
    }
    Ok(())
}

/// Takes what the spawner received during an op: exactly one task per automatic refresh the
/// model started, which become live calls (polled and dropped by `Poll` and `Drop`).
pub(super) fn adopt_tasks(
    spawned: &Spawned,
    model: &mut Model,
    real: &mut BTreeMap<usize, RealCall<'_>>,
) -> Result<(), String> {
    let tasks = std::mem::take(&mut *spawned.lock().unwrap());
    let want = std::mem::take(&mut model.spawned);
    if tasks.len() != want.len() {
        return Err(format!(
            "the spawner received {} refresh tasks, the model says {} (tasks c{want:?})",
            tasks.len(),
            want.len()
        ));
    }
    for (c, task) in want.into_iter().zip(tasks) {
        let fut: CallFut<'_> = Box::pin(async move {
            task.await;
            Ok(None)
        });
        let waker = Arc::default();
        let call = RealCall {
            fut,
            waker,
            pending_at: None,
        };
        real.insert(c, call);
    }
    Ok(())
}
