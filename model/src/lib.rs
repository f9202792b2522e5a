//! Model checking of `async-memo`; the models are the tests under `tests/`:
//!
//! - `tests/loom.rs` (`RUSTFLAGS="--cfg loom"`): every interleaving of the flight protocol for two
//!   or three callers and one `invalidate`, `remove` or `insert`, up to `LOOM_MAX_PREEMPTIONS`.
//! - `tests/shuttle.rs` (`RUSTFLAGS="--cfg shuttle"`): randomized and PCT schedules over broader
//!   async scenarios (several keys, eviction, expiry, re-entrant listeners).
//!
//! In a plain build both are empty. Run them with `.ci/models` (gate) or `.ci/extended`.
#![forbid(unsafe_code)]
