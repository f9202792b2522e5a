//! Expiry: each entry's deadlines, and the shard's queue of deadlines to purge.
//!
//! An entry expires at the earliest of its time-to-live deadline, its `expire_after` deadline
//! (both fixed at commit) and, with a time to idle, its last read plus that time. Reads move the
//! last-read tick with a relaxed store under the shard *read* lock. The shard keeps a min-heap of
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

/// The current time and the idle rule, as one operation sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moment {
    pub(crate) now: Tick,
    pub(crate) time_to_idle: Option<Duration>,
}

impl Moment {
    /// For memos without expiry: nothing ever expires.
    pub(crate) const TIMELESS: Moment = Moment {
        now: Tick(0),
        time_to_idle: None,
    };
}

/// An entry's expiry state.
#[derive(Debug)]
pub(crate) struct Expiry {
    deadline: Tick,
    last_read: AtomicU64,
}

impl Expiry {
    pub(crate) fn new(deadline: Tick, now: Tick) -> Self {
        Expiry {
            deadline,
            last_read: AtomicU64::new(now.0),
        }
    }

    pub(crate) fn expires_at(&self, time_to_idle: Option<Duration>) -> Tick {
        let idle =
            time_to_idle.map_or(Tick::NEVER, |d| Tick(self.last_read.load(Relaxed)).after(d));
        self.deadline.min(idle)
    }

    pub(crate) fn is_expired(&self, at: Moment) -> bool {
        // A reading never reaches `NEVER` (clock.rs, invariant 1): no deadline is never due.
        debug_assert!(at.now <= Tick::LATEST);
        at.now >= self.expires_at(at.time_to_idle)
    }

    /// Records a read at `at` (only time to idle cares).
    pub(crate) fn touch(&self, at: Moment) {
        if at.time_to_idle.is_some() && self.last_read.load(Relaxed) < at.now.0 {
            self.last_read.store(at.now.0, Relaxed);
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
