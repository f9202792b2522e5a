//! The op interpreter behind the model-based property test (`tests/model.rs`) and the cargo-fuzz
//! target (`fuzz/fuzz_targets/ops.rs`, which includes this file by `#[path]`).
//!
//! A sequence of [`Op`]s runs against a real [`AsyncMemo`] and, step by step, against a plain
//! sequential model of the contract (the crate docs, "Semantics"): a map from key to
//! `Ready { epoch, value, deadline, refresh }` or `Flight`, and a list of flights with their
//! callers. A refresh is a flight attached to the ready entry it refreshes (`refresh`), which
//! commits only onto that entry: whatever takes the entry out of its slot (invalidate, remove,
//! insert, replace, invalidate_all, expiry, eviction) detaches it, readers keep the entry while it
//! runs, and an error or panic leaves the entry. With `refresh_after`, a `get_or_init`-family
//! read of an entry due for a refresh (a time per entry, set at its commit) returns it and
//! starts one refresh with its own init, unless one is in flight; either way the entry's next
//! automatic attempt moves `after` on, and the refresh in flight remembers from when. A failed
//! automatic refresh holds the next one off (an interval from an error; a panic keeps the
//! retry its start set); a refresh that was manual, or cancelled (its last caller dropped), or
//! detached by its epoch puts the remembered due tick back instead (semantics 20: Caffeine
//! #498, Guava #3851). A refresh belongs to its starter, whoever joins it. The spawner queues
//! the task; the interpreter adds it to the live calls, as the refresh's creator whose output
//! is `()`. Every `get_or_init`, `refresh` (and `try_` form) call is a future polled by hand,
//! on this thread, with a waker that counts its wake-ups, so a run is deterministic. After
//! every op the interpreter checks:
//!
//! * every result (hit, joined value, shared error, panic, pending) is the model's;
//! * the spawner received exactly the tasks of the automatic refreshes the model started;
//! * every init that ran is one the model expected (single-flight), with an epoch above every
//!   epoch seen before;
//! * every removal reported to the listener is one the model expected (cause, key, epoch, value),
//!   once; expired entries may be reported by any op, evictions only by ops that store an entry,
//!   only when the memo was full, and only of a ready entry (never a flight, never a newer one);
//! * `len()` equals the model's ready entries (expired ones count until reported), and never
//!   exceeds the capacity; `refreshing(k)` of every key is the model's refresh in flight;
//! * the live init futures are exactly the model's running flights (nothing leaks, nothing is
//!   dropped early), and `stats()` matches the model's counters;
//! * no lost wake-up: a pending call whose flight finished, or whose init future's gate opened,
//!   has been woken since its last poll.
//!
//! At the end every call is dropped and `invalidate_all` runs: then no value and no future may be
//! left alive. What the contract leaves open (which entry S3-FIFO evicts) is only checked for
//! what is guaranteed.

#![allow(dead_code)]

// One job per file. Bottom-up (each file imports only from those above it): `op` (the ops and
// their decoding), `real` (values, init futures, wakers), `model` (the model's state, with its
// flights and calls in `flights` and automatic refresh in `auto_refresh`), `check` (the checks
// after every op), `invalidate_if` (that op's replay), `quiet` (`peek` and `entry_info`, checked
// against the model without changing it), `apply` (one op, one poll), `runner` (a run).
mod apply;
mod auto_refresh;
mod check;
mod flights;
mod invalidate_if;
mod model;
mod op;
mod quiet;
mod real;
mod runner;

pub use op::decode;
// The op types are for `tests/model.rs`'s strategies; the fuzz target only decodes bytes.
#[allow(unused_imports)]
pub use op::{Config, Init, KEYS, Kind, Op, Outcome, Pred};
pub use real::quiet_injected_panics;
pub use runner::run;
