//! Drives the op sequences of the model-based property test (`tests/model.rs`) from raw bytes:
//! two bytes of memo configuration, then two bytes per op (see `model_ops::decode`). Every op is
//! checked against the sequential model; a violation aborts with the run's trace.
//!
//! Seeds: `fuzz/seeds/ops/`. Run: `.ci/fuzz` (or `cargo +nightly fuzz run ops corpus/ops seeds/ops`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model_ops/mod.rs"]
mod model_ops;

fuzz_target!(|data: &[u8]| {
    // Injected panics are part of the ops; any other panic aborts (a crash for libFuzzer).
    model_ops::quiet_injected_panics(true);
    let (config, ops) = model_ops::decode(data);
    if let Err(violation) = model_ops::run(config, &ops) {
        eprintln!("model violation:\n{violation}");
        std::process::abort();
    }
});
