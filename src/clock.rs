//! Time for expiry: a [`Clock`] the builder accepts, and the memo's compact ticks.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// Where a memo reads the time for expiry (`time_to_live`, `time_to_idle`, `expire_after`).
///
/// The default is [`SystemClock`] (`std::time::Instant::now`). Tests use a [`ManualClock`] to
/// make expiry deterministic. The memo never sleeps or sets timers: it reads the clock when an
/// operation needs to know whether an entry has expired, and never while holding a lock.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use async_memo::Clock;
///
/// /// A clock that runs a minute ahead, say.
/// struct Ahead;
/// impl Clock for Ahead {
///     fn now(&self) -> Instant {
///         Instant::now() + Duration::from_secs(60)
///     }
/// }
/// assert!(Ahead.now() > Instant::now());
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    ///
    /// It should never go backwards; if it does, the memo does not follow it: a memo keeps the
    /// latest reading it has seen, and treats an earlier one as that latest (time stands still
    /// until the clock catches up; moka #52, #472 are what a clock going backwards does to a cache
    /// that trusts it). The default [`SystemClock`] is `Instant::now`, which std already keeps
    /// monotonic, so the memo does not track its readings. Readings more than `u64::MAX`
    /// nanoseconds (about 584 years) after the memo was built count as that far, and deadlines
    /// beyond it as "never".
    fn now(&self) -> Instant;
}

/// The default clock: [`Instant::now`].
///
/// # Examples
///
/// ```
/// use async_memo::{Clock, SystemClock};
/// let before = std::time::Instant::now();
/// assert!(SystemClock.now() >= before);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: for deterministic tests of expiry.
///
/// Clones share the same time. It never goes backwards and never wraps: advances saturate at
/// `u64::MAX` nanoseconds (about 584 years) after [`ManualClock::new`], or at the latest
/// `Instant` the platform can represent if that comes first; from there it stands still.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_memo::{AsyncMemo, ManualClock};
///
/// let clock = ManualClock::new();
/// let memo: AsyncMemo<&str, u32> = AsyncMemo::builder()
///     .time_to_live(Duration::from_secs(10))
///     .clock(clock.clone())
///     .build();
/// memo.insert("k", 1).unwrap();
/// clock.advance(Duration::from_secs(9));
/// assert!(memo.get("k").is_some());
/// clock.advance(Duration::from_secs(1));
/// assert!(memo.get("k").is_none(), "expired after exactly ten seconds");
/// ```
#[derive(Clone)]
pub struct ManualClock {
    start: Instant,
    /// The most `elapsed_nanos` may reach: `start` plus this is still an `Instant`.
    limit: u64,
    elapsed_nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing still at the moment it was made.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_memo::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.now(), clock.now());
    /// ```
    pub fn new() -> Self {
        let start = Instant::now();
        ManualClock {
            start,
            limit: representable_nanos(start),
            elapsed_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock (and every clone of it) forward by `by`, saturating: an advance past
    /// about 584 years (or past the latest representable `Instant`) stops there, and the clock
    /// never wraps around to an earlier time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use async_memo::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// let t0 = clock.now();
    /// clock.advance(Duration::from_millis(5));
    /// assert_eq!(clock.now() - t0, Duration::from_millis(5));
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let mut current = self.elapsed_nanos.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(by).min(self.limit);
            match self.elapsed_nanos.compare_exchange(
                current,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

/// The most nanoseconds that can be added to `start` without leaving `Instant`'s range (at most
/// `u64::MAX`): a binary search, run once per `ManualClock`.
fn representable_nanos(start: Instant) -> u64 {
    let fits = |nanos: u64| start.checked_add(Duration::from_nanos(nanos)).is_some();
    if fits(u64::MAX) {
        return u64::MAX;
    }
    let (mut low, mut high) = (0, u64::MAX); // fits(low) && !fits(high)
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if fits(mid) { low = mid } else { high = mid }
    }
    low
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst));
        f.debug_struct("ManualClock")
            .field("elapsed", &elapsed)
            .finish()
    }
}

/// A point in time as nanoseconds since the memo was built: eight bytes in every entry instead of
/// an `Instant`'s sixteen. `Tick::NEVER` is "no deadline".
///
/// # Invariants
///
/// 1. A clock reading is at most `Tick::LATEST`, so it never equals `Tick::NEVER`: an entry
///    without a deadline is never due, however far the clock runs.
/// 2. Every sum saturates: a deadline past `Tick::LATEST` is `Tick::NEVER` (the clock can never
///    reach it), never a wrapped, earlier tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(pub(crate) u64);

impl Tick {
    pub(crate) const NEVER: Tick = Tick(u64::MAX);
    /// The latest a clock reading can be (invariant 1).
    pub(crate) const LATEST: Tick = Tick(u64::MAX - 1);

    /// `self + d`, saturating at `Tick::NEVER` (invariant 2).
    pub(crate) fn after(self, d: Duration) -> Tick {
        Tick(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// A reading of `since` past the origin, clamped to `Tick::LATEST` (invariant 1).
    pub(crate) fn reading(since: Duration) -> Tick {
        Tick(u64::try_from(since.as_nanos()).map_or(Tick::LATEST.0, |n| n.min(Tick::LATEST.0)))
    }
}

/// The memo's clock, the instant its ticks count from, and the latest tick it has read.
pub(crate) struct Timer {
    clock: Box<dyn Clock>,
    origin: Instant,
    /// The latest reading handed out: readings never go below it, so the memo's time is
    /// monotonic whatever the clock does (moka #52, #472). `None` for [`SystemClock`], whose
    /// `Instant::now` std already keeps monotonic: its hits then write no shared memory.
    latest: Option<AtomicU64>,
}

impl Timer {
    /// A timer on the user's `clock`, or on [`SystemClock`] if `None`.
    pub(crate) fn new(clock: Option<Box<dyn Clock>>) -> Self {
        let latest = clock.is_some().then(|| AtomicU64::new(0));
        let clock = clock.unwrap_or_else(|| Box::new(SystemClock));
        let origin = clock.now();
        Timer {
            clock,
            origin,
            latest,
        }
    }

    /// Reads the clock: user code, so never call it under a lock.
    ///
    /// Saturating and monotonic: never below an earlier reading, never above `Tick::LATEST`. A
    /// user's clock costs a load, plus a compare-and-swap when its time has moved.
    pub(crate) fn now(&self) -> Tick {
        let reading = Tick::reading(self.clock.now().saturating_duration_since(self.origin));
        let Some(latest_seen) = &self.latest else {
            return reading;
        };
        let mut latest = latest_seen.load(Ordering::Relaxed);
        while reading.0 > latest {
            match latest_seen.compare_exchange_weak(
                latest,
                reading.0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return reading,
                Err(actual) => latest = actual,
            }
        }
        debug_assert!(latest <= Tick::LATEST.0, "invariant 1");
        Tick(latest)
    }
}
