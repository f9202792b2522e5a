//! A memoized function may call itself (other keys, from inside its own flight): each value is
//! computed once. The recursive call goes through a boxed `dyn Future + Send`, which states the
//! future's `Send` instead of asking rustc to infer it through the cycle (see the attribute's
//! docs, "Recursion").

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::memoize;
use futures::executor::block_on;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn fib(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if n < 2 {
        return n;
    }
    fib_boxed(n - 1).await + fib_boxed(n - 2).await
}

fn fib_boxed(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(fib(n))
}

#[test]
fn memoized_recursion_computes_each_value_once() {
    assert_eq!(block_on(fib(90)), 2_880_067_194_370_816_120);
    assert_eq!(RUNS.load(Ordering::SeqCst), 91, "fib(0..=90), once each");
    assert_eq!(fib_memo().len(), 91);
}

#[memoize]
async fn awaits_itself(n: u64) -> u64 {
    awaits_itself_boxed(n).await
}

fn awaits_itself_boxed(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(awaits_itself(n))
}

#[test]
fn a_body_awaiting_its_own_key_panics_instead_of_hanging_and_frees_the_key() {
    let outcome = std::panic::catch_unwind(|| block_on(awaits_itself(1)));
    assert!(outcome.is_err());
    assert!(
        awaits_itself_memo().epoch(&1).is_none(),
        "the key is free again"
    );
}
