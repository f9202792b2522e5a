//! A lazily made connection that is dropped on any error, so that the next call reconnects.
//!
//! This is the whole reconnect story of the adapter: the reader's cursor and the shared tier's
//! lease tokens, not the connection, carry the state; a new connection starts clean.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};

/// One connection slot of a [`Client`].
#[derive(Debug)]
pub(crate) struct LazyConnection {
    slot: Mutex<Option<MultiplexedConnection>>,
    /// How long a command may go unanswered (`None`: the client's default).
    response_timeout: Option<Duration>,
}

impl LazyConnection {
    pub(crate) fn new(response_timeout: Option<Duration>) -> LazyConnection {
        LazyConnection {
            slot: Mutex::new(None),
            response_timeout,
        }
    }

    /// The slot's connection, connecting if it holds none. The lock is held only to read or
    /// write the slot, never across the connect.
    pub(crate) async fn get(&self, client: &Client) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = self.lock().clone() {
            return Ok(connection);
        }
        let mut config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(Duration::from_secs(2)));
        if let Some(timeout) = self.response_timeout {
            config = config.set_response_timeout(Some(timeout));
        }
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Two racing connects both work; the later one stays in the slot.
        *self.lock() = Some(connection.clone());
        Ok(connection)
    }

    /// Drops the slot's connection if `result` is an error, so that the next call reconnects.
    pub(crate) fn forget_on_error<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if result.is_err() {
            let dropped = self.lock().take();
            drop(dropped);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
