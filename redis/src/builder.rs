//! `NearMemoBuilder`: configures a [`NearMemo`] and starts its reader task.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use async_memo::AsyncMemo;

use crate::near::ReaderTask;
use crate::reader::{self, Listener, ReaderConfig, Shared, now_us};
use crate::scripts::Namespace;
use crate::stats::Counters;
use crate::tier::Tier;
use crate::{
    Applied, KeyCodec, NearMemo, Plain, RedisLog, SharedTier, Transport, WhenDisconnected,
};

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
    tier: Option<PendingTier<V>>,
}

/// A shared tier's settings with the log's client and namespace, until `start`.
struct PendingTier<V> {
    settings: SharedTier<V>,
    client: redis::Client,
    namespace: Namespace,
}

impl<K, V, T: fmt::Debug, C: fmt::Debug> fmt::Debug for NearMemoBuilder<K, V, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearMemoBuilder")
            .field("log", &self.log)
            .field("codec", &self.codec)
            .field("when_disconnected", &self.when_disconnected)
            .field("batch", &self.batch)
            .field("listener", &self.listener.is_some())
            .field("shared", &self.tier.as_ref().map(|t| &t.settings))
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
            tier: self.tier,
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
    /// (SipHash, see [`DefaultHashBuilder`](async_memo::DefaultHashBuilder)), as in the second example. The hasher only places
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
        let origin = new_origin();
        let shared = Arc::new(Shared {
            memo,
            codec: self.codec,
            origin,
            counters: Counters::default(),
            listener: self.listener,
            tier: self
                .tier
                .map(|t| Arc::new(Tier::new(t.settings, t.client, t.namespace, origin))),
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
            tier: None,
        }
    }
}

impl<K, V, C> NearMemoBuilder<K, V, RedisLog, C> {
    /// Shares values across the namespace's processes through Redis: a local miss reads the
    /// key's shared value, or takes the key's lease and loads it from the source, or waits for
    /// the process that holds the lease. See [`SharedTier`] and the
    /// [crate docs](crate#the-shared-tier).
    ///
    /// Every process of the namespace that shares values must use the same value codec.
    /// Every process that *publishes* invalidations into it must publish through the tier's
    /// script: a `NearMemo` built with the tier does; a writer without one turns it on with
    /// [`RedisLog::with_shared_tier`]. Otherwise its invalidations leave shared values in
    /// place.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use async_memo::AsyncMemo;
    /// use async_memo_redis::{NearMemo, Plain, RedisLog, SharedTier};
    ///
    /// # async fn f() -> Result<(), redis::RedisError> {
    /// let users: NearMemo<u64, String> = NearMemo::builder(RedisLog::open("redis://127.0.0.1/", "users")?)
    ///     .shared(SharedTier::new(Plain))
    ///     .start(AsyncMemo::new())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn shared(mut self, tier: SharedTier<V>) -> Self {
        self.log.set_shared_tier();
        self.tier = Some(PendingTier {
            settings: tier,
            client: self.log.client().clone(),
            namespace: self.log.namespace().clone(),
        });
        self
    }
}
