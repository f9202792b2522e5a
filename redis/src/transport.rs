//! The engine behind the invalidation log, as a small trait: publish, read from a cursor,
//! detect a gap. The memo side (`NearMemo` and its reader task) only ever talks to this trait.

use std::fmt;
use std::future::Future;

use crate::{Cursor, LogId};

/// What one record of the log invalidates (or, for [`Wake`](Invalidation::Wake), announces).
///
/// # Examples
///
/// ```
/// use async_memo_redis::Invalidation;
///
/// let one = Invalidation::Key(b"user:7".to_vec());
/// assert_ne!(one, Invalidation::All);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// One key, as its [`KeyCodec`](crate::KeyCodec) encoded it.
    Key(Vec<u8>),
    /// Every key of the namespace.
    All,
    /// Invalidates nothing: the [shared tier](crate::SharedTier) stored a value for this key
    /// (as its codec encoded it) or released its lease while another process was waiting.
    /// The readers wake their processes' waiters for the key, which look again. Only the
    /// shared tier's scripts append it; handed to [`Transport::publish`], it is published as
    /// [`All`](Invalidation::All).
    Wake(Vec<u8>),
}

/// A record as a publisher hands it to [`Transport::publish`].
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Invalidation, Outgoing};
///
/// let record = Outgoing { invalidation: Invalidation::All, origin: 1, published_us: 0 };
/// assert_eq!(record.origin, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// What it invalidates.
    pub invalidation: Invalidation,
    /// The publishing process's origin token: its own reader skips the record, because the
    /// publisher applied it locally before publishing.
    pub origin: u64,
    /// The publisher's clock, in microseconds since the Unix epoch, when it published: readers
    /// compute the apply lag from it.
    pub published_us: u64,
}

/// A record as a reader receives it: the published record and its id in the log.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Invalidation, LogId, Outgoing, Record};
///
/// let record = Record {
///     id: LogId::new(1, 0),
///     body: Outgoing { invalidation: Invalidation::All, origin: 1, published_us: 0 },
/// };
/// assert_eq!(record.id.ms(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its id in the log.
    pub id: LogId,
    /// What was published. A record that does not parse (written by hand or by another
    /// program) arrives as `Invalidation::All`, with origin 0.
    pub body: Outgoing,
}

/// Why a reader could not prove that it had seen every record after its cursor.
///
/// # Examples
///
/// ```
/// use async_memo_redis::GapCause;
///
/// assert_eq!(GapCause::Trimmed.to_string(), "records after the cursor were trimmed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GapCause {
    /// The server holding the log is not the one the cursor was read from: it restarted (and
    /// lost or reloaded the log) or a replica was promoted, possibly without the log's tail.
    Restarted,
    /// The log no longer exists although the cursor had seen records.
    Deleted,
    /// The log was deleted and created again: its history does not contain the cursor.
    Recreated,
    /// The log was trimmed past the cursor: records the reader never saw are gone.
    Trimmed,
    /// Records after the cursor are missing from the middle of the log (deleted one by one).
    Missing,
}

impl fmt::Display for GapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GapCause::Restarted => "the server restarted or failed over",
            GapCause::Deleted => "the log was deleted",
            GapCause::Recreated => "the log was recreated",
            GapCause::Trimmed => "records after the cursor were trimmed",
            GapCause::Missing => "records after the cursor are missing",
        })
    }
}

/// The answer to [`Transport::read`].
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Cursor, GapCause, LogId, Read};
///
/// let gap = Read::Gap { cause: GapCause::Deleted, cursor: Cursor::new(LogId::ZERO, 0, 1) };
/// assert!(matches!(gap, Read::Gap { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Every record after the old cursor up to `cursor`, in log order (possibly none), with
    /// proof that none is missing.
    Records {
        /// The records, oldest first.
        records: Vec<Record>,
        /// The cursor after the last of them.
        cursor: Cursor,
        /// How many more records the log held after `cursor` when it was read.
        behind: u64,
    },
    /// The log cannot prove that nothing after the old cursor was lost. The reader must
    /// invalidate everything and continue from `cursor`, the log's end when it was read.
    Gap {
        /// Why.
        cause: GapCause,
        /// The log's end, to continue from.
        cursor: Cursor,
    },
}

/// The engine behind an invalidation log: Redis Streams ([`RedisLog`](crate::RedisLog)) here;
/// another engine with a resumable log (NATS JetStream, whose KV watch resumes from a
/// revision) can implement it without touching the memo side.
///
/// An implementation must hand out every record after a cursor exactly once and in order,
/// or report a [`Read::Gap`]; it never reports records it cannot prove complete.
///
/// # Examples
///
/// ```no_run
/// use async_memo_redis::{RedisLog, Transport};
///
/// # async fn f() -> Result<(), redis::RedisError> {
/// let log = RedisLog::open("redis://127.0.0.1/", "users")?;
/// let start = log.tail().await?;
/// println!("the log ends at {}", start.id());
/// # Ok(()) }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// The engine's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends a record and returns its id.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled publish may or may not have appended the record.
    fn publish(&self, record: &Outgoing)
    -> impl Future<Output = Result<LogId, Self::Error>> + Send;

    /// The cursor at the log's end now: a new reader starts there.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn tail(&self) -> impl Future<Output = Result<Cursor, Self::Error>> + Send;

    /// The records after `from` (at most `max`), waiting a while for one if there is none, or
    /// a gap.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads; the caller's cursor moves only with a returned answer.
    fn read(
        &self,
        from: &Cursor,
        max: usize,
    ) -> impl Future<Output = Result<Read, Self::Error>> + Send;
}
