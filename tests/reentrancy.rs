//! Re-entrancy (semantics 9): the init closure, the future it returns, `Drop` of `K` and `V`,
//! `Drop` of an abandoned init future and `Waker::wake` of a caller may call any method of the
//! memo (other keys, or the same key) without deadlock: no lock is held across user code,
//! `.await` or `Waker::wake`, and displaced keys and values are dropped after the shard lock is
//! released. A flight that awaits its own key on the same thread panics with a clear message
//! and frees the key.
//!
//! Every body runs on its own thread behind a watchdog: a deadlock on a (non-reentrant) shard
//! lock fails the test instead of hanging it. Memos use one shard so that every key shares the
//! lock a mistake would hold.

mod common;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use async_memo::AsyncMemo;
use common::within_10s;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::task::noop_waker;

/// Polls a future that must be ready at once (no waiting involved).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(&noop_waker()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("expected an immediate result"),
    }
}

fn one_shard<V: Clone + Send + Sync + 'static>() -> AsyncMemo<u32, V> {
    AsyncMemo::builder().shards(1).build()
}

/// Exercises every method of `memo` on keys `base..base + 3` and reads `same`.
fn touch_everything(memo: &AsyncMemo<u32, u32>, base: u32, same: u32) {
    let _ = memo.get(&same);
    let _ = memo.epoch(&same);
    let _ = memo.len();
    let _ = memo.is_empty();
    let inserted = memo.insert(base, 1);
    assert!(memo.invalidate(&base, inserted.unwrap().epoch()));
    memo.insert(base + 1, 2).unwrap();
    assert!(memo.remove(&(base + 1)).is_some());
    let entry = now(memo.get_or_init(base + 2, || async { 3 }));
    assert_eq!(
        memo.get(&(base + 2)).map(|e| e.epoch()),
        Some(entry.epoch())
    );
    let tried = now(memo.get_or_try_init(base + 2, || async { Err::<u32, ()>(()) }));
    assert_eq!(tried.map(|e| e.epoch()).ok(), Some(entry.epoch()));
    assert!(memo.invalidate(&(base + 2), entry.epoch()));
}

/// Pins: the init closure may call every method, on other keys and (reading) its own key;
/// during the flight `epoch(k)` is `Some` while `get(k)` is `None`.
#[test]
fn init_closure_calls_memo_methods_without_deadlock() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let inner = memo.clone();
        let entry = block_on(memo.get_or_init(1, move || {
            touch_everything(&inner, 10, 1);
            assert!(inner.epoch(&1).is_some(), "the flight has an epoch");
            assert!(inner.get(&1).is_none(), "but no ready entry yet");
            async { 5 }
        }));
        assert_eq!(*entry.value(), 5);
        assert_eq!(memo.get(&1).map(|e| e.epoch()), Some(entry.epoch()));
    });
}

/// Pins: the init future may call every method and await another key's flight.
#[test]
fn init_future_calls_memo_methods_and_awaits_other_keys() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let inner = memo.clone();
        let entry = block_on(memo.get_or_init(1, move || async move {
            touch_everything(&inner, 10, 1);
            let (tx, rx) = oneshot::channel::<u32>();
            let nested = inner.clone();
            let other = nested.get_or_init(2, move || async move { rx.await.unwrap() });
            let mut other = pin!(other);
            assert!(futures::poll!(other.as_mut()).is_pending());
            tx.send(20).unwrap();
            let two = other.await;
            touch_everything(&inner, 20, 2);
            *two.value() + 1
        }));
        assert_eq!(*entry.value(), 21);
        assert_eq!(memo.get(&2).map(|e| *e.value()), Some(20));
    });
}

/// Pins: the init future may detach its own flight (same key): its callers still get the
/// value, which is not committed.
#[test]
fn init_future_invalidating_its_own_flight_does_not_deadlock_or_commit() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let inner = memo.clone();
        let entry = block_on(memo.get_or_init(1, move || async move {
            let own = inner.epoch(&1).expect("own flight");
            assert!(inner.invalidate(&1, own));
            5
        }));
        assert_eq!(*entry.value(), 5);
        assert!(memo.get(&1).is_none(), "a detached flight never commits");
        let inner = memo.clone();
        let entry = block_on(memo.get_or_init(1, move || async move {
            inner.insert(1, 100).unwrap();
            inner.invalidate_all();
            inner.insert(1, 200).unwrap();
            6
        }));
        assert_eq!(*entry.value(), 6);
        assert_eq!(memo.get(&1).map(|e| *e.value()), Some(200));
    });
}

/// Pins: another task may use the same key (read it, join its flight) while the flight's
/// future is suspended; nothing deadlocks and both get the one value.
#[test]
fn same_key_from_another_task_during_the_flight() {
    within_10s(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let memo: AsyncMemo<u32, u32> = one_shard();
            let (joined_tx, joined_rx) = oneshot::channel::<()>();
            let other = {
                let memo = memo.clone();
                tokio::spawn(async move {
                    assert!(memo.epoch(&1).is_some());
                    assert!(memo.get(&1).is_none());
                    let mut call = pin!(memo.get_or_init(1, || async { unreachable!() }));
                    assert!(futures::poll!(call.as_mut()).is_pending());
                    joined_tx.send(()).unwrap();
                    *call.await.value()
                })
            };
            let entry = memo
                .get_or_init(1, move || async move {
                    joined_rx.await.unwrap();
                    7
                })
                .await;
            assert_eq!((*entry.value(), other.await.unwrap()), (7, 7));
        });
    });
}

/// Pins: the documented self-await case, from the init future: a panic with the documented
/// message, the key freed, the memo usable.
#[test]
fn init_future_awaiting_its_own_key_panics_and_frees_key() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let inner = memo.clone();
        let result = catch_unwind(AssertUnwindSafe(|| {
            block_on(memo.get_or_init(1, move || async move {
                *inner.get_or_init(1, || async { 0 }).await.value() + 1
            }))
        }));
        let payload = result.expect_err("a self-await must panic, not hang");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(msg.contains("awaits its own key"), "message: {msg:?}");
        assert_eq!(memo.epoch(&1), None, "the key is freed");
        assert_eq!(*block_on(memo.get_or_init(1, || async { 3 })).value(), 3);
    });
}

/// Pins: the same detection when the init closure itself polls its own key.
#[test]
fn init_closure_polling_its_own_key_panics_and_frees_key() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let inner = memo.clone();
        let result = catch_unwind(AssertUnwindSafe(|| {
            block_on(memo.get_or_init(1, move || {
                let mut own = pin!(inner.get_or_init(1, || async { 0 }));
                let _ = own.as_mut().poll(&mut Context::from_waker(&noop_waker()));
                async { 1 }
            }))
        }));
        let payload = result.expect_err("a self-await must panic");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(msg.contains("awaits its own key"), "message: {msg:?}");
        assert_eq!(memo.epoch(&1), None);
        assert!(memo.is_empty());
        assert_eq!(*block_on(memo.get_or_init(1, || async { 3 })).value(), 3);
    });
}

// ---------------------------------------------------------------------------------------------
// Drop of V
// ---------------------------------------------------------------------------------------------

type HookedMemo = AsyncMemo<u32, Hooked>;

/// A value whose `Drop` calls the memo (when `hook` is set): every method, its own key too.
#[derive(Clone)]
struct Hooked {
    key: u32,
    hook: Option<Arc<OnceLock<HookedMemo>>>,
    runs: Arc<AtomicUsize>,
}

impl Hooked {
    fn new(key: u32, hook: &Arc<OnceLock<HookedMemo>>, runs: &Arc<AtomicUsize>) -> Self {
        Hooked {
            key,
            hook: Some(Arc::clone(hook)),
            runs: Arc::clone(runs),
        }
    }

    fn plain(&self, key: u32) -> Self {
        Hooked {
            key,
            hook: None,
            runs: Arc::clone(&self.runs),
        }
    }
}

thread_local! {
    /// Set while a hook runs: values the hook itself reads (clones of hooked values) must not
    /// run the hook again, or it would recurse forever.
    static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Hooked {
    fn drop(&mut self) {
        let Some(memo) = self.hook.as_ref().and_then(|hook| hook.get()) else {
            return;
        };
        self.runs.fetch_add(1, Ordering::SeqCst);
        if IN_HOOK.with(|h| h.replace(true)) {
            return;
        }
        let _reset = OnDrop(|| IN_HOOK.with(|h| h.set(false)));
        let _ = memo.get(&self.key);
        let _ = memo.epoch(&self.key);
        let _ = memo.len();
        let e = memo.insert(self.key + 100, self.plain(0)).unwrap();
        memo.invalidate(&(self.key + 100), e.epoch());
        memo.insert(self.key + 200, self.plain(0)).unwrap();
        memo.remove(&(self.key + 200));
        let plain = self.plain(0);
        let entry = now(memo.get_or_init(self.key + 300, move || async move { plain }));
        memo.invalidate(&(self.key + 300), entry.epoch());
    }
}

/// Pins: `Drop` of `V` may call the memo on every path that drops a value: invalidate,
/// remove, insert replacing, invalidate_all, and a detached flight whose commit is refused.
#[test]
fn value_drop_calls_memo_on_every_path_without_deadlock() {
    within_10s(|| {
        let hook = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let memo: HookedMemo = one_shard();
        assert!(hook.set(memo.clone()).is_ok());
        let v = |key| Hooked::new(key, &hook, &runs);
        let ran = || runs.load(Ordering::SeqCst);

        // invalidate
        let e = memo.insert(1, v(1));
        drop(e);
        let before = ran();
        assert!(memo.invalidate(&1, memo.epoch(&1).unwrap()));
        assert_eq!(ran(), before + 1);
        // remove
        memo.insert(2, v(2)).unwrap();
        let removed = memo.remove(&2);
        drop(removed);
        // insert replacing
        memo.insert(3, v(3)).unwrap();
        let before = ran();
        memo.insert(3, v(3).plain(3)).unwrap();
        assert_eq!(
            ran(),
            before + 2,
            "the argument's clone and the displaced value"
        );
        // invalidate_all
        memo.insert(4, v(4)).unwrap();
        memo.insert(5, v(5)).unwrap();
        let before = ran();
        memo.invalidate_all();
        assert!(ran() >= before + 2);
        // a flight detached before it finishes: the refused entry is dropped after the lock
        let (tx, rx) = oneshot::channel::<()>();
        let value = v(6);
        let mut call = pin!(memo.get_or_init(6, move || async move {
            rx.await.unwrap();
            value
        }));
        let noop = noop_waker();
        assert!(
            call.as_mut()
                .poll(&mut Context::from_waker(&noop))
                .is_pending()
        );
        assert!(memo.invalidate(&6, memo.epoch(&6).unwrap()));
        tx.send(()).unwrap();
        let Poll::Ready(entry) = call.as_mut().poll(&mut Context::from_waker(&noop)) else {
            panic!("the flight finished");
        };
        assert_eq!(entry.value().key, 6);
        assert!(memo.get(&6).is_none());
        drop(entry);
        // a flight committed over by insert during the flight
        let value = v(7);
        let inner = memo.clone();
        let plain = v(7).plain(7);
        let entry = block_on(memo.get_or_init(7, move || async move {
            inner.insert(7, plain).unwrap();
            value
        }));
        drop(entry);
        assert!(
            memo.get(&7).unwrap().value().hook.is_none(),
            "the insert won"
        );

        // Break the cycle memo -> hooked values -> memo.
        memo.invalidate_all();
        assert!(ran() > 0);
    });
}

/// Pins: `Drop` of `V` may call the memo on the refresh, replace and sweep paths too: a swap
/// that loses (its value is handed back and dropped after the lock), a swap that wins, a refresh
/// that commits over its entry, a detached refresh, and `invalidate_if`.
#[test]
fn value_drop_calls_memo_on_refresh_and_replace_paths_without_deadlock() {
    within_10s(|| {
        let hook = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let memo: HookedMemo = one_shard();
        assert!(hook.set(memo.clone()).is_ok());
        let v = |key| Hooked::new(key, &hook, &runs);
        let ran = || runs.load(Ordering::SeqCst);

        let other = memo.insert(99, v(99).plain(99)).unwrap().epoch();
        let seen = memo.insert(1, v(1)).unwrap().epoch();
        let before = ran();
        let stale = memo.replace(1, other, v(1));
        assert!(
            stale.is_err() && ran() > before,
            "the losing value was dropped"
        );
        let won = memo.replace(1, seen, v(1)).unwrap();
        drop(won);
        let value = v(1);
        drop(block_on(memo.refresh(1, move || async move { value })));
        let (tx, rx) = oneshot::channel::<()>();
        let value = v(1);
        let mut refresh = pin!(memo.refresh(1, move || async move {
            rx.await.unwrap();
            value
        }));
        let noop = noop_waker();
        assert!(
            refresh
                .as_mut()
                .poll(&mut Context::from_waker(&noop))
                .is_pending()
        );
        assert!(memo.invalidate(&1, memo.refreshing(&1).unwrap()));
        tx.send(()).unwrap();
        assert!(
            refresh
                .as_mut()
                .poll(&mut Context::from_waker(&noop))
                .is_ready()
        );
        memo.insert(2, v(2)).unwrap();
        assert!(memo.invalidate_if(|_, _| true) >= 1);
        assert!(ran() > before);
        memo.invalidate_all();
    });
}

// ---------------------------------------------------------------------------------------------
// Drop of K
// ---------------------------------------------------------------------------------------------

type KeyMemo = AsyncMemo<HookedKey, u32>;

/// A key whose `Drop` calls the memo (when `hook` is set). Hash and equality use `id` only,
/// so it can be looked up by `u32`.
#[derive(Clone)]
struct HookedKey {
    id: u32,
    hook: Option<Arc<OnceLock<KeyMemo>>>,
    runs: Arc<AtomicUsize>,
}

impl PartialEq for HookedKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for HookedKey {}
impl Hash for HookedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}
impl std::borrow::Borrow<u32> for HookedKey {
    fn borrow(&self) -> &u32 {
        &self.id
    }
}

impl Drop for HookedKey {
    fn drop(&mut self) {
        let Some(memo) = self.hook.as_ref().and_then(|hook| hook.get()) else {
            return;
        };
        self.runs.fetch_add(1, Ordering::SeqCst);
        let plain = |id| HookedKey {
            id,
            hook: None,
            runs: Arc::clone(&self.runs),
        };
        let _ = memo.get(&self.id);
        let _ = memo.epoch(&self.id);
        let e = memo.insert(plain(self.id + 100), 1);
        memo.invalidate(&(self.id + 100), e.unwrap().epoch());
        memo.insert(plain(self.id + 200), 2).unwrap();
        memo.remove(&(self.id + 200));
        let entry = now(memo.get_or_init(plain(self.id + 300), || async { 3 }));
        memo.invalidate(&(self.id + 300), entry.epoch());
    }
}

/// Pins: `Drop` of `K` may call the memo on the paths that drop keys: the spare key of an
/// insert over an existing key, remove, invalidate, invalidate_all, a call's own key.
#[test]
fn key_drop_calls_memo_without_deadlock() {
    within_10s(|| {
        let hook = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let memo: KeyMemo = AsyncMemo::builder().shards(1).build();
        assert!(hook.set(memo.clone()).is_ok());
        let k = |id| HookedKey {
            id,
            hook: Some(Arc::clone(&hook)),
            runs: Arc::clone(&runs),
        };
        let ran = || runs.load(Ordering::SeqCst);

        memo.insert(k(1), 1).unwrap();
        let before = ran();
        memo.insert(k(1), 2).unwrap(); // the spare key is dropped
        assert_eq!(ran(), before + 1);
        let before = ran();
        memo.remove(&1);
        assert_eq!(ran(), before + 1);
        memo.insert(k(2), 1).unwrap();
        let before = ran();
        assert!(memo.invalidate(&2, memo.epoch(&2).unwrap()));
        assert_eq!(ran(), before + 1);
        // A call's owned key (a hit: dropped with the call; a miss: cloned into the memo).
        block_on(memo.get_or_init(k(3), || async { 3 }));
        block_on(memo.get_or_init(k(3), || async { unreachable!() }));
        memo.insert(k(4), 4).unwrap();
        let before = ran();
        memo.invalidate_all();
        assert!(ran() >= before + 2);
        assert!(memo.is_empty() || memo.get(&3).is_none());
        memo.invalidate_all();
    });
}

// ---------------------------------------------------------------------------------------------
// Drop of an abandoned init future, Waker::wake
// ---------------------------------------------------------------------------------------------

struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Pins: an abandoned init future is dropped outside every lock: its `Drop` may write the same
/// key (and what it writes survives, since the abandon already freed the key).
#[test]
fn abandoned_init_future_drop_calls_memo_without_deadlock() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let inner = memo.clone();
        let mut call = Box::pin(memo.get_or_init(1, move || async move {
            let _guard = OnDrop(move || {
                touch_everything(&inner, 10, 1);
                inner.insert(1, 99).unwrap();
            });
            futures::future::pending::<u32>().await
        }));
        assert!(
            call.as_mut()
                .poll(&mut Context::from_waker(&noop_waker()))
                .is_pending()
        );
        drop(call);
        assert_eq!(memo.get(&1).map(|e| *e.value()), Some(99));
    });
}

/// A waker that calls the memo when woken.
struct MemoWaker {
    memo: AsyncMemo<u32, u32>,
    wakes: AtomicUsize,
}

impl Wake for MemoWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        touch_everything(&self.memo, 10, 1);
        let _ = self.memo.insert(50, 1);
    }
}

/// Pins: callers' wakers are woken outside every lock (flight wake-up, self-wake of the driver,
/// completion, panic): a waker may call the memo.
#[test]
fn wakers_may_call_the_memo() {
    within_10s(|| {
        let memo: AsyncMemo<u32, u32> = one_shard();
        let hook = |memo: &AsyncMemo<u32, u32>| {
            let w = Arc::new(MemoWaker {
                memo: memo.clone(),
                wakes: AtomicUsize::new(0),
            });
            (Arc::clone(&w), Waker::from(w))
        };
        let (a_count, a_waker) = hook(&memo);
        let (b_count, b_waker) = hook(&memo);
        let (c_count, c_waker) = hook(&memo);
        let poll = |f: Pin<&mut dyn Future<Output = async_memo::Entry<u32>>>, w: &Waker| {
            f.poll(&mut Context::from_waker(w))
        };
        let (tx, rx) = oneshot::channel::<()>();
        let yielded = Arc::new(AtomicUsize::new(0));
        let y = Arc::clone(&yielded);
        let mut a = Box::pin(memo.get_or_init(1, move || async move {
            rx.await.unwrap(); // flight woken while parked: wakes every waiter
            // yield once: a self-wake during the poll
            futures::future::poll_fn(|cx| {
                if y.fetch_add(1, Ordering::SeqCst) == 0 {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            5
        }));
        let mut b = Box::pin(memo.get_or_init(1, || async { unreachable!() }));
        let mut c = Box::pin(memo.get_or_init(1, || async { unreachable!() }));
        assert!(poll(a.as_mut(), &a_waker).is_pending());
        assert!(poll(b.as_mut(), &b_waker).is_pending());
        assert!(poll(c.as_mut(), &c_waker).is_pending());
        tx.send(()).unwrap();
        assert!(a_count.wakes.load(Ordering::SeqCst) >= 1);
        // A drives, the future yields: A's waker is woken by the memo after parking.
        let before = a_count.wakes.load(Ordering::SeqCst);
        assert!(poll(a.as_mut(), &a_waker).is_pending());
        assert!(a_count.wakes.load(Ordering::SeqCst) > before);
        // B drives to the end; completion wakes A (registered when it parked).
        let before = a_count.wakes.load(Ordering::SeqCst);
        let b_entry = match poll(b.as_mut(), &b_waker) {
            Poll::Ready(entry) => entry,
            Poll::Pending => panic!("B drives the flight to its end"),
        };
        assert!(a_count.wakes.load(Ordering::SeqCst) > before);
        assert!(b_count.wakes.load(Ordering::SeqCst) >= 1);
        assert!(c_count.wakes.load(Ordering::SeqCst) >= 1);
        drop(a);
        let Poll::Ready(c_entry) = poll(c.as_mut(), &c_waker) else {
            panic!("C receives the value");
        };
        assert_eq!(b_entry.epoch(), c_entry.epoch());

        // A panic wakes the waiters too.
        let (tx, rx) = oneshot::channel::<()>();
        let mut d = Box::pin(memo.get_or_init(2, move || async move {
            rx.await.unwrap();
            panic!("boom")
        }));
        let mut e = Box::pin(memo.get_or_init(2, || async { 8 }));
        assert!(poll(d.as_mut(), &a_waker).is_pending());
        assert!(poll(e.as_mut(), &b_waker).is_pending());
        tx.send(()).unwrap();
        let panicked = catch_unwind(AssertUnwindSafe(|| poll(d.as_mut(), &a_waker)));
        assert!(panicked.is_err());
        drop(d);
        let Poll::Ready(entry) = poll(e.as_mut(), &b_waker) else {
            panic!("E starts over");
        };
        assert_eq!(*entry.value(), 8);
    });
}
