//! The MCP client's caches, layered on `AsyncMemo`. This is the file to copy.
//!
//! - Connections: one memo entry per server key (name + config hash). Concurrent callers share
//!   one connect (one spawn, one `initialize`); a failed connect is not cached; a caller that is
//!   dropped mid-connect does not cancel it for the others.
//! - Tool lists: keyed by server *and the connection's epoch*, so a list fetched over an old
//!   connection can never be served for a new one.
//! - Every delete of something we observed is a compare-and-delete by its epoch
//!   ([`Memo::invalidate`]): a newer entry stored meanwhile (a reconnect) survives.
//! - A connection lives as long as its entry: the memo's removal listener closes every
//!   connection that leaves the memo (invalidated, removed, cleared, evicted), and the close
//!   handler of every connection that closes (we closed it, or its server exited) invalidates its
//!   own entry and removes its tool list. Forgetting a connection is one `invalidate`; no code
//!   path has to remember to close it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use async_memo::{AsyncMemo, Entry, Epoch, RemovalCause};
use futures::future::BoxFuture;
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};

use crate::cache::{Memo, Mode};
use crate::connection::{self, ConnectError, Connection, Hooks, ServerConfig, ServerKey};
use crate::stats::Stats;

/// The key of a tool list: the server, and the epoch of the connection it was fetched over.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ToolsKey {
    pub server: ServerKey,
    pub connection: Epoch,
}

pub type Tools = Arc<Vec<Tool>>;

/// What the application does when a connection closes (e.g. reconnect eagerly, as the seed's
/// `useManageMCPConnections` did). Runs inside the close handler, after its compare-and-delete.
pub type CloseHook = Arc<dyn Fn(McpClient, Arc<str>) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

struct Inner {
    configs: Mutex<HashMap<String, ServerConfig>>,
    connections: Memo<ServerKey, Arc<Connection>>,
    tools: Memo<ToolsKey, Tools>,
    stats: Arc<Stats>,
    on_close: Mutex<Option<CloseHook>>,
    /// Every connection made, for `shutdown`.
    opened: Mutex<Vec<Weak<Connection>>>,
}

#[derive(Debug)]
pub enum ClientError {
    UnknownServer(String),
    /// The connect failed; it was not cached, the next call tries again.
    Connect(Arc<ConnectError>),
    /// The server went away (exited, crashed) while the request was in flight. The connection
    /// is evicted already: the next call reconnects.
    ConnectionLost {
        server: ServerKey,
        epoch: Epoch,
        error: Arc<ServiceError>,
    },
    /// The server answered with an error.
    Request {
        server: ServerKey,
        error: Arc<ServiceError>,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::UnknownServer(name) => write!(f, "no server named {name:?}"),
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::ConnectionLost {
                server,
                epoch,
                error,
            } => write!(
                f,
                "{server}: the connection (epoch {epoch}) closed under the request: {error}"
            ),
            ClientError::Request { server, error } => write!(f, "{server}: {error}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl McpClient {
    pub fn new(mode: Mode) -> McpClient {
        McpClient {
            inner: Arc::new(Inner {
                configs: Mutex::default(),
                connections: Memo::with_listener(mode, close_on_removal),
                tools: Memo::new(mode),
                stats: Arc::default(),
                on_close: Mutex::default(),
                opened: Mutex::default(),
            }),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The connection memo, for inspection (and for the naive `clear_server_cache`).
    pub fn connections(&self) -> &Memo<ServerKey, Arc<Connection>> {
        &self.inner.connections
    }

    /// The tool list cached for `connection`, if any (never fetches).
    pub fn cached_tools(&self, connection: &Connection) -> Option<Entry<Tools>> {
        self.inner.tools.get(&tools_key(connection))
    }

    pub fn set_on_close(&self, hook: Option<CloseHook>) {
        *self.inner.on_close.lock().unwrap() = hook;
    }

    /// The key the server `name` has now.
    pub fn key(&self, name: &str) -> Result<ServerKey, ClientError> {
        self.config(name).map(|(key, _)| key)
    }

    /// Registers a server, or changes its config. A changed config is a new key, so the next call
    /// connects afresh; the connection made with the old config is evicted and closed, not leaked.
    pub async fn set_config(&self, name: &str, config: ServerConfig) {
        let new_key = ServerKey::new(name, &config);
        let old = self
            .inner
            .configs
            .lock()
            .unwrap()
            .insert(name.to_owned(), config);
        let Some(old_key) = old.map(|old| ServerKey::new(name, &old)) else {
            return;
        };
        if old_key == new_key {
            return;
        }
        // No config names the old key any more, so whatever it holds is to go: remove it. The
        // listener closes a ready connection; a connect in flight is detached (its callers still
        // get that connection, which closes when they let go). Wait for the old process to exit,
        // so that the new server never runs beside it. (The wait does not hold the connection:
        // with no listener, as in `--naive`, it closes when its last user lets go.)
        let old = self.inner.connections.remove(&old_key);
        if let Some(closed) = old.map(|old| old.value().wait_closed()) {
            closed.await;
        }
    }

    /// The connection to `name`: the cached one, or a new one shared by every concurrent caller.
    pub async fn connection(&self, name: &str) -> Result<Arc<Connection>, ClientError> {
        let (key, config) = self.config(name)?;
        let connections = &self.inner.connections;
        loop {
            let entry = connections
                // The connection learns the epoch it will be committed under, so its close and
                // `list_changed` handlers can compare-and-delete exactly their own entries.
                .get_or_try_init_with_epoch(key.clone(), |epoch| {
                    self.connect(key.clone(), config.clone(), epoch)
                })
                .await
                .map_err(ClientError::Connect)?;
            if !entry.value().is_closed() {
                return Ok(entry.into_value());
            }
            // The process died and its close handler has not run yet: evict exactly that
            // connection (a newer one stored meanwhile survives) and go again.
            connections.invalidate(&key, entry.epoch());
            entry.value().wait_closed().await;
        }
    }

    /// The server's tools, fetched once per connection and shared.
    pub async fn tools(&self, name: &str) -> Result<Tools, ClientError> {
        let connection = self.connection(name).await?;
        let key = tools_key(&connection);
        let tools = &self.inner.tools;
        loop {
            let peer = connection.peer().clone();
            let stats = Arc::clone(&self.inner.stats);
            let fetched = tools
                .get_or_try_init(key.clone(), || async move {
                    stats.tools_list_sent();
                    peer.list_all_tools().await.map(Arc::new)
                })
                .await;
            let entry = match fetched {
                Ok(entry) => entry,
                Err(error) => return Err(failed(&connection, error).await),
            };
            // A `list_changed` that arrived while our `tools/list` was in flight invalidated the
            // flight: its result was not stored, and is stale. Ask again rather than return it.
            if tools.epoch(&key) == Some(entry.epoch()) {
                return Ok(entry.into_value());
            }
        }
    }

    /// Refreshes the tool list `key` names, if its connection is still the cached one: one
    /// `tools/list`, committed only onto the list it refreshes. A failure leaves that list.
    async fn refresh_tools(&self, key: ToolsKey) {
        let Some(connection) = self.inner.connections.get(&key.server) else {
            return;
        };
        if connection.epoch() != key.connection {
            return; // that connection left: its list is gone or going
        }
        let peer = connection.value().peer().clone();
        let stats = Arc::clone(&self.inner.stats);
        let refreshed = self
            .inner
            .tools
            .try_refresh(key, || async move {
                stats.tools_list_sent();
                peer.list_all_tools().await.map(Arc::new)
            })
            .await;
        drop(refreshed);
    }

    /// The tool-list memo's counters (refreshes started, committed, detached).
    pub fn tools_stats(&self) -> async_memo::Stats {
        self.inner.tools.stats()
    }

    pub async fn call_tool(&self, name: &str, tool: &str) -> Result<CallToolResult, ClientError> {
        let connection = self.connection(name).await?;
        let request = CallToolRequestParams::new(tool.to_owned());
        match connection.peer().call_tool(request).await {
            Ok(result) => Ok(result),
            Err(error) => Err(failed(&connection, Arc::new(error)).await),
        }
    }

    /// Forgets the server's connection and closes it: the seed's `clearServerCache`, fixed.
    pub async fn clear_server_cache(&self, name: &str) -> bool {
        let Ok(key) = self.key(name) else {
            return false;
        };
        let connections = &self.inner.connections;
        // 1. Read the entry without connecting: never spawn a server just to kill it.
        let Some(entry) = connections.get(&key) else {
            return false;
        };
        // 2. Compare-and-delete exactly the entry we read. The removal listener closes it.
        let evicted = connections.invalidate(&key, entry.epoch());
        // 3. Wait for the close. Its close handler runs meanwhile, and so may a reconnect by the
        //    application: whatever they store under the key is a new entry that nothing here
        //    deletes.
        entry.value().wait_closed().await;
        evicted
    }

    /// Evicts the cached connection and connects anew (a "restart server" command). The listener
    /// closes the old connection, even under a caller still using it (whose next call gets the new
    /// one). A connect in flight is detached instead: its callers still get that connection, which
    /// was never in the memo and so closes when they let go.
    pub async fn reconnect(&self, name: &str) -> Result<Arc<Connection>, ClientError> {
        let key = self.key(name)?;
        if let Some(observed) = self.inner.connections.epoch(&key) {
            self.inner.connections.invalidate(&key, observed);
        }
        self.connection(name).await
    }

    /// Closes every connection this client made and waits for their processes to exit. Not only
    /// the memo's (`invalidate_all` would close those, through the listener): a connection from a
    /// connect detached mid-flight never was in the memo, and may still have users.
    pub async fn shutdown(&self) {
        self.set_on_close(None);
        let opened: Vec<_> = self.inner.opened.lock().unwrap().drain(..).collect();
        let opened: Vec<_> = opened.iter().filter_map(Weak::upgrade).collect();
        for connection in &opened {
            connection.close();
        }
        for connection in &opened {
            connection.wait_closed().await;
        }
    }

    fn config(&self, name: &str) -> Result<(ServerKey, ServerConfig), ClientError> {
        let configs = self.inner.configs.lock().unwrap();
        let config = configs
            .get(name)
            .ok_or_else(|| ClientError::UnknownServer(name.to_owned()))?;
        Ok((ServerKey::new(name, config), config.clone()))
    }

    /// The init of a connection flight.
    fn connect(
        &self,
        key: ServerKey,
        config: ServerConfig,
        epoch: Epoch,
    ) -> impl Future<Output = Result<Arc<Connection>, ConnectError>> + Send + 'static {
        let hooks = self.hooks(&key, epoch);
        let stats = Arc::clone(&self.inner.stats);
        let inner = Arc::clone(&self.inner);
        async move {
            let connection = connection::connect(key, config, epoch, hooks, stats).await?;
            let mut opened = inner.opened.lock().unwrap();
            opened.retain(|c| c.strong_count() > 0);
            opened.push(Arc::downgrade(&connection));
            Ok(connection)
        }
    }

    /// What the connection committed under `epoch` runs on `list_changed` and on close.
    fn hooks(&self, key: &ServerKey, epoch: Epoch) -> Hooks {
        let tools = self.inner.tools.clone();
        let tools_key = ToolsKey {
            server: key.clone(),
            connection: epoch,
        };
        // Weak: a connection's close handler must not keep the client (and its memo) alive.
        let client = Arc::downgrade(&self.inner);
        let key = key.clone();
        let refresher = Weak::clone(&client);
        Hooks {
            tool_list_changed: Box::new(move || {
                // Lists of other connections have other keys and are not touched.
                if tools.mode() == Mode::Fixed && tools.get(&tools_key).is_some() {
                    // A refresh that started before this notification may carry the old list:
                    // detach it (it will never be stored), then refresh anew. Callers keep the
                    // current list meanwhile, instead of waiting for a `tools/list`.
                    if let Some(stale) = tools.refreshing(&tools_key) {
                        tools.invalidate(&tools_key, stale);
                    }
                    if let Some(inner) = refresher.upgrade() {
                        let key = tools_key.clone();
                        tokio::spawn(async move { McpClient { inner }.refresh_tools(key).await });
                    }
                } else if let Some(observed) = tools.epoch(&tools_key) {
                    // No list yet: the `tools/list` in flight may predate the change. Invalidate
                    // it by the epoch we observe now: its answer is never stored. (`--naive`
                    // drops a ready list this way too.)
                    tools.invalidate(&tools_key, observed);
                }
            }),
            closed: Box::new(move || {
                Box::pin(async move {
                    if let Some(inner) = client.upgrade() {
                        McpClient { inner }.connection_closed(key, epoch).await;
                    }
                })
            }),
        }
    }

    /// The close handler of the connection committed under `epoch`.
    async fn connection_closed(&self, key: ServerKey, epoch: Epoch) {
        // Compare-and-delete our own entry, never "whatever is under the key": a reconnect may
        // already have stored a new connection there. The next call reconnects lazily.
        self.inner.connections.invalidate(&key, epoch);
        // This connection's tool list can never be used again; its key names this connection
        // only, so evicting it unconditionally touches nobody else. Here rather than in the
        // listener: every connection closes, but one from a connect detached mid-flight never
        // was in the memo.
        self.inner.tools.remove(&ToolsKey {
            server: key.clone(),
            connection: epoch,
        });
        let hook = self.inner.on_close.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook(self.clone(), key.name).await;
        }
    }
}

/// The connection memo's removal listener: a connection that leaves the memo is closed, whatever
/// the cause, so no path that forgets a connection can leak its server process.
///
/// `close` never blocks (the listener runs on the thread of the operation that removed the
/// entry, maybe inside a close handler) and does nothing to a connection closed already: the
/// close handler's own `invalidate` lands here too. The listener holds no handle to the client,
/// and must not: a strong one would be a cycle (client -> memo -> listener -> client) that
/// never frees either. The connection's tool list goes in its close handler, which holds a weak
/// one.
/// The connection memo's removal listener: closes the connection that left, unless the memo
/// holds that very connection again (a refresh that returned the same connection is reported as
/// `Replaced` too; the listener runs after the new entry is in place, so it can tell).
fn close_on_removal(
    memo: &AsyncMemo<ServerKey, Arc<Connection>>,
    key: &ServerKey,
    connection: Entry<Arc<Connection>>,
    _: RemovalCause,
) {
    let kept = memo
        .get(key)
        .is_some_and(|now| Arc::ptr_eq(now.value(), connection.value()));
    if !kept {
        connection.value().close();
    }
}

fn tools_key(connection: &Connection) -> ToolsKey {
    ToolsKey {
        server: connection.key().clone(),
        connection: connection.epoch(),
    }
}

/// Classifies a failed request. If the transport is gone, waits for the close handler, so that
/// the caller's next call finds the key free and reconnects.
async fn failed(connection: &Connection, error: Arc<ServiceError>) -> ClientError {
    let lost = matches!(
        *error,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    ) || connection.is_closed();
    if lost {
        connection.wait_closed().await;
        ClientError::ConnectionLost {
            server: connection.key().clone(),
            epoch: connection.epoch(),
            error,
        }
    } else {
        ClientError::Request {
            server: connection.key().clone(),
            error,
        }
    }
}
