//! One local flight's way through the shared tier: the shared value; or the key's lease, a
//! load from the source and a compare-and-set store; or a wait for another process's load.
//!
//! Invariants:
//!
//! 1. The loader runs only with the key's lease, or with no lease at all when the tier cannot
//!    give one (Redis unreachable, a wait that timed out); then nothing is stored in Redis. A
//!    shared value that does not decode is a miss: the next fetch counts it as absent.
//! 2. A value goes into Redis only through the store script, which compares the lease's token
//!    and generation: a revoked lease stores nothing.
//! 3. A store that was refused, or whose outcome is unknown, detaches the flight
//!    (compare-and-delete on its own epoch), so the value goes to the flight's callers only
//!    and is never committed locally: when in doubt, the next miss loads again.
//! 4. A lease this flight holds is given back on every path that does not store: an error,
//!    a value that cannot be shared, a cancelled flight, a panic (`LeaseGuard`).
//! 5. A waiter registers before each fetch (waiters.rs, invariant 1) and never sleeps past the
//!    lease's expiry or the wait bound.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared_stats::SharedCounters;
use crate::tier::{Fetched, Lease, Tier};

/// Why [`NearMemo::get_or_try_init_bounded`](crate::NearMemo::get_or_try_init_bounded)
/// failed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_memo_redis::LoadError;
///
/// let error: LoadError<std::io::Error> = LoadError::WaitTimedOut { waited: Duration::from_secs(20) };
/// assert_eq!(error.to_string(), "waited 20s for another process's load of the key");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader failed.
    Source(E),
    /// Another process held the key's lease for longer than
    /// [`SharedTier::max_wait`](crate::SharedTier::max_wait), and the bounded call does not
    /// load it itself.
    WaitTimedOut {
        /// How long the flight waited.
        waited: Duration,
    },
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Source(e) => write!(f, "the load failed: {e}"),
            LoadError::WaitTimedOut { waited } => {
                write!(f, "waited {waited:?} for another process's load of the key")
            }
        }
    }
}

impl<E: Error + 'static> Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            LoadError::Source(e) => Some(e),
            LoadError::WaitTimedOut { .. } => None,
        }
    }
}

/// What a flight does with a loader error and with a wait that reached the bound.
pub(crate) struct Policy<E, X> {
    pub(crate) source: fn(E) -> X,
    /// `None`: load it here (without a lease, storing nothing in Redis).
    pub(crate) timed_out: Option<fn(Duration) -> X>,
}

/// Where a flight goes: the tier, the key as its codec encoded it, and whether the log was
/// reachable when the flight started (if not, the flight goes straight to the source).
pub(crate) struct Through<V> {
    pub(crate) tier: Arc<Tier<V>>,
    pub(crate) key: Vec<u8>,
    pub(crate) reachable: bool,
}

/// The value of a key for a local flight (see the module docs). `init` is the loader's future,
/// polled only if this flight loads. `detach` detaches the flight (invariant 3).
pub(crate) async fn load<V, E, X, Fut>(
    through: Through<V>,
    init: Fut,
    policy: Policy<E, X>,
    detach: impl FnOnce(),
) -> Result<V, X>
where
    V: Send + Sync + 'static,
    Fut: Future<Output = Result<V, E>>,
{
    let Through {
        tier,
        key,
        reachable,
    } = through;
    let counters = &tier.counters;
    if !reachable {
        SharedCounters::bump(&counters.unreachable);
        return from_source(counters, init, policy.source).await;
    }
    let started = Instant::now();
    let bound = tier.settings.wait_bound();
    let waiter = tier.waiters.register(&key);
    let mut waited = false;
    let mut undecodable: Option<String> = None;
    loop {
        let mut woken = pin!(waiter.notify().notified());
        woken.as_mut().enable();
        let fetched = tier.fetch(&key, undecodable.as_deref()).await;
        // A wait ends with anything but another "held" or a value that does not decode.
        let wait_over = || {
            if waited {
                counters.waited(started.elapsed());
            }
        };
        match fetched {
            Err(_) | Ok(Fetched::Nothing) => {
                wait_over();
                SharedCounters::bump(&counters.unreachable);
                return from_source(counters, init, policy.source).await;
            }
            Ok(Fetched::Value { token, bytes }) => match tier.settings.codec.decode(&bytes) {
                Some(value) => {
                    wait_over();
                    SharedCounters::bump(&counters.shared_hits);
                    return Ok(value);
                }
                None => {
                    // A miss, as any other: ask again as if that value were absent, so that
                    // one process takes the lease and replaces it (another codec, another
                    // version of `V`), and the others wait for its value.
                    SharedCounters::bump(&counters.decode_failures);
                    undecodable = Some(token);
                }
            },
            Ok(Fetched::Lease(lease)) => {
                wait_over();
                SharedCounters::bump(&counters.leases_granted);
                if waited {
                    SharedCounters::bump(&counters.takeovers);
                }
                return hold(Arc::clone(&tier), key, lease, init, policy.source, detach).await;
            }
            Ok(Fetched::Held { ttl }) => {
                if !waited {
                    waited = true;
                    SharedCounters::bump(&counters.waits);
                }
                let elapsed = started.elapsed();
                if elapsed >= bound {
                    SharedCounters::bump(&counters.wait_timeouts);
                    counters.waited(elapsed);
                    return match policy.timed_out {
                        Some(fail) => Err(fail(elapsed)),
                        None => from_source(counters, init, policy.source).await,
                    };
                }
                // The holder's store or release wakes us through the log; the expiry of a dead
                // holder's lease does not, so look again when it is due (a millisecond late:
                // the server's expiry is exact to one).
                let nap = ttl
                    .saturating_add(Duration::from_millis(1))
                    .min(bound - elapsed);
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep(nap) => {}
                }
            }
        }
    }
}

/// The loader without a lease (invariant 1): nothing is stored in Redis.
async fn from_source<V, E, X, Fut>(
    counters: &SharedCounters,
    init: Fut,
    source: fn(E) -> X,
) -> Result<V, X>
where
    Fut: Future<Output = Result<V, E>>,
{
    SharedCounters::bump(&counters.source_loads);
    init.await.map_err(source)
}

/// The loader with the key's lease, then the store.
async fn hold<V, E, X, Fut>(
    tier: Arc<Tier<V>>,
    key: Vec<u8>,
    lease: Lease,
    init: Fut,
    source: fn(E) -> X,
    detach: impl FnOnce(),
) -> Result<V, X>
where
    V: Send + Sync + 'static,
    Fut: Future<Output = Result<V, E>>,
{
    let mut guard = LeaseGuard {
        tier: Arc::clone(&tier),
        key,
        lease: Some(lease),
    };
    SharedCounters::bump(&tier.counters.source_loads);
    let value = match init.await {
        Ok(value) => value,
        Err(e) => {
            guard.release().await;
            return Err(source(e));
        }
    };
    let mut bytes = Vec::new();
    let encoded = tier.settings.codec.encode(&value, &mut bytes);
    if encoded.is_err() || bytes.len() > tier.settings.max_value_bytes {
        SharedCounters::bump(&tier.counters.not_shared);
        guard.release().await;
        return Ok(value);
    }
    let stored = match &guard.lease {
        Some(lease) => tier.store(&guard.key, lease, &bytes).await,
        None => return Ok(value),
    };
    match stored {
        Ok(true) => {
            guard.lease = None;
            SharedCounters::bump(&tier.counters.stored);
        }
        Ok(false) => {
            // Invariant 3: revoked — an invalidation came after our load began.
            guard.lease = None;
            SharedCounters::bump(&tier.counters.refused_sets);
            detach();
        }
        Err(_) => {
            // Unknown outcome: stored, or not, and perhaps after an invalidation this process
            // has not read yet. Invariant 3; the guard gives the lease back in the background
            // (it expires by itself otherwise).
            SharedCounters::bump(&tier.counters.unreachable);
            detach();
        }
    }
    Ok(value)
}

/// Gives a held lease back on every path that does not store (invariant 4).
struct LeaseGuard<V: Send + Sync + 'static> {
    tier: Arc<Tier<V>>,
    key: Vec<u8>,
    lease: Option<Lease>,
}

impl<V: Send + Sync + 'static> LeaseGuard<V> {
    async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            // A failed release costs the waiters at most the lease's time to live.
            let _ = self.tier.release(&self.key, &lease).await;
        }
    }
}

impl<V: Send + Sync + 'static> Drop for LeaseGuard<V> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        // Cancelled or panicked mid-load: release in the background, if there is a runtime to
        // run it (at a runtime's shutdown there is none, and the lease expires by itself).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tier = Arc::clone(&self.tier);
            let key = std::mem::take(&mut self.key);
            runtime.spawn(async move {
                let _ = tier.release(&key, &lease).await;
            });
        }
    }
}
