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
    /// The current time. It must never go backwards.
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
/// Clones share the same time.
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
/// memo.insert("k", 1);
/// clock.advance(Duration::from_secs(9));
/// assert!(memo.get("k").is_some());
/// clock.advance(Duration::from_secs(1));
/// assert!(memo.get("k").is_none(), "expired after exactly ten seconds");
/// ```
#[derive(Clone)]
pub struct ManualClock {
    start: Instant,
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
        ManualClock {
            start: Instant::now(),
            elapsed_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock (and every clone of it) forward by `by`.
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
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(pub(crate) u64);

impl Tick {
    pub(crate) const NEVER: Tick = Tick(u64::MAX);

    pub(crate) fn after(self, d: Duration) -> Tick {
        Tick(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

/// The memo's clock and the instant its ticks count from.
pub(crate) struct Timer {
    clock: Box<dyn Clock>,
    origin: Instant,
}

impl Timer {
    pub(crate) fn new(clock: Box<dyn Clock>) -> Self {
        let origin = clock.now();
        Timer { clock, origin }
    }

    /// Reads the clock: user code, so never call it under a lock.
    pub(crate) fn now(&self) -> Tick {
        let since = self.clock.now().saturating_duration_since(self.origin);
        Tick(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1))
    }
}
