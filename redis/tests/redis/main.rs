//! Tests of async-memo-redis against real `redis-server` processes, one module per concern.
//!
//! One test binary, so that a machine without Redis prints one line saying what was skipped.
//! Run one concern with `cargo test -p async-memo-redis --test redis race::`.

#[macro_use]
mod support;

mod disconnected;
mod faults;
mod processes;
mod propagation;
mod race;
mod send_sync;
mod shared;
mod shared_processes;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{NearMemo, NearMemoBuilder, Plain, RedisLog, WhenDisconnected};

use crate::support::RedisServer;

/// A source of truth outside Redis, shared by the "processes" of one test: key → version.
#[derive(Clone, Default)]
pub struct Source(Arc<Mutex<HashMap<String, u64>>>);

impl Source {
    /// Bumps the version of `key` and returns the new one.
    pub fn write(&self, key: &str) -> u64 {
        let mut map = self.0.lock().unwrap();
        let version = map.entry(key.to_string()).or_insert(0);
        *version += 1;
        *version
    }

    pub fn read(&self, key: &str) -> u64 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

pub type Near = NearMemo<String, u64>;

/// A builder on the test server's log of `namespace`, reading with a short block so that
/// checks done on a block timeout (a deleted stream) come quickly.
pub fn builder(server: &RedisServer, namespace: &str) -> NearMemoBuilder<String, u64, RedisLog> {
    let log = RedisLog::open(server.url(), namespace)
        .unwrap()
        .block(Duration::from_millis(100));
    NearMemo::builder(log).when_disconnected(WhenDisconnected::Serve)
}

/// A started near memo ("a process") on `namespace`.
pub async fn near(server: &RedisServer, namespace: &str) -> Near {
    builder(server, namespace)
        .start(AsyncMemo::new())
        .await
        .unwrap()
}

/// Reads `key` through `near` (on any hasher), loading it from `source`.
pub async fn read<S>(
    near: &NearMemo<String, u64, RedisLog, Plain, S>,
    source: &Source,
    key: &str,
) -> u64
where
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    let source = source.clone();
    let k = key.to_string();
    near.get_or_init(key.to_string(), move || async move { source.read(&k) })
        .await
}
