//! `#[memoize]` on an async function and on a method: `cargo run --example memoize`.
//!
//! A pretend user service: 100 concurrent requests for one profile run the lookup once, a
//! failed lookup is not cached, a method's memo is keyed by tenant and id, and one result is
//! invalidated by the epoch it was observed under, leaving a newer one alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_memo::memoize;

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug, PartialEq)]
enum LookupError {
    NotFound(String),
}

/// The expensive call: one lookup per user for all concurrent callers, kept five minutes.
#[memoize(max_capacity = 10_000, time_to_live = Duration::from_secs(300))]
async fn profile(user: &str) -> Result<String, LookupError> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await; // the database
    if user.starts_with("ghost") {
        return Err(LookupError::NotFound(user.to_string()));
    }
    Ok(format!(
        "profile of {user} (lookup #{})",
        LOOKUPS.load(Ordering::SeqCst)
    ))
}

/// A client of a multi-tenant API: the memo is shared by every client, so the key says which
/// tenant a result belongs to.
#[derive(Clone)]
struct Client {
    tenant: u32,
}

impl Client {
    #[memoize(key: (u32, u64) = (self.tenant, order))]
    async fn order_total(&self, order: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        u64::from(self.tenant) * 1_000 + order
    }
}

#[tokio::main]
async fn main() -> Result<(), LookupError> {
    // 1. Single-flight: 100 concurrent callers, one lookup.
    let callers: Vec<_> = (0..100)
        .map(|_| tokio::spawn(async { profile("ann").await }))
        .collect();
    for caller in callers {
        caller.await.expect("no panic")?;
    }
    let lookups = LOOKUPS.load(Ordering::SeqCst);
    println!("1. 100 concurrent calls of profile(\"ann\"): {lookups} lookup");
    assert_eq!(lookups, 1);

    // 2. Errors are returned to every caller of the failed run, and not cached.
    let missing = profile("ghost").await;
    println!(
        "2. profile(\"ghost\") = {missing:?}; cached entries: {}",
        profile_memo().len()
    );
    assert_eq!(missing, Err(LookupError::NotFound("ghost".into())));
    assert!(profile_memo().get("ghost").is_none());

    // 3. Compare-and-delete: profile_entry returns ann's profile with the epoch it was stored
    //    under. Meanwhile another task refreshes the profile; our late invalidation by the epoch
    //    we saw leaves the fresh one alone. (An epoch read from the memo at that point,
    //    profile_memo().epoch("ann"), would be the fresh entry's, and would remove it.)
    let seen = profile_entry("ann").await?;
    profile_memo().remove("ann"); // the other task's refresh: remove, look up again
    let fresh = profile_entry("ann").await?;
    let stale_invalidation = profile_memo().invalidate("ann", seen.epoch());
    println!(
        "3. invalidate(\"ann\", epoch we saw) after a refresh: {stale_invalidation}; still cached: {}",
        fresh.value()
    );
    assert!(!stale_invalidation);
    assert_eq!(profile_memo().epoch("ann"), Some(fresh.epoch()));
    assert_eq!(&profile("ann").await?, fresh.value());

    // 4. A method: keyed by (tenant, order), one memo for every client.
    let (a, b) = (Client { tenant: 1 }, Client { tenant: 2 });
    let totals = (a.order_total(7).await, b.order_total(7).await);
    println!(
        "4. order 7 of tenants 1 and 2: {totals:?}; Client::order_total_memo() holds {} entries",
        Client::order_total_memo().len()
    );
    assert_eq!(totals, (1_007, 2_007));

    Ok(())
}
