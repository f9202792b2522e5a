//! Support for the code `#[memoize]` generates: not public API, no stability promise.
//!
//! The helpers' names are what a user reads in a compile error, so each says the rule it checks.

use std::future::Future;
use std::sync::Arc;

pub use std::sync::OnceLock;

/// The `Ok` and `Err` types of a return type spelled through an alias (`io::Result<T>`), or of
/// any return type with `result = true`.
#[diagnostic::on_unimplemented(
    message = "`#[memoize]` took `{Self}` for a `Result` (its last path segment is `Result`, or \
               `result = true` is given), but it is not a `std::result::Result`",
    label = "not a `Result`",
    note = "write `#[memoize(result = false)]` to store this type as it is"
)]
pub trait Fallible {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
}

impl<T, E> Fallible for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// Checks that a return type `#[memoize]` took for a `Result` is one, with the message of
/// [`Fallible`] rather than a type mismatch further on.
pub fn memoized_return_must_be_a_result<R: Fallible>() {}

/// Checks that the body, with its arguments moved in, is a future the memo can run as a flight:
/// any caller may drive it, on any thread, after the caller that started it is gone.
pub fn memoized_body_must_be_send_and_static<F>(body: F) -> F
where
    F: Future + Send + 'static,
{
    body
}

/// Gives one caller of a failed flight its error: the flight's callers share one `Arc<E>`, and
/// each is owed an `E`. The last one takes it without a clone.
pub fn memoized_error_must_be_clone<E: Clone>(shared: Arc<E>) -> E {
    Arc::try_unwrap(shared).unwrap_or_else(|shared| E::clone(&shared))
}

/// The receiver of a memoized `&self` method, cloned into the body's `'static` future.
pub fn memoized_ref_self_must_be_clone<T: Clone>(receiver: &T) -> T {
    receiver.clone()
}
