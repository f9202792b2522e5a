//! The source of truth, a Redis hash of versions, read on a connection that reconnects.

use std::sync::{Arc, Mutex};

use async_memo_redis::LogId;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use redis::{Client, ErrorKind, RedisError, RedisResult};

use crate::lock;

/// A value as the readers memoize it: the key's version, and the id of the last record the
/// invalidation log held when the version was read. Both come from one `MULTI`, and the writer
/// bumps a version and appends its record in one `MULTI` too, so the value is older than the
/// change that record `I` announced exactly when `seen < I`. Unlike counting the records a
/// process applied, this stays exact when a gap makes a process skip records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loaded {
    pub(crate) version: u64,
    pub(crate) seen: LogId,
}

/// The hash `data` and the stream `log` on one server. Clones share one connection, made on
/// first use and dropped on any error, so that the next call connects again: a connection
/// broken by a restart never comes back, and there is nothing else to repair (the same
/// approach as `RedisLog`'s own connections).
#[derive(Clone, Debug)]
pub(crate) struct Source {
    client: Client,
    data: String,
    log: String,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl Source {
    pub(crate) fn new(client: Client, data: String, log: String) -> Source {
        Source {
            client,
            data,
            log,
            connection: Arc::new(Mutex::new(None)),
        }
    }

    /// `key`'s version (0 before its first commit) and the log's last id, at one instant.
    ///
    /// # Errors
    ///
    /// Whatever the connection or the server said; the connection is dropped then.
    pub(crate) async fn load(&self, key: &str) -> RedisResult<Loaded> {
        let reply = self.load_once(key).await;
        if reply.is_err() {
            let broken = lock(&self.connection).take();
            drop(broken);
        }
        reply
    }

    async fn load_once(&self, key: &str) -> RedisResult<Loaded> {
        let mut connection = self.connection().await?;
        let (version, last): (Option<u64>, StreamRangeReply) = redis::pipe()
            .atomic()
            .hget(&self.data, key)
            .xrevrange_count(&self.log, "+", "-", 1)
            .query_async(&mut connection)
            .await?;
        // The log is capped with an approximate MAXLEN, which never trims its newest record,
        // and nobody deletes records: its last record is its last generated id.
        let seen = match last.ids.first() {
            Some(record) => record.id.parse().map_err(|_| {
                RedisError::from((
                    ErrorKind::Parse,
                    "the server returned a malformed stream id",
                ))
            })?,
            None => LogId::ZERO,
        };
        Ok(Loaded {
            version: version.unwrap_or(0),
            seen,
        })
    }

    /// The shared connection, connecting if there is none. The lock is never held across the
    /// connect; two racing connects both work, and the later one stays.
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = lock(&self.connection).clone() {
            return Ok(connection);
        }
        let connection = self.client.get_multiplexed_async_connection().await?;
        *lock(&self.connection) = Some(connection.clone());
        Ok(connection)
    }
}
