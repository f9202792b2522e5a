//! What [`AsyncMemo::entry_info`](crate::AsyncMemo::entry_info) tells about one ready entry:
//! its epoch, age, deadlines, refresh and weight, measured on the memo's clock.

use std::time::Duration;

use crate::Epoch;
use crate::clock::Tick;
use crate::shard::Times;

/// The metadata of one ready entry, from
/// [`AsyncMemo::entry_info`](crate::AsyncMemo::entry_info): a quiet read, which counts no hit,
/// moves no time to idle and no recency, and starts no refresh (semantics 21).
///
/// Durations are on the memo's [`Clock`](crate::Clock) at the moment of the read, in whole
/// nanoseconds, and saturate (they never panic or wrap: semantics 13). `None` for a deadline
/// means "never". The info carries the entry's [`epoch`](Self::epoch), so a decision taken on
/// it applies to exactly the entry it describes: [`invalidate`](crate::AsyncMemo::invalidate) with
/// that epoch removes it only if the key still holds it. Caffeine's `ageOf` and
/// `getExpiresAfter` (issue 22) are the model.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_memo::{AsyncMemo, ManualClock};
///
/// let clock = ManualClock::new();
/// let sessions: AsyncMemo<&str, String> = AsyncMemo::builder()
///     .time_to_live(Duration::from_secs(60))
///     .clock(clock.clone())
///     .build();
/// sessions.insert("ann", "token-1".to_string()).unwrap();
/// clock.advance(Duration::from_secs(50));
///
/// // A health check: drop a session with less than 15 s to live, but only the one it saw.
/// let info = sessions.entry_info("ann").expect("present");
/// assert_eq!(info.age(), Some(Duration::from_secs(50)));
/// assert_eq!(info.time_to_live_left(), Some(Duration::from_secs(10)));
/// if info.expires_in().is_some_and(|left| left < Duration::from_secs(15)) {
///     assert!(sessions.invalidate("ann", info.epoch()));
/// }
/// assert!(sessions.peek("ann").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    epoch: Epoch,
    weight: u32,
    age: Option<Duration>,
    live_left: Option<Duration>,
    idle_left: Option<Duration>,
    refresh_in: Option<Duration>,
    refreshing: Option<Epoch>,
}

/// The time from `now` until `tick`: `None` if `tick` is `NEVER`, zero if it has passed.
fn until(now: Tick, tick: Tick) -> Option<Duration> {
    (tick != Tick::NEVER).then(|| Duration::from_nanos(tick.0.saturating_sub(now.0)))
}

impl EntryInfo {
    pub(crate) fn new(times: Times, now: Tick) -> Self {
        EntryInfo {
            epoch: times.epoch,
            weight: times.weight,
            age: times
                .committed
                .map(|at| Duration::from_nanos(now.0.saturating_sub(at.0))),
            live_left: until(now, times.fixed),
            idle_left: until(now, times.idle),
            refresh_in: until(now, times.refresh_at),
            refreshing: times.refreshing,
        }
    }

    /// The epoch of the entry described: pass it to [`invalidate`](crate::AsyncMemo::invalidate) or
    /// [`replace`](crate::AsyncMemo::replace) to act on exactly this entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// let entry = memo.insert("k", 1).unwrap();
    /// assert_eq!(memo.entry_info("k").map(|i| i.epoch()), Some(entry.epoch()));
    /// ```
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// What the entry counts for against [`max_capacity`](crate::AsyncMemo::max_capacity): the
    /// weigher's answer in a bounded memo (taken at commit), 1 in an unbounded one (which keeps
    /// no weights, as [`weighted_size`](crate::AsyncMemo::weighted_size) says).
    ///
    /// # Examples
    ///
    /// ```
    /// let memo: async_memo::AsyncMemo<&str, String> = async_memo::AsyncMemo::builder()
    ///     .max_capacity(100)
    ///     .weigher(|_, v: &String| v.len() as u32)
    ///     .build();
    /// memo.insert("k", "hello".to_string()).unwrap();
    /// assert_eq!(memo.entry_info("k").map(|i| i.weight()), Some(5));
    /// ```
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The time since the entry was committed (or inserted, or refreshed: a refresh commits a
    /// new entry), where the memo keeps it.
    ///
    /// An entry keeps two words of time (a deadline, and a last read or refresh due tick), not
    /// a third for its commit: that would cost every entry eight bytes. So the age is known
    /// in a memo whose only timed rules are a time to live and `expire_after`, and in any memo
    /// with a time to live and no `expire_after`; it is `None` in the others: a memo without a
    /// clock (no expiry, no `refresh_after`), and memos whose commit time the words lose (a
    /// time to idle or `refresh_after` without a time to live, or either with `expire_after`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// clock.advance(Duration::from_secs(3));
    /// assert_eq!(memo.entry_info(&1).and_then(|i| i.age()), Some(Duration::from_secs(3)));
    ///
    /// let timeless: AsyncMemo<u32, u32> = AsyncMemo::new();
    /// timeless.insert(1, 1).unwrap();
    /// assert_eq!(timeless.entry_info(&1).and_then(|i| i.age()), None, "no clock");
    /// ```
    pub fn age(&self) -> Option<Duration> {
        self.age
    }

    /// The time left before the entry's fixed deadline: the earlier of its
    /// [`time_to_live`](crate::MemoBuilder::time_to_live) and its
    /// [`expire_after`](crate::MemoBuilder::expire_after) answer, counted from its commit.
    /// `None`: it has no fixed deadline. Never zero (an entry at its deadline has expired and
    /// is not described).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// clock.advance(Duration::from_secs(45));
    /// let left = memo.entry_info(&1).and_then(|i| i.time_to_live_left());
    /// assert_eq!(left, Some(Duration::from_secs(15)));
    /// ```
    pub fn time_to_live_left(&self) -> Option<Duration> {
        self.live_left
    }

    /// The time left before the entry expires unread: its last read (not counting quiet reads)
    /// plus the [`time_to_idle`](crate::MemoBuilder::time_to_idle). `None` in a memo without a
    /// time to idle. Never zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// clock.advance(Duration::from_secs(4));
    /// let left = memo.entry_info(&1).and_then(|i| i.time_to_idle_left());
    /// assert_eq!(left, Some(Duration::from_secs(6)), "and reading the info did not reset it");
    /// ```
    pub fn time_to_idle_left(&self) -> Option<Duration> {
        self.idle_left
    }

    /// The time left before the entry expires by any rule: the earlier of
    /// [`time_to_live_left`](Self::time_to_live_left) and
    /// [`time_to_idle_left`](Self::time_to_idle_left). `None`: it never expires.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// let info = memo.entry_info(&1).unwrap();
    /// assert_eq!(info.expires_in(), Some(Duration::from_secs(10)));
    ///
    /// let forever: AsyncMemo<u32, u32> = AsyncMemo::new();
    /// forever.insert(1, 1).unwrap();
    /// assert_eq!(forever.entry_info(&1).unwrap().expires_in(), None);
    /// ```
    pub fn expires_in(&self) -> Option<Duration> {
        match (self.live_left, self.idle_left) {
            (Some(live), Some(idle)) => Some(live.min(idle)),
            (left, None) | (None, left) => left,
        }
    }

    /// The time left before the entry's automatic refresh
    /// ([`refresh_after`](crate::MemoBuilder::refresh_after)) is due: `Some(Duration::ZERO)`
    /// when it is due now (the next get-or-init read starts it), `None` when it never falls due
    /// (a memo without `refresh_after`, or an interval that saturates: semantics 13). While an automatic refresh is in flight (see
    /// [`refreshing`](Self::refreshing)) or after one failed, this is when the next automatic
    /// attempt may start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{AsyncMemo, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
    ///     .refresh_after(Duration::from_secs(30), |task| drop(task))
    ///     .clock(clock.clone())
    ///     .build();
    /// memo.insert(1, 1).unwrap();
    /// clock.advance(Duration::from_secs(20));
    /// let info = memo.entry_info(&1).unwrap();
    /// assert_eq!(info.refresh_due_in(), Some(Duration::from_secs(10)));
    /// clock.advance(Duration::from_secs(10));
    /// assert!(memo.entry_info(&1).unwrap().is_refresh_due());
    /// ```
    pub fn refresh_due_in(&self) -> Option<Duration> {
        self.refresh_in
    }

    /// Whether the entry's automatic refresh is due now:
    /// [`refresh_due_in`](Self::refresh_due_in) is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert(1, 1).unwrap();
    /// assert!(!memo.entry_info(&1).unwrap().is_refresh_due(), "no refresh_after");
    /// ```
    pub fn is_refresh_due(&self) -> bool {
        self.refresh_in == Some(Duration::ZERO)
    }

    /// The epoch of the refresh in flight beside the entry, if any, as
    /// [`refreshing`](crate::AsyncMemo::refreshing) reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// let memo = async_memo::AsyncMemo::new();
    /// memo.insert(1, 1).unwrap();
    /// assert_eq!(memo.entry_info(&1).unwrap().refreshing(), None);
    /// ```
    pub fn refreshing(&self) -> Option<Epoch> {
        self.refreshing
    }
}
