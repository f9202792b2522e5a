//! The builder's automatic refresh: `refresh_after` and its per-entry form.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use super::MemoBuilder;
use crate::table::{RefreshRule, Task};

impl<K, V, S> MemoBuilder<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Automatic refresh (refresh-after-write, stale-while-revalidate): a `get_or_init`-family
    /// read that finds a ready entry at least `after` old (since its commit) returns it at once
    /// and starts one refresh with that caller's `init`; the future that drives the refresh is
    /// handed to `spawn` (the crate never spawns by itself). Readers keep getting the entry
    /// while it runs; it commits only onto the entry it refreshes (see
    /// [`AsyncMemo::refresh`](crate::AsyncMemo::refresh)). Plain [`get`](crate::AsyncMemo::get) never starts one.
    ///
    /// - An automatic refresh that fails (an error, a panic, or a value too heavy to store)
    ///   leaves the entry in place; the next automatic attempt for it waits `after` from the
    ///   failure (one attempt per interval while the source is down; Caffeine #286). A panic
    ///   ends the spawned task quietly after the panic hook ran.
    /// - Nothing else holds automatic refreshes off. Manual
    ///   [`refresh`](crate::AsyncMemo::refresh) calls are never throttled, and one that fails
    ///   leaves the entry as due as it was: the next stale read starts an automatic refresh
    ///   (Caffeine #498). A refresh belongs to whoever started it: a manual call that joins an
    ///   automatic refresh in flight receives its error, and that failure holds off the next
    ///   automatic attempt; a stale read that finds a manual refresh in flight starts nothing,
    ///   and if that refresh fails the next stale read starts one. Detaching a refresh by its
    ///   epoch (`invalidate(key, refreshing(key))`) is not a failure either.
    /// - `after` at or above the entry's time to live never fires: an expired entry is never
    ///   served, so it is never found stale. `Duration::ZERO` makes every read of a committed
    ///   entry start a refresh unless one is in flight; `Duration::MAX` never fires.
    /// - If `spawn` drops the task (a full executor, a runtime shutting down) or panics, or
    ///   the task is dropped before it ends, the refresh is abandoned, as if its last caller
    ///   went away: a cancellation, not a failure. The entry stays, as due as before, and the
    ///   next stale read hands a new refresh to `spawn` (Guava #3851, where a discarded
    ///   refresh task stopped refreshes for good) — so a spawner that refuses work should
    ///   refuse it cheaply.
    /// - Cost: a memo with `refresh_after` reads its clock on every get-or-init read (to find
    ///   stale entries), as an expiring memo does. Without a time to live, a time to idle or
    ///   `expire_after`, that clock is by default [`CoarseClock`](crate::CoarseClock) (where
    ///   it is monotonic): about half of `Instant::now`'s cost on a hit that misses the cache,
    ///   at a resolution of one OS tick (1–16 ms by platform; see there), so an entry falls due
    ///   within about a tick of `after`. `.clock(SystemClock)` times it precisely; with expiry
    ///   the memo reads [`SystemClock`](crate::SystemClock) anyway. An entry keeps its due tick
    ///   in the word a
    ///   [`time_to_idle`](Self::time_to_idle) memo uses for the last read, so it costs no
    ///   memory; with a time to idle as well, the due tick is kept beside the entry, in its
    ///   shard (about 30 more bytes an entry, more just after that table grows, and one more
    ///   lookup on each such read and on each commit and removal).
    ///
    /// Inspired by Caffeine's `refreshAfterWrite`, which takes an `Executor` for the same reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// # futures::executor::block_on(async {
    /// // A spawner that queues tasks; a real program passes `|task| { tokio::spawn(task); }`.
    /// let queue = Arc::new(Mutex::new(Vec::new()));
    /// let spawn = { let queue = Arc::clone(&queue); move |task| queue.lock().unwrap().push(task) };
    /// let clock = ManualClock::new();
    /// let config: AsyncMemo<&str, u32> = AsyncMemo::builder()
    ///     .refresh_after(Duration::from_secs(60), spawn)
    ///     .clock(clock.clone())
    ///     .build();
    /// config.get_or_init("limits", || async { 1 }).await;
    /// clock.advance(Duration::from_secs(60));
    /// // Stale: served at once, and one refresh goes to the spawner.
    /// assert_eq!(*config.get_or_init("limits", || async { 2 }).await.value(), 1);
    /// let task = queue.lock().unwrap().pop().expect("a refresh was spawned");
    /// task.await;
    /// assert_eq!(config.get("limits").map(|e| *e.value()), Some(2));
    /// # });
    /// ```
    pub fn refresh_after(
        mut self,
        after: Duration,
        spawn: impl Fn(Task) + Send + Sync + 'static,
    ) -> Self {
        self.refresh = Some(RefreshRule {
            after,
            spawn: Arc::new(spawn),
            launch: crate::call::refresher::launch::<K, V, S>,
        });
        self
    }
}

impl<K, V, S> MemoBuilder<K, V, S> {
    /// A per-entry form of [`refresh_after`](Self::refresh_after), as
    /// [`expire_after`](Self::expire_after) is to the time to live: `refresh_after(key, value)`
    /// gives the interval after its commit at which an entry's automatic refresh is due;
    /// `None` keeps the memo-wide interval. A token refreshes a minute before its own expiry.
    /// It runs once per commit, outside every lock, on the thread that commits.
    ///
    /// Requires [`refresh_after`](Self::refresh_after), which supplies the spawner and the
    /// interval after a failed refresh.
    ///
    /// # Panics
    ///
    /// [`build`](Self::build) panics if `refresh_after` was not called.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// #[derive(Clone)]
    /// struct Token { expires_in: Duration }
    ///
    /// # futures::executor::block_on(async {
    /// let spawned = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    /// let count = std::sync::Arc::clone(&spawned);
    /// let clock = ManualClock::new();
    /// let tokens: AsyncMemo<&str, Token> = AsyncMemo::builder()
    ///     .refresh_after(Duration::from_secs(3600), move |_task| {
    ///         count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    ///     })
    ///     .refresh_after_entry(|_, t: &Token| t.expires_in.checked_sub(Duration::from_secs(60)))
    ///     .clock(clock.clone())
    ///     .build();
    /// let login = || async { Token { expires_in: Duration::from_secs(600) } };
    /// tokens.get_or_init("api", login).await;
    /// clock.advance(Duration::from_secs(540));
    /// tokens.get_or_init("api", login).await; // a minute before expiry: a refresh is spawned
    /// assert_eq!(spawned.load(std::sync::atomic::Ordering::SeqCst), 1);
    /// # });
    /// ```
    pub fn refresh_after_entry(
        mut self,
        refresh_after: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.refresh_after = Some(Arc::new(refresh_after));
        self
    }
}
