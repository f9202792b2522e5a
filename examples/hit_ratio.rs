//! Hit ratio of a bounded `AsyncMemo` against moka, on the same traces and capacities.
//!
//! `cargo run --release --example hit_ratio`. Each access is "get, and on a miss insert": the
//! memo's everyday pattern. Capacities are 1% and 10% of the key space.

#[path = "support/traces.rs"]
mod traces;

use async_memo::AsyncMemo;

const KEY_SPACE: usize = 100_000;
const TRACE_LEN: usize = 1_000_000;

fn ours(keys: &[u64], capacity: u64) -> f64 {
    let memo: AsyncMemo<u64, u64> = AsyncMemo::builder().max_capacity(capacity).build();
    let mut hits = 0u64;
    for &key in keys {
        if memo.get(&key).is_some() {
            hits += 1;
        } else {
            memo.insert(key, key).unwrap();
        }
    }
    hits as f64 / keys.len() as f64
}

fn moka(keys: &[u64], capacity: u64) -> f64 {
    let cache: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(capacity);
    let mut hits = 0u64;
    for &key in keys {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
        }
    }
    hits as f64 / keys.len() as f64
}

fn main() {
    println!("| trace | capacity | async-memo | moka | difference (pp) |");
    println!("|---|---:|---:|---:|---:|");
    for trace in traces::traces(KEY_SPACE, TRACE_LEN) {
        for percent in [1, 10] {
            let capacity = (KEY_SPACE * percent / 100) as u64;
            let (a, b) = (ours(&trace.keys, capacity), moka(&trace.keys, capacity));
            println!(
                "| {} | {}% | {:.2}% | {:.2}% | {:+.2} |",
                trace.name,
                percent,
                a * 100.0,
                b * 100.0,
                (a - b) * 100.0
            );
        }
    }
}
