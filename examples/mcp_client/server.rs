//! The example server (`mcp_client --serve`): a small stdio MCP server to run the scenarios on.
//!
//! It exposes a few tools, and three that drive the scenarios:
//! - `change_tools` adds a tool and sends `notifications/tools/list_changed`;
//! - `crash` exits the process without answering, like a server that dies mid-call;
//! - gates (see `gates.rs`) let a scenario park it in `initialize` or `tools/list`.
//!
//! Like some third-party servers, it can also talk on its own (`--server` must cope with that):
//! - `--list-changed-after-initialize` sends `notifications/tools/list_changed` as soon as the
//!   client says it is initialized, before any request;
//! - `--list-changed-every <ms>` sends it every `ms` milliseconds, from then until the client
//!   goes away.

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeRequestParams, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::chatter::Chatter;
use crate::gates;

/// Runs the server on stdin/stdout until the client closes stdin.
pub fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server: tokio runtime");
    runtime.block_on(async {
        gates::checkpoint(gates::STARTUP).await;
        let server = DemoServer {
            chatter: Chatter::from_args(std::env::args().skip(1)),
            ..DemoServer::default()
        }
        .serve(rmcp::transport::stdio())
        .await
        .expect("server: handshake");
        let _ = server.waiting().await;
    });
    // Exit now: the blocking stdin reader would otherwise hold the runtime's shutdown.
    std::process::exit(0)
}

#[derive(Clone)]
struct DemoServer {
    tools: Arc<Mutex<Vec<Tool>>>,
    chatter: Chatter,
}

impl Default for DemoServer {
    fn default() -> Self {
        let tools = ["echo", "add", "change_tools", "crash"]
            .into_iter()
            .map(tool)
            .collect();
        DemoServer {
            tools: Arc::new(Mutex::new(tools)),
            chatter: Chatter::Quiet,
        }
    }
}

fn tool(name: impl Into<String>) -> Tool {
    let name = name.into();
    let mut schema = serde_json::Map::new();
    schema.insert("type".into(), "object".into());
    Tool::new(name.clone(), format!("demo tool `{name}`"), schema)
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("async-memo-demo-server", "0.1.0"))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        gates::checkpoint(gates::INITIALIZE).await;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let peer = context.peer;
        match self.chatter {
            Chatter::Quiet => {}
            Chatter::ListChangedAfterInitialize => {
                let _ = peer.notify_tool_list_changed().await;
            }
            Chatter::ListChangedEvery(every) => {
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(every);
                    ticks.tick().await; // the first tick is immediate: notify at once, too
                    // Until the client is gone: sending then fails.
                    while peer.notify_tool_list_changed().await.is_ok() {
                        ticks.tick().await;
                    }
                });
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // Snapshot first, then wait at the gate: a change made while this request is parked is
        // *not* in its answer, exactly like a slow server answering from an older state.
        let snapshot = self.tools.lock().unwrap().clone();
        gates::checkpoint(gates::TOOLS_LIST).await;
        Ok(ListToolsResult::with_all_items(snapshot))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = match &*request.name {
            "echo" => format!("{:?}", request.arguments),
            "add" => "42".to_owned(),
            "change_tools" => {
                let name = {
                    let mut tools = self.tools.lock().unwrap();
                    let name = format!("new_tool_{}", tools.len());
                    tools.push(tool(name.clone()));
                    name
                };
                let _ = context.peer.notify_tool_list_changed().await;
                format!("added {name}")
            }
            "crash" => std::process::exit(1),
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}
