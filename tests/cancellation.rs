//! Cancellation (semantics 6): dropping any subset of callers at any await point never leaves
//! another caller waiting forever. The flight's future keeps running while at least one caller
//! waits (whoever polls drives it; it is not restarted when its creator goes away); when the
//! last caller is dropped the init future is dropped exactly once and the key is free again.
//! Also pins the futures-rs #2706 regression (a self-wake during the driver's last poll).
//!
//! Every interleaving here is driven by hand: `Sim` polls only callers whose waker was woken,
//! so a lost wake-up shows up as a stall (a failed assertion), never as a hang.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_memo::{AsyncMemo, Entry};
use common::{DropCounted, spawn_joined, within};
use futures::channel::oneshot;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A waker that counts its wake-ups and remembers whether it was woken since the last poll.
#[derive(Default)]
struct Flag {
    woken: AtomicBool,
    wakes: AtomicUsize,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.store(true, Ordering::SeqCst);
    }
}

fn flag() -> (Arc<Flag>, Waker) {
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    (flag, waker)
}

fn wakes(flag: &Flag) -> usize {
    flag.wakes.load(Ordering::SeqCst)
}

type BoxCall<'a> = Pin<Box<dyn Future<Output = Entry<u32>> + 'a>>;

/// A tiny executor that polls a task only when its waker was woken (or it is new), like a
/// real one. A caller that is never woken again is stuck forever: `run` reports the stall.
struct Sim<'a> {
    tasks: Vec<SimTask<'a>>,
}

struct SimTask<'a> {
    future: Option<BoxCall<'a>>,
    flag: Arc<Flag>,
    waker: Waker,
    output: Option<Entry<u32>>,
}

impl<'a> Sim<'a> {
    fn new() -> Self {
        Sim { tasks: Vec::new() }
    }

    fn spawn(&mut self, future: impl Future<Output = Entry<u32>> + 'a) -> usize {
        let (flag, waker) = flag();
        flag.woken.store(true, Ordering::SeqCst);
        self.tasks.push(SimTask {
            future: Some(Box::pin(future)),
            flag,
            waker,
            output: None,
        });
        self.tasks.len() - 1
    }

    /// Polls woken tasks until none is woken.
    fn run(&mut self) {
        loop {
            let mut progress = false;
            for task in &mut self.tasks {
                let Some(future) = task.future.as_mut() else {
                    continue;
                };
                if !task.flag.woken.swap(false, Ordering::SeqCst) {
                    continue;
                }
                progress = true;
                if let Poll::Ready(entry) =
                    future.as_mut().poll(&mut Context::from_waker(&task.waker))
                {
                    task.output = Some(entry);
                    task.future = None;
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Drops a caller (its future), wherever it stands.
    fn cancel(&mut self, task: usize) {
        self.tasks[task].future = None;
    }

    fn output(&self, task: usize) -> Option<&Entry<u32>> {
        self.tasks[task].output.as_ref()
    }

    /// The tasks that neither finished nor were cancelled.
    fn stuck(&self) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&i| self.tasks[i].future.is_some())
            .collect()
    }
}

/// Counts init closures run and init futures dropped.
#[derive(Default)]
struct Counters {
    inits: AtomicUsize,
    futures_dropped: Arc<AtomicUsize>,
}

impl Counters {
    fn inits(&self) -> usize {
        self.inits.load(Ordering::SeqCst)
    }
    fn dropped(&self) -> usize {
        self.futures_dropped.load(Ordering::SeqCst)
    }
}

/// An init closure: counts itself and returns `future` wrapped in a drop counter.
fn counted<F: Future>(
    counters: &Arc<Counters>,
    future: F,
) -> impl FnOnce() -> DropCounted<Pin<Box<F>>> + use<F> {
    let counters = Arc::clone(counters);
    move || {
        counters.inits.fetch_add(1, Ordering::SeqCst);
        DropCounted {
            future: Box::pin(future),
            drops: Arc::clone(&counters.futures_dropped),
        }
    }
}

/// An init future that waits for `gates` one after another, then returns `value`.
async fn gated(gates: Vec<oneshot::Receiver<()>>, value: u32) -> u32 {
    for gate in gates {
        gate.await.expect("gate sender dropped");
    }
    value
}

fn gates(n: usize) -> (Vec<oneshot::Sender<()>>, Vec<oneshot::Receiver<()>>) {
    (0..n).map(|_| oneshot::channel()).unzip()
}

/// An init future scripted by the test: what each poll does is set from outside.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Pending,
    /// Wakes its own waker during the poll, then returns `Pending` (a yield).
    WakeSelfThenPending,
    Ready(u32),
}

struct Script {
    act: parking_lot_free::Cell<Act>,
    polls: AtomicUsize,
    /// The waker of the last poll: the test wakes it as a timer or socket would.
    waker: std::sync::Mutex<Option<Waker>>,
    /// Runs once, inside the next poll (to act while the flight is being polled).
    during_poll: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Script {
    /// Wakes the future from outside, as its timer or socket would.
    fn wake(&self) {
        let waker = self.waker.lock().unwrap().clone();
        waker.expect("polled once").wake();
    }
}

/// A `Mutex` wrapper, so the script can be set while the future is parked in the flight.
mod parking_lot_free {
    use std::sync::Mutex;
    pub struct Cell<T>(Mutex<T>);
    impl<T: Copy> Cell<T> {
        pub fn new(value: T) -> Self {
            Cell(Mutex::new(value))
        }
        pub fn get(&self) -> T {
            *self.0.lock().unwrap()
        }
        pub fn set(&self, value: T) {
            *self.0.lock().unwrap() = value;
        }
    }
}

fn script(act: Act) -> Arc<Script> {
    Arc::new(Script {
        act: parking_lot_free::Cell::new(act),
        polls: AtomicUsize::new(0),
        waker: std::sync::Mutex::new(None),
        during_poll: std::sync::Mutex::new(None),
    })
}

struct Scripted(Arc<Script>);

impl Future for Scripted {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.0.polls.fetch_add(1, Ordering::SeqCst);
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        let hook = self.0.during_poll.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        match self.0.act.get() {
            Act::Pending => Poll::Pending,
            Act::WakeSelfThenPending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Act::Ready(value) => Poll::Ready(value),
        }
    }
}

fn poll_with<F: Future + ?Sized>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Pins: the creator going away does not restart the flight (one init, one future) and the
/// remaining callers, woken by the future's progress, receive its value.
#[test]
fn dropping_creator_keeps_flight_running_without_restart() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (tx, rx) = gates(2);
    let mut sim = Sim::new();
    let creator = sim.spawn(memo.get_or_init(1, counted(&counters, gated(rx, 7))));
    let others: Vec<usize> = (0..3)
        .map(|_| sim.spawn(memo.get_or_init(1, counted(&counters, gated(Vec::new(), 99)))))
        .collect();
    sim.run();
    let mut tx = tx.into_iter();
    // The future gets half way: past the first gate.
    tx.next().unwrap().send(()).unwrap();
    sim.run();
    assert_eq!(sim.stuck().len(), 4, "everybody waits for the second gate");

    sim.cancel(creator);
    assert_eq!(
        counters.dropped(),
        0,
        "others still wait: the future lives on"
    );
    assert!(memo.epoch(&1).is_some(), "the flight is still in the map");

    tx.next().unwrap().send(()).unwrap();
    sim.run();
    assert_eq!(sim.stuck(), Vec::<usize>::new(), "a caller was never woken");
    assert_eq!(counters.inits(), 1, "the flight was restarted");
    assert_eq!(counters.dropped(), 1);
    let epoch = memo.get(&1).expect("committed").epoch();
    for &task in &others {
        let entry = sim.output(task).unwrap();
        assert_eq!((*entry.value(), entry.epoch()), (7, epoch));
    }
}

/// Pins: the same on a real multi-threaded runtime, with the creator's task aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_creator_task_does_not_restart_flight() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (gate_tx, gate_rx) = oneshot::channel();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let creator = {
        let memo = memo.clone();
        let init = counted(&counters, async move {
            started_tx.send(()).unwrap();
            gate_rx.await.unwrap();
            5
        });
        tokio::spawn(async move { *memo.get_or_init(1, init).await.value() })
    };
    started_rx.await.unwrap();
    // Joiners: each reports once it has polled (and so joined the flight).
    let mut joiners = Vec::new();
    for _ in 0..4 {
        joiners.push(spawn_joined(&memo, 1, counted(&counters, async { 99 })).await);
    }
    creator.abort();
    assert!(within(creator).await.unwrap_err().is_cancelled());
    assert_eq!(
        counters.dropped(),
        0,
        "joiners still wait: the future lives on"
    );
    gate_tx.send(()).unwrap();
    let mut seen = Vec::new();
    for joiner in joiners {
        seen.push(within(joiner).await.unwrap());
    }
    assert_eq!(counters.inits(), 1, "the flight was restarted");
    assert_eq!(counters.dropped(), 1);
    let epoch = memo.epoch(&1).unwrap();
    assert!(seen.iter().all(|&s| s == (5, epoch)), "{seen:?}");
}

/// Pins: when the last caller is dropped the init future is dropped (exactly once, right
/// then) and the key is free: the next call starts a new flight with a newer epoch.
#[test]
fn dropping_every_caller_drops_init_future_once_and_frees_key() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (_tx, rx) = gates(1);
    let mut sim = Sim::new();
    let a = sim.spawn(memo.get_or_init(1, counted(&counters, gated(rx, 1))));
    let b = sim.spawn(memo.get_or_init(1, counted(&counters, gated(Vec::new(), 2))));
    sim.run();
    let flight_epoch = memo.epoch(&1).expect("a flight is in progress");
    assert!(memo.get(&1).is_none());

    sim.cancel(a);
    assert_eq!(counters.dropped(), 0, "b still waits");
    assert_eq!(memo.epoch(&1), Some(flight_epoch));
    sim.cancel(b);
    assert_eq!(counters.dropped(), 1, "the last caller drops the future");
    assert_eq!(memo.epoch(&1), None, "the key is free again");
    assert!(memo.is_empty());

    // The next call starts a new flight (it does not join the abandoned one).
    let entry =
        futures::executor::block_on(memo.get_or_init(1, counted(&counters, gated(Vec::new(), 3))));
    assert_eq!(*entry.value(), 3);
    assert!(entry.epoch() > flight_epoch);
    assert_eq!(counters.inits(), 2);
    assert_eq!(counters.dropped(), 2);
}

/// Pins: a lone creator dropped after its first poll abandons the flight at once.
#[test]
fn dropping_lone_creator_after_first_poll_frees_key() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (_tx, rx) = gates(1);
    let (_flag, waker) = flag();
    let mut call = Box::pin(memo.get_or_init("k", counted(&counters, gated(rx, 1))));
    assert!(poll_with(call.as_mut(), &waker).is_pending());
    assert!(memo.epoch("k").is_some());
    drop(call);
    assert_eq!((counters.inits(), counters.dropped()), (1, 1));
    assert_eq!(memo.epoch("k"), None);
}

/// Pins: a call dropped before its first poll does nothing at all (no init, no flight).
#[test]
fn dropping_call_before_first_poll_runs_nothing() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let call = memo.get_or_init("k", counted(&counters, gated(Vec::new(), 1)));
    drop(call);
    assert_eq!((counters.inits(), counters.dropped()), (0, 0));
    assert_eq!(memo.epoch("k"), None);
}

/// Pins: dropping any proper subset of three callers at any stage of the flight (before the
/// first poll, while waiting on the first or second gate, after the future finished but before
/// they were polled again) leaves every other caller woken and finishing with the one value.
#[test]
fn dropping_any_subset_of_callers_at_any_await_point_never_strands_the_rest() {
    const CALLERS: usize = 3;
    const STAGES: usize = 4;
    for victims in 1..(1u32 << CALLERS) - 1 {
        for stage in 0..STAGES {
            let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
            let counters = Arc::new(Counters::default());
            let mut sim = Sim::new();
            let mut senders = Vec::new();
            for caller in 0..CALLERS {
                let (tx, rx) = gates(2);
                senders.push(tx);
                let value = 10 + caller as u32;
                sim.spawn(memo.get_or_init(7, counted(&counters, gated(rx, value))));
            }
            let cancel = |sim: &mut Sim<'_>| {
                for caller in 0..CALLERS {
                    if victims & (1 << caller) != 0 {
                        sim.cancel(caller);
                    }
                }
            };
            // Stage 0: before any poll. Then the first run creates the flight.
            if stage == 0 {
                cancel(&mut sim);
            }
            sim.run();
            assert_eq!(counters.inits(), 1);
            let creator = (0..CALLERS).find(|c| victims & (1 << c) == 0 || stage > 0);
            let creator = creator.unwrap();
            let mut gate_tx = senders.swap_remove(creator).into_iter();
            drop(senders); // the other callers' gates never open: their inits must not run
            // Stage 1: all wait for the first gate.
            if stage == 1 {
                cancel(&mut sim);
            }
            gate_tx.next().unwrap().send(()).unwrap();
            sim.run();
            // Stage 2: all wait for the second gate.
            if stage == 2 {
                cancel(&mut sim);
            }
            gate_tx.next().unwrap().send(()).unwrap();
            // Stage 3: the flight's future was woken; its callers were woken but not polled.
            if stage == 3 {
                cancel(&mut sim);
            }
            sim.run();
            assert_eq!(
                sim.stuck(),
                Vec::<usize>::new(),
                "victims {victims:#05b}, stage {stage}: a caller was stranded"
            );
            assert_eq!(counters.inits(), 1, "victims {victims:#05b}, stage {stage}");
            assert_eq!(
                counters.dropped(),
                1,
                "victims {victims:#05b}, stage {stage}"
            );
            let committed = memo.get(&7).expect("the flight committed");
            for caller in 0..CALLERS {
                if victims & (1 << caller) == 0 {
                    let entry = sim.output(caller).unwrap();
                    assert_eq!(entry.epoch(), committed.epoch());
                    assert_eq!(entry.value(), committed.value());
                }
            }
        }
    }
}

/// Pins futures-rs #2706: caller B registers while caller A is polling the init future; during
/// that poll the future wakes itself and returns `Pending`; A is dropped right after, before it
/// is polled again. B must be woken and, when polled, must finish the flight.
#[test]
fn futures_rs_2706_lost_wakeup_when_driver_dropped() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let script = script(Act::Pending);
    let (_a_flag, a_waker) = flag();
    let (b_flag, b_waker) = flag();
    let mut a = Box::pin(memo.get_or_init(1, counted(&counters, Scripted(Arc::clone(&script)))));
    assert!(poll_with(a.as_mut(), &a_waker).is_pending()); // A creates the flight and parks it.

    std::thread::scope(|scope| {
        // B lives on its own thread, so that it can be polled while A's poll is in progress.
        let (poll_b, b_polls) = mpsc::channel::<()>();
        let (b_polled, b_results) = mpsc::channel::<bool>();
        let b_init = counted(&counters, Scripted(Arc::clone(&script)));
        let memo = &memo;
        let b_thread = scope.spawn(move || {
            let mut b = Box::pin(memo.get_or_init(1, b_init));
            for () in b_polls {
                let ready = poll_with(b.as_mut(), &b_waker);
                let done = ready.is_ready();
                let _ = b_polled.send(done); // the last poll has no listener
                if let Poll::Ready(entry) = ready {
                    return Some(entry);
                }
            }
            None
        });

        // The future's timer fires: A is woken and drives. During that poll B joins (the flight
        // is being polled, so B registers and waits), then the future wakes itself (a yield).
        script.act.set(Act::WakeSelfThenPending);
        let during = {
            let poll_b = poll_b.clone();
            let b_results = std::sync::Mutex::new(b_results);
            move || {
                poll_b.send(()).unwrap();
                let ready = b_results.lock().unwrap().recv().unwrap();
                assert!(!ready, "B joined the flight A is polling, and waits");
            }
        };
        *script.during_poll.lock().unwrap() = Some(Box::new(during));
        script.wake();
        assert!(poll_with(a.as_mut(), &a_waker).is_pending());
        assert_eq!(script.polls.load(Ordering::SeqCst), 2);
        assert_eq!(wakes(&b_flag), 0, "nothing woke B yet");

        // A goes away without answering its own wake-up.
        drop(a);
        assert_eq!(counters.dropped(), 0);
        assert!(
            wakes(&b_flag) >= 1,
            "futures-rs #2706: the future asked for a poll, its driver left, and B was never woken"
        );

        script.act.set(Act::Ready(42));
        poll_b.send(()).unwrap();
        drop(poll_b);
        let entry = b_thread
            .join()
            .unwrap()
            .expect("B, once woken, drives the flight to its end");
        assert_eq!(*entry.value(), 42);
        assert_eq!(memo.epoch(&1), Some(entry.epoch()));
    });
    assert_eq!((counters.inits(), counters.dropped()), (1, 1));
}

/// Pins the other half of invariant 6: a driver that keeps going after its future woke itself
/// is woken by the memo (so a single caller never stalls on a yield).
#[test]
fn self_wake_during_poll_wakes_the_driver() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let script = script(Act::WakeSelfThenPending);
    let (a_flag, a_waker) = flag();
    let mut a = Box::pin(memo.get_or_init(1, || Scripted(Arc::clone(&script))));
    assert!(poll_with(a.as_mut(), &a_waker).is_pending());
    assert!(wakes(&a_flag) >= 1, "the yield was lost");
    script.act.set(Act::Ready(1));
    assert!(poll_with(a.as_mut(), &a_waker).is_ready());
}

/// Pins: a waiter dropped while another thread is inside the future's poll leaves the flight
/// running; the driver commits and the remaining waiter is woken and receives the value.
#[test]
fn dropping_waiter_while_another_thread_drives() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (in_poll_tx, in_poll_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    {
        let driver_init = counted(&counters, async move {
            // Block this thread inside the poll until the test has arranged the waiters.
            in_poll_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            9
        });
        // Not a scoped thread: if the test fails, the driver must not keep it from ending.
        let driver_memo = memo.clone();
        std::thread::spawn(move || {
            let entry = futures::executor::block_on(driver_memo.get_or_init(1, driver_init));
            done_tx.send((*entry.value(), entry.epoch())).unwrap();
        });
        in_poll_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("driver never started");

        let (b_flag, b_waker) = flag();
        let (c_flag, c_waker) = flag();
        let mut b = Box::pin(memo.get_or_init(1, counted(&counters, async { 0 })));
        let mut c = Box::pin(memo.get_or_init(1, counted(&counters, async { 0 })));
        assert!(poll_with(b.as_mut(), &b_waker).is_pending());
        assert!(poll_with(c.as_mut(), &c_waker).is_pending());
        drop(b);
        assert_eq!(wakes(&b_flag), 0);
        release_tx.send(()).unwrap();
        let (value, epoch) = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the driver hung");
        assert!(
            wakes(&c_flag) >= 1,
            "the waiter was not woken at completion"
        );
        let Poll::Ready(entry) = poll_with(c.as_mut(), &c_waker) else {
            panic!("the flight is done");
        };
        assert_eq!((value, *entry.value()), (9, 9));
        assert_eq!(entry.epoch(), epoch);
    }
    assert_eq!((counters.inits(), counters.dropped()), (1, 1));
    assert!(memo.get(&1).is_some());
}

/// Pins: after a detach, dropping the callers of the detached flight never touches the new
/// flight of the key (the abandon is compare-and-delete on the flight's identity).
#[test]
fn abandoning_detached_flight_leaves_new_flight_alone() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (_old_tx, old_rx) = gates(1);
    let (new_tx, new_rx) = gates(1);
    let mut sim = Sim::new();
    let old = sim.spawn(memo.get_or_init(1, counted(&counters, gated(old_rx, 1))));
    sim.run();
    let old_epoch = memo.epoch(&1).unwrap();
    assert!(memo.invalidate(&1, old_epoch), "detach the flight");
    let new = sim.spawn(memo.get_or_init(1, counted(&counters, gated(new_rx, 2))));
    sim.run();
    let new_epoch = memo.epoch(&1).unwrap();
    assert!(new_epoch > old_epoch);
    assert_eq!(
        counters.inits(),
        2,
        "a call after the detach starts a new flight"
    );

    sim.cancel(old);
    assert_eq!(
        counters.dropped(),
        1,
        "the detached flight's future is dropped"
    );
    assert_eq!(memo.epoch(&1), Some(new_epoch), "the new flight survives");
    new_tx.into_iter().next().unwrap().send(()).unwrap();
    sim.run();
    assert_eq!(sim.output(new).unwrap().epoch(), new_epoch);
    assert_eq!(memo.get(&1).unwrap().epoch(), new_epoch);
    assert_eq!(counters.dropped(), 2);
}

/// Pins: more waiters than one wake batch (the memo wakes callers in fixed-size batches) are
/// all woken, including after some of them were dropped.
#[test]
fn more_callers_than_one_wake_batch_are_all_woken() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let counters = Arc::new(Counters::default());
    let (tx, rx) = gates(1);
    let mut sim = Sim::new();
    sim.spawn(memo.get_or_init(1, counted(&counters, gated(rx, 5))));
    for _ in 0..99 {
        sim.spawn(memo.get_or_init(1, counted(&counters, gated(Vec::new(), 0))));
    }
    sim.run();
    for caller in (1..100).step_by(3) {
        sim.cancel(caller);
    }
    tx.into_iter().next().unwrap().send(()).unwrap();
    sim.run();
    assert_eq!(sim.stuck(), Vec::<usize>::new(), "a caller was never woken");
    assert_eq!((counters.inits(), counters.dropped()), (1, 1));
    let epoch = memo.epoch(&1).unwrap();
    assert!(
        (0..100)
            .filter_map(|c| sim.output(c))
            .all(|e| e.epoch() == epoch)
    );
}
