//! Optional `tracing` events (feature `tracing`, off by default; without it the macro expands
//! to nothing and its arguments are never evaluated). Target `async_memo`, level `DEBUG`.
//!
//! Events carry epochs and causes, not keys: `K` is not required to be `Debug`. An epoch names
//! one flight or entry process-wide, and every [`Entry`](crate::Entry) a caller holds carries
//! its epoch, so a caller that logs its own keys with the epochs it observed can join the two.

#[cfg(feature = "tracing")]
macro_rules! event {
    ($($arg:tt)+) => {
        ::tracing::debug!(target: "async_memo", $($arg)+)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($($arg:tt)+) => {};
}

pub(crate) use event;
