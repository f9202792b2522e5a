//! The `f_entry` companion: the value of a call together with the epoch it was committed under,
//! so that a caller invalidates exactly the result it saw. Reading `f_memo().epoch(k)` after the
//! call instead (what the README once showed) may read a newer entry's epoch and remove that one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_memo::{Entry, memoize};
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::task::noop_waker_ref;

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(noop_waker_ref()))
}

#[memoize(key: String = name.to_owned())]
async fn config(name: &str, gate: oneshot::Receiver<u32>) -> String {
    format!("{name}={}", gate.await.unwrap_or(0))
}

/// The seed bug, forced: a caller's flight commits, the entry is replaced before the caller
/// looks at it, and only then does the caller invalidate. By the epoch `config_entry` returned,
/// the invalidation misses (the result it saw is already gone) and the newer entry survives; by
/// an epoch read afterwards, the newer entry would have been removed.
#[test]
fn seed_bug_an_entry_replaced_after_the_call_is_not_invalidated_by_it() {
    let (open, gate) = oneshot::channel();
    let mut driver = Box::pin(config_entry("db", gate));
    assert!(poll_once(&mut driver).is_pending(), "the flight started");
    let (_unused, other_gate) = oneshot::channel();
    let mut joined = Box::pin(config_entry("db", other_gate));
    assert!(poll_once(&mut joined).is_pending(), "joined the flight");

    open.send(1).unwrap();
    let Poll::Ready(driven) = poll_once(&mut driver) else {
        panic!("the flight committed");
    };
    // The joined caller has been woken but not polled yet: someone replaces the entry now.
    let memo = config_memo();
    let newer = memo
        .insert("db".to_string(), "db=2".to_string())
        .expect("no bound");

    let Poll::Ready(seen) = poll_once(&mut joined) else {
        panic!("the joined caller gets the flight's result");
    };
    assert_eq!(
        seen.value(),
        "db=1",
        "the joined caller saw the flight's value"
    );
    assert_eq!(seen.epoch(), driven.epoch(), "under the flight's epoch");
    assert_ne!(seen.epoch(), newer.epoch());
    // What reading the epoch after the call would have returned: the newer entry's.
    assert_eq!(memo.epoch("db"), Some(newer.epoch()));

    assert!(
        !memo.invalidate("db", seen.epoch()),
        "the result this call saw is already gone"
    );
    assert_eq!(
        memo.get("db").map(Entry::into_value),
        Some("db=2".to_string()),
        "the newer entry survives"
    );
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn version(name: &str) -> String {
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{name} v{run}")
}

#[test]
fn f_and_f_entry_share_the_memo_and_a_hit_returns_the_stored_epoch() {
    let first = block_on(version_entry("app"));
    assert_eq!(first.value(), "app v0");
    assert_eq!(version_memo().epoch("app"), Some(first.epoch()));
    assert_eq!(
        block_on(version("app")),
        "app v0",
        "f hits what f_entry stored"
    );
    let hit = block_on(version_entry("app"));
    assert_eq!((hit.value(), hit.epoch()), (first.value(), first.epoch()));

    assert!(version_memo().invalidate("app", first.epoch()));
    let second = block_on(version_entry("app"));
    assert_eq!(second.value(), "app v1");
    assert!(second.epoch() > first.epoch());
}

static PARSES: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn port(text: &str) -> Result<u16, String> {
    PARSES.fetch_add(1, Ordering::SeqCst);
    text.parse().map_err(|_| format!("not a port: {text}"))
}

#[test]
fn for_a_result_f_entry_returns_the_ok_entry_or_the_error() {
    let err: Result<Entry<u16>, String> = block_on(port_entry("x"));
    assert_eq!(err.unwrap_err(), "not a port: x");
    assert!(port_memo().is_empty(), "the error is not stored");
    let ok = block_on(port_entry("80")).expect("a port");
    assert_eq!(*ok.value(), 80);
    assert_eq!(port_memo().epoch("80"), Some(ok.epoch()));
    assert_eq!(block_on(port("80")), Ok(80));
    assert_eq!(PARSES.load(Ordering::SeqCst), 2);
}

#[derive(Clone)]
struct Catalog {
    shop: u32,
}

impl Catalog {
    #[memoize(key: (u32, u64) = (self.shop, item))]
    async fn price(&self, item: u64) -> u64 {
        u64::from(self.shop) * 100 + item
    }

    #[memoize(in_impl = true)]
    async fn tax_rate(country: &str) -> u32 {
        Self::base_rate() + u32::from(country == "FR")
    }

    fn base_rate() -> u32 {
        20
    }
}

#[test]
fn methods_and_associated_functions_have_their_entry_companion() {
    let catalog = Catalog { shop: 3 };
    let price = block_on(catalog.price_entry(7));
    assert_eq!(*price.value(), 307);
    assert!(Catalog::price_memo().invalidate(&(3, 7), price.epoch()));

    let rate = block_on(Catalog::tax_rate_entry("FR"));
    assert_eq!(*rate.value(), 21);
    assert_eq!(Catalog::tax_rate_memo().epoch("FR"), Some(rate.epoch()));
}
