//! Expiry: each entry's deadlines, and the shard's queue of deadlines to purge.
//!
//! An entry expires at the earliest of its time-to-live deadline, its `expire_after` deadline
//! (both fixed at commit) and, with a time to idle, its last read plus that time. Reads move the
//! last-read tick with a relaxed store under the shard *read* lock.
//!
//! An entry keeps two words of time, not three: its fixed deadline, and a second word whose
//! meaning the memo fixes when it is built ([`Layout`]): the last read (time to idle), or the
//! tick its automatic refresh is due (`refresh_after`). A memo with both keeps the due tick in
//! the shard's side table of refreshes instead (`shard/refreshes.rs`), so that the common
//! layouts stay small (issue 14: 56 bytes a `u64 -> u64` bucket). The shard keeps a min-heap of
//! deadlines; a token popped from it is stale if its entry is gone, or early if a read moved the
//! entry's idle deadline, and is then dropped or pushed back.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::clock::Tick;
use crate::policy::Token;
use crate::sync::{AtomicU64, Ordering::Relaxed};

/// The expiry settings of a memo, as the shards need them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExpiryRules {
    pub(crate) time_to_live: Option<Duration>,
    pub(crate) time_to_idle: Option<Duration>,
    /// Whether an `expire_after` function is set.
    pub(crate) per_entry: bool,
}

impl ExpiryRules {
    pub(crate) fn any(&self) -> bool {
        self.time_to_live.is_some() || self.time_to_idle.is_some() || self.per_entry
    }

    /// The fixed deadline of an entry committed at `now`, given its `expire_after` answer.
    pub(crate) fn deadline(&self, now: Tick, per_entry: Option<Duration>) -> Tick {
        let ttl = self.time_to_live.map_or(Tick::NEVER, |d| now.after(d));
        let own = per_entry.map_or(Tick::NEVER, |d| now.after(d));
        ttl.min(own)
    }
}

/// What an entry's second word of time holds; fixed per memo when it is built.
///
/// Invariant: with a time to idle the layout is never `Refresh` (the word is the last read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// No automatic refresh: the word is the last read (with a time to idle) or unused.
    Plain,
    /// Automatic refresh, no time to idle: the word is the tick the refresh is due.
    Refresh,
    /// Automatic refresh and a time to idle: the word is the last read, and the due tick lives
    /// beside the entry, in the shard's side table of refreshes.
    RefreshBeside,
}

impl Layout {
    pub(crate) fn of(time_to_idle: Option<Duration>, refresh: bool) -> Self {
        match (refresh, time_to_idle) {
            (false, _) => Layout::Plain,
            (true, None) => Layout::Refresh,
            (true, Some(_)) => Layout::RefreshBeside,
        }
    }
}

/// The current time, the idle rule and the entries' layout, as one operation sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moment {
    pub(crate) now: Tick,
    pub(crate) time_to_idle: Option<Duration>,
    pub(crate) layout: Layout,
}

impl Moment {
    /// For memos without expiry or refresh: nothing ever expires or falls due.
    pub(crate) const TIMELESS: Moment = Moment {
        now: Tick(0),
        time_to_idle: None,
        layout: Layout::Plain,
    };
}

/// An entry's expiry state.
#[derive(Debug)]
pub(crate) struct Expiry {
    deadline: Tick,
    /// The last read, the refresh due tick, or unused: as the memo's [`Layout`] says.
    second: AtomicU64,
}

impl Expiry {
    /// The times of an entry committed at `at` (`refresh_at` is `NEVER` without automatic
    /// refresh, and is kept here only in the `Refresh` layout).
    pub(crate) fn new(deadline: Tick, refresh_at: Tick, at: Moment) -> Self {
        debug_assert!(
            at.time_to_idle.is_none() || at.layout != Layout::Refresh,
            "Layout invariant: with a time to idle the word is the last read"
        );
        let second = match at.layout {
            Layout::Refresh => refresh_at,
            Layout::Plain | Layout::RefreshBeside => at.now,
        };
        Expiry {
            deadline,
            second: AtomicU64::new(second.0),
        }
    }

    #[inline]
    pub(crate) fn expires_at(&self, time_to_idle: Option<Duration>) -> Tick {
        self.deadline.min(self.idle_deadline(time_to_idle))
    }

    /// The fixed deadline (time to live, `expire_after`), set at commit: `NEVER` without one.
    #[inline]
    pub(crate) fn fixed_deadline(&self) -> Tick {
        self.deadline
    }

    /// The idle deadline (last read plus the time to idle), or `NEVER` without a time to idle.
    #[inline]
    pub(crate) fn idle_deadline(&self, time_to_idle: Option<Duration>) -> Tick {
        time_to_idle.map_or(Tick::NEVER, |d| Tick(self.second.load(Relaxed)).after(d))
    }

    /// The tick the entry was committed at, where its two words still tell it (for
    /// `entry_info`): the second word in a memo with a clock, no time to idle and no automatic
    /// refresh (it is then set at commit and never moves), or else the fixed deadline minus a
    /// time to live that no `expire_after` can shorten (exact while it did not saturate).
    pub(crate) fn committed_at(&self, at: Moment, rules: &ExpiryRules) -> Option<Tick> {
        if at.layout == Layout::Plain && at.time_to_idle.is_none() && rules.any() {
            return Some(Tick(self.second.load(Relaxed)));
        }
        let ttl = rules.time_to_live.filter(|_| !rules.per_entry)?;
        let ttl = u64::try_from(ttl.as_nanos()).ok()?;
        (self.deadline != Tick::NEVER).then(|| Tick(self.deadline.0.saturating_sub(ttl)))
    }

    /// The tick the automatic refresh is due, in the `Refresh` layout (`NEVER` in `Plain`);
    /// `None` in `RefreshBeside`, where the shard's side table keeps it.
    #[inline]
    pub(crate) fn refresh_at(&self, layout: Layout) -> Option<Tick> {
        match layout {
            Layout::Plain => Some(Tick::NEVER),
            Layout::Refresh => Some(Tick(self.second.load(Relaxed))),
            Layout::RefreshBeside => None,
        }
    }

    /// Moves the refresh due tick (`Refresh` layout; write lock held).
    pub(crate) fn set_refresh_at(&self, at: Tick) {
        self.second.store(at.0, Relaxed);
    }

    #[inline]
    pub(crate) fn is_expired(&self, at: Moment) -> bool {
        // A reading never reaches `NEVER` (clock.rs, invariant 1): no deadline is never due.
        debug_assert!(at.now <= Tick::LATEST);
        at.now >= self.expires_at(at.time_to_idle)
    }

    /// Records a read at `at` (only time to idle cares).
    #[inline]
    pub(crate) fn touch(&self, at: Moment) {
        if at.time_to_idle.is_some() && self.second.load(Relaxed) < at.now.0 {
            self.second.store(at.now.0, Relaxed);
        }
    }
}

/// The deadlines of a shard's entries, earliest first.
#[derive(Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Tick, Token)>>,
}

impl Deadlines {
    pub(crate) fn push(&mut self, at: Tick, token: Token) {
        if at != Tick::NEVER {
            self.heap.push(Reverse((at, token)));
        }
    }

    /// Pops the earliest token due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Tick) -> Option<Token> {
        let Reverse((at, _)) = self.heap.peek()?;
        if *at > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, token))| token)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    /// Keeps only the tokens `live` accepts (used when stale tokens pile up).
    pub(crate) fn retain(&mut self, mut live: impl FnMut(Token) -> bool) {
        self.heap.retain(|Reverse((_, token))| live(*token));
    }
}
