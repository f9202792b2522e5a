//! Drop counters: values (`V`, and every clone of it), keys, errors and init futures are
//! dropped exactly once, and at the right moment, on every path: commit, detach (invalidate,
//! remove, insert, invalidate_all) then finish, error, panic, abandonment, insert replacing,
//! remove, invalidate (current and stale), invalidate_all, and the memo dropped with entries
//! and with a flight in progress. (Semantics 3, 4, 6, 7, 8 seen from the allocator.)
//!
//! `Val`, `Key` and `Err` count their live instances: +1 on creation and on clone, -1 on drop,
//! so a value that is never dropped (a leak) or dropped too early shows up as a wrong live count;
//! init futures are counted when made and when dropped (`common::DropCounted`).

mod common;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::task::Poll;

use async_memo::AsyncMemo;
use common::{DropCounted, poll_once};
use futures::channel::oneshot;
use futures::executor::block_on;

#[derive(Debug, Default)]
struct Live {
    values: AtomicIsize,
    keys: AtomicIsize,
    errors: AtomicIsize,
    futures_created: AtomicUsize,
    futures_dropped: Arc<AtomicUsize>,
}

impl Live {
    fn values(&self) -> isize {
        self.values.load(Ordering::SeqCst)
    }
    fn keys(&self) -> isize {
        self.keys.load(Ordering::SeqCst)
    }
    fn errors(&self) -> isize {
        self.errors.load(Ordering::SeqCst)
    }
    /// (created, dropped) init futures.
    fn futures(&self) -> (usize, usize) {
        (
            self.futures_created.load(Ordering::SeqCst),
            self.futures_dropped.load(Ordering::SeqCst),
        )
    }
}

/// A value counted while alive.
#[derive(Debug)]
struct Val {
    id: u32,
    live: Arc<Live>,
}

impl Val {
    fn new(id: u32, live: &Arc<Live>) -> Self {
        live.values.fetch_add(1, Ordering::SeqCst);
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
        self.live.values.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A key counted while alive; hashes and compares by `id`.
struct Key {
    id: u32,
    live: Arc<Live>,
}

impl Key {
    fn new(id: u32, live: &Arc<Live>) -> Self {
        live.keys.fetch_add(1, Ordering::SeqCst);
        Key {
            id,
            live: Arc::clone(live),
        }
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        Key::new(self.id, &self.live)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.live.keys.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Key {}
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}
impl std::borrow::Borrow<u32> for Key {
    fn borrow(&self) -> &u32 {
        &self.id
    }
}

/// An error counted while alive.
#[derive(Debug)]
struct Err(Arc<Live>);

impl Err {
    fn new(live: &Arc<Live>) -> Self {
        live.errors.fetch_add(1, Ordering::SeqCst);
        Err(Arc::clone(live))
    }
}

impl Drop for Err {
    fn drop(&mut self) {
        self.0.errors.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An init future counted from creation to drop.
fn counted<F: Future>(
    live: &Arc<Live>,
    future: F,
) -> impl FnOnce() -> DropCounted<Pin<Box<F>>> + use<F> {
    let live = Arc::clone(live);
    move || {
        live.futures_created.fetch_add(1, Ordering::SeqCst);
        DropCounted {
            future: Box::pin(future),
            drops: Arc::clone(&live.futures_dropped),
        }
    }
}

/// An init future that waits for `gate` and then returns a value made from `id`.
fn gated(
    live: &Arc<Live>,
    gate: oneshot::Receiver<()>,
    id: u32,
) -> impl Future<Output = Val> + use<> {
    let live = Arc::clone(live);
    async move {
        gate.await.unwrap();
        Val::new(id, &live)
    }
}

fn memo() -> (AsyncMemo<u32, Val>, Arc<Live>) {
    (AsyncMemo::new(), Arc::new(Live::default()))
}

/// Pins: a committed flight leaves exactly one value alive (the memo's): the flight's own
/// copy and the callers' copies are all dropped; the future is dropped once, at completion.
#[test]
fn commit_path_keeps_one_value_and_drops_future_once() {
    let (memo, live) = memo();
    let (tx, rx) = oneshot::channel();
    let mut a = Box::pin(memo.get_or_init(1, counted(&live, gated(&live, rx, 1))));
    let mut b =
        Box::pin(memo.get_or_init(1, counted(&live, gated(&live, oneshot::channel().1, 9))));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(live.futures(), (1, 0));
    tx.send(()).unwrap();
    let Poll::Ready(ea) = poll_once(a.as_mut()) else {
        panic!()
    };
    assert_eq!(live.futures(), (1, 1), "dropped at completion");
    let Poll::Ready(eb) = poll_once(b.as_mut()) else {
        panic!()
    };
    drop((a, b));
    assert_eq!(live.values(), 3, "memo + two callers");
    drop((ea, eb));
    assert_eq!(live.values(), 1, "only the memo's copy");
    drop(memo);
    assert_eq!(live.values(), 0);
    assert_eq!(live.futures(), (1, 1));
}

/// Pins: a flight detached by each of invalidate, remove, insert and invalidate_all finishes,
/// its callers get the value, and nothing of it stays in the memo.
#[test]
fn detached_flight_finishes_and_leaves_nothing_behind() {
    for detach in ["invalidate", "remove", "insert", "invalidate_all"] {
        let (memo, live) = memo();
        let (tx, rx) = oneshot::channel();
        let mut call = Box::pin(memo.get_or_init(1, counted(&live, gated(&live, rx, 1))));
        assert!(poll_once(call.as_mut()).is_pending());
        match detach {
            "invalidate" => assert!(memo.invalidate(&1, memo.epoch(&1).unwrap())),
            "remove" => assert!(memo.remove(&1).is_none()),
            "insert" => drop(memo.insert(1, Val::new(2, &live))),
            _ => memo.invalidate_all(),
        }
        let kept = if detach == "insert" { 1 } else { 0 };
        assert_eq!(live.values(), kept, "{detach}");
        assert_eq!(
            live.futures(),
            (1, 0),
            "{detach}: detaching never drops the future"
        );
        tx.send(()).unwrap();
        let Poll::Ready(entry) = poll_once(call.as_mut()) else {
            panic!()
        };
        assert_eq!(entry.value().id, 1);
        assert_eq!(live.futures(), (1, 1), "{detach}");
        drop(call);
        drop(entry);
        assert_eq!(
            live.values(),
            kept,
            "{detach}: the detached value was stored"
        );
        drop(memo);
        assert_eq!(live.values(), 0, "{detach}");
    }
}

/// Pins: an error is shared as one `Arc<E>` and dropped once, after its last receiver; no value
/// is created or stored; the future is dropped once.
#[test]
fn error_path_drops_error_and_future_once() {
    let (memo, live) = memo();
    let (tx, rx) = oneshot::channel::<()>();
    let l = Arc::clone(&live);
    let mut a = Box::pin(memo.get_or_try_init(
        1,
        counted(&live, async move {
            rx.await.unwrap();
            Result::<Val, Err>::Err(Err::new(&l))
        }),
    ));
    let l = Arc::clone(&live);
    let mut b =
        Box::pin(memo.get_or_try_init(1, move || async move { Ok::<_, Err>(Val::new(0, &l)) }));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    tx.send(()).unwrap();
    let Poll::Ready(Result::Err(ea)) = poll_once(a.as_mut()) else {
        panic!()
    };
    let Poll::Ready(Result::Err(eb)) = poll_once(b.as_mut()) else {
        panic!()
    };
    assert!(Arc::ptr_eq(&ea, &eb));
    assert_eq!(live.futures(), (1, 1));
    assert_eq!(live.errors(), 1);
    drop((a, b));
    drop(ea);
    assert_eq!(live.errors(), 1, "B still holds it");
    drop(eb);
    assert_eq!(live.errors(), 0);
    assert_eq!(live.values(), 0, "nothing stored, B's init never ran");
    assert!(memo.is_empty() && memo.epoch(&1).is_none());
}

/// Pins: a panicking future is dropped once (with what it owned); no value survives.
#[test]
fn panic_path_drops_future_and_its_values_once() {
    let (memo, live) = memo();
    let l = Arc::clone(&live);
    let mut call = Box::pin(memo.get_or_init(
        1,
        counted(&live, async move {
            let _held = Val::new(1, &l);
            futures::future::ready(()).await;
            if l.values() > 0 {
                panic!("boom");
            }
            Val::new(2, &l)
        }),
    ));
    assert!(catch_unwind(AssertUnwindSafe(|| poll_once(call.as_mut()))).is_err());
    assert_eq!(live.futures(), (1, 1));
    assert_eq!(live.values(), 0);
    drop(call);
    assert_eq!(live.futures(), (1, 1));
    assert!(memo.epoch(&1).is_none());
}

/// Pins: abandonment drops the future (and what it owns) exactly once, when the last caller
/// goes, not before.
#[test]
fn abandonment_drops_future_once_when_last_caller_goes() {
    let (memo, live) = memo();
    let l = Arc::clone(&live);
    let (_tx, rx) = oneshot::channel::<()>();
    let init = counted(&live, async move {
        let held = Val::new(1, &l);
        rx.await.unwrap();
        held
    });
    let mut a = Box::pin(memo.get_or_init(1, init));
    let mut b = Box::pin(memo.get_or_init(1, counted(&live, async { unreachable!() })));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!((live.futures(), live.values()), ((1, 0), 1));
    drop(a);
    assert_eq!((live.futures(), live.values()), ((1, 0), 1));
    drop(b);
    assert_eq!((live.futures(), live.values()), ((1, 1), 0));
    drop(memo);
    assert_eq!(live.futures(), (1, 1));
}

/// Pins: insert over an entry drops the old value once, at the insert; remove hands the value
/// out (dropped with the returned entry); invalidate drops it at once; a stale invalidate drops
/// nothing; invalidate_all drops everything.
#[test]
fn insert_remove_invalidate_drop_values_once() {
    let (memo, live) = memo();
    let first = memo.insert(1, Val::new(1, &live)).unwrap().epoch();
    assert_eq!(live.values(), 1, "the returned entry was dropped");
    let second = memo.insert(1, Val::new(2, &live)).unwrap().epoch();
    assert_eq!(live.values(), 1, "the replaced value was dropped");
    assert!(!memo.invalidate(&1, first));
    assert_eq!(live.values(), 1, "a stale invalidate drops nothing");
    assert!(memo.invalidate(&1, second));
    assert_eq!(live.values(), 0);

    memo.insert(2, Val::new(2, &live)).unwrap();
    let removed = memo.remove(&2).unwrap();
    assert_eq!(live.values(), 1);
    drop(removed);
    assert_eq!(live.values(), 0);

    for id in 0..10 {
        memo.insert(id, Val::new(id, &live)).unwrap();
    }
    assert_eq!(live.values(), 10);
    memo.invalidate_all();
    assert_eq!(live.values(), 0);
    assert!(memo.is_empty());
}

/// Pins: dropping the memo drops every entry and key once.
#[test]
fn dropping_memo_drops_entries_and_keys() {
    let live = Arc::new(Live::default());
    let memo: AsyncMemo<Key, Val> = AsyncMemo::new();
    for id in 0..20 {
        memo.insert(Key::new(id, &live), Val::new(id, &live))
            .unwrap();
    }
    for id in 0..5 {
        // Hits: the call's owned key is dropped with the call.
        let entry = block_on(memo.get_or_init(Key::new(id, &live), || async { unreachable!() }));
        drop(entry);
    }
    for id in 20..25 {
        let l = Arc::clone(&live);
        drop(block_on(
            memo.get_or_init(Key::new(id, &live), move || async move { Val::new(id, &l) }),
        ));
    }
    memo.insert(Key::new(0, &live), Val::new(100, &live))
        .unwrap(); // the spare key goes
    assert_eq!((live.keys(), live.values()), (25, 25));
    let clone = memo.clone();
    drop(memo);
    assert_eq!((live.keys(), live.values()), (25, 25), "a handle remains");
    drop(clone);
    assert_eq!((live.keys(), live.values()), (0, 0));
}

/// Pins: the memo's last handle dropped while a flight is in progress (a handle kept by the
/// caller, another dropped), then the caller: future, value, keys all dropped once.
#[test]
fn dropping_memo_with_flight_in_progress_drops_everything() {
    let live = Arc::new(Live::default());
    let memo: AsyncMemo<Key, Val> = AsyncMemo::new();
    memo.insert(Key::new(1, &live), Val::new(1, &live)).unwrap();
    let handle = memo.clone();
    let l = Arc::clone(&live);
    let (_tx, rx) = oneshot::channel::<()>();
    let mut call = Box::pin(handle.get_or_init(
        Key::new(2, &live),
        counted(&live, async move {
            let held = Val::new(2, &l);
            rx.await.unwrap();
            held
        }),
    ));
    assert!(poll_once(call.as_mut()).is_pending());
    drop(memo);
    assert_eq!(live.futures(), (1, 0));
    drop(call);
    assert_eq!(live.futures(), (1, 1));
    drop(handle);
    assert_eq!((live.keys(), live.values()), (0, 0));
}

/// Pins: the same on a runtime: tasks holding memo handles and calls in flight are dropped at
/// shutdown; everything is dropped once.
#[test]
fn runtime_shutdown_with_flights_in_progress_drops_everything() {
    let live = Arc::new(Live::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (_tx, rx) = oneshot::channel::<()>();
    let gate = futures::FutureExt::shared(rx);
    {
        let memo: AsyncMemo<Key, Val> = AsyncMemo::new();
        memo.insert(Key::new(0, &live), Val::new(0, &live)).unwrap();
        for i in 0..6 {
            let memo = memo.clone();
            let l = Arc::clone(&live);
            let gate = gate.clone();
            let init = counted(&live, async move {
                let held = Val::new(i, &l);
                let _ = gate.await;
                held
            });
            let key = Key::new(i % 2 + 1, &live);
            rt.spawn(async move { memo.get_or_init(key, init).await.value().id });
        }
        // Let every task join its flight.
        rt.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(live.futures().1, 0, "the flights are in progress");
        assert!(live.futures().0 >= 2);
    }
    drop(rt);
    let (created, dropped) = live.futures();
    assert_eq!(created, dropped);
    assert_eq!((live.keys(), live.values()), (0, 0));
}
