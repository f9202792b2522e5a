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
