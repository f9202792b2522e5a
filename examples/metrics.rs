//! Exporting a memo's counters and gauges to Prometheus through the `metrics` facade.
//!
//! `cargo run --example metrics --features metrics`. Two named memos serve some reads, one
//! lookup fails and one entry is invalidated; then a scrape handler records both memos and
//! prints the Prometheus exposition text it would serve. A real service installs the recorder
//! the same way and returns `scrape`'s text from its `/metrics` route (or, with the exporter's
//! `http-listener` feature, lets the exporter serve it), calling `record_metrics` in the
//! handler: the memo never spawns a task to push its numbers.

use std::error::Error;

use async_memo::AsyncMemo;
use futures::executor::block_on;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

#[derive(Debug)]
struct NotFound(u64);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no user {}", self.0)
    }
}

impl Error for NotFound {}

/// Stands in for a database query.
async fn load_user(id: u64) -> Result<String, NotFound> {
    match id {
        1 => Ok("ada".to_string()),
        2 => Ok("grace".to_string()),
        _ => Err(NotFound(id)),
    }
}

/// What a `/metrics` route does: record every memo, then render.
fn scrape(handle: &PrometheusHandle, memos: &[&AsyncMemo<u64, String>]) -> String {
    for memo in memos {
        memo.record_metrics();
    }
    handle.render()
}

fn main() -> Result<(), Box<dyn Error>> {
    // Once per process, at start-up.
    let handle = PrometheusBuilder::new().install_recorder()?;

    let users: AsyncMemo<u64, String> = AsyncMemo::builder()
        .name("users")
        .max_capacity(1_000)
        .build();
    let sessions: AsyncMemo<u64, String> = AsyncMemo::builder().name("sessions").build();

    block_on(async {
        for id in [1, 2, 1, 1, 3] {
            match users.get_or_try_init(id, || load_user(id)).await {
                Ok(user) => println!("user {id}: {}", user.value()),
                Err(error) => println!("user {id}: {error}"),
            }
        }
    });
    // Ada renamed herself: drop exactly the entry we read.
    if let Some(ada) = users.get(&1) {
        users.invalidate(&1, ada.epoch());
    }
    sessions.insert(42, "token".to_string())?;

    println!("\n{}", scrape(&handle, &[&users, &sessions]));
    Ok(())
}
