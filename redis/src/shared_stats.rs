//! Counters of the shared tier, and the snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What the [shared tier](crate::SharedTier) did in this process, from
/// [`NearMemo::shared_stats`](crate::NearMemo::shared_stats). Each counter counts local
/// flights (one per key and process at a time), not callers.
///
/// # Examples
///
/// ```
/// let stats = async_memo_redis::SharedStats::default();
/// assert_eq!(stats.source_loads, 0);
/// assert_eq!(stats.wait_latency.quantile(0.99), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedStats {
    /// Local misses answered by a value another process had stored: no source load.
    pub shared_hits: u64,
    /// Runs of the loader: with a lease, or without one (Redis unreachable, a value that did
    /// not decode, a wait that timed out).
    pub source_loads: u64,
    /// Leases granted to this process.
    pub leases_granted: u64,
    /// Leases granted to this process after it had found the key's lease held: its holder
    /// died, failed, gave it back or was revoked.
    pub takeovers: u64,
    /// Values this process stored in Redis.
    pub stored: u64,
    /// Stores refused because the lease was revoked (an invalidation, an invalidate-all, a
    /// server restart or the lease's expiry came first): the stale sets that did not happen.
    pub refused_sets: u64,
    /// Flights that found the key's lease held and waited for its holder.
    pub waits: u64,
    /// Waits that reached [`SharedTier::max_wait`](crate::SharedTier::max_wait).
    pub wait_timeouts: u64,
    /// Shared values that did not decode: treated as misses.
    pub decode_failures: u64,
    /// Values loaded under a lease that were not stored: too large
    /// ([`SharedTier::max_value_bytes`](crate::SharedTier::max_value_bytes)) or not
    /// encodable.
    pub not_shared: u64,
    /// Flights that could not reach Redis: they went straight to the source (no lease,
    /// nothing stored), or, holding the lease, could not tell whether their store happened
    /// (then the value went to their callers only, committed nowhere).
    pub unreachable: u64,
    /// How long the flights that waited waited, until the value arrived, they took the lease
    /// over, or they timed out.
    pub wait_latency: WaitLatency,
}

/// A histogram of wait times: microsecond buckets, exact below 16 µs and within 12.5% above
/// (eight buckets for each power of two), up to about 12 days.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use async_memo_redis::WaitLatency;
///
/// let mut waits = WaitLatency::default();
/// for ms in 1..=100 {
///     waits.record(Duration::from_millis(ms));
/// }
/// let p50 = waits.quantile(0.5).unwrap();
/// assert!(p50 >= Duration::from_millis(50) && p50 <= Duration::from_micros(56_250));
/// assert_eq!(waits.count(), 100);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WaitLatency {
    counts: Vec<u64>,
}

const EXACT: usize = 16;
const SUB: usize = 8;
const BUCKETS: usize = EXACT + (40 - 4) * SUB;

fn bucket(us: u64) -> usize {
    if us < EXACT as u64 {
        return us as usize;
    }
    let exponent = 63 - us.leading_zeros() as usize; // ≥ 4
    let sub = ((us >> (exponent - 3)) & (SUB as u64 - 1)) as usize;
    (EXACT + (exponent - 4) * SUB + sub).min(BUCKETS - 1)
}

/// The largest microsecond value of bucket `i`.
fn upper(i: usize) -> u64 {
    if i < EXACT {
        return i as u64;
    }
    let exponent = (i - EXACT) / SUB + 4;
    let sub = ((i - EXACT) % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exponent - 3)) - 1
}

impl Default for WaitLatency {
    fn default() -> Self {
        WaitLatency {
            counts: vec![0; BUCKETS],
        }
    }
}

impl std::fmt::Debug for WaitLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitLatency")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

impl WaitLatency {
    /// Adds one wait.
    ///
    /// ```
    /// let mut waits = async_memo_redis::WaitLatency::default();
    /// waits.record(std::time::Duration::from_millis(3));
    /// assert_eq!(waits.count(), 1);
    /// ```
    pub fn record(&mut self, wait: Duration) {
        self.counts[bucket(micros(wait))] += 1;
    }

    /// How many waits it holds.
    ///
    /// ```
    /// assert_eq!(async_memo_redis::WaitLatency::default().count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The wait at quantile `q` (0.5: the median; clamped to 0..=1), as the upper bound of its
    /// bucket; `None` when empty.
    ///
    /// ```
    /// let mut waits = async_memo_redis::WaitLatency::default();
    /// waits.record(std::time::Duration::from_micros(7));
    /// assert_eq!(waits.quantile(1.0), Some(std::time::Duration::from_micros(7)));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(upper(i)));
            }
        }
        None
    }

    /// Adds another histogram's waits (from another process, say).
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut a = async_memo_redis::WaitLatency::default();
    /// let mut b = async_memo_redis::WaitLatency::default();
    /// a.record(Duration::from_millis(1));
    /// b.record(Duration::from_millis(2));
    /// a.merge(&b);
    /// assert_eq!(a.count(), 2);
    /// ```
    pub fn merge(&mut self, other: &WaitLatency) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    /// The bucket counts, to send to another process; [`from_counts`](Self::from_counts)
    /// takes them back.
    ///
    /// ```
    /// let mut waits = async_memo_redis::WaitLatency::default();
    /// waits.record(std::time::Duration::from_millis(3));
    /// let copy = async_memo_redis::WaitLatency::from_counts(waits.counts());
    /// assert_eq!(copy, waits);
    /// ```
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// A histogram from bucket counts; extra counts are ignored, missing ones are zero.
    ///
    /// ```
    /// let waits = async_memo_redis::WaitLatency::from_counts(&[0, 2]);
    /// assert_eq!(waits.quantile(0.5), Some(std::time::Duration::from_micros(1)));
    /// ```
    pub fn from_counts(counts: &[u64]) -> WaitLatency {
        let mut histogram = WaitLatency::default();
        for (mine, &theirs) in histogram.counts.iter_mut().zip(counts) {
            *mine = theirs;
        }
        histogram
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    pub(crate) shared_hits: AtomicU64,
    pub(crate) source_loads: AtomicU64,
    pub(crate) leases_granted: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) refused_sets: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) wait_timeouts: AtomicU64,
    pub(crate) decode_failures: AtomicU64,
    pub(crate) not_shared: AtomicU64,
    pub(crate) unreachable: AtomicU64,
    wait_latency: std::sync::Mutex<WaitLatency>,
}

impl SharedCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn waited(&self, wait: Duration) {
        self.latency().record(wait);
    }

    fn latency(&self) -> std::sync::MutexGuard<'_, WaitLatency> {
        self.wait_latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self) -> SharedStats {
        SharedStats {
            shared_hits: self.shared_hits.load(Relaxed),
            source_loads: self.source_loads.load(Relaxed),
            leases_granted: self.leases_granted.load(Relaxed),
            takeovers: self.takeovers.load(Relaxed),
            stored: self.stored.load(Relaxed),
            refused_sets: self.refused_sets.load(Relaxed),
            waits: self.waits.load(Relaxed),
            wait_timeouts: self.wait_timeouts.load(Relaxed),
            decode_failures: self.decode_failures.load(Relaxed),
            not_shared: self.not_shared.load(Relaxed),
            unreachable: self.unreachable.load(Relaxed),
            wait_latency: self.latency().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_holds_what_it_claims() {
        for us in (0..100_000).chain([u64::MAX / 2, u64::MAX]) {
            let i = bucket(us);
            assert!(i < BUCKETS);
            if i < BUCKETS - 1 {
                assert!(
                    upper(i) >= us,
                    "{us} in bucket {i} whose upper bound is {}",
                    upper(i)
                );
                assert!(
                    i == 0 || upper(i - 1) < us,
                    "{us} belongs to a lower bucket than {i}"
                );
            }
        }
    }

    #[test]
    fn buckets_are_within_an_eighth_of_their_values() {
        for us in [16, 17, 100, 1_000, 123_456, 10_000_000] {
            let up = upper(bucket(us));
            assert!(up as f64 <= us as f64 * 1.125, "{us} -> {up}");
        }
    }

    #[test]
    fn absurd_waits_land_in_the_last_bucket() {
        let mut waits = WaitLatency::default();
        waits.record(Duration::MAX);
        assert_eq!(waits.count(), 1);
        assert!(waits.quantile(0.5).is_some());
    }
}
