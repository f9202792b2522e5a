//! The shared tier's settings ([`SharedTier`]) and its connection to Redis ([`Tier`]): the
//! fetch, store and release scripts as typed calls.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use redis::{Client, RedisResult, Value};

use crate::ValueCodec;
use crate::conn::LazyConnection;
use crate::redis_log::protocol;
use crate::scripts::{Call, Namespace, SCRIPTS, millis};
use crate::shared_stats::SharedCounters;
use crate::waiters::Waiters;

/// A shared tier for a [`NearMemo`](crate::NearMemo): values live in Redis beside the
/// invalidation log, and a miss anywhere in the fleet is loaded from the source once — the
/// leases of memcache at Facebook (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013,
/// §3.2.1), with our epochs' rule: a store is a compare-and-set on the lease the loader was
/// granted, and an invalidation revokes it, so a value loaded before an invalidation is never
/// stored (the stale set of aiocache #95, JetCache #580, hazelcast #1905).
///
/// Give it to [`NearMemoBuilder::shared`](crate::NearMemoBuilder::shared); the
/// [crate docs](crate#the-shared-tier) state its guarantees.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use async_memo::AsyncMemo;
/// use async_memo_redis::{NearMemo, Plain, RedisLog, SharedTier};
///
/// # async fn f() -> Result<(), redis::RedisError> {
/// let prices: NearMemo<String, u64> = NearMemo::builder(RedisLog::open("redis://127.0.0.1/", "prices")?)
///     .shared(SharedTier::new(Plain).lease_ttl(Duration::from_secs(5)))
///     .start(AsyncMemo::new())
///     .await?;
/// let price = prices.get_or_init("AAPL".into(), || async { 189 }).await;
/// # let _ = price; Ok(()) }
/// ```
pub struct SharedTier<V> {
    pub(crate) codec: Box<dyn ValueCodec<V>>,
    pub(crate) lease_ttl: Duration,
    pub(crate) value_ttl: Duration,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_wait: Option<Duration>,
}

impl<V> fmt::Debug for SharedTier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTier")
            .field("lease_ttl", &self.lease_ttl)
            .field("value_ttl", &self.value_ttl)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_wait", &self.wait_bound())
            .finish_non_exhaustive()
    }
}

impl<V> SharedTier<V> {
    /// A shared tier whose values travel through `codec`, with the defaults: leases of 10 s,
    /// values kept 1 h, at most 1 MiB a value, waits of at most twice the lease.
    ///
    /// # Examples
    ///
    /// ```
    /// let tier = async_memo_redis::SharedTier::<String>::new(async_memo_redis::Plain);
    /// ```
    pub fn new(codec: impl ValueCodec<V>) -> SharedTier<V> {
        SharedTier {
            codec: Box::new(codec),
            lease_ttl: Duration::from_secs(10),
            value_ttl: Duration::from_secs(3600),
            max_value_bytes: 1 << 20,
            max_wait: None,
        }
    }

    /// How long a lease lasts (default 10 s; whole milliseconds, at least 1 ms, at most a
    /// year). A holder that dies delays the key's other loads by at most this; a load that
    /// takes longer loses its lease, and its value, though returned to its callers, is not
    /// stored (another process may have taken the lease over). Set it above your slowest
    /// load.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let tier = async_memo_redis::SharedTier::<String>::new(async_memo_redis::Plain)
    ///     .lease_ttl(Duration::from_secs(30));
    /// ```
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long a shared value is kept in Redis (default 1 h; whole milliseconds, at least
    /// 1 ms, at most a year): the backstop for a writer that changed the source and crashed
    /// before it invalidated. Invalidations remove values long before.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let tier = async_memo_redis::SharedTier::<String>::new(async_memo_redis::Plain)
    ///     .value_ttl(Duration::from_secs(600));
    /// ```
    pub fn value_ttl(mut self, ttl: Duration) -> Self {
        self.value_ttl = ttl;
        self
    }

    /// The largest encoded value stored (default 1 MiB). A larger one is returned to its
    /// loader's callers and committed locally, but not shared: the lease is released (waiters
    /// take it in turn and load the value themselves) and
    /// [`SharedStats::not_shared`](crate::SharedStats::not_shared) counts it.
    ///
    /// # Examples
    ///
    /// ```
    /// let tier = async_memo_redis::SharedTier::<Vec<u8>>::new(async_memo_redis::Plain)
    ///     .max_value_bytes(64 * 1024);
    /// ```
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// How long a flight waits, in all, for other processes' loads of its key (default twice
    /// the [lease](Self::lease_ttl)), plus the time of the fetch under way when it runs out
    /// (at most the connection's 2 s to connect and 2 s to answer, twice: a fetch is retried
    /// once on a broken connection). A wait normally ends much sooner: when the holder stores
    /// its value (the flight is woken through the log) or gives the lease back, or when a dead
    /// holder's lease expires and this flight takes it over. At the bound,
    /// [`NearMemo::get_or_init`](crate::NearMemo::get_or_init) and
    /// [`get_or_try_init`](crate::NearMemo::get_or_try_init) load the value themselves,
    /// without a lease and without storing it in Redis (the default policy), and
    /// [`get_or_try_init_bounded`](crate::NearMemo::get_or_try_init_bounded) fails with
    /// [`LoadError::WaitTimedOut`](crate::LoadError::WaitTimedOut).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let tier = async_memo_redis::SharedTier::<String>::new(async_memo_redis::Plain)
    ///     .max_wait(Duration::from_millis(500));
    /// ```
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }

    pub(crate) fn wait_bound(&self) -> Duration {
        self.max_wait
            .unwrap_or_else(|| self.lease_ttl.saturating_mul(2))
    }
}

/// A lease this process holds: its token, and the generation it was granted in.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    pub(crate) token: String,
    pub(crate) generation: String,
}

/// The answer of the fetch script.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// The key's shared value, and the lease token it was stored under.
    Value { token: String, bytes: Vec<u8> },
    /// This process now holds the key's lease and must load.
    Lease(Lease),
    /// Another process holds it, for `ttl` more.
    Held { ttl: Duration },
    /// No value, and no lease was asked for (a peek).
    Nothing,
}

/// The shared tier of one running `NearMemo`.
pub(crate) struct Tier<V> {
    pub(crate) settings: SharedTier<V>,
    client: Client,
    namespace: Namespace,
    connection: LazyConnection,
    pub(crate) waiters: Waiters,
    pub(crate) counters: SharedCounters,
    origin: u64,
    tokens: AtomicU64,
}

impl<V> fmt::Debug for Tier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tier")
            .field("settings", &self.settings)
            .field("stream", &self.namespace.stream())
            .finish_non_exhaustive()
    }
}

impl<V> Tier<V> {
    pub(crate) fn new(
        settings: SharedTier<V>,
        client: Client,
        namespace: Namespace,
        origin: u64,
    ) -> Tier<V> {
        Tier {
            settings,
            client,
            namespace,
            // A script answers in well under a millisecond; a server that does not answer in
            // 2 s is treated as unreachable (the flight loads from the source instead).
            connection: LazyConnection::new(Some(Duration::from_secs(2))),
            waiters: Waiters::default(),
            counters: SharedCounters::default(),
            origin,
            tokens: AtomicU64::new(0),
        }
    }

    /// A token no other lease of this namespace has: this process's origin and a counter.
    fn token(&self) -> String {
        format!(
            "{:016x}{:016x}",
            self.origin,
            self.tokens.fetch_add(1, Relaxed)
        )
    }

    /// Runs a script; once more on a new connection if the first attempt failed on the
    /// connection (a restarted server, say), whether or not the script had run. Each script is
    /// safe to run twice: a repeated fetch finds its own token and answers "lease"; a repeated
    /// store finds its lease gone and answers "revoked" (the flight then stores nothing
    /// locally either); a repeated release finds nothing to release.
    async fn run(&self, call: &Call<'_>, script: &redis::Script) -> RedisResult<Value> {
        let invocation = call.invocation(script);
        let mut attempt = 0;
        loop {
            let mut connection = self.connection.get(&self.client).await?;
            let reply = invocation.invoke_async(&mut connection).await;
            match self.connection.forget_on_error(reply) {
                Err(e) if attempt == 0 && (e.is_connection_dropped() || e.is_io_error()) => {
                    attempt += 1;
                }
                reply => return reply,
            }
        }
    }

    /// The fetch script: the shared value, a lease, or word that another process holds it. A
    /// value stored under `undecodable` (a token whose bytes this process could not decode)
    /// counts as absent.
    pub(crate) async fn fetch(
        &self,
        key: &[u8],
        undecodable: Option<&str>,
    ) -> RedisResult<Fetched> {
        self.fetch_with(key, self.token(), undecodable.unwrap_or(""))
            .await
    }

    /// The key's shared value, if any, taking no lease.
    pub(crate) async fn peek(&self, key: &[u8]) -> RedisResult<Option<Vec<u8>>> {
        match self.fetch_with(key, String::new(), "").await? {
            Fetched::Value { bytes, .. } => Ok(Some(bytes)),
            Fetched::Lease(_) | Fetched::Held { .. } | Fetched::Nothing => Ok(None),
        }
    }

    async fn fetch_with(
        &self,
        key: &[u8],
        token: String,
        undecodable: &str,
    ) -> RedisResult<Fetched> {
        let mut call = self.namespace.call(self.origin, crate::reader::now_us());
        call.arg(key)
            .arg(token.as_str())
            .arg(millis(self.settings.lease_ttl))
            .arg(undecodable);
        let reply: Vec<Value> = redis::from_redis_value(self.run(&call, &SCRIPTS.fetch).await?)?;
        let mut parts = reply.into_iter();
        let kind: String = redis::from_redis_value(parts.next().unwrap_or(Value::Nil))?;
        let generation: String = redis::from_redis_value(parts.next().unwrap_or(Value::Nil))?;
        match kind.as_str() {
            "value" => {
                let token: String = redis::from_redis_value(parts.next().unwrap_or(Value::Nil))?;
                let bytes: Vec<u8> = redis::from_redis_value(parts.next().unwrap_or(Value::Nil))?;
                Ok(Fetched::Value { token, bytes })
            }
            "lease" => Ok(Fetched::Lease(Lease { token, generation })),
            "none" => Ok(Fetched::Nothing),
            "held" => {
                let ms: i64 = redis::from_redis_value(parts.next().unwrap_or(Value::Nil))?;
                // A lease without an expiry (-1: set by hand, never by these scripts) is
                // looked at again after a lease's length, not polled.
                let ttl = u64::try_from(ms).map_or(self.settings.lease_ttl, Duration::from_millis);
                Ok(Fetched::Held { ttl })
            }
            _ => Err(protocol("the fetch script returned an unknown answer")),
        }
    }

    /// The store script: `bytes` become the key's shared value if `lease` is still its lease.
    /// `Ok(false)`: revoked, stored nowhere.
    pub(crate) async fn store(&self, key: &[u8], lease: &Lease, bytes: &[u8]) -> RedisResult<bool> {
        let mut call = self.namespace.call(self.origin, crate::reader::now_us());
        call.arg(key)
            .arg(lease.token.as_str())
            .arg(lease.generation.as_str())
            .arg(millis(self.settings.value_ttl))
            .arg(bytes);
        let answer: String = redis::from_redis_value(self.run(&call, &SCRIPTS.store).await?)?;
        match answer.as_str() {
            "stored" => Ok(true),
            "revoked" => Ok(false),
            _ => Err(protocol("the store script returned an unknown answer")),
        }
    }

    /// The release script: gives `lease` back, if it is still the key's lease.
    pub(crate) async fn release(&self, key: &[u8], lease: &Lease) -> RedisResult<()> {
        let mut call = self.namespace.call(self.origin, crate::reader::now_us());
        call.arg(key)
            .arg(lease.token.as_str())
            .arg(lease.generation.as_str());
        self.run(&call, &SCRIPTS.release).await.map(drop)
    }
}
