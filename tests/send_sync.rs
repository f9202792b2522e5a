//! Auto traits of the public types and of every returned future.
//!
//! Static assertions: `AsyncMemo` is `Send + Sync + Clone`, `Entry`, `EntryInfo`, `Epoch` and `Refused` have
//! the traits a user relies on, and the futures returned by `get_or_init`, `get_or_try_init` and their
//! `_by_ref` variants are `Send` for `Send` keys, values and inits, so they can run on a
//! multi-threaded executor. Most of this file is checked by the compiler; the tests only make
//! sure it is compiled, plus one that really spawns the futures on a multi-threaded runtime.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash};
use std::sync::Arc;

use async_memo::{AsyncMemo, DefaultHashBuilder, Entry, EntryInfo, Epoch, MemoBuilder, Refused};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync_clone_debug<T: Send + Sync + Clone + Debug + 'static>() {}
fn assert_send_sync_debug<T: Send + Sync + Debug>() {}
fn assert_epoch_traits<
    T: Copy + Send + Sync + Ord + Hash + Debug + Display + Unpin + std::panic::UnwindSafe + 'static,
>() {
}

#[test]
fn memo_is_send_sync_clone() {
    assert_send_sync_clone_debug::<AsyncMemo<String, String>>();
    assert_send_sync_clone_debug::<AsyncMemo<u64, Arc<Vec<u8>>>>();
    assert_send_sync_clone_debug::<AsyncMemo<&'static str, u32, RandomState>>();
    assert_send_sync_clone_debug::<AsyncMemo<u64, u64, BuildHasherDefault<DefaultHasher>>>();
    assert_send_sync_debug::<MemoBuilder<String, String>>();
    assert_send_sync_clone_debug::<DefaultHashBuilder>();
    // Ours, not std's `DefaultHasher` (imported above for the memo with SipHash's fixed keys).
    assert_send_sync_clone_debug::<async_memo::DefaultHasher>();
}

#[test]
fn entry_and_epoch_traits() {
    assert_send_sync_clone_debug::<Entry<String>>();
    assert_send_sync_clone_debug::<Entry<Arc<Vec<u8>>>>();
    assert_epoch_traits::<Epoch>();
    fn copy_eq<T: Copy + Eq + Send + Sync + Debug + Unpin + 'static>() {}
    copy_eq::<EntryInfo>();
    fn as_ref<V, T: AsRef<V>>() {}
    as_ref::<String, Entry<String>>();
}

#[test]
fn refused_is_an_error_that_boxes_for_any_value() {
    assert_send_sync_clone_debug::<Refused<String>>();
    fn boxes<E: std::error::Error + Send + Sync + 'static>() {}
    boxes::<Refused<String>>();
    // Debug without the value: `insert(..).unwrap()` works for a `V` that is not `Debug`.
    #[derive(Clone)]
    struct Opaque;
    assert_send_sync_clone_debug::<Refused<Opaque>>();
}

/// Builds (never polls) every kind of call future and asserts it is `Send`.
fn futures_are_send(memo: &AsyncMemo<String, Arc<str>>) {
    let value: Arc<str> = Arc::from("v");
    let captured = value.clone();
    let plain = memo.get_or_init("k".to_string(), move || async move { captured });
    assert_send(&plain);

    let captured = value.clone();
    let by_ref = memo.get_or_init_by_ref("k", move || async move { captured });
    assert_send(&by_ref);

    let captured = value.clone();
    let fallible = memo.get_or_try_init("k".to_string(), move || async move {
        Ok::<_, std::io::Error>(captured)
    });
    assert_send(&fallible);

    let fallible_by_ref =
        memo.get_or_try_init_by_ref("k", move || async move { Ok::<_, std::fmt::Error>(value) });
    assert_send(&fallible_by_ref);

    // The init closure needs only `Send`, not `Sync`: a `Cell` may be captured.
    let counter = Cell::new(0u32);
    let not_sync_init = memo.get_or_init("k".to_string(), move || {
        counter.set(counter.get() + 1);
        async { Arc::from("cell") }
    });
    assert_send(&not_sync_init);

    let refresh = memo.refresh("k".to_string(), || async { Arc::from("r") });
    assert_send(&refresh);
    let refresh_by_ref = memo.refresh_by_ref("k", || async { Arc::from("r") });
    assert_send(&refresh_by_ref);
    let try_refresh = memo.try_refresh("k".to_string(), || async {
        Ok::<_, std::io::Error>(Arc::from("r"))
    });
    assert_send(&try_refresh);
    let try_refresh_by_ref =
        memo.try_refresh_by_ref("k", || async { Ok::<_, std::io::Error>(Arc::from("r")) });
    assert_send(&try_refresh_by_ref);
    let epoch = memo
        .insert("k".to_string(), Arc::from("v"))
        .unwrap()
        .epoch();
    let refresh_if = memo.refresh_if(
        "k".to_string(),
        epoch,
        |old| async move { old.into_value() },
    );
    assert_send(&refresh_if);
    let refresh_if_by_ref =
        memo.refresh_if_by_ref("k", epoch, |old| async move { old.into_value() });
    assert_send(&refresh_if_by_ref);
}

#[test]
fn call_futures_are_send() {
    futures_are_send(&AsyncMemo::new());
}

/// A future that a `Send` bound accepts, for use inside `tokio::spawn`.
fn spawnable<F: Future + Send + 'static>(future: F) -> F {
    future
}

#[test]
fn call_futures_run_on_a_multi_threaded_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let memo: AsyncMemo<String, Arc<str>> = AsyncMemo::new();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let memo = memo.clone();
                tokio::spawn(spawnable(async move {
                    let key = format!("k{}", i % 2);
                    let a = memo
                        .get_or_init(key.clone(), || async { Arc::from("a") })
                        .await;
                    let b = memo
                        .get_or_try_init_by_ref(key.as_str(), || async {
                            tokio::task::yield_now().await;
                            Ok::<Arc<str>, std::io::Error>(Arc::from("b"))
                        })
                        .await
                        .unwrap();
                    assert_eq!(a.epoch(), b.epoch(), "the entry was already ready");
                    a
                }))
            })
            .collect();
        for task in tasks {
            assert_eq!(&**task.await.unwrap().value(), "a");
        }
        assert_eq!(memo.len(), 2);
    });
}
