//! Positions in an invalidation log: the id of one record, and a reader's cursor.

use std::fmt;
use std::str::FromStr;

/// The id of one record of an invalidation log: for Redis, a stream entry id `ms-seq`.
///
/// Ids are totally ordered, in the order the log appended the records. For Redis the first
/// half is the server's clock in milliseconds when the record was appended.
///
/// # Examples
///
/// ```
/// use async_memo_redis::LogId;
///
/// let id: LogId = "1700000000000-3".parse()?;
/// assert_eq!((id.ms(), id.seq()), (1_700_000_000_000, 3));
/// assert_eq!(id.to_string(), "1700000000000-3");
/// assert!(LogId::ZERO < id);
/// # Ok::<(), async_memo_redis::ParseLogIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    ms: u64,
    seq: u64,
}

impl LogId {
    /// `0-0`: before every record. The cursor of a log that has never had a record.
    pub const ZERO: LogId = LogId { ms: 0, seq: 0 };

    /// The id `ms-seq`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(async_memo_redis::LogId::new(5, 1).to_string(), "5-1");
    /// ```
    pub const fn new(ms: u64, seq: u64) -> LogId {
        LogId { ms, seq }
    }

    /// The first half: for Redis, milliseconds since the Unix epoch on the server's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(async_memo_redis::LogId::new(5, 1).ms(), 5);
    /// ```
    pub const fn ms(self) -> u64 {
        self.ms
    }

    /// The second half: the sequence number within one millisecond.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(async_memo_redis::LogId::new(5, 1).seq(), 1);
    /// ```
    pub const fn seq(self) -> u64 {
        self.seq
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text was not a log id of the form `ms-seq` (two decimal `u64`s).
///
/// # Examples
///
/// ```
/// assert!("12".parse::<async_memo_redis::LogId>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLogIdError {
    text: String,
}

impl fmt::Display for ParseLogIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a log id of the form ms-seq: {:?}", self.text)
    }
}

impl std::error::Error for ParseLogIdError {}

impl FromStr for LogId {
    type Err = ParseLogIdError;

    fn from_str(text: &str) -> Result<LogId, ParseLogIdError> {
        let error = || ParseLogIdError {
            text: text.to_owned(),
        };
        let (ms, seq) = text.split_once('-').ok_or_else(error)?;
        Ok(LogId {
            ms: ms.parse().map_err(|_| error())?,
            seq: seq.parse().map_err(|_| error())?,
        })
    }
}

/// Where a reader stands in an invalidation log: everything up to `id` has been applied.
///
/// Besides the id of the last record applied, a cursor carries what a gap check needs:
/// `added`, how many records the log had ever appended up to and including `id` (Redis's
/// `entries-added`), and `incarnation`, a token of the server that holds the log (a hash of
/// Redis's `run_id`, which changes when the server restarts or a replica takes over). A
/// [`Transport`](crate::Transport) compares all three with the log at every read.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Cursor, LogId};
///
/// let start = Cursor::new(LogId::ZERO, 0, 7);
/// assert_eq!(start.id(), LogId::ZERO);
/// assert_eq!(start.added(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    id: LogId,
    added: u64,
    incarnation: u64,
}

impl Cursor {
    /// A cursor after record `id`, the `added`-th record the log ever appended, on the log's
    /// `incarnation`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = async_memo_redis::Cursor::new(async_memo_redis::LogId::new(9, 0), 3, 1);
    /// assert_eq!(c.incarnation(), 1);
    /// ```
    pub const fn new(id: LogId, added: u64, incarnation: u64) -> Cursor {
        Cursor {
            id,
            added,
            incarnation,
        }
    }

    /// The id of the last record applied (`LogId::ZERO` if none ever was).
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{Cursor, LogId};
    /// assert_eq!(Cursor::new(LogId::new(9, 0), 3, 1).id(), LogId::new(9, 0));
    /// ```
    pub const fn id(&self) -> LogId {
        self.id
    }

    /// How many records the log had appended, in all, up to and including [`id`](Self::id).
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{Cursor, LogId};
    /// assert_eq!(Cursor::new(LogId::new(9, 0), 3, 1).added(), 3);
    /// ```
    pub const fn added(&self) -> u64 {
        self.added
    }

    /// The token of the server incarnation the cursor was read from.
    ///
    /// # Examples
    ///
    /// ```
    /// # use async_memo_redis::{Cursor, LogId};
    /// assert_eq!(Cursor::new(LogId::ZERO, 0, 42).incarnation(), 42);
    /// ```
    pub const fn incarnation(&self) -> u64 {
        self.incarnation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_what_is_not_two_numbers() {
        for bad in [
            "",
            "1",
            "-",
            "1-",
            "-1",
            "a-1",
            "1-b",
            "1-2-3",
            "18446744073709551616-0",
        ] {
            assert!(bad.parse::<LogId>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "18446744073709551615-0".parse(),
            Ok(LogId::new(u64::MAX, 0))
        );
    }

    #[test]
    fn order_is_ms_then_seq() {
        assert!(LogId::new(1, 9) < LogId::new(2, 0));
        assert!(LogId::new(2, 0) < LogId::new(2, 1));
    }
}
