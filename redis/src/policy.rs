//! What a process does with its memo while it cannot read the log.

use std::time::Duration;

/// Bounds staleness while the log cannot be read.
///
/// While the reader cannot read the log, invalidations published meanwhile do not reach this
/// process. The policy decides how long its memo keeps serving. Time counts from the last
/// successful read (the moment the memo was last known current). After a reconnect the reader
/// applies every record it missed, or invalidates everything if the log cannot prove it missed
/// none, *before* the link counts as connected again.
///
/// The bound counts from the moment the reader *knows* it cannot read: at once when the
/// connection fails or closes (the server was killed, restarted, refused the connection), but
/// only after the response timeout when a blocked read gets no answer at all (a silent network
/// partition): [`RedisLog::block`](crate::RedisLog::block) plus 2 s. Staleness is therefore
/// bounded by `after` plus that detection time.
///
/// The default is `Clear { after: 1 s }`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_memo_redis::WhenDisconnected;
///
/// let policy = WhenDisconnected::Bypass { after: Duration::from_millis(500) };
/// assert_ne!(policy, WhenDisconnected::default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WhenDisconnected {
    /// Keep serving, however long the log stays unreadable. Staleness is unbounded: use it only
    /// with a TTL on the memo as the bound.
    Serve,
    /// Serve for at most `after`, then invalidate the whole memo, and again every `after` while
    /// the log stays unreadable: no entry is served more than about `after` after the later of
    /// its load and the last successful read. Single-flight keeps protecting the source.
    Clear {
        /// How long to keep serving. `Duration::ZERO` clears at the first failed read.
        after: Duration,
    },
    /// Serve for at most `after`, then invalidate the whole memo and bypass it:
    /// [`NearMemo::get_or_init`](crate::NearMemo::get_or_init) and its sibling run every
    /// `init` themselves and store nothing, until the log is readable again. Every call then
    /// reaches the source.
    Bypass {
        /// How long to keep serving. `Duration::ZERO` bypasses at the first failed read.
        after: Duration,
    },
}

impl Default for WhenDisconnected {
    fn default() -> Self {
        WhenDisconnected::Clear {
            after: Duration::from_secs(1),
        }
    }
}

impl WhenDisconnected {
    pub(crate) fn after(self) -> Option<Duration> {
        match self {
            WhenDisconnected::Serve => None,
            WhenDisconnected::Clear { after } | WhenDisconnected::Bypass { after } => Some(after),
        }
    }
}
