//! `replace`: compare-and-swap on the observed epoch (semantics 19).

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::{AsyncMemo, RemovalCause};
use common::{log, poll_once, ready, recorder, take, within_10s};
use futures::channel::oneshot;

/// quick_cache #73 asks for an atomic "replace the generation I saw": of many writers that saw
/// one generation, exactly one wins, and every loser learns the winner's epoch.
#[test]
fn quick_cache_73_replace_swaps_only_the_generation_it_saw() {
    within_10s(|| {
        let memo: AsyncMemo<&str, usize> = AsyncMemo::new();
        for _ in 0..200 {
            let seen = memo.insert("gen", 0).unwrap().epoch();
            let wins = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (1..=4)
                .map(|n| {
                    let memo = memo.clone();
                    let wins = Arc::clone(&wins);
                    std::thread::spawn(move || match memo.replace("gen", seen, n) {
                        Ok(entry) => {
                            wins.fetch_add(1, Ordering::SeqCst);
                            Ok(entry.epoch())
                        }
                        Err(current) => Err(current),
                    })
                })
                .collect();
            let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            assert_eq!(wins.load(Ordering::SeqCst), 1, "exactly one writer wins");
            let winner = outcomes.iter().find_map(|o| o.ok()).unwrap();
            for outcome in &outcomes {
                if let Err(current) = outcome {
                    assert_eq!(*current, Some(winner), "a loser learns the current epoch");
                }
            }
            assert_eq!(memo.epoch("gen"), Some(winner));
        }
    });
}

#[test]
fn replace_reports_the_replaced_entry_and_refuses_a_stale_epoch() {
    let removed = log();
    let memo = AsyncMemo::builder().on_removal(recorder(&removed)).build();
    let first = memo.insert("k", 1).unwrap();
    let second = memo.replace("k", first.epoch(), 2).unwrap();
    assert!(second.epoch() > first.epoch());
    assert_eq!(
        take(&removed),
        vec![("k", first.epoch(), RemovalCause::Replaced)]
    );
    assert_eq!(
        memo.replace("k", first.epoch(), 3).unwrap_err(),
        Some(second.epoch())
    );
    assert_eq!(memo.replace("absent", first.epoch(), 3).unwrap_err(), None);
    assert!(memo.get("absent").is_none(), "a failed swap stores nothing");
    assert_eq!(memo.get("k").map(|e| *e.value()), Some(2));
}

#[test]
fn replace_over_a_flight_detaches_it() {
    let memo = AsyncMemo::new();
    let (open, gate) = oneshot::channel::<()>();
    let mut load = pin!(memo.get_or_init("k", move || async move {
        gate.await.unwrap();
        1
    }));
    assert!(poll_once(load.as_mut()).is_pending());
    let flight = memo.epoch("k").unwrap();
    let swapped = memo.replace("k", flight, 2).unwrap();
    open.send(()).unwrap();
    let loaded = ready(poll_once(load.as_mut()));
    assert_eq!(
        (loaded.epoch(), *loaded.value()),
        (flight, 1),
        "its caller still gets it"
    );
    assert_eq!(
        memo.get("k").map(|e| e.epoch()),
        Some(swapped.epoch()),
        "never committed"
    );
}

#[test]
fn replace_names_the_entry_not_its_refresh() {
    let memo = AsyncMemo::new();
    let entry = memo.insert("k", 1).unwrap();
    let mut refresh = pin!(memo.refresh("k", futures::future::pending));
    assert!(poll_once(refresh.as_mut()).is_pending());
    let refreshing = memo.refreshing("k").unwrap();
    assert_eq!(
        memo.replace("k", refreshing, 2).unwrap_err(),
        Some(entry.epoch())
    );
    memo.replace("k", entry.epoch(), 2).unwrap();
    assert_eq!(
        memo.refreshing("k"),
        None,
        "replacing the entry detached its refresh"
    );
}
