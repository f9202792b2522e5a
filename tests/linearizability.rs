//! Linearizability of the core operations under real concurrency: `get`, `insert`,
//! `invalidate`, `remove` and `get_or_init` with an init that is ready at once.
//!
//! Each round runs 3 threads × 4 random operations on 1 or 2 keys, started together behind a
//! barrier, and records a history: every operation's invocation and response as ticks of one
//! global atomic counter, and its result. A Wing & Gong search (with Lowe's memoization of
//! visited (linearized set, state) pairs) then looks for a sequential order that respects
//! real time (an operation that responded before another was invoked comes first) and that the
//! sequential specification below accepts.
//!
//! The specification is the contract's, with the flight made explicit, because a flight is
//! observable: `remove` (or `insert`) detaches a flight in progress, whose callers still receive
//! a value that is never stored. So a `get_or_init` whose init ran (it created the flight) is two
//! events in its thread's history: `Claim` (the key held nothing; it now holds a flight with a
//! fresh epoch), between the call's invocation and the moment its init ran, and `Commit` (the
//! flight's value is stored if the key still holds that flight), between then and the response.
//! A `get_or_init` whose init did not run returns either the key's ready entry or the value of the
//! flight it joined. Every epoch a key receives is above every epoch that key held before.
//!
//! Rounds: `ASYNC_MEMO_LIN_ROUNDS` (default 500).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_memo::{AsyncMemo, Epoch};

const THREADS: usize = 3;
const OPS: usize = 4;

/// One global clock: every invocation, response and init run takes a tick.
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, SeqCst)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Get(u8),
    Insert(u8, u64),
    Invalidate(u8, Epoch),
    Remove(u8),
    /// A `get_or_init` whose init did not run.
    GetOrInit(u8),
    /// The first half of a `get_or_init` whose init ran: it created a flight of this epoch.
    Claim(u8, u64, Epoch),
    /// The second half: the flight's value is committed if the key still holds the flight.
    Commit(u8, Epoch),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ret {
    Entry(Option<(u64, Epoch)>),
    Epoch(Epoch),
    Bool(bool),
    Unit,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    thread: usize,
    call: u64,
    ret_at: u64,
    op: Op,
    ret: Ret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Empty,
    Ready(u64, Epoch),
    Flight(u64, Epoch),
}

/// The sequential specification's state: per key, its slot and the highest epoch it ever held.
type State = Vec<(Slot, Option<Epoch>)>;

/// Applies `op` to `state` if the specification allows `ret`; returns the next state.
fn step(state: &State, op: Op, ret: Ret) -> Option<State> {
    let mut next = state.clone();
    let key = |k: u8| usize::from(k);
    let fresh = |state: &State, k: u8, e: Epoch| state[key(k)].1.is_none_or(|max| e > max);
    match (op, ret) {
        (Op::Get(k), Ret::Entry(got)) => {
            let want = match state[key(k)].0 {
                Slot::Ready(v, e) => Some((v, e)),
                _ => None,
            };
            (got == want).then_some(next)
        }
        (Op::Insert(k, v), Ret::Epoch(e)) => {
            if !fresh(state, k, e) {
                return None;
            }
            next[key(k)] = (Slot::Ready(v, e), Some(e));
            Some(next)
        }
        (Op::Invalidate(k, observed), Ret::Bool(got)) => {
            let want = match state[key(k)].0 {
                Slot::Ready(_, e) | Slot::Flight(_, e) => e == observed,
                Slot::Empty => false,
            };
            if want {
                next[key(k)].0 = Slot::Empty;
            }
            (got == want).then_some(next)
        }
        (Op::Remove(k), Ret::Entry(got)) => {
            let want = match state[key(k)].0 {
                Slot::Ready(v, e) => Some((v, e)),
                _ => None,
            };
            next[key(k)].0 = Slot::Empty;
            (got == want).then_some(next)
        }
        (Op::GetOrInit(k), Ret::Entry(Some(got))) => match state[key(k)].0 {
            Slot::Ready(v, e) | Slot::Flight(v, e) => ((v, e) == got).then_some(next),
            Slot::Empty => None,
        },
        (Op::Claim(k, v, e), Ret::Unit) => {
            if state[key(k)].0 != Slot::Empty || !fresh(state, k, e) {
                return None;
            }
            next[key(k)] = (Slot::Flight(v, e), Some(e));
            Some(next)
        }
        (Op::Commit(k, e), Ret::Unit) => {
            if let Slot::Flight(v, f) = state[key(k)].0 {
                if f == e {
                    next[key(k)].0 = Slot::Ready(v, e);
                }
            }
            Some(next)
        }
        _ => None,
    }
}

/// Wing & Gong with memoization: is there a real-time-respecting order the spec accepts?
fn linearizable(history: &[Event], keys: usize) -> bool {
    assert!(history.len() <= 64);
    let mut seen: HashSet<(u64, State)> = HashSet::new();
    let start: State = vec![(Slot::Empty, None); keys];
    search(history, 0, start, &mut seen)
}

fn search(history: &[Event], done: u64, state: State, seen: &mut HashSet<(u64, State)>) -> bool {
    if done.count_ones() as usize == history.len() {
        return true;
    }
    if !seen.insert((done, state.clone())) {
        return false;
    }
    let pending = |i: usize| done & (1 << i) == 0;
    // An event can go next only if no pending event responded before it was invoked.
    let horizon = (0..history.len())
        .filter(|&i| pending(i))
        .map(|i| history[i].ret_at)
        .min()
        .unwrap();
    for i in (0..history.len()).filter(|&i| pending(i)) {
        let event = &history[i];
        if event.call > horizon {
            continue;
        }
        if let Some(next) = step(&state, event.op, event.ret) {
            if search(history, done | (1 << i), next, seen) {
                return true;
            }
        }
    }
    false
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// One thread's part of a round.
fn worker(
    memo: &AsyncMemo<u8, u64>,
    thread: usize,
    seed: u64,
    keys: u64,
    seen: &Mutex<Vec<Epoch>>,
) -> Vec<Event> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut events = Vec::new();
    for i in 0..OPS {
        let k = rng.below(keys) as u8;
        let value = (thread * 100 + i) as u64 + 1;
        let choice = rng.below(10);
        let observed = {
            let seen = seen.lock().unwrap();
            (!seen.is_empty()).then(|| seen[rng.below(seen.len() as u64) as usize])
        };
        // A few spins of jitter, so the threads' operations interleave in varied ways.
        for _ in 0..rng.below(64) {
            std::hint::spin_loop();
        }
        let call = tick();
        let (op, ret) = match (choice, observed) {
            (0..=1, _) => (
                Op::Get(k),
                Ret::Entry(memo.get(&k).map(|e| (*e.value(), e.epoch()))),
            ),
            (2..=3, _) => (
                Op::Insert(k, value),
                Ret::Epoch(memo.insert(k, value).unwrap().epoch()),
            ),
            (4..=5, Some(e)) => (Op::Invalidate(k, e), Ret::Bool(memo.invalidate(&k, e))),
            (6, _) => (
                Op::Remove(k),
                Ret::Entry(memo.remove(&k).map(|e| (*e.value(), e.epoch()))),
            ),
            _ => {
                let ran: Arc<Mutex<Option<(u64, Epoch)>>> = Arc::default();
                let entry = {
                    let ran = Arc::clone(&ran);
                    futures::executor::block_on(memo.get_or_init_with_epoch(k, move |e| {
                        *ran.lock().unwrap() = Some((tick(), e));
                        async move { value }
                    }))
                };
                let ret_at = tick();
                let got = (*entry.value(), entry.epoch());
                seen.lock().unwrap().push(entry.epoch());
                match *ran.lock().unwrap() {
                    Some((at, e)) => {
                        assert_eq!(got, (value, e), "the creator receives its own value");
                        events.push(Event {
                            thread,
                            call,
                            ret_at: at,
                            op: Op::Claim(k, value, e),
                            ret: Ret::Unit,
                        });
                        events.push(Event {
                            thread,
                            call: at,
                            ret_at,
                            op: Op::Commit(k, e),
                            ret: Ret::Unit,
                        });
                    }
                    None => events.push(Event {
                        thread,
                        call,
                        ret_at,
                        op: Op::GetOrInit(k),
                        ret: Ret::Entry(Some(got)),
                    }),
                }
                continue;
            }
        };
        let ret_at = tick();
        match ret {
            Ret::Entry(Some((_, e))) | Ret::Epoch(e) => seen.lock().unwrap().push(e),
            _ => {}
        }
        events.push(Event {
            thread,
            call,
            ret_at,
            op,
            ret,
        });
    }
    events
}

fn rounds() -> u64 {
    std::env::var("ASYNC_MEMO_LIN_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

#[test]
fn concurrent_histories_are_linearizable() {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let rounds = rounds();
        let mut overlapping = 0;
        let mut flights = 0;
        let (mut joins, mut detached) = (0, 0);
        for round in 0..rounds {
            let memo: AsyncMemo<u8, u64> = AsyncMemo::new();
            let keys = 1 + round % 2;
            let seen = Mutex::new(Vec::new());
            // Started by spinning on a counter rather than parking at a barrier: parked threads
            // wake one by one, too far apart for their operations to overlap.
            let ready = AtomicU64::new(0);
            let mut history: Vec<Event> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (memo, seen, ready) = (&memo, &seen, &ready);
                        s.spawn(move || {
                            ready.fetch_add(1, SeqCst);
                            while ready.load(SeqCst) < THREADS as u64 {
                                std::thread::yield_now();
                            }
                            worker(memo, t, round * 7919 + t as u64 + 1, keys, seen)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            let stats = memo.stats();
            joins += stats.joins;
            detached += stats.flights_detached;
            history.sort_by_key(|e| e.call);
            // Epochs are unique: no two stores (or flights) share one.
            let mut fresh = HashSet::new();
            for e in &history {
                let epoch = match (e.op, e.ret) {
                    (Op::Claim(_, _, epoch), _) | (Op::Insert(..), Ret::Epoch(epoch)) => epoch,
                    _ => continue,
                };
                assert!(
                    fresh.insert(epoch),
                    "epoch {epoch} issued twice: {history:#?}"
                );
            }
            overlapping += usize::from(
                history
                    .windows(2)
                    .any(|w| w[0].thread != w[1].thread && w[1].call < w[0].ret_at),
            );
            flights += history
                .iter()
                .filter(|e| matches!(e.op, Op::GetOrInit(_)))
                .count();
            assert!(
                linearizable(&history, keys as usize),
                "round {round}: not linearizable:\n{history:#?}"
            );
        }
        eprintln!(
            "linearizability: {rounds} rounds, {overlapping} with overlapping operations, \
             {flights} get_or_init calls that joined or hit ({joins} joined a flight), \
             {detached} flights detached while in progress"
        );
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(payload) = body.join() {
                std::panic::resume_unwind(payload);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang: the rounds did not finish in 120 s"),
    }
}

/// The checker itself: it accepts what the spec allows and rejects what it does not.
#[test]
fn the_checker_rejects_what_the_spec_forbids() {
    let e = |n| {
        // Real epochs, in rising order.
        let memo: AsyncMemo<u8, u64> = AsyncMemo::new();
        (0..n)
            .map(|i| memo.insert(0, i).unwrap().epoch())
            .collect::<Vec<_>>()
    };
    let epochs = e(3);
    let ev = |thread, call, ret_at, op, ret| Event {
        thread,
        call,
        ret_at,
        op,
        ret,
    };
    // Sequential insert then get: fine.
    let ok = [
        ev(0, 0, 1, Op::Insert(0, 7), Ret::Epoch(epochs[1])),
        ev(1, 2, 3, Op::Get(0), Ret::Entry(Some((7, epochs[1])))),
    ];
    assert!(linearizable(&ok, 1));
    // A get that sees a value before it was inserted (no overlap): rejected.
    let early = [
        ev(1, 0, 1, Op::Get(0), Ret::Entry(Some((7, epochs[1])))),
        ev(0, 2, 3, Op::Insert(0, 7), Ret::Epoch(epochs[1])),
    ];
    assert!(!linearizable(&early, 1));
    // ...but fine if they overlap.
    let overlap = [
        ev(1, 0, 3, Op::Get(0), Ret::Entry(Some((7, epochs[1])))),
        ev(0, 1, 2, Op::Insert(0, 7), Ret::Epoch(epochs[1])),
    ];
    assert!(linearizable(&overlap, 1));
    // A stale invalidate that succeeds: rejected.
    let stale = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[0])),
        ev(0, 2, 3, Op::Insert(0, 2), Ret::Epoch(epochs[1])),
        ev(1, 4, 5, Op::Invalidate(0, epochs[0]), Ret::Bool(true)),
    ];
    assert!(!linearizable(&stale, 1));
    // A detached flight's value resurrected after a remove: rejected.
    let resurrected = [
        ev(0, 0, 1, Op::Claim(0, 5, epochs[0]), Ret::Unit),
        ev(1, 2, 3, Op::Remove(0), Ret::Entry(None)),
        ev(0, 4, 5, Op::Commit(0, epochs[0]), Ret::Unit),
        ev(1, 6, 7, Op::Get(0), Ret::Entry(Some((5, epochs[0])))),
    ];
    assert!(!linearizable(&resurrected, 1));
    // Epochs of a key must rise: an insert that goes back in time is rejected.
    let backwards = [
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Epoch(epochs[2])),
        ev(0, 2, 3, Op::Insert(0, 2), Ret::Epoch(epochs[1])),
    ];
    assert!(!linearizable(&backwards, 1));
    // Two flights at once for one key (single-flight broken): rejected.
    let two_flights = [
        ev(0, 0, 3, Op::Claim(0, 1, epochs[0]), Ret::Unit),
        ev(1, 1, 4, Op::Claim(0, 2, epochs[1]), Ret::Unit),
        ev(0, 5, 6, Op::Commit(0, epochs[0]), Ret::Unit),
        ev(1, 7, 8, Op::Commit(0, epochs[1]), Ret::Unit),
        ev(2, 9, 10, Op::Get(0), Ret::Entry(Some((1, epochs[0])))),
    ];
    assert!(!linearizable(&two_flights, 1));
}
