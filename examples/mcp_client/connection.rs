//! One MCP connection: a server child process, its handshake, its notifications and its close.
//!
//! This file knows nothing about caching. The cache layer (`client.rs`) hands [`connect`] two
//! hooks, run by the connection itself: one for `notifications/tools/list_changed` and one, the
//! close handler, for when the transport closes (server exited or crashed, or we closed it).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_memo::Epoch;
use futures::future::BoxFuture;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{NotificationContext, RunningServiceCancellationToken};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::sync::watch;

use crate::stats::Stats;

/// How to start a server: what a user writes in their client's config file.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ServerConfig {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// The key of a connection: the server's name and a hash of its config, so that editing the
/// config makes a new key (and a new connection) instead of reusing one started the old way.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ServerKey {
    pub name: Arc<str>,
    pub config_hash: u64,
}

impl ServerKey {
    pub fn new(name: &str, config: &ServerConfig) -> ServerKey {
        let mut hasher = DefaultHasher::new();
        config.hash(&mut hasher);
        ServerKey {
            name: name.into(),
            config_hash: hasher.finish(),
        }
    }
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:04x}", self.name, self.config_hash >> 48)
    }
}

/// What the cache layer runs when something happens to a connection.
pub struct Hooks {
    /// On `notifications/tools/list_changed`.
    pub tool_list_changed: Box<dyn Fn() + Send + Sync>,
    /// The close handler: once the transport has closed and the process has exited.
    pub closed: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
}

/// A live connection to one server process.
pub struct Connection {
    key: ServerKey,
    epoch: Epoch,
    pid: Option<u32>,
    server_name: String,
    peer: Peer<RoleClient>,
    /// Taken by the first `close` (or by `Drop`); cancelling it ends the service loop.
    cancel: Mutex<Option<RunningServiceCancellationToken>>,
    /// Turns `true` once the process has exited and the close handler has run.
    closed: watch::Receiver<bool>,
    /// How many `tools/list_changed` notifications the hook has handled.
    list_changed: watch::Receiver<u64>,
}

#[derive(Debug)]
pub enum ConnectError {
    Spawn(ServerKey, std::io::Error),
    Handshake(ServerKey, Box<rmcp::service::ClientInitializeError>),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Spawn(key, e) => write!(f, "{key}: could not start the server: {e}"),
            ConnectError::Handshake(key, e) => write!(f, "{key}: initialize failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Spawns the server, runs the `initialize` handshake and starts watching for the close.
///
/// `epoch` is the epoch the connection will be committed under: the hooks use it to touch only
/// this connection's entries. If this future is dropped midway, the child process is killed.
pub async fn connect(
    key: ServerKey,
    config: ServerConfig,
    epoch: Epoch,
    hooks: Hooks,
    stats: Arc<Stats>,
) -> Result<Arc<Connection>, ConnectError> {
    let mut command = tokio::process::Command::new(&config.command);
    command.args(&config.args).envs(config.env.iter().cloned());
    let transport =
        TokioChildProcess::new(command).map_err(|e| ConnectError::Spawn(key.clone(), e))?;
    let pid = transport.id();
    stats.spawned(pid);

    let (list_changed_tx, list_changed) = watch::channel(0);
    let handler = Handler {
        tool_list_changed: hooks.tool_list_changed,
        handled: list_changed_tx,
        stats: Arc::clone(&stats),
    };
    stats.initialize_sent();
    let service = handler
        .serve(transport)
        .await
        .map_err(|e| ConnectError::Handshake(key.clone(), Box::new(e)))?;

    let server_name = service
        .peer_info()
        .and_then(|info| info.server_info.clone())
        .map_or_else(|| "(unnamed)".to_owned(), |info| info.name);
    let (closed_tx, closed) = watch::channel(false);
    let connection = Arc::new(Connection {
        key,
        epoch,
        pid,
        server_name,
        peer: service.peer().clone(),
        cancel: Mutex::new(Some(service.cancellation_token())),
        closed,
        list_changed,
    });
    // The watcher owns the service, not the connection: when the last user drops the connection,
    // `Drop` cancels the service and this task runs the close handler.
    let closed_hook = hooks.closed;
    tokio::spawn(async move {
        // Returns once the transport is closed and the child process has exited.
        let _ = service.waiting().await;
        closed_hook().await;
        let _ = closed_tx.send(true);
    });
    Ok(connection)
}

impl Connection {
    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// The epoch this connection was committed under in the connection memo.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The name the server gave in its `initialize` answer.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn peer(&self) -> &Peer<RoleClient> {
        &self.peer
    }

    /// Whether the transport is gone (the close handler may not have run yet).
    pub fn is_closed(&self) -> bool {
        self.peer.is_transport_closed() || *self.closed.borrow()
    }

    /// Starts closing the connection: ends the transport; the process exits and the close handler
    /// runs on their own (await [`wait_closed`](Self::wait_closed) for that). Never blocks, and a
    /// second call, or a call on a connection closed already, does nothing: the memo's removal
    /// listener calls it for every connection that leaves the memo, closed or not.
    pub fn close(&self) {
        if let Some(cancel) = self.cancel.lock().unwrap().take() {
            cancel.cancel();
        }
    }

    /// Resolves once the process has exited and the close handler has run, however it closed.
    pub fn wait_closed(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut closed = self.closed.clone();
        async move {
            // An error means the watcher is gone, which it only is after sending `true`.
            let _ = closed.wait_for(|closed| *closed).await;
        }
    }

    /// How many `tools/list_changed` notifications the hook has handled on this connection.
    pub fn list_changed_count(&self) -> u64 {
        *self.list_changed.borrow()
    }

    /// Resolves once the tool-list hook has handled `n` notifications on this connection.
    pub async fn list_changed_handled(&self, n: u64) {
        let mut handled = self.list_changed.clone();
        let _ = handled.wait_for(|seen| *seen >= n).await;
    }
}

impl Drop for Connection {
    /// The last user let go: close the transport (the watcher runs the close handler).
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("key", &self.key)
            .field("epoch", &self.epoch)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// The client side of the protocol for one connection.
struct Handler {
    tool_list_changed: Box<dyn Fn() + Send + Sync>,
    handled: watch::Sender<u64>,
    stats: Arc<Stats>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("async-memo-mcp-example", env!("CARGO_PKG_VERSION")),
        )
        // The `initialize` handshake (the newest protocol version has none).
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.stats.list_changed_received();
        (self.tool_list_changed)();
        self.handled.send_modify(|n| *n += 1);
    }
}
