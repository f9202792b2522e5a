//! Single-flight: concurrent callers of one key share one flight (semantics 1).
//!
//! Pins that `init` of exactly one caller runs and every caller receives the same value and
//! epoch, whatever mix of `get_or_init`, `get_or_try_init` and their `_by_ref` variants joins the
//! flight; that a hit on a ready entry never calls `init`; that distinct keys fly separately; and
//! that the flight's future and its values are dropped exactly once.

mod common;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};

use async_memo::AsyncMemo;
use common::{CountingWaker, DropCounted, LiveCounted, poll_once, ready};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::join_all;

#[tokio::test]
async fn concurrent_callers_share_one_flight() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let inits = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let gate = gate_rx.shared();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let inits = Arc::clone(&inits);
            let gate = gate.clone();
            memo.get_or_init("k", move || {
                inits.fetch_add(1, Ordering::SeqCst);
                async move {
                    gate.await.unwrap();
                    7
                }
            })
        })
        .collect();
    let all = join_all(calls);
    futures::pin_mut!(all);
    assert!(futures::poll!(all.as_mut()).is_pending());
    gate_tx.send(()).unwrap();
    let entries = all.await;
    assert_eq!(inits.load(Ordering::SeqCst), 1);
    let epoch = entries[0].epoch();
    assert!(
        entries
            .iter()
            .all(|e| *e.value() == 7 && e.epoch() == epoch)
    );
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(epoch));
}

#[tokio::test]
async fn concurrent_try_callers_share_one_flight() {
    let memo: AsyncMemo<&str, u32> = AsyncMemo::new();
    let inits = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let gate = gate_rx.shared();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let inits = Arc::clone(&inits);
            let gate = gate.clone();
            memo.get_or_try_init("k", move || {
                inits.fetch_add(1, Ordering::SeqCst);
                async move {
                    gate.await.unwrap();
                    Ok::<_, std::io::Error>(9)
                }
            })
        })
        .collect();
    let all = join_all(calls);
    futures::pin_mut!(all);
    assert!(futures::poll!(all.as_mut()).is_pending());
    gate_tx.send(()).unwrap();
    let results = all.await;
    assert_eq!(inits.load(Ordering::SeqCst), 1, "one init for ten callers");
    let epochs: Vec<_> = results
        .into_iter()
        .map(|r| {
            let entry = r.expect("the flight succeeded");
            assert_eq!(*entry.value(), 9);
            entry.epoch()
        })
        .collect();
    assert!(epochs.iter().all(|&e| e == epochs[0]));
    assert_eq!(memo.epoch("k"), Some(epochs[0]));
}

#[test]
fn by_ref_and_owned_callers_share_one_flight() {
    let memo: AsyncMemo<String, u32> = AsyncMemo::new();
    let inits = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let counting = |n: u32| {
        let inits = Arc::clone(&inits);
        move || {
            inits.fetch_add(1, Ordering::SeqCst);
            async move { n }
        }
    };

    let mut first = pin!(memo.get_or_init_by_ref("k", move || async move {
        gate_rx.await.unwrap();
        1
    }));
    assert!(
        poll_once(first.as_mut()).is_pending(),
        "the flight is gated"
    );
    let flight_epoch = memo.epoch("k").expect("a flight holds the key");

    let mut owned = pin!(memo.get_or_init("k".to_string(), counting(2)));
    let mut try_by_ref =
        pin!(memo.get_or_try_init_by_ref("k", || async { Ok::<u32, std::fmt::Error>(3) }));
    let mut try_owned =
        pin!(memo.get_or_try_init("k".to_string(), || async { Ok::<u32, std::io::Error>(4) }));
    // Each joined caller drives the gated future once and stays pending.
    assert!(poll_once(owned.as_mut()).is_pending());
    assert!(poll_once(try_by_ref.as_mut()).is_pending());
    assert!(poll_once(try_owned.as_mut()).is_pending());

    gate_tx.send(()).unwrap();
    // Whoever polls first drives the flight to its end; the others read the outcome.
    let a = ready(poll_once(try_owned.as_mut())).unwrap();
    let b = ready(poll_once(first.as_mut()));
    let c = ready(poll_once(owned.as_mut()));
    let d = ready(poll_once(try_by_ref.as_mut())).unwrap();
    assert_eq!(inits.load(Ordering::SeqCst), 0, "no joined caller ran init");
    for entry in [&a, &b, &c, &d] {
        assert_eq!(*entry.value(), 1, "every caller gets the creator's value");
        assert_eq!(entry.epoch(), flight_epoch, "and the flight's epoch");
    }
    assert_eq!(memo.get("k").map(|e| e.epoch()), Some(flight_epoch));
}

#[test]
fn plain_creator_and_try_joiner_share_one_flight() {
    let memo: AsyncMemo<u8, &'static str> = AsyncMemo::new();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let try_inits = Arc::new(AtomicUsize::new(0));

    let mut plain = pin!(memo.get_or_init(1, || async move {
        gate_rx.await.unwrap();
        "plain"
    }));
    assert!(poll_once(plain.as_mut()).is_pending());
    let counter = Arc::clone(&try_inits);
    let mut fallible = pin!(memo.get_or_try_init(1, move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::io::Error>("try") }
    }));
    assert!(
        poll_once(fallible.as_mut()).is_pending(),
        "joined, not started"
    );

    gate_tx.send(()).unwrap();
    let from_try = ready(poll_once(fallible.as_mut())).expect("the flight succeeded");
    let from_plain = ready(poll_once(plain.as_mut()));
    assert_eq!(try_inits.load(Ordering::SeqCst), 0);
    assert_eq!(*from_try.value(), "plain");
    assert_eq!(*from_plain.value(), "plain");
    assert_eq!(from_try.epoch(), from_plain.epoch());
}

#[test]
fn try_creator_and_plain_joiner_share_one_flight() {
    let memo: AsyncMemo<u8, &'static str> = AsyncMemo::new();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let plain_inits = Arc::new(AtomicUsize::new(0));

    let mut fallible = pin!(memo.get_or_try_init(1, || async move {
        gate_rx.await.unwrap();
        Ok::<_, std::io::Error>("try")
    }));
    assert!(poll_once(fallible.as_mut()).is_pending());
    let counter = Arc::clone(&plain_inits);
    let mut plain = pin!(memo.get_or_init(1, move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "plain" }
    }));
    assert!(
        poll_once(plain.as_mut()).is_pending(),
        "joined, not started"
    );

    gate_tx.send(()).unwrap();
    let from_plain = ready(poll_once(plain.as_mut()));
    let from_try = ready(poll_once(fallible.as_mut())).expect("the flight succeeded");
    assert_eq!(plain_inits.load(Ordering::SeqCst), 0);
    assert_eq!(*from_plain.value(), "try");
    assert_eq!(from_try.epoch(), from_plain.epoch());
}

#[test]
fn hit_does_not_call_init() {
    futures::executor::block_on(async {
        let memo: AsyncMemo<String, u32> = AsyncMemo::new();
        let stored = memo.get_or_init("k".to_string(), || async { 5 }).await;

        // A hit drops `init` without calling it: the captured guard is dropped, once.
        let captured = Arc::new(());
        let never = |guard: Arc<()>| {
            move || -> futures::future::Ready<u32> {
                drop(guard);
                panic!("init called on a hit")
            }
        };
        let never_try = |guard: Arc<()>| {
            move || -> futures::future::Ready<Result<u32, std::io::Error>> {
                drop(guard);
                panic!("init called on a hit")
            }
        };
        let hits = [
            memo.get_or_init("k".to_string(), never(Arc::clone(&captured)))
                .await,
            memo.get_or_init_by_ref("k", never(Arc::clone(&captured)))
                .await,
            memo.get_or_try_init("k".to_string(), never_try(Arc::clone(&captured)))
                .await
                .unwrap(),
            memo.get_or_try_init_by_ref("k", never_try(Arc::clone(&captured)))
                .await
                .unwrap(),
        ];
        for hit in &hits {
            assert_eq!(*hit.value(), 5);
            assert_eq!(hit.epoch(), stored.epoch());
        }
        assert_eq!(Arc::strong_count(&captured), 1, "every init was dropped");
        assert_eq!(memo.get("k").map(|e| e.epoch()), Some(stored.epoch()));
    });
}

#[test]
fn hit_on_inserted_entry_does_not_call_init() {
    futures::executor::block_on(async {
        let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
        let inserted = memo.insert(1, 10).unwrap();
        let hit = memo
            .get_or_init(1, || -> futures::future::Ready<u32> {
                panic!("init called on a hit")
            })
            .await;
        assert_eq!((*hit.value(), hit.epoch()), (10, inserted.epoch()));
    });
}

#[test]
fn distinct_keys_fly_separately() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::builder().shards(1).build();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let mut gated = pin!(memo.get_or_init(1, || async move {
        gate_rx.await.unwrap();
        1
    }));
    assert!(poll_once(gated.as_mut()).is_pending());
    // Another key (in the same shard) does not join key 1's flight nor wait for it.
    let mut other = pin!(memo.get_or_init(2, || async { 2 }));
    let other = ready(poll_once(other.as_mut()));
    assert_eq!(*other.value(), 2);
    assert_ne!(Some(other.epoch()), memo.epoch(&1));
    gate_tx.send(()).unwrap();
    assert_eq!(*ready(poll_once(gated.as_mut())).value(), 1);
    assert_eq!(memo.len(), 2);
}

#[test]
fn flight_completion_wakes_every_joined_caller() {
    let memo: AsyncMemo<u8, u8> = AsyncMemo::new();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let wakers: Vec<Arc<CountingWaker>> = (0..3).map(|_| Arc::default()).collect();
    let mut creator = Box::pin(memo.get_or_init(1, move || async move {
        gate_rx.await.unwrap();
        42
    }));
    let mut joiners: Vec<_> = (0..2)
        .map(|_| Box::pin(memo.get_or_init(1, || async { unreachable!("joined") })))
        .collect();
    let waker = |i: usize| Waker::from(Arc::clone(&wakers[i]));
    let poll_with = |f: Pin<&mut dyn Future<Output = async_memo::Entry<u8>>>, w: &Waker| {
        f.poll(&mut Context::from_waker(w))
    };
    assert!(poll_with(creator.as_mut(), &waker(0)).is_pending());
    for (i, joiner) in joiners.iter_mut().enumerate() {
        assert!(poll_with(joiner.as_mut(), &waker(i + 1)).is_pending());
    }
    assert!(wakers.iter().all(|w| w.wakes() == 0));

    // The gate wakes the init future, whose waker is the flight: every caller is woken, so any
    // of them can drive it to the end.
    gate_tx.send(()).unwrap();
    for (i, w) in wakers.iter().enumerate() {
        assert!(w.wakes() >= 1, "caller {i} was not woken");
    }
    let mut last = joiners.pop().unwrap();
    let entry = ready(poll_with(last.as_mut(), &waker(2)));
    assert_eq!(*entry.value(), 42);
    assert_eq!(*ready(poll_with(creator.as_mut(), &waker(0))).value(), 42);
    assert_eq!(
        *ready(poll_with(joiners[0].as_mut(), &waker(1))).value(),
        42
    );
}

#[test]
fn flight_future_and_values_are_dropped_exactly_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let future_drops = Arc::new(AtomicUsize::new(0));
    {
        let memo: AsyncMemo<u8, LiveCounted> = AsyncMemo::new();
        let (gate_tx, gate_rx) = oneshot::channel::<()>();
        let value_live = Arc::clone(&live);
        let drops = Arc::clone(&future_drops);
        let mut creator = pin!(memo.get_or_init(1, move || DropCounted {
            future: Box::pin(async move {
                gate_rx.await.unwrap();
                LiveCounted::new(3, &value_live)
            }),
            drops,
        }));
        let mut joiner = pin!(memo.get_or_init(1, || async { unreachable!("joined") }));
        assert!(poll_once(creator.as_mut()).is_pending());
        assert!(poll_once(joiner.as_mut()).is_pending());
        gate_tx.send(()).unwrap();
        let a = ready(poll_once(joiner.as_mut()));
        assert_eq!(
            future_drops.load(Ordering::SeqCst),
            1,
            "the init future is dropped as soon as it completes"
        );
        let b = ready(poll_once(creator.as_mut()));
        assert_eq!((a.value().n, b.value().n), (3, 3));
        // The memo's copy plus the two callers' copies.
        assert_eq!(live.load(Ordering::SeqCst), 3);
        drop((a, b));
        assert_eq!(
            live.load(Ordering::SeqCst),
            1,
            "only the memo's copy is left"
        );
    }
    assert_eq!(future_drops.load(Ordering::SeqCst), 1);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "dropping the memo drops its entry"
    );
}

#[test]
fn racing_threads_run_one_init() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    runtime.block_on(async {
        for round in 0..50u32 {
            let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
            let inits = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(tokio::sync::Barrier::new(8));
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let memo = memo.clone();
                    let inits = Arc::clone(&inits);
                    let start = Arc::clone(&start);
                    tokio::spawn(async move {
                        start.wait().await;
                        let entry = memo
                            .get_or_init(round, move || {
                                inits.fetch_add(1, Ordering::SeqCst);
                                async move {
                                    tokio::task::yield_now().await;
                                    round
                                }
                            })
                            .await;
                        (*entry.value(), entry.epoch())
                    })
                })
                .collect();
            let results: Vec<_> = join_all(tasks)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            // Whether a caller joined the flight or hit its entry, one init ran.
            assert_eq!(inits.load(Ordering::SeqCst), 1, "round {round}");
            assert!(results.iter().all(|&r| r == results[0]));
            assert_eq!(memo.epoch(&round), Some(results[0].1));
        }
    });
}
