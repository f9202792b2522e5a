//! The reader task: turns log records into memo calls, and keeps reading across failures.
//!
//! Invariants:
//!
//! 1. The cursor moves only past records that were applied, or past a gap after the memo was
//!    invalidated: nothing before the cursor is unapplied.
//! 2. A key record is applied with `AsyncMemo::remove`, which also detaches the key's flight,
//!    so a load that started before the record was applied never commits.
//! 3. The link counts as `Connected` again only after the read that ended an outage was
//!    applied (records, or a reset for its gap): a `Bypass` never ends before the memo is
//!    current.
//! 4. The reader holds no lock; the memo calls it makes take and release their own.
//! 5. The reader never dies of a panic in user code (codec, listener): the record is replaced
//!    by a reset of the whole memo, and reading goes on.
//! 6. For each record or reset: the memo call, then the listener, then the counters. A counter
//!    that reached `n` (what tests and users wait on) implies that the memo and the listener
//!    have seen the `n`-th event. `gaps` moves before `resets`; the link moves after both.
//! 7. The shared tier's waiters of a key are woken after the memo call for every record that
//!    may end their wait: a wake record (a store or release while they waited, from any
//!    origin), an invalidation of the key (its lease was deleted), and every reset.

use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_memo::AsyncMemo;

use crate::stats::Counters;
use crate::tier::Tier;
use crate::{
    Cursor, GapCause, Invalidation, KeyCodec, Link, LogId, Read, Record, Transport,
    WhenDisconnected,
};

/// What the reader applied, as the [`on_apply`](crate::NearMemoBuilder::on_apply) listener
/// sees it.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Applied, Reset};
///
/// let event: Applied<'_, String> = Applied::All { reason: Reset::Disconnected, id: None };
/// assert!(matches!(event, Applied::All { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Applied<'a, K> {
    /// Another process invalidated `key`; its entry was removed and its flight detached.
    Key {
        /// The key.
        key: &'a K,
        /// The record's id.
        id: LogId,
        /// Publisher's clock to ours, if the record carried its publish time.
        lag: Option<Duration>,
    },
    /// The whole memo was invalidated.
    All {
        /// Why.
        reason: Reset,
        /// The record's id, when a record asked for it.
        id: Option<LogId>,
    },
}

/// Why the whole memo was invalidated.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{GapCause, Reset};
///
/// assert_ne!(Reset::Gap(GapCause::Trimmed), Reset::Published);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reset {
    /// Another process published "invalidate all".
    Published,
    /// A record carried a key the codec could not decode.
    Undecodable,
    /// The log could not prove that nothing was missed.
    Gap(GapCause),
    /// The log stayed unreadable longer than the [`WhenDisconnected`] bound.
    Disconnected,
}

pub(crate) type Listener<K> = Box<dyn Fn(&Applied<'_, K>) + Send + Sync>;

/// What the handle and the reader task share.
pub(crate) struct Shared<K, V, C, S> {
    pub(crate) memo: AsyncMemo<K, V, S>,
    pub(crate) codec: C,
    pub(crate) origin: u64,
    pub(crate) counters: Counters,
    pub(crate) listener: Option<Listener<K>>,
    pub(crate) tier: Option<Arc<Tier<V>>>,
}

impl<K, V, C, S> Shared<K, V, C, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    C: KeyCodec<K>,
    S: BuildHasher + Clone,
{
    fn apply(&self, record: Record) {
        if let Invalidation::Wake(bytes) = &record.body.invalidation {
            // Invariant 7; not an invalidation, whoever published it.
            if let Some(tier) = &self.tier {
                tier.waiters.wake(bytes);
            }
            return;
        }
        if record.body.origin == self.origin {
            // Applied locally before it was published (invariant 1 holds: nothing to do).
            Counters::bump(&self.counters.own);
            return;
        }
        let lag = lag_since(record.body.published_us);
        match record.body.invalidation {
            Invalidation::Key(bytes) => match self.codec.decode(&bytes) {
                Some(key) => {
                    let removed = self.memo.remove(&key);
                    drop(removed);
                    if let Some(tier) = &self.tier {
                        tier.waiters.wake(&bytes);
                    }
                    self.notify(&Applied::Key {
                        key: &key,
                        id: record.id,
                        lag,
                    });
                }
                None => self.reset(Reset::Undecodable, Some(record.id)),
            },
            Invalidation::All | Invalidation::Wake(_) => {
                self.reset(Reset::Published, Some(record.id));
            }
        }
        // Invariant 6: counters last.
        if let Some(lag) = lag {
            self.counters.apply_lag(lag);
        }
        Counters::bump(&self.counters.applied);
    }

    /// Applies `record`; if the codec panics, invalidates everything instead: a dead reader
    /// task would leave the memo stale forever, and the key was not removed.
    fn apply_or_reset(&self, record: Record) {
        if catch_unwind(AssertUnwindSafe(|| self.apply(record))).is_err() {
            self.reset(Reset::Undecodable, None);
        }
    }

    pub(crate) fn reset(&self, reason: Reset, id: Option<LogId>) {
        self.memo.invalidate_all();
        if let Some(tier) = &self.tier {
            tier.waiters.wake_all();
        }
        self.notify(&Applied::All { reason, id });
        // Invariant 6: counters last.
        if let Reset::Gap(_) = reason {
            Counters::bump(&self.counters.gaps);
        }
        Counters::bump(&self.counters.resets);
    }

    /// Calls the listener, after the memo call. A panic in it is caught and ignored: the memo
    /// is already up to date, and the reader must go on (invariant 5).
    fn notify(&self, event: &Applied<'_, K>) {
        if let Some(listener) = &self.listener {
            let _ = catch_unwind(AssertUnwindSafe(|| listener(event)));
        }
    }
}

/// Microseconds since the Unix epoch on this machine's clock (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The time since `published_us` (0: unknown). A publisher's clock ahead of ours gives zero.
fn lag_since(published_us: u64) -> Option<Duration> {
    (published_us != 0).then(|| Duration::from_micros(now_us().saturating_sub(published_us)))
}

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How the reader reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReaderConfig {
    pub(crate) batch: usize,
    pub(crate) when_disconnected: WhenDisconnected,
}

/// The reader task's body: runs until the task is aborted (when the last handle is dropped).
pub(crate) async fn run<K, V, C, S, T>(
    shared: Arc<Shared<K, V, C, S>>,
    log: Arc<T>,
    mut cursor: Cursor,
    config: ReaderConfig,
) where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    C: KeyCodec<K>,
    S: BuildHasher + Clone,
    T: Transport,
{
    let mut last_read = Instant::now();
    let mut last_reset: Option<Instant> = None;
    let mut backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        match log.read(&cursor, config.batch).await {
            Ok(read) => {
                match read {
                    Read::Records {
                        records,
                        cursor: next,
                        behind,
                    } => {
                        for record in records {
                            debug_assert!(record.id > cursor.id(), "records come after the cursor");
                            shared.apply_or_reset(record);
                        }
                        cursor = next;
                        shared
                            .counters
                            .lag
                            .store(behind, std::sync::atomic::Ordering::Relaxed);
                    }
                    Read::Gap {
                        cause,
                        cursor: next,
                    } => {
                        shared.reset(Reset::Gap(cause), None);
                        cursor = next;
                        shared
                            .counters
                            .lag
                            .store(0, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                // Invariant 3: only now, with the read applied.
                if failing {
                    failing = false;
                    Counters::bump(&shared.counters.reconnects);
                }
                shared.counters.set_link(Link::Connected);
                last_read = Instant::now();
                last_reset = None;
                backoff = MIN_BACKOFF;
            }
            Err(_) => {
                failing = true;
                let mut wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match config.when_disconnected.after() {
                    None => shared.counters.set_link(Link::Disconnected),
                    Some(after) => {
                        let since = last_reset.unwrap_or(last_read);
                        let due = since.elapsed() >= after;
                        let bypass =
                            matches!(config.when_disconnected, WhenDisconnected::Bypass { .. });
                        // The link first, then the clear: a caller that sees `Bypassing` stores
                        // nothing, so nothing can be stored after the clear and survive it.
                        let link = if bypass && (due || last_reset.is_some()) {
                            Link::Bypassing
                        } else {
                            Link::Disconnected
                        };
                        shared.counters.set_link(link);
                        if due {
                            shared.reset(Reset::Disconnected, None);
                            last_reset = Some(Instant::now());
                        }
                        // Wake up in time for the next reset.
                        let since = last_reset.unwrap_or(last_read);
                        wait = wait
                            .min(after.saturating_sub(since.elapsed()))
                            .max(Duration::from_millis(1));
                    }
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}
