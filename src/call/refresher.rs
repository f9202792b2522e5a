//! Automatic refresh (`refresh_after`): a read that finds an entry due for a refresh returns it
//! at once and starts one refresh with its own `init`, whose driving task goes to the user's
//! spawner. The crate never spawns by itself (Caffeine takes an `Executor` for the same reason).

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{Abort, Call, Key};
use crate::Epoch;
use crate::clock::Tick;
use crate::flight::Flight;
use crate::init::{Background, Init};
use crate::table::{Table, Task};

/// Starts the automatic refresh of the entry `of` of `key` with `init`, unless it is no longer
/// due at `now`, the reading at which the caller's lookup found it due (another reader started
/// it, or it left). Runs `init` here, outside every lock: a panic in it detaches the refresh,
/// fails it, and propagates to this reader.
pub(crate) fn start<K, V, S, Q, I>(
    table: &Arc<Table<K, V, S>>,
    key: &Q,
    of: Epoch,
    now: Tick,
    init: I,
) where
    K: Hash + Eq + Borrow<Q>,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    I: Init<K, V>,
{
    let Some(rule) = table.refresh_rule() else {
        debug_assert!(
            false,
            "an entry is due for a refresh only with refresh_after"
        );
        return;
    };
    let Some(flight) = table.begin_auto_refresh(key, of, now) else {
        return;
    };
    // Everything that runs user code (`init`, `Clone` of the key) runs while the guard is armed:
    // a panic there fails and detaches the refresh instead of leaving it attached, parked, with
    // a caller that no longer exists.
    let guard = Abort::arm(table, key, &flight);
    let measure = table.measure().clone();
    let owned = measure.needs_key().then(|| key.to_owned());
    let task_key = key.to_owned();
    let future = init.start(flight.epoch(), None, measure, owned);
    flight.hand_off(future);
    guard.disarm();
    // If the spawner drops the task, or panics, the task's call is dropped: as the refresh's
    // last caller it abandons the refresh, and the entry stays, as due as before (a
    // cancellation holds nothing off: the next stale read starts a new refresh).
    (rule.spawn)((rule.launch)(Arc::clone(table), task_key, flight));
}

/// The task that drives a handed-off refresh flight to its end. Instantiated by the builder,
/// where `K` and `S` are known to be `Send + Sync + 'static`.
pub(crate) fn launch<K, V, S>(table: Arc<Table<K, V, S>>, key: K, flight: Arc<Flight<V>>) -> Task
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    // Created before the task, so that a task dropped unpolled still leaves the flight.
    let pending = Pending {
        table,
        key,
        flight: Some(flight),
    };
    Box::pin(async move {
        let mut pending = pending;
        let flight = pending.flight.take().expect("a task starts once");
        let call = Call::<K, V, S, K, Background>::resume(
            &pending.table,
            Key::Borrowed(&pending.key),
            flight,
        );
        Quiet(call).await;
    })
}

/// A handed-off refresh whose task has not started: if the task is dropped unpolled (a spawner
/// that drops it, or panics), this leaves the flight as its caller would, and the refresh is
/// abandoned.
struct Pending<K, V, S>
where
    K: Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    table: Arc<Table<K, V, S>>,
    key: K,
    flight: Option<Arc<Flight<V>>>,
}

impl<K, V, S> Drop for Pending<K, V, S>
where
    K: Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            self.table.leave(&self.key, &flight, None);
        }
    }
}

/// Ends the task quietly if the refresh panics: the panic hook has reported it, the flight was
/// failed and detached (the entry stays, its next automatic refresh waits an interval), and the
/// spawner's task has nobody to propagate it to.
struct Quiet<F>(F);

impl<F: Future<Output = ()> + Unpin> Future for Quiet<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let call = &mut self.0;
        catch_unwind(AssertUnwindSafe(|| Pin::new(call).poll(cx))).unwrap_or(Poll::Ready(()))
    }
}
