//! Keeps [`async_memo`] memos on many processes consistent through an invalidation log in
//! Redis.
//!
//! A service runs as many replicas, each memoizing configuration, tokens or query results in
//! an [`AsyncMemo`](async_memo::AsyncMemo). When the source of truth changes, every replica
//! must drop its copy, and no load already in progress anywhere may store the old value.
//! Redisson's `RLocalCachedMap` (#1930, #3874) and JetCache (#803) lose exactly that race:
//! their remote invalidation deletes ready entries by key, so a load in progress re-caches the
//! stale value. The Redis documentation on client-side caching prescribes a "load in progress"
//! placeholder for this race; in async-memo a *flight* is that placeholder, and a detached
//! flight never commits.
//!
//! A [`NearMemo`] wraps a memo. Each namespace has one log, a Redis Stream; a process applies
//! its own invalidations at once and everybody else's from one reader task (`XREAD BLOCK`
//! from the last applied id). Applying a record is [`AsyncMemo::remove`](async_memo::AsyncMemo::remove):
//! the ready entry goes and the key's flight is detached.
//!
//! # Quick example
//!
//! ```no_run
//! use async_memo::AsyncMemo;
//! use async_memo_redis::{NearMemo, RedisLog};
//!
//! # async fn load_user(_: &str) -> String { String::new() }
//! # async fn f() -> Result<(), redis::RedisError> {
//! let log = RedisLog::open("redis://127.0.0.1/", "users")?;
//! let users: NearMemo<String, String> = NearMemo::builder(log).start(AsyncMemo::new()).await?;
//!
//! // Readers: memoized as usual.
//! let name = users.get_or_init("7".into(), || async { load_user("7").await }).await;
//!
//! // Writers: change the source first, then invalidate everywhere.
//! // db.rename_user("7", "Grace").await?;
//! users.invalidate(&"7".to_string()).await?;
//! # let _ = name; Ok(()) }
//! ```
//!
//! The memo may be built with any hasher, such as std's SipHash `RandomState` for keys an
//! attacker chooses: [`NearMemoBuilder::start`] takes an `AsyncMemo<K, V, S>` and shows how.
//!
//! # Semantics
//!
//! The memo keeps every guarantee of [`async_memo`]; this crate only turns log records into
//! memo calls and keeps reading. `tests/redis/` pins each point against a real `redis-server`.
//!
//! 1. **No stale commit.** Applying a record of key `k` removes `k`'s ready entry and
//!    detaches its flight, so a load that started before the record was applied — on any
//!    process — never stores its value. Its callers still receive that value (they asked
//!    before the invalidation); callers that start after it start a new load.
//! 2. **Own invalidations at once.** [`NearMemo::invalidate`] removes the key locally before
//!    publishing; the process's own reader skips its own records.
//! 3. **Nothing missed from the start.** [`NearMemoBuilder::start`] records the log's end
//!    before the memo serves anything (and clears what the memo held): every record appended
//!    after `start` returns is applied, none before is replayed.
//! 4. **In order, once.** Records are applied in log order, each at most once: the cursor
//!    moves only past applied records.
//! 5. **Gaps flush.** Every read checks, atomically with the records it returns, that nothing
//!    after the cursor was lost: the log trimmed past the reader, deleted or recreated, the
//!    server restarted, or a replica promoted (`run_id` changed, so it may lack the tail).
//!    If it cannot prove it, the reader invalidates the whole memo (counted in
//!    [`LogStats::gaps`] and [`LogStats::resets`]) and continues from the log's end. After a
//!    reconnect, nothing is left stale: either every missed record is applied or everything
//!    is invalidated, before the link counts as connected again.
//! 6. **Bounded staleness while disconnected.** [`WhenDisconnected`] says how long the memo
//!    keeps serving while the log cannot be read (default: at most 1 s, then it is cleared,
//!    and cleared again every second until the log is back), or whether to bypass it. The
//!    bound counts from when the reader learns that it cannot read: at once for a closed or
//!    refused connection, after the read's response timeout for a silent partition.
//! 7. **Writers: source first, then the log.** Invalidate after the source of truth has
//!    committed. A writer that crashes between its commit and its publish leaves every other
//!    process stale: give the memo a TTL as the backstop, or publish from an outbox. When the
//!    source is Redis itself, [`NearMemo::commit_and_invalidate`] writes and publishes in one
//!    `MULTI`/`EXEC`.
//! 8. **What "no stale read" means.** A read that starts after a process applied the
//!    invalidation of a key never returns a value loaded before the source change that
//!    invalidation announced. Reads concurrent with the invalidation may return either.
//!    Propagation takes one `XREAD` round trip (about a millisecond on loopback, see the
//!    README's numbers); until then the other processes serve the old value.
//! 9. **No stale set** (with a shared tier). A value loaded under a lease that an
//!    invalidation, an `invalidate_all`, a server restart or the lease's expiry revoked is
//!    stored nowhere: not in Redis (the store compares the token and generation in one
//!    script), and not in any local memo (the flight detaches itself, by its own epoch, when
//!    its store is refused or its outcome unknown). Its callers still receive it: they asked
//!    before the invalidation.
//! 10. **One load per key per invalidation** (with a shared tier), across processes, while
//!     the lease holder lives and finishes within `lease_ttl`: every other process's flight
//!     for the key waits for its value. A holder that dies delays the others by at most
//!     `lease_ttl` (plus one fetch); a holder that fails or is cancelled gives the lease back
//!     at once. While the log is unreachable, each process loads for itself.
//!
//! # The shared tier
//!
//! With [`NearMemoBuilder::shared`] and a [`SharedTier`], values live in Redis beside the
//! log, and a miss anywhere in the fleet is loaded from the source once: after an
//! invalidation of a hot key, N replicas no longer run N loads (the stampede across pods of
//! bentocache #2, cacheable #1201, FusionCache #456). Its protocol is memcache's lease
//! (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013, §3.2.1) under our rule:
//! compare on the token you were given, never on the key.
//!
//! - **Read path.** A local hit never leaves the process. A local miss joins or starts the
//!   local flight; that flight asks Redis in one script: the key's shared value (committed
//!   locally, no source load), or the key's **lease** (a fresh token, for
//!   [`lease_ttl`](SharedTier::lease_ttl)), or word that another process holds it.
//! - **Lease holder.** Runs `init`, then stores the value in Redis only if its token is still
//!   the key's lease (compare-and-set in one script), then commits locally.
//! - **Waiters.** Wait for the holder's value instead of loading: the store (or a release) is
//!   announced in the log, which the reader already tails, and wakes them at once; no waiter
//!   polls Redis. A holder that dies gives nothing back: its lease expires and one waiter
//!   takes it over. Every wait is bounded by [`max_wait`](SharedTier::max_wait); then
//!   [`NearMemo::get_or_init`] loads the value itself (without a lease, storing nothing in
//!   Redis), and [`NearMemo::get_or_try_init_bounded`] fails instead.
//! - **Invalidation revokes.** With the tier, every publish — [`NearMemo::invalidate`],
//!   [`commit_and_invalidate`](NearMemo::commit_and_invalidate) — deletes the key's shared
//!   value and lease and appends the record in one script; [`invalidate_all`](NearMemo::invalidate_all)
//!   bumps the namespace's generation, which every value and lease key carries. A writer that
//!   shares no values itself publishes the same way after [`RedisLog::with_shared_tier`].
//! - **Faults.** While the log is unreachable, flights go straight to the source, take no lease
//!   and store nothing in Redis (the [`WhenDisconnected`] policy still bounds the memo). A
//!   server that restarted, or a replica promoted, starts a new generation at its first
//!   script: no lease granted and no value stored before it is used again, since it may lack
//!   the invalidations that revoked them.
//! - **Values** travel through a [`ValueCodec`] ([`Plain`], and with the `serde` feature
//!   `Json` and `Postcard`), at most [`max_value_bytes`](SharedTier::max_value_bytes), and
//!   expire after [`value_ttl`](SharedTier::value_ttl), the backstop for a writer that crashed
//!   between its source commit and its invalidation. Bytes that do not decode (another codec,
//!   another version of `V`) are a miss like any other: one process takes the lease and
//!   replaces them.
//! - **Eviction.** Redis may evict the tier's keys (an `allkeys-*` policy): an evicted value is
//!   a miss, an evicted lease is revoked (its holder's store is refused), and an evicted
//!   generation starts again from the server's clock, above every generation used before.
//!
//! Key layout (one namespace, log `S`): `S:gen` and `S:run` beside the log, and per key
//! `async-memo:v:{k:<key>}:<generation>:S` (the value, with the token it was stored under) and
//! `async-memo:l:{k:<key>}:<generation>:S` (the lease): a key's value and lease share a hash
//! tag, so one Cluster slot. The scripts themselves read the generation beside the log, so
//! today they run on one server (or one primary), not across a Cluster.
//!
//! [`NearMemo::shared_stats`] counts shared hits, source loads, leases granted, takeovers,
//! stores, refused sets, waits (and their latency), timeouts, decode failures and values not
//! shared.
//!
//! # Observability
//!
//! [`NearMemo::stats`] gives counters ([`LogStats`]: published, applied, own records skipped,
//! gaps, resets, reconnects, lag in records) and the apply lag (publisher's clock to the
//! reader's, so it includes clock skew). [`NearMemoBuilder::on_apply`] reports each record
//! applied and each reset as it happens.
//!
//! # Engines
//!
//! The memo side talks to a small [`Transport`] trait (publish, read from a cursor, report a
//! gap). [`RedisLog`] implements it on Redis Streams (Redis 7.0 or later: the gap check needs
//! `entries-added`). Another engine with a resumable log can implement it too.
//!
//! # Runtime
//!
//! tokio: [`NearMemoBuilder::start`] spawns the reader task, which stops when the last
//! [`NearMemo`] clone is dropped. The core crate stays runtime-agnostic.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85 (edition 2024), as the core crate.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
// Examples that need a server are `no_run`: compiled, inside functions nobody calls.
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

mod builder;
mod codec;
mod conn;
mod gap;
mod load;
mod log_id;
mod near;
mod policy;
mod reader;
mod redis_log;
mod scripts;
mod shared_stats;
mod stats;
mod tier;
mod transport;
mod value_codec;
mod waiters;

pub use crate::builder::NearMemoBuilder;
#[cfg(feature = "serde")]
pub use crate::codec::Json;
pub use crate::codec::{KeyCodec, Plain};
pub use crate::load::LoadError;
pub use crate::log_id::{Cursor, LogId, ParseLogIdError};
pub use crate::near::NearMemo;
pub use crate::policy::WhenDisconnected;
pub use crate::reader::{Applied, Reset};
pub use crate::redis_log::RedisLog;
pub use crate::shared_stats::{SharedStats, WaitLatency};
pub use crate::stats::{Link, LogStats};
pub use crate::tier::SharedTier;
pub use crate::transport::{GapCause, Invalidation, Outgoing, Read, Record, Transport};
#[cfg(feature = "serde")]
pub use crate::value_codec::Postcard;
pub use crate::value_codec::{EncodeError, ValueCodec};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
