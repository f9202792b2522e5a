//! `NearMemo`: a memo whose invalidations reach every process of its namespace.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use async_memo::{AsyncMemo, DefaultHashBuilder};
use tokio::task::JoinHandle;

use crate::load::{self, Policy};
use crate::reader::{Shared, now_us};
use crate::stats::Counters;
use crate::tier::Tier;
use crate::{
    Invalidation, KeyCodec, Link, LoadError, LogId, LogStats, Outgoing, Plain, RedisLog,
    SharedStats, Transport,
};

/// An [`AsyncMemo`] kept consistent with the memos of other processes through an
/// invalidation log.
///
/// Build one with [`NearMemo::builder`]; see the [crate docs](crate) for the guarantees.
/// Clones share the memo, the log and the reader task; the task stops when the last clone is
/// dropped. `T` is the log ([`RedisLog`] by default), `C` the key codec ([`Plain`] by default)
/// and `S` the memo's hasher ([`DefaultHashBuilder`] by default; another one, such as std's
/// SipHash `RandomState`, comes with the memo given to [`NearMemoBuilder::start`](crate::NearMemoBuilder::start)).
///
/// # Examples
///
/// ```no_run
/// use async_memo::AsyncMemo;
/// use async_memo_redis::{NearMemo, RedisLog};
///
/// # async fn f() -> Result<(), redis::RedisError> {
/// let log = RedisLog::open("redis://127.0.0.1/", "users")?;
/// let users: NearMemo<String, String> = NearMemo::builder(log).start(AsyncMemo::new()).await?;
/// let name = users.get_or_init("7".to_string(), || async { "Ada".to_string() }).await;
/// // After the source of truth changed:
/// users.invalidate(&"7".to_string()).await?;
/// # let _ = name; Ok(()) }
/// ```
pub struct NearMemo<K, V, T = RedisLog, C = Plain, S = DefaultHashBuilder> {
    pub(crate) shared: Arc<Shared<K, V, C, S>>,
    pub(crate) log: Arc<T>,
    pub(crate) task: Arc<ReaderTask>,
}

/// Aborts the reader task when the last handle goes.
pub(crate) struct ReaderTask(pub(crate) JoinHandle<()>);

impl Drop for ReaderTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<K, V, T, C, S> Clone for NearMemo<K, V, T, C, S> {
    fn clone(&self) -> Self {
        NearMemo {
            shared: Arc::clone(&self.shared),
            log: Arc::clone(&self.log),
            task: Arc::clone(&self.task),
        }
    }
}

impl<K, V, T: fmt::Debug, C, S> fmt::Debug for NearMemo<K, V, T, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearMemo")
            .field("log", &self.log)
            .field("origin", &self.shared.origin)
            .field("stats", &self.shared.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl<K, V, T, C, S> NearMemo<K, V, T, C, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    T: Transport,
    C: KeyCodec<K>,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// The memo itself: every method of [`AsyncMemo`] works on it, and remote invalidations
    /// reach it. Reads through it ignore [`WhenDisconnected::Bypass`](crate::WhenDisconnected::Bypass).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(users: async_memo_redis::NearMemo<String, String>) {
    /// let entry = users.memo().get_or_init("7".into(), || async { "Ada".to_string() }).await;
    /// println!("{} at epoch {}", entry.value(), entry.epoch());
    /// # }
    /// ```
    pub fn memo(&self) -> &AsyncMemo<K, V, S> {
        &self.shared.memo
    }

    /// The log.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(users: async_memo_redis::NearMemo<String, String>) {
    /// println!("{}", users.log().stream_key());
    /// # }
    /// ```
    pub fn log(&self) -> &T {
        &self.log
    }

    /// The value of `key`: [`AsyncMemo::get_or_init`], or, while the
    /// [link](Link::Bypassing) bypasses the memo, `init`'s value, computed for this caller
    /// alone and not stored.
    ///
    /// With a [shared tier](crate::SharedTier), the local flight of a miss first asks Redis:
    /// the key's shared value, or its lease (then `init` runs here and its value is stored in
    /// Redis if the lease was not revoked meanwhile), or a wait for the process that holds it.
    /// A wait that reaches [`max_wait`](crate::SharedTier::max_wait) runs `init` here, without
    /// a lease, storing nothing in Redis. `init` is called when the local flight starts, as
    /// always; the future it returns is polled only if this process loads the value.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncMemo::get_or_init`]: cancel safe. A lease held by a flight whose last caller
    /// is dropped is given back, and a waiting process takes it over.
    ///
    /// # Panics
    ///
    /// As [`AsyncMemo::get_or_init`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(users: async_memo_redis::NearMemo<String, String>) {
    /// let name = users.get_or_init("7".into(), || async { "Ada".to_string() }).await;
    /// # }
    /// ```
    pub async fn get_or_init<F, Fut>(&self, key: K, init: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        if self.bypassing() {
            return init().await;
        }
        let Some(tier) = &self.shared.tier else {
            return self.shared.memo.get_or_init(key, init).await.into_value();
        };
        let policy = Policy {
            source: |never: Infallible| never,
            timed_out: None,
        };
        let init = || {
            let load = init();
            async move { Ok::<V, Infallible>(load.await) }
        };
        match self.through_tier(tier, &key, init, policy).await {
            Ok(entry) => entry.into_value(),
            Err(never) => match *never {},
        }
    }

    /// The value of `key`: [`AsyncMemo::get_or_try_init`], or, while the link bypasses the
    /// memo, `init`'s result for this caller alone, stored nowhere. With a
    /// [shared tier](crate::SharedTier), as [`get_or_init`](Self::get_or_init); an error is
    /// stored nowhere, and the lease is given back at once.
    ///
    /// # Errors
    ///
    /// The flight's error, shared as one `Arc<E>` by its callers.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncMemo::get_or_try_init`]: cancel safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(ports: async_memo_redis::NearMemo<String, u16>) {
    /// let port = ports.get_or_try_init("http".into(), || async { "80".parse::<u16>() }).await;
    /// # }
    /// ```
    pub async fn get_or_try_init<F, Fut, E>(&self, key: K, init: F) -> Result<V, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        if self.bypassing() {
            return init().await.map_err(Arc::new);
        }
        let Some(tier) = &self.shared.tier else {
            return self
                .shared
                .memo
                .get_or_try_init(key, init)
                .await
                .map(|e| e.into_value());
        };
        let policy = Policy {
            source: |e: E| e,
            timed_out: None,
        };
        let entry = self.through_tier(tier, &key, init, policy).await;
        entry.map(|e| e.into_value())
    }

    /// As [`get_or_try_init`](Self::get_or_try_init), but a flight that waits for another
    /// process's load longer than [`SharedTier::max_wait`](crate::SharedTier::max_wait) fails
    /// with [`LoadError::WaitTimedOut`] instead of loading the value here: the policy for a
    /// source that must not see a second load (it would rather the caller fail).
    ///
    /// # Errors
    ///
    /// [`LoadError::Source`] with `init`'s error, or [`LoadError::WaitTimedOut`]; shared as one
    /// `Arc` by the flight's callers. Neither is stored.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncMemo::get_or_try_init`]: cancel safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use async_memo_redis::LoadError;
    ///
    /// # async fn f(reports: async_memo_redis::NearMemo<String, String>) {
    /// match reports.get_or_try_init_bounded("q3".into(), || async { Ok::<_, std::io::Error>("…".to_string()) }).await {
    ///     Ok(report) => println!("{report}"),
    ///     Err(e) if matches!(*e, LoadError::WaitTimedOut { .. }) => println!("busy, try later"),
    ///     Err(e) => println!("failed: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn get_or_try_init_bounded<F, Fut, E>(
        &self,
        key: K,
        init: F,
    ) -> Result<V, Arc<LoadError<E>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        if self.bypassing() {
            return init().await.map_err(|e| Arc::new(LoadError::Source(e)));
        }
        let Some(tier) = &self.shared.tier else {
            let init = || {
                let load = init();
                async move { load.await.map_err(LoadError::Source) }
            };
            return self
                .shared
                .memo
                .get_or_try_init(key, init)
                .await
                .map(|e| e.into_value());
        };
        let policy = Policy {
            source: LoadError::Source,
            timed_out: Some(|waited| LoadError::WaitTimedOut { waited }),
        };
        let entry = self.through_tier(tier, &key, init, policy).await;
        entry.map(|e| e.into_value())
    }

    /// A local flight whose future goes through the shared tier (`load.rs`). Everything the
    /// tier needs — the key's bytes, the key itself, the tier — is made in `init`, which the
    /// memo calls on a miss only: a local hit costs what it costs without the tier. The flight
    /// knows its own epoch, so that a store the tier refused detaches exactly this flight.
    fn through_tier<'a, F, Fut, E, X>(
        &'a self,
        tier: &'a Arc<Tier<V>>,
        key: &'a K,
        init: F,
        policy: Policy<E, X>,
    ) -> impl Future<Output = Result<async_memo::Entry<V>, Arc<X>>> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + 'static,
        X: Send + Sync + 'static,
    {
        self.shared
            .memo
            .get_or_try_init_with_epoch_by_ref(key, move |epoch| {
                // While the log is down, straight to the source: the `WhenDisconnected` policy
                // bounds what the memo keeps, and nothing goes into Redis.
                let reachable = !matches!(
                    self.shared.counters.link(),
                    Some(Link::Disconnected | Link::Bypassing)
                );
                let memo = self.shared.memo.downgrade();
                let own = key.clone();
                let detach = move || {
                    if let Some(memo) = memo.upgrade() {
                        memo.invalidate(&own, epoch);
                    }
                };
                let through = load::Through {
                    tier: Arc::clone(tier),
                    key: self.encode(key),
                    reachable,
                };
                load::load(through, init(), policy, detach)
            })
    }

    /// The value the [shared tier](crate::SharedTier) holds for `key` now, if any: a look
    /// that takes no lease and leaves the key alone (for checks and dashboards; reads go
    /// through [`get_or_init`](Self::get_or_init)). Like every script of the tier, the first
    /// one after a server restart starts the namespace's new generation. `Ok(None)` without a
    /// shared tier, or when the stored bytes do not decode.
    ///
    /// # Errors
    ///
    /// Redis could not be asked.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it reads the key only.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(prices: async_memo_redis::NearMemo<String, u64>) -> redis::RedisResult<()> {
    /// if let Some(price) = prices.peek_shared(&"AAPL".to_string()).await? {
    ///     println!("the fleet's price: {price}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn peek_shared(&self, key: &K) -> redis::RedisResult<Option<V>> {
        let Some(tier) = &self.shared.tier else {
            return Ok(None);
        };
        let bytes = tier.peek(&self.encode(key)).await?;
        Ok(bytes.and_then(|b| tier.settings.codec.decode(&b)))
    }

    /// The shared tier's counters in this process, if it has one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(users: async_memo_redis::NearMemo<String, String>) {
    /// if let Some(shared) = users.shared_stats() {
    ///     println!("{} loads, {} from other processes", shared.source_loads, shared.shared_hits);
    /// }
    /// # }
    /// ```
    pub fn shared_stats(&self) -> Option<SharedStats> {
        self.shared.tier.as_ref().map(|t| t.counters.snapshot())
    }

    fn bypassing(&self) -> bool {
        self.shared.counters.link() == Some(Link::Bypassing)
    }

    /// Invalidates `key` on every process of the namespace: removes it here at once (detaching
    /// its flight), then publishes the record that does the same everywhere else.
    ///
    /// **Call it after the source of truth has committed the change**, never before: a load
    /// that starts between an early invalidation and the commit would read the old value and
    /// keep it. If the writer crashes between its commit and this call, or this call fails,
    /// every other process keeps the old value until something else removes it: retry on
    /// error (a duplicate record only costs a reload), and give the memo a TTL as the
    /// backstop, or publish from an outbox. When the source is Redis itself,
    /// [`commit_and_invalidate`](NearMemo::commit_and_invalidate) does both atomically.
    ///
    /// # Errors
    ///
    /// The record could not be published (it may or may not have been appended). The local
    /// removal happened either way.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: cancelled after the local removal, the record may or may not be
    /// published.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(users: async_memo_redis::NearMemo<String, String>) -> redis::RedisResult<()> {
    /// // db.update_user(7, "Grace").await?;   // the source first
    /// users.invalidate(&"7".to_string()).await?; // then every memo
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, key: &K) -> Result<LogId, T::Error> {
        let removed = self.shared.memo.remove(key);
        drop(removed);
        let bytes = self.encode(key);
        let published = self.publish(Invalidation::Key(bytes.clone())).await;
        // The lease is gone (or the publish failed): either way, a waiter looks again.
        if let Some(tier) = &self.shared.tier {
            tier.waiters.wake(&bytes);
        }
        published
    }

    /// Invalidates every key on every process of the namespace: clears the memo here at once,
    /// then publishes. The same order and failure rules as [`invalidate`](Self::invalidate).
    ///
    /// # Errors
    ///
    /// The record could not be published.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`invalidate`](Self::invalidate).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(users: async_memo_redis::NearMemo<String, String>) -> redis::RedisResult<()> {
    /// users.invalidate_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_all(&self) -> Result<LogId, T::Error> {
        self.shared.memo.invalidate_all();
        let published = self.publish(Invalidation::All).await;
        if let Some(tier) = &self.shared.tier {
            tier.waiters.wake_all();
        }
        published
    }

    async fn publish(&self, invalidation: Invalidation) -> Result<LogId, T::Error> {
        let id = self.log.publish(&self.outgoing(invalidation)).await?;
        Counters::bump(&self.shared.counters.published);
        Ok(id)
    }

    fn outgoing(&self, invalidation: Invalidation) -> Outgoing {
        Outgoing {
            invalidation,
            origin: self.shared.origin,
            published_us: now_us(),
        }
    }

    fn encode(&self, key: &K) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.shared.codec.encode(key, &mut bytes);
        bytes
    }

    /// The log's counters in this process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(users: async_memo_redis::NearMemo<String, String>) {
    /// let stats = users.stats();
    /// println!("{} applied, {} behind, {} gaps", stats.applied, stats.lag, stats.gaps);
    /// # }
    /// ```
    pub fn stats(&self) -> LogStats {
        self.shared.counters.snapshot()
    }
}

impl<K, V, C, S> NearMemo<K, V, RedisLog, C, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: KeyCodec<K>,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// For a source of truth that is Redis itself: runs `writes` and publishes the
    /// invalidation of `key` in one `MULTI`/`EXEC`, then removes `key` here. No process can
    /// see the new data without the record, nor the record without the data, and a crash
    /// cannot separate them. Returns the replies of `writes` and the record's id.
    ///
    /// # Errors
    ///
    /// The transaction failed or its outcome is unknown (connection lost). The local removal
    /// happens either way, so this process never keeps a value the source may have replaced.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may or may not have run the transaction, and skips
    /// the local removal; call [`invalidate`](Self::invalidate) to be sure.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(users: async_memo_redis::NearMemo<String, String>) -> redis::RedisResult<()> {
    /// let mut writes = redis::pipe();
    /// writes.hset("users", "7", "Grace");
    /// users.commit_and_invalidate(&writes, &"7".to_string()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn commit_and_invalidate(
        &self,
        writes: &redis::Pipeline,
        key: &K,
    ) -> redis::RedisResult<(Vec<redis::Value>, LogId)> {
        let bytes = self.encode(key);
        let record = self.outgoing(Invalidation::Key(bytes.clone()));
        let result = self.log.publish_with(writes, &record).await;
        // After the commit, never before it: a load starting in between would read the old
        // value and keep it.
        let removed = self.shared.memo.remove(key);
        drop(removed);
        if let Some(tier) = &self.shared.tier {
            tier.waiters.wake(&bytes);
        }
        if result.is_ok() {
            Counters::bump(&self.shared.counters.published);
        }
        result
    }
}
