//! The table's side of refresh and replace: the automatic refresh rule, the compare-and-swap,
//! and the refresh lookups (the slot transitions are in `shard/refresh.rs`).

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{PURGE_BUDGET, Table};
use crate::clock::Tick;
use crate::flight::Flight;
use crate::removal::Removals;
use crate::{Entry, Epoch};

/// A task for the user's spawner: an automatic refresh, driven by the task that runs it.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The user's spawner (`refresh_after`): the crate never spawns by itself.
pub(crate) type Spawner = Arc<dyn Fn(Task) + Send + Sync>;

/// Makes the task that drives an automatic refresh flight to its end. A function pointer
/// instantiated where the builder could require `Send + Sync + 'static` of `K` and `S`, so the
/// table can launch tasks without those bounds on every method.
pub(crate) type Launch<K, V, S> = fn(Arc<Table<K, V, S>>, K, Arc<Flight<V>>) -> Task;

/// Automatic refresh: when a read finds an entry older than its interval, one refresh is started
/// with that reader's `init` and handed to `spawn`.
pub(crate) struct RefreshRule<K, V, S> {
    /// The interval after a commit (and after a failed refresh) before the next automatic one.
    pub(crate) after: Duration,
    pub(crate) spawn: Spawner,
    pub(crate) launch: Launch<K, V, S>,
}

impl<K, V, S> Table<K, V, S> {
    pub(crate) fn refresh_rule(&self) -> Option<&RefreshRule<K, V, S>> {
        self.refresh.as_ref()
    }

    /// When an entry whose automatic refresh fails (or starts) at `now` is tried again.
    pub(super) fn retry_at(&self, now: Tick) -> Tick {
        self.refresh
            .as_ref()
            .map_or(Tick::NEVER, |r| now.after(r.after))
    }
}

impl<K, V, S> Table<K, V, S>
where
    K: Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// Compare-and-swap (`replace`): stores `value` under a fresh epoch only if `key` holds
    /// `observed`. Returns the new epoch, or the epoch the key holds now.
    pub(crate) fn replace(
        &self,
        key: K,
        observed: Epoch,
        value: V,
    ) -> Result<Epoch, Option<Epoch>> {
        let admission = self.measure.measure(Some(&key), &value);
        if self.refused(admission.weight) {
            // Refused: a swap must change nothing when it does not store (semantics 19).
            return Err(self.epoch(&key));
        }
        let at = self.moment();
        let hash = self.hash(&key);
        let mut out = Removals::new();
        let (result, handed_back) = self.store(hash, admission.weight, &mut out, |map, out| {
            // Drawn under the write lock, so a key's successive slots have rising epochs (one
            // is spent when the swap fails: epochs only need to be unique and rising).
            let epoch = Epoch::next();
            let arrival = self.arrival(Entry::new(value, epoch), admission, at);
            let result = map.replace(hash, key, observed, arrival, at, out);
            map.purge(at, PURGE_BUDGET, out);
            match result {
                Ok(detached) => (Ok(epoch), Ok(detached)),
                Err((current, key, arrival)) => (Err(current), Err((key, arrival))),
            }
        });
        // The flight a swap detached, or what it did not store: dropped with no lock held.
        drop(handed_back);
        self.report(out);
        result
    }

    /// The epoch of the refresh in flight for `key` (`refreshing`).
    pub(crate) fn refreshing<Q>(&self, key: &Q) -> Option<Epoch>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.moment();
        let hash = self.hash(key);
        self.shard(hash).map.read().refreshing(hash, key, at)
    }

    /// Starts the automatic refresh of the entry `of` of `key`, if it is due at `now` and nobody
    /// else started it; see `ShardMap::begin_auto_refresh`. `now` is the reading the caller's
    /// lookup found the entry due at: the call reads the clock once (issue 19), and a refresh
    /// that starts a few microseconds after that reading retries an interval from it.
    pub(crate) fn begin_auto_refresh<Q>(
        &self,
        key: &Q,
        of: Epoch,
        now: Tick,
    ) -> Option<Arc<Flight<V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.moment_at(now);
        let retry = self.retry_at(at.now);
        let hash = self.hash(key);
        let flight = self
            .shard(hash)
            .map
            .write()
            .begin_auto_refresh(hash, key, of, at, retry)?;
        self.started(&flight);
        Some(flight)
    }
}
