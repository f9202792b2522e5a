//! The kinds of call: how each starts a flight, and what it makes of the outcome.
//!
//! A call (`call.rs`) is generic over its [`Init`]: `get_or_init` and `refresh` are [`Plain`],
//! their `try_` forms [`Fallible`], `refresh_if` wraps either in [`IfCurrent`], and the task that
//! drives an automatic refresh is [`Background`]. The user's closure is a [`MakeFuture`]: one that
//! takes nothing, the flight's epoch, or the entry being refreshed.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::flight::{ErasedError, InitFuture};
use crate::measure::Measure;
use crate::{Entry, Epoch};

/// How a kind of call starts a flight and what it makes of the outcome.
pub(crate) trait Init<K, V>: Sized {
    type Output;

    /// Runs the user's closure and boxes its future, which measures the value it produces (with
    /// a copy of the key, if the weigher, `expire_after` or `refresh_after_entry` need one).
    /// `base` is the entry a `refresh_if` refreshes.
    fn start(
        self,
        epoch: Epoch,
        base: Option<Entry<V>>,
        measure: Measure<K, V>,
        key: Option<K>,
    ) -> InitFuture<V>;

    /// The output for a ready entry.
    fn hit(entry: Entry<V>) -> Self::Output;

    /// The output for a failed flight, or `None` if this call cannot receive that error.
    fn failed(error: &ErasedError) -> Option<Self::Output>;

    /// The output when the key no longer holds the entry a `refresh_if` observed.
    fn gone() -> Self::Output {
        unreachable!("only refresh_if calls want one entry")
    }
}

/// A user's `init` closure: one that takes no argument, one given its flight's epoch, or one
/// given the entry it refreshes.
pub(crate) trait MakeFuture<V> {
    type Future;
    fn make(self, epoch: Epoch, base: Option<Entry<V>>) -> Self::Future;
}

/// An `init` that takes no argument.
pub(crate) struct NoEpoch<F>(pub(crate) F);

impl<F: FnOnce() -> Fut, Fut, V> MakeFuture<V> for NoEpoch<F> {
    type Future = Fut;
    fn make(self, _: Epoch, _: Option<Entry<V>>) -> Fut {
        (self.0)()
    }
}

/// An `init` given the epoch its value will be committed under (`_with_epoch` methods).
pub(crate) struct WithEpoch<F>(pub(crate) F);

impl<F: FnOnce(Epoch) -> Fut, Fut, V> MakeFuture<V> for WithEpoch<F> {
    type Future = Fut;
    fn make(self, epoch: Epoch, _: Option<Entry<V>>) -> Fut {
        (self.0)(epoch)
    }
}

/// An `init` given the entry it refreshes (`refresh_if`).
pub(crate) struct WithEntry<F>(pub(crate) F);

impl<F: FnOnce(Entry<V>) -> Fut, Fut, V> MakeFuture<V> for WithEntry<F> {
    type Future = Fut;
    fn make(self, _: Epoch, base: Option<Entry<V>>) -> Fut {
        (self.0)(base.expect("a refresh_if flight is created with its entry"))
    }
}

/// A flight's boxed future: the user's future, its output turned into a value or an error by
/// `into`, then the value measured (weigher, `expire_after`, `refresh_after_entry`) with no
/// lock held.
fn measured<K, V, Fut>(
    future: Fut,
    into: impl FnOnce(Fut::Output) -> Result<V, ErasedError> + Send + 'static,
    measure: Measure<K, V>,
    key: Option<K>,
) -> InitFuture<V>
where
    Fut: Future + Send + 'static,
    K: Send + 'static,
    V: Send + 'static,
{
    Box::pin(async move {
        let value = into(future.await)?;
        let admission = measure.measure(key.as_ref(), &value);
        Ok((value, admission))
    })
}

/// `get_or_init`, `refresh`: an infallible init.
pub(crate) struct Plain<M>(pub(crate) M);

impl<K, V, M> Init<K, V> for Plain<M>
where
    M: MakeFuture<V>,
    M::Future: Future<Output = V> + Send + 'static,
    K: Send + 'static,
    V: Send + 'static,
{
    type Output = Entry<V>;

    fn start(
        self,
        epoch: Epoch,
        base: Option<Entry<V>>,
        measure: Measure<K, V>,
        key: Option<K>,
    ) -> InitFuture<V> {
        measured(self.0.make(epoch, base), Ok, measure, key)
    }

    fn hit(entry: Entry<V>) -> Entry<V> {
        entry
    }

    fn failed(_: &ErasedError) -> Option<Entry<V>> {
        None
    }
}

/// `get_or_try_init`, `try_refresh`: an init whose error `E` every caller expecting `E` shares
/// as one `Arc<E>`.
pub(crate) struct Fallible<M, E>(pub(crate) M, pub(crate) PhantomData<fn() -> E>);

impl<K, V, E, M> Init<K, V> for Fallible<M, E>
where
    M: MakeFuture<V>,
    M::Future: Future<Output = Result<V, E>> + Send + 'static,
    K: Send + 'static,
    V: Send + 'static,
    E: Send + Sync + 'static,
{
    type Output = Result<Entry<V>, Arc<E>>;

    fn start(
        self,
        epoch: Epoch,
        base: Option<Entry<V>>,
        measure: Measure<K, V>,
        key: Option<K>,
    ) -> InitFuture<V> {
        let erase = |result: Result<V, E>| result.map_err(|e| Arc::new(e) as ErasedError);
        measured(self.0.make(epoch, base), erase, measure, key)
    }

    fn hit(entry: Entry<V>) -> Self::Output {
        Ok(entry)
    }

    fn failed(error: &ErasedError) -> Option<Self::Output> {
        Arc::clone(error).downcast::<E>().ok().map(Err)
    }
}

/// `refresh_if`: the inner kind's output, or `None` when the observed entry is gone.
pub(crate) struct IfCurrent<I>(pub(crate) I);

impl<K, V, I: Init<K, V>> Init<K, V> for IfCurrent<I> {
    type Output = Option<I::Output>;

    fn start(
        self,
        epoch: Epoch,
        base: Option<Entry<V>>,
        measure: Measure<K, V>,
        key: Option<K>,
    ) -> InitFuture<V> {
        self.0.start(epoch, base, measure, key)
    }

    fn hit(entry: Entry<V>) -> Self::Output {
        Some(I::hit(entry))
    }

    fn failed(error: &ErasedError) -> Option<Self::Output> {
        I::failed(error).map(Some)
    }

    fn gone() -> Self::Output {
        None
    }
}

/// The task that drives an automatic refresh: it joins the flight its reader created (its
/// `init` already ran), takes any outcome, and returns nothing.
pub(crate) struct Background;

impl<K, V> Init<K, V> for Background {
    type Output = ();

    fn start(self, _: Epoch, _: Option<Entry<V>>, _: Measure<K, V>, _: Option<K>) -> InitFuture<V> {
        unreachable!("call invariant 3: a background call resumes a flight it did not start")
    }

    fn hit(_: Entry<V>) {}

    fn failed(_: &ErasedError) -> Option<()> {
        Some(())
    }
}
