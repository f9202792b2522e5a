//! The criterion settings shared by `benches/*.rs` (included with `#[path]`, like
//! `examples/support/*.rs`).

use std::time::Duration;

use criterion::Criterion;

/// Every bench group: half a second of warm-up, then two seconds of measurement.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}
