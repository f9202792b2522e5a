//! Async memoization with single-flight and compare-and-delete invalidation.
//!
//! (Front page: filled in below.)

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

mod builder;
mod call;
mod entry;
mod epoch;
mod flight;
mod memo;
mod shard;
mod table;
mod waiters;

pub use crate::builder::MemoBuilder;
pub use crate::entry::Entry;
pub use crate::epoch::Epoch;
pub use crate::memo::AsyncMemo;
