//! Measuring a value on its way into the memo: its weight, its own time to live and its own
//! refresh interval, from the user's functions (weigher, `expire_after`, `refresh_after_entry`).
//!
//! A flight's future measures the value it produced, with no lock held, right after the init
//! future returns, and carries the [`Admission`] to the commit. This module sits below the
//! flight and the table, which both use it.

use std::sync::Arc;
use std::time::Duration;

/// The user's weigher (`weigher`): the weight of an entry.
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
/// A per-entry time to live (`expire_after`).
pub(crate) type ExpireAfter<K, V> = Arc<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;
/// A per-entry refresh interval (`refresh_after_entry`); same shape as `expire_after`.
pub(crate) type RefreshAfter<K, V> = ExpireAfter<K, V>;

/// What a committed value needs measured, computed outside every lock by the flight's future
/// (it has the key) right after the value is produced.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Admission {
    pub(crate) weight: u32,
    pub(crate) expire_after: Option<Duration>,
    pub(crate) refresh_after: Option<Duration>,
}

/// The user functions that measure a new entry; cheap to clone into a flight's future.
pub(crate) struct Measure<K, V> {
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) refresh_after: Option<RefreshAfter<K, V>>,
}

impl<K, V> Clone for Measure<K, V> {
    fn clone(&self) -> Self {
        Measure {
            weigher: self.weigher.clone(),
            expire_after: self.expire_after.clone(),
            refresh_after: self.refresh_after.clone(),
        }
    }
}

impl<K, V> Measure<K, V> {
    /// Whether measuring needs the key (then a flight keeps a copy of it).
    pub(crate) fn needs_key(&self) -> bool {
        self.weigher.is_some() || self.expire_after.is_some() || self.refresh_after.is_some()
    }

    /// Runs the user's weigher and `expire_after`. User code: call without a lock.
    pub(crate) fn measure(&self, key: Option<&K>, value: &V) -> Admission {
        let Some(key) = key else {
            return Admission {
                weight: 1,
                expire_after: None,
                refresh_after: None,
            };
        };
        Admission {
            weight: self.weigher.as_ref().map_or(1, |w| w(key, value)),
            expire_after: self.expire_after.as_ref().and_then(|f| f(key, value)),
            refresh_after: self.refresh_after.as_ref().and_then(|f| f(key, value)),
        }
    }
}
