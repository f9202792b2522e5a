//! `MemoBuilder`: the knobs of a memo, set before it is built.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::{Clock, ClockChoice, Timer};
use crate::expiry::ExpiryRules;
use crate::removal::Listener;
use crate::table::{ExpireAfter, RefreshAfter, RefreshRule, Settings, Table, Weigher};
use crate::{AsyncMemo, DefaultHashBuilder, Entry, RemovalCause};

mod name;
mod refresh;

/// A removal listener given its own memo (`on_removal_with_memo`).
type MemoListener<K, V, S> =
    Arc<dyn Fn(&AsyncMemo<K, V, S>, &K, Entry<V>, RemovalCause) + Send + Sync>;

/// A [`MemoListener`], with the function that turns it into the table's listener once the table
/// exists (instantiated where `K` and `S` are known to be `Send + Sync`).
type WithMemo<K, V, S> = (
    MemoListener<K, V, S>,
    fn(Weak<Table<K, V, S>>, MemoListener<K, V, S>) -> Listener<K, V>,
);

/// The table's listener for a [`MemoListener`]: it upgrades a weak reference to the table itself
/// for each call. The memo is alive then (an operation on it is reporting), and nothing keeps it
/// alive after.
fn with_memo<K, V, S>(me: Weak<Table<K, V, S>>, listener: MemoListener<K, V, S>) -> Listener<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    Arc::new(move |key: &K, entry: Entry<V>, cause: RemovalCause| {
        if let Some(table) = me.upgrade() {
            listener(&AsyncMemo::from_shared(table), key, entry, cause);
        }
    })
}

/// The smallest capacity share a shard gets by default: fewer, larger shards keep the policy's
/// hit ratio close to that of one global queue.
const MIN_SHARD_CAPACITY: u64 = 64;

/// The most shards the default picks (and the most [`MemoBuilder::shards`] accepts).
const MAX_SHARDS: usize = 1 << 16;
/// The most shards a memo gets by default (four per CPU up to this).
const DEFAULT_MAX_SHARDS: usize = 64;

/// Builds an [`AsyncMemo`]: hasher, shard count, capacity, expiry, removal listener.
///
/// # Examples
///
/// ```
/// use std::hash::RandomState;
/// use async_memo::AsyncMemo;
///
/// let memo: AsyncMemo<String, u32, RandomState> = AsyncMemo::builder()
///     .shards(16)
///     .hasher(RandomState::new())
///     .build();
/// assert!(memo.is_empty());
/// ```
pub struct MemoBuilder<K, V, S = DefaultHashBuilder> {
    shards: Option<usize>,
    hasher: S,
    capacity: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    rules: ExpiryRules,
    expire_after: Option<ExpireAfter<K, V>>,
    clock: Option<ClockChoice>,
    listener: Option<Listener<K, V>>,
    refresh: Option<RefreshRule<K, V, S>>,
    refresh_after: Option<RefreshAfter<K, V>>,
    memo_listener: Option<WithMemo<K, V, S>>,
    name: Option<Arc<str>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> fmt::Debug for MemoBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoBuilder")
            .field("name", &self.name)
            .field("shards", &self.shards)
            .field("max_capacity", &self.capacity)
            .field("weigher", &self.weigher.is_some())
            .field("time_to_live", &self.rules.time_to_live)
            .field("time_to_idle", &self.rules.time_to_idle)
            .field("expire_after", &self.expire_after.is_some())
            .field(
                "on_removal",
                &(self.listener.is_some() || self.memo_listener.is_some()),
            )
            .field("refresh_after", &self.refresh.as_ref().map(|r| r.after))
            .field("refresh_after_entry", &self.refresh_after.is_some())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<K, V> MemoBuilder<K, V> {
    pub(crate) fn new() -> Self {
        MemoBuilder {
            shards: None,
            hasher: DefaultHashBuilder::default(),
            capacity: None,
            weigher: None,
            rules: ExpiryRules::default(),
            expire_after: None,
            clock: None,
            listener: None,
            refresh: None,
            refresh_after: None,
            memo_listener: None,
            name: None,
            _types: PhantomData,
        }
    }
}

impl<K, V, S> MemoBuilder<K, V, S> {
    /// The number of shards (independently locked parts of the map), rounded up to a power of
    /// two and capped at 65,536. The default is four per available CPU, rounded up, at most 64.
    /// A bounded memo never has more shards than its capacity, so that no shard's share of it is
    /// zero.
    ///
    /// Each shard's lock is a reader-sharded lock of about a kilobyte (eight inner locks on
    /// cache lines of their own, so that readers on different cores write different lines):
    /// more shards spread writers, at that memory cost. A memo also keeps a hit counter of
    /// 128 bytes per slot, two slots per CPU (at least 4, at most 64).
    ///
    /// # Panics
    ///
    /// Panics if `shards` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::builder().shards(3).build();
    /// assert!(format!("{memo:?}").contains("shards: 4"));
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(shards > 0, "async-memo: a memo needs at least one shard");
        self.shards = Some(shards.min(MAX_SHARDS).next_power_of_two());
        self
    }

    /// The hasher used to pick a key's shard and slot; it becomes the memo's `S`.
    ///
    /// The default, [`DefaultHashBuilder`], is foldhash, seeded per memo: fast, but not
    /// designed to resist a determined hash-flooding attacker who can choose keys. For keys an
    /// attacker controls, pass `std::hash::RandomState::new()` (SipHash-1-3, keyed from the
    /// operating system's random source), as below; it costs a few nanoseconds per hash.
    ///
    /// # Panics
    ///
    /// If [`refresh_after`](Self::refresh_after) or
    /// [`on_removal_with_memo`](Self::on_removal_with_memo) was already called: choose the
    /// hasher first (both are set up for the memo's final types).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::hash::RandomState;
    /// use async_memo::AsyncMemo;
    ///
    /// // Keys from the network: SipHash-1-3 instead of the default foldhash.
    /// let sessions: AsyncMemo<String, u64, RandomState> =
    ///     AsyncMemo::builder().hasher(RandomState::new()).build();
    /// sessions.insert("token-from-a-client".to_string(), 1).unwrap();
    /// assert_eq!(sessions.len(), 1);
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> MemoBuilder<K, V, S2> {
        assert!(
            self.refresh.is_none() && self.memo_listener.is_none(),
            "async-memo: call MemoBuilder::hasher before refresh_after and on_removal_with_memo"
        );
        MemoBuilder {
            shards: self.shards,
            hasher,
            capacity: self.capacity,
            weigher: self.weigher,
            rules: self.rules,
            expire_after: self.expire_after,
            clock: self.clock,
            listener: self.listener,
            refresh: None,
            refresh_after: self.refresh_after,
            memo_listener: None,
            name: self.name,
            _types: PhantomData,
        }
    }

    /// Bounds the memo to `capacity` ready entries (or, with a [`weigher`](Self::weigher), to
    /// that total weight). Flights in progress are not counted and never evicted.
    ///
    /// Eviction follows S3-FIFO (see the crate docs, "Bounded memos"), runs inside the operation
    /// that stores an entry (no background thread), and removes only the exact entry it chose,
    /// by epoch. Each shard starts with an exact share of the bound and evicts in the same
    /// critical section that stores an entry. A shard lends capacity it does not use, and
    /// borrows more than its share for an entry heavier than that share (evicting in the other
    /// shards, one lock at a time); the shards' limits always add up to exactly the bound, so
    /// the total weight never exceeds it, not even while operations are in progress: the
    /// overshoot is zero. (`len` sums the shards one after another, so under concurrent writes
    /// it is a moment's estimate, but never above the bound.) The default shard count of a
    /// bounded memo is lowered so that each shard's share holds at least 64 entries of weight
    /// one where possible.
    ///
    /// Whether an entry is stored never depends on the shard count or the machine: an entry
    /// whose weight is at most `capacity` is stored, evicting others as needed; a heavier one
    /// never is, and [`insert`](AsyncMemo::insert) returns it as [`Refused`](crate::Refused).
    /// At capacity 0 every entry of weight 1 or more is refused; an entry of weight 0 counts
    /// for nothing and is stored at any capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u32, u32> =
    ///     async_memo::AsyncMemo::builder().max_capacity(100).build();
    /// for i in 0..1000 {
    ///     memo.insert(i, i).unwrap();
    /// }
    /// assert!(memo.len() <= 100);
    /// assert_eq!(memo.stats().evicted, 1000 - memo.len() as u64);
    /// ```
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Weighs entries for [`max_capacity`](Self::max_capacity): the bound becomes the total
    /// weight. The weigher runs once per stored value, outside every lock (for a flight, inside
    /// its future: a panicking weigher fails the flight like a panicking `init`).
    ///
    /// An entry heavier than the whole capacity is turned away: [`insert`](AsyncMemo::insert)
    /// returns it as [`Refused`](crate::Refused), a flight's callers still receive it, and it is
    /// reported as `Evicted` at once. Any lighter entry is stored whatever the shard count (see
    /// [`max_capacity`](Self::max_capacity)). A weight of 0 is never counted against the bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u32, String> = async_memo::AsyncMemo::builder()
    ///     .max_capacity(1_000)
    ///     .shards(1)
    ///     .weigher(|_key, value: &String| value.len() as u32)
    ///     .build();
    /// memo.insert(1, "x".repeat(600)).unwrap();
    /// memo.insert(2, "y".repeat(600)).unwrap();
    /// assert_eq!(memo.len(), 1, "1,200 bytes do not fit in 1,000");
    /// assert!(memo.insert(3, "z".repeat(1_001)).is_err(), "refused: heavier than the bound");
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Expires every entry `ttl` after it was committed or inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<&str, u8> = AsyncMemo::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert("k", 1).unwrap();
    /// clock.advance(Duration::from_secs(60));
    /// assert!(memo.get("k").is_none());
    /// ```
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.rules.time_to_live = Some(ttl);
        self
    }

    /// Expires an entry `tti` after it was last read (`get`, or a `get_or_init` hit) or, if it
    /// was never read, stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<&str, u8> = AsyncMemo::builder()
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert("k", 1).unwrap();
    /// clock.advance(Duration::from_secs(9));
    /// assert!(memo.get("k").is_some(), "a read restarts the idle time");
    /// clock.advance(Duration::from_secs(9));
    /// assert!(memo.get("k").is_some());
    /// clock.advance(Duration::from_secs(10));
    /// assert!(memo.get("k").is_none());
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.rules.time_to_idle = Some(tti);
        self
    }

    /// Expires each entry after the duration `expire_after(key, value)` returns, counted from
    /// its commit (`None`: no per-entry expiry). Memoize an OAuth token until just before its
    /// `expires_in`, say. It runs once per stored value, outside every lock (for a flight, inside
    /// its future). With several expiry rules, the earliest deadline wins; `Duration::ZERO`
    /// expires at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// #[derive(Clone)]
    /// struct Token { secret: String, expires_in: Duration }
    ///
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let tokens: AsyncMemo<&str, Token> = AsyncMemo::builder()
    ///     // Refresh a little before the server would reject the token.
    ///     .expire_after(|_, token: &Token| token.expires_in.checked_sub(Duration::from_secs(30)))
    ///     .clock(clock.clone())
    ///     .build();
    /// let fetch = || async { Token { secret: "t1".into(), expires_in: Duration::from_secs(3600) } };
    /// assert_eq!(tokens.get_or_init("api", fetch).await.value().secret, "t1");
    /// clock.advance(Duration::from_secs(3570));
    /// assert!(tokens.get("api").is_none(), "refreshed 30 s early");
    /// # });
    /// ```
    pub fn expire_after(
        mut self,
        expire_after: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.expire_after = Some(Arc::new(expire_after));
        self.rules.per_entry = true;
        self
    }

    /// The clock expiry and automatic refresh read. Default: [`SystemClock`], or
    /// [`CoarseClock`] if the memo's only timed rule is
    /// [`refresh_after`](Self::refresh_after) (refreshes fall due within one OS tick; expiry
    /// needs the precise clock). Tests pass a [`ManualClock`].
    ///
    /// [`SystemClock`]: crate::SystemClock
    /// [`CoarseClock`]: crate::CoarseClock
    /// [`ManualClock`]: crate::ManualClock
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = async_memo::ManualClock::new();
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::builder()
    ///     .time_to_live(std::time::Duration::from_secs(1))
    ///     .clock(clock)
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(ClockChoice::of(clock));
        self
    }

    /// Calls `listener` once for every ready entry that leaves the memo, with the entry (and its
    /// epoch) and the [`RemovalCause`].
    ///
    /// It runs after every lock is released, on the thread of the operation that caused the
    /// removal — any method may run it, `get` included (an expired entry found by a read). It
    /// may call any method of the memo, even `get_or_init` or `insert` for the same key (an MCP
    /// close handler reconnecting, say): the removal that triggered it is complete, so what it
    /// stores is never clobbered. If it panics, the removal stands, the other removals of the
    /// same operation are still completed and reported, and then the panic propagates to the
    /// caller of that operation.
    ///
    /// Entries still in the memo when its last handle is dropped are dropped without being
    /// reported (there is no memo left to report on).
    ///
    /// To call the memo from its own listener, use
    /// [`on_removal_with_memo`](Self::on_removal_with_memo) (or capture a
    /// [`WeakMemo`](crate::WeakMemo), as below: a strong handle would be a reference cycle that
    /// never frees the memo). Setting a listener replaces the one set before, of either kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use async_memo::{AsyncMemo, RemovalCause, WeakMemo};
    ///
    /// let me: Arc<OnceLock<WeakMemo<&str, u32>>> = Arc::default();
    /// let weak = Arc::clone(&me);
    /// let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
    ///     .on_removal(move |key: &&str, entry, cause| {
    ///         // A "connection" closed: store its successor, through a weak handle.
    ///         if cause == RemovalCause::Invalidated {
    ///             if let Some(memo) = weak.get().and_then(|w| w.upgrade()) {
    ///                 memo.insert(*key, entry.value() + 1).unwrap();
    ///             }
    ///         }
    ///     })
    ///     .build();
    /// me.set(memo.downgrade()).unwrap();
    /// let first = memo.insert("conn", 1).unwrap();
    /// assert!(memo.invalidate("conn", first.epoch()));
    /// assert_eq!(memo.get("conn").map(|e| *e.value()), Some(2), "the successor survives");
    /// ```
    pub fn on_removal(
        mut self,
        listener: impl Fn(&K, Entry<V>, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self.memo_listener = None;
        self
    }

    /// [`on_removal`](Self::on_removal) for a listener that uses its own memo: it is given the
    /// memo as well, a handle valid for the call (the listener holds no reference to the memo
    /// between calls, so there is no cycle to break). Everything `on_removal` says holds: it runs
    /// after every lock is released, and may call any method of the memo.
    ///
    /// # Panics
    ///
    /// [`hasher`](Self::hasher), if called after this (choose the hasher first: the listener is
    /// typed with the memo's final hasher).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_memo::{AsyncMemo, RemovalCause};
    ///
    /// let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
    ///     .on_removal_with_memo(|memo, key: &&str, entry, cause| {
    ///         // A "connection" closed: store its successor.
    ///         if cause == RemovalCause::Invalidated {
    ///             memo.insert(*key, entry.value() + 1).unwrap();
    ///         }
    ///     })
    ///     .build();
    /// let first = memo.insert("conn", 1).unwrap();
    /// assert!(memo.invalidate("conn", first.epoch()));
    /// assert_eq!(memo.get("conn").map(|e| *e.value()), Some(2), "the successor survives");
    /// ```
    pub fn on_removal_with_memo(
        mut self,
        listener: impl Fn(&AsyncMemo<K, V, S>, &K, Entry<V>, RemovalCause) + Send + Sync + 'static,
    ) -> Self
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
        S: Send + Sync + 'static,
    {
        self.memo_listener = Some((Arc::new(listener), with_memo::<K, V, S>));
        self.listener = None;
        self
    }

    /// Builds the memo.
    ///
    /// # Panics
    ///
    /// If [`refresh_after_entry`](Self::refresh_after_entry) was set without
    /// [`refresh_after`](Self::refresh_after).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<u8, u8> = async_memo::AsyncMemo::builder().build();
    /// assert!(memo.is_empty());
    /// ```
    pub fn build(self) -> AsyncMemo<K, V, S>
    where
        K: Hash + Eq + Clone,
        V: Clone + Send + Sync + 'static,
        S: BuildHasher + Clone,
    {
        let shards = self.shards.unwrap_or_else(|| default_shards(self.capacity));
        // A shard whose share of the capacity is zero would turn every key it holds away.
        let shards = match self.capacity {
            Some(capacity) => shards.min(largest_power_of_two_at_most(capacity)),
            None => shards,
        };
        assert!(
            self.refresh_after.is_none() || self.refresh.is_some(),
            "async-memo: refresh_after_entry needs refresh_after (its spawner and retry interval)"
        );
        // Without expiry the clock decides only when refreshes fall due: a coarse one suffices.
        let refresh_only = !self.rules.any();
        let timer = (self.rules.any() || self.refresh.is_some())
            .then(|| Timer::new(self.clock, refresh_only));
        let settings = Settings {
            shards,
            capacity: self.capacity,
            weigher: self.weigher,
            rules: self.rules,
            expire_after: self.expire_after,
            timer,
            listener: self.listener,
            refresh: self.refresh,
            refresh_after: self.refresh_after,
            name: self.name,
        };
        let (hasher, memo_listener) = (self.hasher, self.memo_listener);
        let Some((listener, make)) = memo_listener else {
            return AsyncMemo::from_table(Table::new(settings, hasher));
        };
        AsyncMemo::from_shared(Arc::new_cyclic(|me| {
            let listener = Some(make(Weak::clone(me), listener));
            Table::new(
                Settings {
                    listener,
                    ..settings
                },
                hasher,
            )
        }))
    }
}

fn largest_power_of_two_at_most(n: u64) -> usize {
    let n = usize::try_from(n.max(1)).unwrap_or(usize::MAX);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

fn default_shards(capacity: Option<u64>) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each shard's lock takes about a kilobyte (eight padded inner locks, src/sync.rs): a memo
    // keeps at most 64 of them by default.
    let shards = (cpus * 4).min(DEFAULT_MAX_SHARDS).next_power_of_two();
    match capacity {
        // Power of two, at most `shards`, each with at least MIN_SHARD_CAPACITY when possible.
        Some(capacity) => shards.min(largest_power_of_two_at_most(capacity / MIN_SHARD_CAPACITY)),
        None => shards,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::clock::COARSE_IS_MONOTONIC;
    use crate::table::Task;
    use crate::{AsyncMemo, CoarseClock, ManualClock, MemoBuilder, SystemClock};

    type Builder = MemoBuilder<u8, u8>;

    fn kind(configure: impl FnOnce(Builder) -> Builder) -> Option<&'static str> {
        configure(AsyncMemo::builder()).build().table.clock_kind()
    }

    fn refresh(builder: Builder) -> Builder {
        builder.refresh_after(Duration::from_secs(1), |_: Task| {})
    }

    /// The clock `build` picks: coarse only when refresh is the memo's only timed rule.
    #[test]
    fn the_builder_picks_the_coarse_clock_only_for_refresh_alone() {
        let second = Duration::from_secs(1);
        let coarse = if COARSE_IS_MONOTONIC {
            "coarse"
        } else {
            "system"
        };
        assert_eq!(kind(|b| b), None);
        assert_eq!(kind(refresh), Some(coarse));
        assert_eq!(kind(|b| refresh(b).time_to_live(second)), Some("system"));
        assert_eq!(kind(|b| refresh(b).time_to_idle(second)), Some("system"));
        let per_entry = |b: Builder| refresh(b).expire_after(|_, _| None);
        assert_eq!(kind(per_entry), Some("system"));
        assert_eq!(kind(|b| b.time_to_live(second)), Some("system"));
        assert_eq!(kind(|b| refresh(b).clock(SystemClock)), Some("system"));
        let chosen = if COARSE_IS_MONOTONIC {
            "coarse"
        } else {
            "user"
        };
        let ttl_coarse = |b: Builder| b.time_to_live(second).clock(CoarseClock);
        assert_eq!(kind(ttl_coarse), Some(chosen));
        assert_eq!(kind(|b| refresh(b).clock(ManualClock::new())), Some("user"));
    }
}
