//! Every shape of `#[memoize]` with `crate = "..."` under a dependency renamed to `memo`: here
//! `::async_memo` names nothing, so each of these compiles only through the option.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::executor::block_on;
use memo::{AsyncMemo, Entry, memoize};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize(crate = "memo")]
async fn square(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn a_free_function_through_the_renamed_crate() {
    assert_eq!(block_on(square(3)), 9);
    assert_eq!(block_on(square(3)), 9);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    let entry: Entry<u64> = block_on(square_entry(3));
    let memo: &'static AsyncMemo<u64, u64> = square_memo();
    assert!(memo.invalidate(&3, entry.epoch()));
}

type Fallible<T> = Result<T, String>;

#[memoize(crate = "memo", result = true)]
async fn parse(text: &str) -> Fallible<u16> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn a_result_alias_through_the_renamed_crate() {
    assert!(block_on(parse("x")).is_err());
    assert!(parse_memo().is_empty());
    assert_eq!(block_on(parse("8")), Ok(8));
    assert_eq!(parse_memo().len(), 1);
}

#[derive(Clone)]
struct Shop {
    id: u32,
}

impl Shop {
    #[memoize(crate = "memo", key: (u32, u64) = (self.id, item))]
    async fn price(&self, item: u64) -> u64 {
        u64::from(self.id) * 100 + item
    }

    #[memoize(crate = "memo", in_impl = true)]
    async fn currency(country: &str) -> String {
        if country == "FR" { "EUR" } else { "USD" }.to_string()
    }
}

#[test]
fn methods_and_associated_functions_through_the_renamed_crate() {
    assert_eq!(block_on(Shop { id: 2 }.price(5)), 205);
    assert_eq!(Shop::price_memo().len(), 1);
    assert_eq!(block_on(Shop::currency("FR")), "EUR");
    assert_eq!(Shop::currency_memo().len(), 1);
}

/// A framework that re-exports async-memo: the path may be any path to it.
mod framework {
    pub use memo as cache;
}

#[memoize(crate = "crate::framework::cache", max_capacity = 10)]
async fn through_a_reexport(n: u8) -> u8 {
    n + 1
}

#[test]
fn a_path_through_a_reexport() {
    assert_eq!(block_on(through_a_reexport(1)), 2);
    assert_eq!(through_a_reexport_memo().len(), 1);
}
