//! Time for expiry and refresh: a [`Clock`] the builder accepts, the two built-in clocks, and
//! the memo's compact ticks.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// Where a memo reads the time for expiry (`time_to_live`, `time_to_idle`, `expire_after`) and
/// automatic refresh (`refresh_after`).
///
/// The default is [`SystemClock`] (`std::time::Instant::now`), except in a memo whose only timed
/// rule is `refresh_after`, which reads the cheaper [`CoarseClock`] where that clock is monotonic.
/// Tests use a [`ManualClock`] to make expiry deterministic. The memo never sleeps or sets
/// timers: it reads the clock when an operation needs to know whether an entry has expired or
/// fallen due, and never while holding a lock.
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
    /// that trusts it). The built-in [`SystemClock`], and [`CoarseClock`] where it is monotonic
    /// (see there), never go back, so the memo does not track their readings. Readings more
    /// than `u64::MAX` nanoseconds (about 584 years) after the memo was built count as that
    /// far, and deadlines beyond it as "never".
    fn now(&self) -> Instant;
}

/// The precise clock: [`Instant::now`]. The default of every memo with a time to live, a time
/// to idle or `expire_after`, so that no entry is ever served past its deadline.
///
/// A read costs what `Instant::now` costs: about 20 ns on bare-metal Linux, 30 ns or more under
/// virtualisation (the bench report prints it for the machine it runs on).
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

/// A coarse clock: the time of the operating system's last timer tick, from the
/// [`coarsetime`](https://docs.rs/coarsetime) crate. The default of a memo whose only timed rule
/// is [`refresh_after`](crate::MemoBuilder::refresh_after), on the platforms where it is
/// monotonic (Linux, Android, macOS, FreeBSD, DragonFly, Windows).
///
/// It reads the time the kernel stored at its last tick instead of the CPU's counter, which
/// makes it cheaper where it matters: on x86 Linux, `Instant::now` reads the time-stamp
/// counter in order (`rdtscp`, or `lfence; rdtsc`), so the CPU first waits for every load in
/// flight, and a memo whose hits miss the cache loses their overlap. On the 2-vCPU VM the bench
/// report runs on, the memo's read of it (the memo takes ticks from it directly, without
/// making an `Instant`) costs 7–9 ns against 30 ns alone in a loop, and adds 35–60 ns against
/// 130–160 ns to a loop of random reads over 16 MiB (the bench report prints both for its
/// machine).
///
/// The price is resolution: one tick, which is 1 to 10 ms on Linux and Android
/// (`CLOCK_MONOTONIC_COARSE`, 4 ms in common kernels), the scheduler's tick on FreeBSD and
/// DragonFly (`CLOCK_MONOTONIC_FAST`), and on macOS the coarse `CLOCK_MONOTONIC_RAW_APPROX`
/// (which, unlike `Instant`, keeps counting while the machine sleeps). A duration measured on
/// it is off by at most one tick either way, except on Windows (`GetTickCount64`, 10 to 16 ms),
/// where coarsetime's conversion of milliseconds also reads up to about 2.4% low within each
/// second: up to about 40 ms in all. On other platforms coarsetime reads the wall clock, which
/// can step back or forward: a memo there never picks this clock by default, and treats it
/// like any user clock (it keeps the latest reading) if you pass it.
///
/// That resolution suits automatic refresh, which only decides when an entry is worth
/// recomputing (the entry stays valid and served), and does not suit a time to live that must
/// never be overrun by a few milliseconds: expiring memos default to [`SystemClock`]. Pass
/// `.clock(CoarseClock)` to make an expiring memo use it anyway, or `.clock(SystemClock)` to
/// time refreshes precisely.
///
/// Its `Instant`s are anchored to one `Instant::now` reading taken at the first use in the
/// process, then advance with the coarse clock: they are monotonic, but compare with
/// `Instant::now` only to within a few ticks (on macOS, not across a sleep). It stops instead of
/// overflowing: coarsetime keeps whole seconds in 32 bits (about 136 years of uptime), and the
/// `Instant` saturates about 584 years after the first use, as [`ManualClock`] does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_memo::{AsyncMemo, Clock, CoarseClock};
///
/// let t0 = CoarseClock.now();
/// assert!(CoarseClock.now() >= t0, "monotonic");
///
/// // An expiring memo that accepts deadlines a tick late for cheaper reads:
/// let memo: AsyncMemo<u32, u32> = AsyncMemo::builder()
///     .time_to_live(Duration::from_secs(60))
///     .clock(CoarseClock)
///     .build();
/// memo.insert(1, 1).unwrap();
/// assert_eq!(memo.get(&1).map(|e| *e.value()), Some(1));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct CoarseClock;

impl Clock for CoarseClock {
    fn now(&self) -> Instant {
        /// An `Instant`, the coarse reading taken with it, and how far past it `Instant` reaches.
        static ANCHOR: OnceLock<(Instant, coarsetime::Instant, Duration)> = OnceLock::new();
        let (instant, coarse, limit) = ANCHOR.get_or_init(|| {
            let instant = Instant::now();
            let limit = Duration::from_nanos(representable_nanos(instant));
            (
                instant,
                coarsetime::Instant::now_without_cache_update(),
                limit,
            )
        });
        let elapsed = coarsetime::Instant::now_without_cache_update() - *coarse;
        // Saturates (centuries away) instead of overflowing, as `ManualClock` does.
        *instant + Duration::from(elapsed).min(*limit)
    }
}

/// Whether coarsetime reads a monotonic clock on this platform (its `Instant::now` source:
/// `CLOCK_MONOTONIC_COARSE`, `CLOCK_MONOTONIC_RAW_APPROX`, `CLOCK_MONOTONIC_FAST`,
/// `GetTickCount64`). On other Unix systems it reads `gettimeofday`, the wall clock, and on
/// WASI it may fall back to the wall clock: there the memo neither picks [`CoarseClock`] by
/// default nor trusts it to be monotonic.
pub(crate) const COARSE_IS_MONOTONIC: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "dragonfly",
    windows
));

/// Nanoseconds on the coarse clock since `origin` (0 if the reading is earlier).
#[inline]
fn coarse_nanos_since(origin: coarsetime::Instant) -> u64 {
    // coarsetime's `Instant - Instant` saturates at zero; `as_nanos` cannot overflow.
    (coarsetime::Instant::now_without_cache_update() - origin).as_nanos()
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

/// The clock a builder was given: the built-in clocks are recognised, so that the memo reads them
/// without a virtual call or the guard against clocks that go backwards.
pub(crate) enum ClockChoice {
    System,
    Coarse,
    User(Box<dyn Clock>),
}

impl ClockChoice {
    pub(crate) fn of<C: Clock>(clock: C) -> Self {
        let any: &dyn Any = &clock;
        if any.is::<SystemClock>() {
            ClockChoice::System
        } else if COARSE_IS_MONOTONIC && any.is::<CoarseClock>() {
            ClockChoice::Coarse
        } else {
            // Elsewhere `CoarseClock` reads the wall clock, which can step back: guard it.
            ClockChoice::User(Box::new(clock))
        }
    }
}

impl fmt::Debug for ClockChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockChoice::System => "SystemClock",
            ClockChoice::Coarse => "CoarseClock",
            ClockChoice::User(_) => "user clock",
        })
    }
}

/// Where a [`Timer`] reads, and the point its ticks count from.
enum Source {
    System {
        origin: Instant,
    },
    Coarse {
        origin: coarsetime::Instant,
    },
    User {
        clock: Box<dyn Clock>,
        origin: Instant,
        /// The latest reading handed out: readings never go below it, so the memo's time is
        /// monotonic whatever the clock does (moka #52, #472).
        latest: AtomicU64,
    },
}

/// The memo's clock, read as ticks since the memo was built.
pub(crate) struct Timer {
    source: Source,
}

impl Timer {
    /// A timer on the clock the builder was given or, if none, the default: [`CoarseClock`]
    /// when the memo's only timed rule is refresh (`refresh_only`) and the coarse clock is
    /// monotonic on this platform, else [`SystemClock`].
    pub(crate) fn new(clock: Option<ClockChoice>, refresh_only: bool) -> Self {
        let choice = clock.unwrap_or(if refresh_only && COARSE_IS_MONOTONIC {
            ClockChoice::Coarse
        } else {
            ClockChoice::System
        });
        let source = match choice {
            ClockChoice::System => Source::System {
                origin: Instant::now(),
            },
            ClockChoice::Coarse => Source::Coarse {
                origin: coarsetime::Instant::now_without_cache_update(),
            },
            ClockChoice::User(clock) => Source::User {
                origin: clock.now(),
                clock,
                latest: AtomicU64::new(0),
            },
        };
        Timer { source }
    }

    /// Which clock the timer reads (for tests of the default).
    #[cfg(test)]
    pub(crate) fn kind(&self) -> &'static str {
        match self.source {
            Source::System { .. } => "system",
            Source::Coarse { .. } => "coarse",
            Source::User { .. } => "user",
        }
    }

    /// Reads the clock: user code, so never call it under a lock.
    ///
    /// Saturating and monotonic: never below an earlier reading, never above `Tick::LATEST`. The
    /// built-in clocks are monotonic already; a user's clock costs a load, plus a
    /// compare-and-swap when its time has moved.
    #[inline]
    pub(crate) fn now(&self) -> Tick {
        let (clock, origin, latest_seen) = match &self.source {
            Source::System { origin } => {
                return Tick::reading(Instant::now().saturating_duration_since(*origin));
            }
            Source::Coarse { origin } => {
                return Tick(coarse_nanos_since(*origin).min(Tick::LATEST.0));
            }
            Source::User {
                clock,
                origin,
                latest,
            } => (clock, origin, latest),
        };
        let reading = Tick::reading(clock.now().saturating_duration_since(*origin));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(clock: Option<ClockChoice>, refresh_only: bool) -> &'static str {
        Timer::new(clock, refresh_only).kind()
    }

    #[test]
    fn the_default_clock_is_coarse_only_when_refresh_is_the_only_timed_rule() {
        let coarse = if COARSE_IS_MONOTONIC {
            "coarse"
        } else {
            "system"
        };
        assert_eq!(kind(None, true), coarse);
        assert_eq!(kind(None, false), "system");
    }

    #[test]
    fn the_built_in_clocks_are_recognised_and_a_user_clock_is_guarded() {
        for refresh_only in [false, true] {
            let of = |c| kind(Some(c), refresh_only);
            assert_eq!(of(ClockChoice::of(SystemClock)), "system");
            let coarse = if COARSE_IS_MONOTONIC {
                "coarse"
            } else {
                "user"
            };
            assert_eq!(of(ClockChoice::of(CoarseClock)), coarse);
            assert_eq!(of(ClockChoice::of(ManualClock::new())), "user");
        }
    }

    #[test]
    fn coarse_readings_never_go_back_and_start_near_zero() {
        let timer = Timer::new(Some(ClockChoice::Coarse), true);
        let mut last = timer.now();
        // One tick is at most about 16 ms on every platform coarsetime supports; an hour is
        // far beyond any scheduling delay of this test.
        assert!(last.0 < Duration::from_secs(3600).as_nanos() as u64);
        for _ in 0..10_000 {
            let now = timer.now();
            assert!(now >= last, "coarse time went back: {now:?} < {last:?}");
            last = now;
        }
    }
}
