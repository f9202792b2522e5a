//! `NearMemo`: a memo whose invalidations reach every process of its namespace.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use async_memo::{AsyncMemo, DefaultHashBuilder};
use tokio::task::JoinHandle;

use crate::reader::{self, Listener, ReaderConfig, Shared, now_us};
use crate::stats::Counters;
use crate::{
    Applied, Invalidation, KeyCodec, Link, LogId, LogStats, Outgoing, Plain, RedisLog, Transport,
    WhenDisconnected,
};

/// An [`AsyncMemo`] kept consistent with the memos of other processes through an
/// invalidation log.
///
/// Build one with [`NearMemo::builder`]; see the [crate docs](crate) for the guarantees.
/// Clones share the memo, the log and the reader task; the task stops when the last clone is
/// dropped. `T` is the log ([`RedisLog`] by default), `C` the key codec ([`Plain`] by default)
/// and `S` the memo's hasher ([`DefaultHashBuilder`] by default; another one, such as std's
/// SipHash `RandomState`, comes with the memo given to [`NearMemoBuilder::start`]).
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
    shared: Arc<Shared<K, V, C, S>>,
    log: Arc<T>,
    task: Arc<ReaderTask>,
}

/// Aborts the reader task when the last handle goes.
struct ReaderTask(JoinHandle<()>);

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

/// Configures and starts a [`NearMemo`]; from [`NearMemo::builder`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use async_memo::AsyncMemo;
/// use async_memo_redis::{NearMemo, RedisLog, WhenDisconnected};
///
/// # async fn f() -> Result<(), redis::RedisError> {
/// let memo: NearMemo<u64, String> = NearMemo::builder(RedisLog::open("redis://127.0.0.1/", "ns")?)
///     .when_disconnected(WhenDisconnected::Bypass { after: Duration::from_millis(200) })
///     .start(AsyncMemo::new())
///     .await?;
/// # Ok(()) }
/// ```
pub struct NearMemoBuilder<K, V, T, C = Plain> {
    log: T,
    value: PhantomData<fn() -> V>,
    codec: C,
    when_disconnected: WhenDisconnected,
    batch: usize,
    listener: Option<Listener<K>>,
}

impl<K, V, T: fmt::Debug, C: fmt::Debug> fmt::Debug for NearMemoBuilder<K, V, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearMemoBuilder")
            .field("log", &self.log)
            .field("codec", &self.codec)
            .field("when_disconnected", &self.when_disconnected)
            .field("batch", &self.batch)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl<K, V, T: Transport, C> NearMemoBuilder<K, V, T, C> {
    /// The codec for keys (default [`Plain`]). Every process of the namespace must use the same.
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{NearMemo, Plain, RedisLog};
    /// let builder = NearMemo::<u32, u32>::builder(RedisLog::open("redis://127.0.0.1/", "ns")?).codec(Plain);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn codec<C2>(self, codec: C2) -> NearMemoBuilder<K, V, T, C2> {
        NearMemoBuilder {
            log: self.log,
            value: PhantomData,
            codec,
            when_disconnected: self.when_disconnected,
            batch: self.batch,
            listener: self.listener,
        }
    }

    /// What to do while the log cannot be read (default: clear after 1 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{NearMemo, RedisLog, WhenDisconnected};
    /// let builder = NearMemo::<u32, u32>::builder(RedisLog::open("redis://127.0.0.1/", "ns")?)
    ///     .when_disconnected(WhenDisconnected::Serve);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn when_disconnected(mut self, policy: WhenDisconnected) -> Self {
        self.when_disconnected = policy;
        self
    }

    /// How many records one read returns at most (default 512; 0 counts as 1).
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{NearMemo, RedisLog};
    /// let builder = NearMemo::<u32, u32>::builder(RedisLog::open("redis://127.0.0.1/", "ns")?).batch(64);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn batch(mut self, records: usize) -> Self {
        self.batch = records.max(1);
        self
    }

    /// A listener the reader task calls after each record it applied, and after each reset of
    /// the whole memo, on the reader task (it delays the next record: keep it short). It runs
    /// after the memo call, under no lock, and may call the memo. A panic in it is caught and
    /// ignored: the memo call already happened, and the reader goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{Applied, NearMemo, RedisLog};
    /// let builder = NearMemo::<String, u32>::builder(RedisLog::open("redis://127.0.0.1/", "ns")?)
    ///     .on_apply(|event: &Applied<'_, String>| {
    ///         if let Applied::Key { key, lag, .. } = event {
    ///             println!("{key} invalidated, {lag:?} after it was published");
    ///         }
    ///     });
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn on_apply(mut self, listener: impl Fn(&Applied<'_, K>) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Records the log's end, invalidates whatever `memo` already holds (nothing proves it
    /// current), spawns the reader task from that end, and returns the handle. Every record
    /// appended after this call returns reaches the memo; none appended before is replayed.
    ///
    /// `memo` may use any hasher `S`, and the handle names it as its last type parameter: for
    /// keys an attacker chooses, build the memo with `.hasher(std::hash::RandomState::new())`
    /// (SipHash, see [`DefaultHashBuilder`]), as in the second example. The hasher only places
    /// keys in this process's memo; the log carries keys as the codec encodes them, so
    /// processes of one namespace may use different hashers.
    ///
    /// # Errors
    ///
    /// The log's end could not be read (the server is unreachable, or older than Redis 7).
    /// Nothing is spawned then.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the task is spawned only after the last `.await`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use async_memo::AsyncMemo;
    /// # use async_memo_redis::{NearMemo, RedisLog};
    /// # async fn f() -> Result<(), redis::RedisError> {
    /// let memo: NearMemo<String, u32> =
    ///     NearMemo::builder(RedisLog::open("redis://127.0.0.1/", "ns")?).start(AsyncMemo::new()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Keys from untrusted clients, on a memo that hashes with SipHash:
    ///
    /// ```no_run
    /// use std::hash::RandomState;
    /// use async_memo::AsyncMemo;
    /// use async_memo_redis::{NearMemo, Plain, RedisLog};
    ///
    /// # async fn f() -> Result<(), redis::RedisError> {
    /// let memo: AsyncMemo<String, u32, RandomState> =
    ///     AsyncMemo::builder().hasher(RandomState::new()).build();
    /// let by_path: NearMemo<String, u32, RedisLog, Plain, RandomState> =
    ///     NearMemo::builder(RedisLog::open("redis://127.0.0.1/", "paths")?).start(memo).await?;
    /// by_path.invalidate(&"/index.html".to_string()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start<S>(
        self,
        memo: AsyncMemo<K, V, S>,
    ) -> Result<NearMemo<K, V, T, C, S>, T::Error>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        C: KeyCodec<K>,
        S: BuildHasher + Clone + Send + Sync + 'static,
    {
        let cursor = self.log.tail().await?;
        // The cursor is recorded before the memo serves anything from us: entries it holds
        // from before could be older than records we will never replay.
        memo.invalidate_all();
        let shared = Arc::new(Shared {
            memo,
            codec: self.codec,
            origin: new_origin(),
            counters: Counters::default(),
            listener: self.listener,
        });
        let log = Arc::new(self.log);
        let config = ReaderConfig {
            batch: self.batch,
            when_disconnected: self.when_disconnected,
        };
        let handle = tokio::spawn(reader::run(
            Arc::clone(&shared),
            Arc::clone(&log),
            cursor,
            config,
        ));
        Ok(NearMemo {
            shared,
            log,
            task: Arc::new(ReaderTask(handle)),
        })
    }
}

/// A nonzero token, distinct per `NearMemo` with overwhelming probability (origin 0 marks
/// records of unknown origin).
fn new_origin() -> u64 {
    RandomState::new()
        .hash_one((std::process::id(), now_us()))
        .max(1)
}

impl<K, V, T: Transport> NearMemo<K, V, T, Plain> {
    /// A builder that will read and publish through `log`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{NearMemo, RedisLog};
    /// let builder = NearMemo::<String, u32>::builder(RedisLog::open("redis://127.0.0.1/", "ns")?);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn builder(log: T) -> NearMemoBuilder<K, V, T, Plain> {
        NearMemoBuilder {
            log,
            value: PhantomData,
            codec: Plain,
            when_disconnected: WhenDisconnected::default(),
            batch: 512,
            listener: None,
        }
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
    /// reach it. Reads through it ignore [`WhenDisconnected::Bypass`].
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
    /// # Cancel safety
    ///
    /// As [`AsyncMemo::get_or_init`]: cancel safe.
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
        self.shared.memo.get_or_init(key, init).await.into_value()
    }

    /// The value of `key`: [`AsyncMemo::get_or_try_init`], or, while the link bypasses the
    /// memo, `init`'s result for this caller alone, stored nowhere.
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
        self.shared
            .memo
            .get_or_try_init(key, init)
            .await
            .map(|e| e.into_value())
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
        self.publish(Invalidation::Key(self.encode(key))).await
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
        self.publish(Invalidation::All).await
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
        let record = self.outgoing(Invalidation::Key(self.encode(key)));
        let result = self.log.publish_with(writes, &record).await;
        // After the commit, never before it: a load starting in between would read the old
        // value and keep it.
        let removed = self.shared.memo.remove(key);
        drop(removed);
        if result.is_ok() {
            Counters::bump(&self.shared.counters.published);
        }
        result
    }
}
