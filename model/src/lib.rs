//! Model checking of `async-memo`; the models are the tests under `tests/`:
//!
//! - `tests/loom.rs` (`RUSTFLAGS="--cfg loom"`): every interleaving of the flight protocol for two
//!   or three callers and one `invalidate`, `remove` or `insert`, and of a refresh against the
//!   invalidation of its entry or of itself, an `insert`, an eviction, and a dropped co-refresher,
//!   up to `LOOM_MAX_PREEMPTIONS`.
//! - `tests/shuttle.rs` (`RUSTFLAGS="--cfg shuttle"`): randomized and PCT schedules over broader
//!   async scenarios (several keys, eviction, expiry, re-entrant listeners, refreshes racing
//!   invalidations, inserts, eviction and expiry, automatic refreshes on spawned tasks).
//!
//! In a plain build both are empty. Run them with `.ci/models` (gate) or `.ci/extended`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `future` once with a waker that does nothing, then drops it: a caller cancelled after
/// its first poll. Shared by the loom and shuttle models.
pub fn poll_once_and_drop<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}
