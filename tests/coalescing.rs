//! Single-flight: concurrent callers of one key share one flight (semantics 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::AsyncMemo;
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
