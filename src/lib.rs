//! Async memoization that cannot delete the wrong entry.
//!
//! An [`AsyncMemo<K, V>`](AsyncMemo) runs an async computation once per key, hands the result to
//! every concurrent caller (single-flight), and keeps it until it is invalidated, removed,
//! replaced, expired or evicted — refreshing it meanwhile, if asked, while it keeps being served.
//! Every entry, and every computation still in progress (a *flight*), carries an [`Epoch`]: a
//! stamp from one process-wide monotonic counter. Removal is *compare-and-delete*:
//! [`invalidate(key, observed)`](AsyncMemo::invalidate) removes only the exact entry the caller
//! observed, never a newer one that replaced it, and a flight invalidated while in progress can
//! never store its stale result.
//!
//! The crate grew from a bug in an MCP client: `clearServerCache` awaited the old connection's
//! `cleanup()`, whose close handler reconnected and stored a new connection; then it deleted the
//! key, removing the *new* connection and leaking a live one. Guava (#1881), Caffeine (#193,
//! #251), Go's singleflight (#31420), lru-cache and p-memoize carry the same class of bug: a
//! removal by key that hits a newer entry, or a load that finishes after an invalidation and
//! stores a stale value. Here both are impossible by construction.
//!
//! # Quick example
//!
//! ```
//! use async_memo::AsyncMemo;
//!
//! # futures::executor::block_on(async {
//! let connections: AsyncMemo<&str, String> = AsyncMemo::new();
//!
//! // Concurrent callers of one key share one flight; the init runs once.
//! let conn = connections.get_or_init("db", || async { "connection #1".to_string() }).await;
//!
//! // Meanwhile a close handler replaced the connection...
//! let replacement = connections.insert("db", "connection #2".to_string()).unwrap();
//!
//! // ...so our late, compare-and-delete removal leaves the replacement alone.
//! assert!(!connections.invalidate("db", conn.epoch()));
//! assert_eq!(connections.get("db").map(|e| e.epoch()), Some(replacement.epoch()));
//! # });
//! ```
//!
//! # Semantics
//!
//! Every method keeps these guarantees; the tests under `tests/` pin each one.
//!
//! 1. **Single-flight.** Concurrent [`get_or_init`](AsyncMemo::get_or_init) and
//!    [`get_or_try_init`](AsyncMemo::get_or_try_init) calls for a key with no ready entry share
//!    one flight: the `init` of exactly one caller runs, and every caller gets the same value and
//!    epoch.
//! 2. **Epochs.** Every flight and every [`insert`](AsyncMemo::insert) draws its epoch from one
//!    process-wide monotonic counter, strictly greater than every epoch issued before, so an epoch
//!    observed in one memo never matches an entry of another. An entry committed by a flight
//!    carries that flight's epoch.
//! 3. **Compare-and-delete.** [`invalidate(k, e)`](AsyncMemo::invalidate) removes the ready
//!    entry of `k`, or detaches its flight, only if its epoch is `e`, and says whether it did. A
//!    stale `e` changes nothing.
//! 4. **No resurrection.** A flight detached by `invalidate`, [`remove`](AsyncMemo::remove),
//!    `insert` or [`invalidate_all`](AsyncMemo::invalidate_all) never commits. A call that
//!    starts after the detach starts a new flight; it never joins the detached one.
//! 5. **Callers already joined** to a detached flight still receive its result.
//!    [`epoch(k)`](AsyncMemo::epoch) (or a stale `invalidate` returning `false`) tells them it is
//!    no longer current. Note that `epoch(k)` reports flights too: `epoch(k).is_some()` during a
//!    flight does not imply [`get(k)`](AsyncMemo::get)`.is_some()`.
//! 6. **Cancellation.** Dropping any subset of callers at any await point never leaves another
//!    caller waiting forever. The flight's future keeps running while at least one caller waits —
//!    whoever polls drives it, so it is not restarted when its first caller goes away. (The
//!    future is polled when it has woken: every waiting caller is woken then, and the first one
//!    polled drives it.) When the last caller is dropped, the future is dropped and the key is
//!    free again. A future that wakes itself while being polled by a caller that is then dropped
//!    hands the poll to the others: futures-rs #2706 cannot happen here.
//! 7. **Panics.** A panic in `init` or in its future propagates to the caller that was polling
//!    it and to the caller whose `init` started the flight (often the same one). Every other
//!    caller of that flight starts over with its own `init`: one starts a new flight, the rest
//!    join it. Nothing hangs, nothing is poisoned, nothing is stored; the memo stays usable.
//! 8. **Errors.** An `Err` from a [`get_or_try_init`](AsyncMemo::get_or_try_init) future goes
//!    to every caller of that flight that can receive it, as the same `Arc<E>`. Nothing is stored
//!    and the next call starts a new flight. A key has one flight whatever its callers' types: a
//!    joined caller that cannot receive that error (a `get_or_init` caller, or one expecting
//!    another `E`) starts over with its own `init`. (moka, by contrast, runs one flight per
//!    error type.)
//! 9. **Re-entrancy.** `init`, the future it returns, and `Drop` of `K` and `V` may call any
//!    method of the memo — on other keys, or on the same key from another task — without
//!    deadlock: no lock is held across `.await`, user code or [`Waker::wake`](std::task::Waker::wake), and displaced keys,
//!    values and futures are dropped after locks are released. The one exception is `Clone` of
//!    `V` (and of `K`), which a hit runs under a shard read lock — so do
//!    [`peek`](AsyncMemo::peek), and [`iter`](AsyncMemo::iter) and
//!    [`invalidate_if`](AsyncMemo::invalidate_if) while copying a shard, and
//!    [`refresh_if`](AsyncMemo::refresh_if), under the write lock, while copying the entry it
//!    hands its `init`: **`Clone` of `K` and `V` must not call the memo.** (The `Hash` and `Eq`
//!    of `K`, as in every map, also run under the lock.)
//!
//!    A flight that awaits its own key can never finish. When it does so on the thread that is
//!    polling it, the inner call panics with a clear message and the key is freed. Awaiting one's
//!    own key *from another task* (spawning it and awaiting the handle) cannot be detected
//!    cheaply: that flight and its callers wait forever. Don't.
//! 10. **Hit path.** A hit on a ready entry hashes the key once (the same hash picks the shard
//!     and the slot), takes one shard read lock, clones `V`, and does not allocate (after a
//!     thread's first read, which registers the thread with the lock). In a bounded or
//!     time-to-idle memo it also stores one relaxed atomic in the entry (a recency counter, a
//!     read time), never taking a write lock; a memo with expiry or automatic refresh reads its
//!     clock once, before locking (a refresh-only memo reads the coarse clock: 13).
//!     A get-or-init read that finds its entry due for an automatic refresh takes the shard's
//!     write lock to start it, at the time it has read. Readers are spread over cache lines: a
//!     shard's read lock is one of eight inner locks (crossbeam-utils' `ShardedLock`) and the
//!     hit counter one of several slots, each picked by a process-wide index of the reading
//!     thread, so threads whose indices differ write different lines (best effort: with more
//!     than eight reading threads, or indices that collide, threads share a line). A write
//!     takes all eight inner locks.
//!     A miss allocates the flight — its shared state and the boxed init future — plus the owned
//!     key (the `_by_ref` methods clone it only then), and the waiter list only when a caller has
//!     to wait.
//!
//! 11. **Eviction and expiry are compare-and-delete too.** A removal decided on an entry of
//!     epoch `e` — by the capacity policy, by an expiry, or by a caller — removes that entry only
//!     if the key still holds epoch `e`. An expiry racing an `insert` or a new commit never
//!     removes the newer entry, and flights are never evicted or expired.
//! 12. **Removals are reported once.** With a [removal listener](MemoBuilder::on_removal),
//!     every ready entry that leaves the memo is reported exactly once, with its epoch and a
//!     [`RemovalCause`], after every lock is released, on the thread of the operation that
//!     removed it. The listener may call the memo (it is handed the memo with
//!     [`on_removal_with_memo`](MemoBuilder::on_removal_with_memo), or captures a [`WeakMemo`]).
//!
//! 13. **Time never wraps or goes back.** Expiry reads the [`Clock`] as nanoseconds since the
//!     memo was built, and every sum (a time to live, a time to idle, an `expire_after`
//!     duration, `Duration::MAX` included) saturates: a deadline past about 584 years is
//!     "never", and no reading ever equals "never", so an entry without a deadline never
//!     expires. With a clock of the user's, the memo keeps the latest reading it has seen: a
//!     clock that goes backwards (moka #52, #472) makes time stand still until it catches up,
//!     and never revives an expired entry; the built-in clocks never go back (where
//!     [`CoarseClock`] could, it is treated as a user's clock). [`ManualClock`] saturates
//!     instead of wrapping. The default clock is [`SystemClock`] (`Instant::now`); a memo
//!     whose only timed rule is [`refresh_after`](MemoBuilder::refresh_after) defaults to
//!     [`CoarseClock`], the kernel's last-tick time (where it is monotonic): cheaper, exact to
//!     a tick (1–16 ms by platform), and enough for a clock that only decides when an entry is
//!     worth recomputing, never whether it may be served.
//! 14. **Admission does not depend on the shard count.** In a bounded memo, an entry whose
//!     weight is at most [`max_capacity`](MemoBuilder::max_capacity) is stored whatever the
//!     shard count (its shard borrows capacity from the others), and the total weight never
//!     exceeds the bound. A heavier entry is never stored: [`insert`](AsyncMemo::insert) says so
//!     by returning [`Refused`], and a flight's callers still receive it (the key is then left
//!     empty). Weight 0 is stored at any capacity, 0 included.
//! 15. **Refresh serves while it recomputes.** While a [`refresh`](AsyncMemo::refresh) of the
//!     ready entry `E` (epoch `e`) is in flight, [`get`](AsyncMemo::get), `get_or_init` and
//!     friends return `E` at once — no waiting, no second computation — and `epoch(k)` reports
//!     `e`. Concurrent `refresh`, [`try_refresh`](AsyncMemo::try_refresh) and
//!     [`refresh_if`](AsyncMemo::refresh_if) calls of one key share one refresh flight (one
//!     `init`). A refresh in flight is not an entry: it is not counted, weighed or evicted.
//! 16. **A refresh commits only onto the entry it refreshes.** Its flight has its own epoch
//!     `e' > e`. It commits only if the key still holds `E`; then `E` is reported as
//!     [`Replaced`](RemovalCause::Replaced) (with epoch `e`) and the new entry has epoch `e'`.
//!     If `E` was invalidated, removed, replaced, expired or evicted meanwhile, or
//!     `invalidate_all` ran, the refresh is detached and never commits (Caffeine #193); its
//!     callers still receive its value (as 5 says). `invalidate(k, e)` removes `E` and detaches
//!     its refresh; `invalidate(k, e')` detaches only the refresh (`E` stays);
//!     [`remove`](AsyncMemo::remove), [`insert`](AsyncMemo::insert) and
//!     [`replace`](AsyncMemo::replace) detach it too.
//! 17. **A failed refresh changes nothing.** An error or panic in a refresh leaves `E` in place
//!     and served; an error goes to the refresh's callers as one shared `Arc<E>`, a panic as 7
//!     says; the next refresh starts anew. A refresh whose value is too heavy to be stored (14)
//!     is detached instead of committed: `E` stays too. Cancellation is as 6 says: when the last
//!     caller of a refresh is dropped its future is dropped, and `E` is untouched — its next
//!     automatic refresh (20) is as due as before, even when that caller was the task handed to
//!     the spawner, dropped unpolled (Guava #3851).
//! 18. **Time.** An entry past its time to live or idle (on the memo's clock: 13) is never
//!     served, refresh or not, and its expiry detaches its refresh: a read after `E` expired
//!     starts a new flight and never joins `E`'s refresh (Guava joins, and hangs on a stuck
//!     reload). A refreshed entry's time to live and idle start at its commit; a refresh is
//!     not a read of `E`.
//! 19. **Compare-and-swap.** [`replace(k, e, v)`](AsyncMemo::replace) stores `v` only if `k`
//!     holds `e` (a ready entry, or a flight, which is detached), atomically against every
//!     other operation on `k`; otherwise it changes nothing and returns the current epoch.
//! 20. **Automatic refresh.** With [`refresh_after`](MemoBuilder::refresh_after), a
//!     `get_or_init`-family read that finds an entry due returns it at once and starts at most
//!     one refresh with its own `init`, handed to the user's spawner. Only a failed *automatic*
//!     refresh — an error, a panic, or a value too heavy to store — makes the next automatic
//!     attempt for that entry wait the interval (Caffeine #286). A failed manual refresh
//!     (Caffeine #498), a cancelled refresh (17) and a refresh detached by its epoch (16) leave
//!     the entry as due as they found it: the next stale read starts a new one. A refresh
//!     belongs to whoever started it: a manual call that joins an automatic refresh shares its
//!     failure (it receives the error, and the next automatic attempt waits), and a stale read
//!     that finds a manual refresh in flight starts nothing and leaves its failure manual.
//!     Manual refreshes are never throttled. "Due" is measured on the memo's clock: by default
//!     the coarse one (13), so a refresh starts within one tick of `after`.
//! 21. **Quiet reads change nothing.** [`peek`](AsyncMemo::peek) returns what
//!     [`get`](AsyncMemo::get) would, and [`entry_info`](AsyncMemo::entry_info) describes it
//!     ([`EntryInfo`]: epoch, age, time left to live and idle, refresh due, weight), under the
//!     shard's read lock only: they count no hit or miss in [`stats`](AsyncMemo::stats), do
//!     not move a time to idle, do not count as a use for eviction (the S3-FIFO frequency),
//!     start no automatic refresh (20), and never return an expired entry (18) — which they
//!     leave in place for a write to purge and report. `iter` is quiet in the same way.
//!
//! # Bounded memos
//!
//! [`MemoBuilder::max_capacity`] bounds the number of ready entries (or their total weight,
//! with a [`weigher`](MemoBuilder::weigher)). Eviction is S3-FIFO (Yang et al., "FIFO queues are
//! all you need for cache eviction", SOSP 2023): new entries enter a small FIFO; those read
//! again before they reach its head move to the main FIFO, the rest are evicted and remembered
//! in a ghost queue so that they go straight to main if they come back soon. It resists one-pass
//! scans, and a read only sets a small counter in the entry, under the shard's *read* lock —
//! unlike an LRU list, which every read must reorder under a write lock. We chose it over
//! TinyLFU (moka's default policy; Caffeine uses its windowed form, W-TinyLFU) for that cheap
//! read path and its published hit ratios; the benchmark suite compares its hit ratio with
//! moka's on Zipf and scan traces.
//!
//! ```
//! use async_memo::AsyncMemo;
//!
//! # futures::executor::block_on(async {
//! let thumbnails: AsyncMemo<u32, Vec<u8>> = AsyncMemo::builder().max_capacity(1_000).build();
//! for id in 0..5_000 {
//!     thumbnails.get_or_init(id, || async move { vec![0; 16] }).await;
//! }
//! assert!(thumbnails.len() <= 1_000);
//! # });
//! ```
//!
//! # Expiring memos
//!
//! [`time_to_live`](MemoBuilder::time_to_live) (since commit),
//! [`time_to_idle`](MemoBuilder::time_to_idle) (since the last read) and a per-entry
//! [`expire_after`](MemoBuilder::expire_after) can be combined; the earliest deadline wins. An
//! expired entry is never returned: reads treat it as absent and `get_or_init` starts a new
//! flight. It is purged by whichever operation finds it, by writes to its shard on the side, or
//! by [`purge_expired`](AsyncMemo::purge_expired); [`len`](AsyncMemo::len) counts it until then.
//! Time comes from a [`Clock`] ([`ManualClock`] in tests), read outside every lock; the crate
//! never starts a timer.
//!
//! ```
//! use std::time::Duration;
//! use async_memo::{AsyncMemo, ManualClock};
//!
//! #[derive(Clone)]
//! struct Token { secret: String, expires_in: Duration }
//!
//! # futures::executor::block_on(async {
//! let clock = ManualClock::new();
//! let tokens: AsyncMemo<&str, Token> = AsyncMemo::builder()
//!     .expire_after(|_, t: &Token| t.expires_in.checked_sub(Duration::from_secs(60)))
//!     .clock(clock.clone())
//!     .build();
//! let login = || async { Token { secret: "s3cr3t".into(), expires_in: Duration::from_secs(600) } };
//! let token = tokens.get_or_init("api", login).await;
//! assert_eq!(token.value().secret, "s3cr3t");
//! clock.advance(Duration::from_secs(540));
//! // One minute before the server's deadline, the next call fetches a fresh token.
//! let fresh = tokens.get_or_init("api", login).await;
//! assert!(fresh.epoch() > token.epoch());
//! # });
//! ```
//!
//! # Closing what leaves the memo
//!
//! A removal listener is where resources are released: every entry that leaves — invalidated,
//! removed, replaced, expired, evicted or cleared — passes through it once.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use async_memo::{AsyncMemo, Entry, RemovalCause};
//!
//! struct Connection { open: Arc<AtomicUsize> }
//! impl Connection {
//!     fn close(&self) { self.open.fetch_sub(1, Ordering::SeqCst); }
//! }
//!
//! # futures::executor::block_on(async {
//! let open = Arc::new(AtomicUsize::new(0));
//! let connections: AsyncMemo<&str, Arc<Connection>> = AsyncMemo::builder()
//!     .max_capacity(2)
//!     .shards(1)
//!     .on_removal(|_: &&str, entry: Entry<Arc<Connection>>, _: RemovalCause| entry.value().close())
//!     .build();
//! for server in ["a", "b", "c", "d"] {
//!     let open = Arc::clone(&open);
//!     connections
//!         .get_or_init(server, move || async move {
//!             open.fetch_add(1, Ordering::SeqCst);
//!             Arc::new(Connection { open })
//!         })
//!         .await;
//! }
//! assert_eq!(open.load(Ordering::SeqCst), connections.len(), "evicted ones were closed");
//! # });
//! ```
//!
//! # Keeping values fresh
//!
//! Three tools, for three situations:
//!
//! - **A time to live** ([`time_to_live`](MemoBuilder::time_to_live),
//!   [`expire_after`](MemoBuilder::expire_after)) when a value must not be used past a
//!   deadline: an expired entry is never served, and the next read waits for a new value.
//! - **A refresh** ([`refresh`](AsyncMemo::refresh), or automatically with
//!   [`refresh_after`](MemoBuilder::refresh_after)) when a slightly old value is better than a
//!   wait — tokens near expiry, configuration, tool lists: readers keep the current value while
//!   one computation replaces it (stale-while-revalidate). Combine it with a longer time to
//!   live as the bound on staleness; a `refresh_after` at or above the time to live never fires.
//!   A memo with `refresh_after` alone reads the cheap [`CoarseClock`] on every get-or-init
//!   call (its refreshes start within a few milliseconds of `after`); with a time to live it
//!   reads the precise [`SystemClock`], which deadlines need.
//! - **Invalidation** ([`invalidate`](AsyncMemo::invalidate)) when the value is known to be
//!   wrong now: the next read computes a new one.
//!
//! After the source changes, do not join a refresh that started before the change: it may
//! carry pre-change data (TanStack Query #471). Detach it by its epoch, then refresh anew —
//! the entry keeps being served meanwhile:
//!
//! ```
//! use async_memo::AsyncMemo;
//!
//! # futures::executor::block_on(async {
//! let tools: AsyncMemo<&str, Vec<&str>> = AsyncMemo::new();
//! tools.insert("server", vec!["search"]).unwrap();
//! // On a "list changed" notification:
//! if let Some(in_flight) = tools.refreshing("server") {
//!     tools.invalidate("server", in_flight); // detaches only the refresh
//! }
//! let fresh = tools.refresh("server", || async { vec!["search", "fetch"] }).await;
//! assert_eq!(tools.get("server").map(|e| e.epoch()), Some(fresh.epoch()));
//! # });
//! ```
//!
//! A listener that closes resources sees a refreshed entry as
//! [`Replaced`](RemovalCause::Replaced) even when the refresh returned the same resource (the
//! same `Arc`). It runs after the new entry is in place, so it can tell by reading the memo
//! (through a [`WeakMemo`]): `Arc::ptr_eq` with the new value means "keep it open".
//!
//! [`replace`](AsyncMemo::replace) is the compare-and-swap beside them: store a value only over
//! the generation you observed (quick_cache #73).
//!
//! # Values that know their own epoch
//!
//! A value that must later remove *itself* — a connection whose close handler invalidates its
//! own entry — needs the epoch it will be committed under before it exists. Build it with
//! [`get_or_init_with_epoch`](AsyncMemo::get_or_init_with_epoch) or
//! [`get_or_try_init_with_epoch`](AsyncMemo::get_or_try_init_with_epoch), whose `init` is given
//! its flight's epoch.
//!
//! # Memoize a function
//!
//! With the `macros` feature (on by default), [`#[memoize]`](macro@memoize) turns an `async fn`
//! into a memoized one: the arguments are the key, the body runs once per key for every
//! concurrent caller, `f_entry(args)` is the same call returning the [`Entry`] (value and
//! epoch), and `f_memo()` returns the [`AsyncMemo`] behind it, to invalidate exactly the result a
//! call saw. No lock is held across the body, so calls of other keys never wait for it; a
//! return type spelled `Result` (or any type, with `result = true`) memoizes only `Ok`.
//!
//! ```
//! use std::time::Duration;
//! use async_memo::memoize;
//!
//! #[memoize(max_capacity = 10_000, time_to_live = Duration::from_secs(300))]
//! async fn profile(user: &str) -> Result<String, String> {
//!     // A database call, say; runs once per user for all concurrent callers.
//!     Ok(format!("profile of {user}"))
//! }
//!
//! # futures::executor::block_on(async {
//! assert_eq!(profile("ann").await?, "profile of ann");
//! // The profile changed: invalidate exactly the result we saw, not a newer one. The epoch
//! // comes with the call (`profile_entry`); read later from the memo, it might be a newer
//! // entry's.
//! let seen = profile_entry("ann").await?;
//! assert!(profile_memo().invalidate("ann", seen.epoch()));
//! # Ok::<(), String>(())
//! # }).unwrap();
//! ```
//!
//! Methods take a `key` expression (their memo is shared by every instance), associated
//! functions without a receiver `in_impl = true`, borrowed arguments are keyed by their owned
//! form (`&str` by `String`), `crate = "path"` serves a renamed dependency, and every
//! unsupported shape (generics, `impl Trait`, patterns, a receiver without `key`) is a compile
//! error on the offending token; see [`macro@memoize`].
//!
//! # Choosing between `invalidate` and `remove`
//!
//! [`remove`](AsyncMemo::remove) deletes whatever the key holds *now*. After an `.await` that
//! is rarely what you observed: use it only for administrative clears. Whenever you hold an
//! [`Entry`] (or an epoch from [`epoch`](AsyncMemo::epoch)), remove it with
//! [`invalidate`](AsyncMemo::invalidate).
//!
//! # Runtime
//!
//! The crate is runtime-agnostic: no background threads or tasks, no timers, any executor.
//! The futures `get_or_init` and its siblings return borrow the memo handle (a hit then costs no
//! reference-count traffic); to spawn one, move a clone of the handle into the task:
//! `let memo = memo.clone(); tokio::spawn(async move { memo.get_or_init(k, init).await })`.
//! The futures it returns are `Send` when the key, value, hasher, `init` closure and its future
//! are; the init future itself must be `Send + 'static`, because whichever caller polls next,
//! on whatever thread, drives it.
//!
//! # Hashing and hash flooding
//!
//! The default hasher, [`DefaultHashBuilder`], is [foldhash](https://crates.io/crates/foldhash)
//! (its `fast` variant, hashbrown's default), seeded per memo: every memo draws its own seed,
//! mixed with one drawn once per process. It is several times cheaper than SipHash on small
//! keys, but it is **not** designed to resist a determined *hash-flooding* attacker — someone
//! who chooses many keys (request paths, user names) that land in one bucket to make every
//! operation slow. For keys an attacker controls, choose std's SipHash-1-3, keyed from the
//! operating system's random source, with one builder call:
//!
//! ```
//! use std::hash::RandomState;
//! use async_memo::AsyncMemo;
//!
//! # futures::executor::block_on(async {
//! let pages: AsyncMemo<String, String, RandomState> =
//!     AsyncMemo::builder().hasher(RandomState::new()).build();
//! let path = "/a/path/from/a/request".to_string();
//! let page = pages.get_or_init(path, || async { "<html>".to_string() }).await;
//! assert_eq!(page.value(), "<html>");
//! # });
//! ```
//!
//! Any other [`BuildHasher`](std::hash::BuildHasher) + `Clone` works the same way
//! ([`MemoBuilder::hasher`]); the hasher becomes the memo's third type parameter.
//!
//! # Inspecting a memo
//!
//! [`peek`](AsyncMemo::peek) reads one entry and [`entry_info`](AsyncMemo::entry_info) its
//! metadata (age, deadlines, refresh due, weight) without counting or touching anything
//! (semantics 21): a dashboard or a health check can look without steering the memo, and act
//! on exactly the entry it saw by the epoch the info carries.
//! [`iter`](AsyncMemo::iter) walks a snapshot of the ready entries, shard by shard;
//! [`invalidate_if`](AsyncMemo::invalidate_if) sweeps by predicate — everything of one tenant
//! after a permission change — and removes only the generation the predicate judged: a
//! replacement stored while it ran survives. A removal listener that needs its own memo (to
//! store a successor, say) is built with
//! [`on_removal_with_memo`](MemoBuilder::on_removal_with_memo).
//!
//! # Cargo features
//!
//! - `tracing` (off by default): [`tracing`](https://docs.rs/tracing) events, target
//!   `async_memo`, level `DEBUG`, for every flight (started, committed, detached, failed,
//!   panicked, abandoned) and every removal (cause and epoch). Events carry epochs, not keys (`K`
//!   need not be `Debug`): join them with your own logs through the epochs of the entries you
//!   hold. Off, it costs nothing: the event sites compile to nothing.
//! - `metrics` (off by default): [`AsyncMemo::record_metrics`] reports the [`Stats`] counters
//!   and the [`len`](AsyncMemo::len) and [`weighted_size`](AsyncMemo::weighted_size) gauges
//!   through the [`metrics`](https://docs.rs/metrics) facade (with exporters for Prometheus,
//!   StatsD, OpenTelemetry and more), as `async_memo_*` metrics labelled `memo = <name>`
//!   ([`MemoBuilder::name`]); its docs list every name, kind, unit and label. Export is on
//!   demand, from your scrape handler or a timer of your own: the memo counts as it always
//!   does and never spawns, and no hit, miss or write reads anything the feature adds, so it
//!   costs nothing until called (`cargo run --example metrics --features metrics`).
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85 (edition 2024). Raising it is a minor-version change, noted in the changelog.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![doc(test(attr(deny(warnings))))]

mod budget;
mod builder;
mod call;
mod clock;
mod entry;
mod epoch;
mod expiry;
mod flight;
mod get_or_init;
mod hasher;
mod info;
mod init;
mod inspect;
mod measure;
mod memo;
#[cfg(feature = "metrics")]
mod metrics;
mod policy;
mod refresh;
mod refused;
mod removal;
mod shard;
mod stats;
mod sync;
mod table;
mod tally;
mod trace;
mod waiters;
mod weak;

// What `#[memoize]`'s expansion names; not public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::builder::MemoBuilder;
pub use crate::clock::{Clock, CoarseClock, ManualClock, SystemClock};
pub use crate::entry::Entry;
pub use crate::epoch::Epoch;
pub use crate::hasher::{DefaultHashBuilder, DefaultHasher};
pub use crate::info::EntryInfo;
pub use crate::inspect::Iter;
pub use crate::memo::AsyncMemo;
pub use crate::refused::Refused;
pub use crate::removal::RemovalCause;
pub use crate::stats::Stats;
pub use crate::weak::WeakMemo;
#[cfg(feature = "macros")]
#[doc(inline)]
pub use async_memo_macros::memoize;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
