//! The scenarios: each drives one interleaving (with gates, never sleeps) and returns a verdict
//! with the counts that prove it. `main.rs` narrates them; `tests/mcp_scenarios.rs` asserts them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::cache::Mode;
use crate::client::{ClientError, McpClient, Tools};
use crate::connection::{Connection, ServerConfig};
use crate::gates::{self, Gates};
use crate::naive;
use crate::stats::{Counts, is_live};

/// The name the scenarios give the server in the client's config.
pub const SERVER: &str = "demo";

/// Which server the scenarios run against.
#[derive(Clone, Debug)]
pub enum Target {
    /// The example server: this binary (or the given one) with `--serve`, gates enabled.
    Demo { exe: PathBuf },
    /// A user's stdio MCP server: only the scenarios that need no special behaviour.
    External(ServerConfig),
}

#[derive(Debug)]
pub struct Verdict {
    pub title: &'static str,
    pub passed: bool,
    pub summary: String,
    pub story: Vec<String>,
    pub counts: Counts,
    /// Server processes still running after the scenario shut its client down (must be none).
    pub leaked: Vec<u32>,
}

/// One scenario run: a fresh client, a fresh director, a story.
pub struct Run {
    pub client: McpClient,
    pub gates: Gates,
    pub mode: Mode,
    target: Target,
    story: Vec<String>,
    /// The counts at the moment of the verdict, while the scenario still holds its connections.
    measured: Option<Counts>,
}

type Outcome = Result<(bool, String), ClientError>;

impl Run {
    pub async fn new(target: &Target, mode: Mode) -> Run {
        let gates = Gates::new().expect("gates: bind a Unix socket in the temp dir");
        let client = McpClient::new(mode);
        let run = Run {
            client,
            gates,
            mode,
            target: target.clone(),
            story: Vec::new(),
            measured: None,
        };
        run.client.set_config(SERVER, run.config(&[])).await;
        run
    }

    /// The config of the scenario's server, with `extra` arguments (a different config).
    pub fn config(&self, extra: &[&str]) -> ServerConfig {
        match &self.target {
            Target::Demo { exe } => ServerConfig {
                command: exe.display().to_string(),
                args: ["--serve"]
                    .iter()
                    .chain(extra)
                    .map(|s| s.to_string())
                    .collect(),
                env: vec![(
                    gates::GATES_ENV.to_owned(),
                    self.gates.path().display().to_string(),
                )],
            },
            Target::External(config) => config.clone(),
        }
    }

    pub fn say(&mut self, line: impl Into<String>) {
        self.story.push(line.into());
    }

    /// Takes the counts the verdict quotes. Call it before the scenario lets go of its
    /// connections: a connection dropped afterwards is closing, and its process may or may not
    /// have exited yet.
    pub fn measure(&mut self) -> Counts {
        let counts = self.client.stats().counts();
        self.measured = Some(counts);
        counts
    }

    /// Closes everything, checks that no server process is left, and makes the verdict.
    async fn finish(mut self, title: &'static str, outcome: Outcome) -> Verdict {
        let counts = self
            .measured
            .unwrap_or_else(|| self.client.stats().counts());
        let (mut passed, mut summary) = match outcome {
            Ok((passed, summary)) => (passed, format!("{summary} ({counts})")),
            Err(e) => (false, format!("unexpected error: {e} ({counts})")),
        };
        self.client.shutdown().await;
        let leaked = wait_exited(&self.client).await;
        if !leaked.is_empty() {
            passed = false;
            summary.push_str(&format!("; LEAKED server processes {leaked:?}"));
        }
        self.say(format!(
            "shutdown: every server process exited ({} spawned)",
            counts.spawned
        ));
        Verdict {
            title,
            passed,
            summary,
            story: self.story,
            counts,
            leaked,
        }
    }
}

/// Waits (watchdog: 10 s) until no server process of this client is running; returns the rest.
/// Connections closed by `close` are already reaped; this covers children killed on drop.
async fn wait_exited(client: &McpClient) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = client.stats().live_pids();
        if live.is_empty() || Instant::now() > deadline {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn describe(connection: &Connection) -> String {
    format!(
        "pid {}, epoch {}",
        connection.pid().unwrap_or(0),
        connection.epoch()
    )
}

/// 1. The seed race: the close handler of A reconnects (stores B) around `clear_server_cache`.
pub async fn seed_race(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = seed_race_steps(&mut run).await;
    run.finish(
        "the seed race: clear_server_cache while the close handler reconnects",
        outcome,
    )
    .await
}

async fn seed_race_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    let key = client.key(SERVER)?;
    let a = client.connection(SERVER).await?;
    run.say(format!("A connected ({})", describe(&a)));
    drop(a);
    // The application reconnects as soon as a connection closes and keeps what it gets, as the
    // seed's useManageMCPConnections did.
    let app_state: Arc<Mutex<Vec<Arc<Connection>>>> = Arc::default();
    let fired = Arc::new(AtomicBool::new(false));
    let (state, once) = (Arc::clone(&app_state), Arc::clone(&fired));
    client.set_on_close(Some(Arc::new(move |client: McpClient, name| {
        let (state, once) = (Arc::clone(&state), Arc::clone(&once));
        async move {
            if !once.swap(true, Ordering::SeqCst) {
                if let Ok(b) = client.connection(&name).await {
                    state.lock().unwrap().push(b);
                }
            }
        }
        .boxed()
    })));
    match run.mode {
        Mode::Fixed => client.clear_server_cache(SERVER).await,
        Mode::Naive => naive::clear_server_cache(&client, SERVER).await,
    };
    client.set_on_close(None);
    let b = app_state.lock().unwrap().first().cloned();
    let Some(b) = b else {
        return Ok((false, "the close handler did not reconnect".into()));
    };
    run.say(format!(
        "A's close handler reconnected: B ({})",
        describe(&b)
    ));
    let survived = client.connections().get(&key).map(|e| e.epoch()) == Some(b.epoch());
    run.say(if survived {
        "after clear_server_cache the cache still holds B".to_owned()
    } else {
        "after clear_server_cache the cache holds nothing: B was deleted, yet B is running"
            .to_owned()
    });
    let next = client.connection(SERVER).await?;
    let reused = Arc::ptr_eq(&next, &b);
    run.say(if reused {
        "the next call reused B".to_owned()
    } else {
        format!(
            "the next call spawned another server: C ({})",
            describe(&next)
        )
    });
    let live = run.measure().live;
    Ok((
        survived && reused && live == 1,
        format!(
            "B {}, the next call {}, {live} live server process{}",
            if survived { "survived" } else { "was deleted" },
            if reused { "reused B" } else { "spawned C" },
            if live == 1 { "" } else { "es" }
        ),
    ))
}

/// 2. `list_changed` while `tools/list` is in flight.
pub async fn list_changed_in_flight(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = list_changed_in_flight_steps(&mut run).await;
    run.finish("list_changed while tools/list is in flight", outcome)
        .await
}

async fn list_changed_in_flight_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    let connection = client.connection(SERVER).await?;
    let parked = run.gates.hold(gates::TOOLS_LIST);
    let caller = tokio::spawn({
        let client = client.clone();
        async move { client.tools(SERVER).await }
    });
    let arrival = parked.await;
    run.say("tools/list #1 is parked in the server, holding the old tool set");
    client.call_tool(SERVER, "change_tools").await?;
    connection.list_changed_handled(1).await;
    run.say("the server added a tool and sent list_changed: the flight was invalidated");
    arrival.release().await;
    let first = caller.await.expect("caller task")?;
    let next = client.tools(SERVER).await?;
    let stored = client.cached_tools(&connection).map(|e| e.into_value());
    let has_new = |tools: &[rmcp::model::Tool]| tools.iter().any(|t| t.name.starts_with("new_"));
    let fresh = has_new(&first) && has_new(&next);
    let same = stored.is_some_and(|s| Arc::ptr_eq(&s, &next));
    let lists = run.measure().tools_list;
    run.say(format!(
        "the caller in flight got {} tools, the next call {} (same list: {same})",
        first.len(),
        next.len()
    ));
    Ok((
        fresh && same && lists == 2,
        format!(
            "the stale list was {}, {lists} tools/list in all",
            if fresh {
                "never stored or returned"
            } else {
                "served"
            }
        ),
    ))
}

/// 3. Events from an old connection do not touch the new connection's entries.
pub async fn old_connection_events(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = old_connection_events_steps(&mut run).await;
    run.finish("list_changed and close from an old connection", outcome)
        .await
}

async fn old_connection_events_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    let key = client.key(SERVER)?;
    // An old connection that is still open: a connection that leaves the memo is closed by its
    // removal listener, but one whose connect was detached mid-flight never was in the memo. So
    // park A's connect in `initialize`, restart the server meanwhile (B), then let A finish.
    let parked = run.gates.hold(gates::INITIALIZE);
    let caller = tokio::spawn({
        let client = client.clone();
        async move { client.connection(SERVER).await }
    });
    let arrival = parked.await;
    let b = client.reconnect(SERVER).await?;
    client.tools(SERVER).await?;
    arrival.release().await;
    let a = caller.await.expect("caller task")?;
    run.say(format!(
        "A ({}) was connecting when a restart replaced it by B ({}); A's caller still got A",
        describe(&a),
        describe(&b)
    ));
    let request = rmcp::model::CallToolRequestParams::new("change_tools");
    a.peer()
        .call_tool(request)
        .await
        .map_err(|e| ClientError::Request {
            server: key.clone(),
            error: Arc::new(e),
        })?;
    a.list_changed_handled(1).await;
    let b_tools_kept = client.cached_tools(&b).is_some();
    run.say(format!(
        "A sent list_changed: B's tool list {}",
        if b_tools_kept {
            "was not touched"
        } else {
            "was deleted"
        }
    ));
    a.close();
    a.wait_closed().await;
    let b_kept = client.connections().get(&key).map(|e| e.epoch()) == Some(b.epoch());
    run.say(format!(
        "A closed: its close handler {}",
        if b_kept {
            "left B in place"
        } else {
            "deleted B"
        }
    ));
    client.tools(SERVER).await?;
    let counts = run.measure();
    Ok((
        b_tools_kept && b_kept && counts.spawned == 2 && counts.tools_list == 1,
        format!(
            "B's connection {} and its tool list {}",
            if b_kept { "kept" } else { "lost" },
            if b_tools_kept { "kept" } else { "lost" }
        ),
    ))
}

/// 4. The server crashes under a call.
pub async fn server_crash(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = server_crash_steps(&mut run).await;
    run.finish(
        "server crash: the call fails, the next one reconnects",
        outcome,
    )
    .await
}

async fn server_crash_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    client.tools(SERVER).await?;
    let first = client.connection(SERVER).await?;
    let old_pid = first.pid().unwrap_or(0);
    drop(first);
    let error = match client.call_tool(SERVER, "crash").await {
        Ok(_) => return Ok((false, "the crash call succeeded".into())),
        Err(error) => error,
    };
    let clear = matches!(error, ClientError::ConnectionLost { .. });
    run.say(format!("the call in flight failed: {error}"));
    let tools = client.tools(SERVER).await?;
    let second = client.connection(SERVER).await?;
    run.say(format!(
        "the next call reconnected ({}) and fetched {} tools over it",
        describe(&second),
        tools.len()
    ));
    let counts = run.measure();
    let ok = clear
        && !is_live(old_pid)
        && (
            counts.spawned,
            counts.initialize,
            counts.tools_list,
            counts.live,
        ) == (2, 2, 2, 1);
    Ok((ok, "crash reported, reconnected once".to_owned()))
}

/// 5. Fifty concurrent callers share one connect and one `tools/list`.
pub async fn coalescing(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = coalescing_steps(&mut run).await;
    run.finish("50 concurrent callers", outcome).await
}

async fn coalescing_steps(run: &mut Run) -> Outcome {
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let client = run.client.clone();
            tokio::spawn(async move {
                let tools = client.tools(SERVER).await?;
                let connection = client.connection(SERVER).await?;
                Ok::<_, ClientError>((connection, tools))
            })
        })
        .collect();
    let mut results = Vec::new();
    for caller in callers {
        results.push(caller.await.expect("caller task")?);
    }
    let (connection, tools) = &results[0];
    let same_connection = results.iter().all(|(c, _)| Arc::ptr_eq(c, connection));
    let mut lists: Vec<&Tools> = Vec::new();
    for (_, t) in &results {
        if !lists.iter().any(|seen| Arc::ptr_eq(seen, t)) {
            lists.push(t);
        }
    }
    run.say(format!(
        "50 callers got {} tools from {} (same connection for all: {same_connection}; \
         distinct tool lists: {})",
        tools.len(),
        describe(connection),
        lists.len()
    ));
    let counts = run.measure();
    let passed = coalescing_passed(&counts, same_connection, lists.len());
    let summary = if counts.list_changed == 0 {
        "one spawn, one initialize, one tools/list".to_owned()
    } else {
        format!(
            "one spawn, one initialize, {} tools/list for the {} list_changed the server sent \
             on its own (at most one more each)",
            counts.tools_list, counts.list_changed
        )
    };
    Ok((passed, summary))
}

/// The verdict of scenario 5, from what it counted: the part that judges only what the client
/// controls. What a server does on its own is allowed for: each `list_changed` it sent
/// invalidates the tool list (or the `tools/list` in flight) once, so it may cost one more
/// `tools/list`, and one more distinct list among the callers. What the client controls is held
/// exactly: one spawn, one `initialize`, one connection shared by every caller, no `tools/list`
/// that no notification explains.
pub fn coalescing_passed(counts: &Counts, same_connection: bool, distinct_lists: usize) -> bool {
    let allowed = 1 + counts.list_changed;
    same_connection
        && (counts.spawned, counts.initialize) == (1, 1)
        && (1..=allowed).contains(&counts.tools_list)
        && distinct_lists <= counts.tools_list
}

/// 6. A config change is a new key; the old connection is closed.
pub async fn config_change(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = config_change_steps(&mut run).await;
    run.finish("config change: new key, old connection closed", outcome)
        .await
}

async fn config_change_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    let old = client.connection(SERVER).await?;
    let (old_key, old_pid) = (old.key().clone(), old.pid().unwrap_or(0));
    drop(old);
    client
        .set_config(SERVER, run.config(&["--label", "v2"]))
        .await;
    let new = client.connection(SERVER).await?;
    run.say(format!(
        "key {old_key} -> {}; old pid {old_pid} {}",
        new.key(),
        if is_live(old_pid) {
            "still running"
        } else {
            "exited"
        }
    ));
    let counts = run.measure();
    Ok((
        new.key() != &old_key
            && !is_live(old_pid)
            && client.connections().epoch(&old_key).is_none()
            && counts.live == 1,
        "new key, old process closed".to_owned(),
    ))
}

/// 7. A failed connect is reported, not cached, and retried by the next call.
pub async fn failed_connect(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = failed_connect_steps(&mut run).await;
    run.finish("a failed connect is retried on the next call", outcome)
        .await
}

async fn failed_connect_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    let key = client.key(SERVER)?;
    run.gates.exit_next(gates::STARTUP);
    let error = match client.connection(SERVER).await {
        Ok(_) => return Ok((false, "the first connect succeeded".into())),
        Err(error) => error,
    };
    run.say(format!("first call: {error}"));
    let cached = client.connections().epoch(&key).is_some();
    let connection = client.connection(SERVER).await?;
    run.say(format!("next call: connected ({})", describe(&connection)));
    let counts = run.measure();
    Ok((
        !cached && counts.spawned == 2 && counts.live == 1,
        "failure not cached, retry connected".to_owned(),
    ))
}

/// 8. Cancellation: callers dropped mid-`initialize` do not poison the key.
pub async fn cancellation(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = cancellation_steps(&mut run).await;
    run.finish("cancellation mid-initialize", outcome).await
}

async fn cancellation_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    // a) The first caller (the one driving the connect) is dropped; four others wait.
    let parked = run.gates.hold(gates::INITIALIZE);
    let mut first = Box::pin(client.connection(SERVER));
    let mut others: Vec<_> = (0..4)
        .map(|_| Box::pin(client.connection(SERVER)))
        .collect();
    // Poll each once: the first starts the flight (spawns the server), the others join it.
    assert!(futures::poll!(&mut first).is_pending());
    for other in &mut others {
        assert!(futures::poll!(other).is_pending());
    }
    let arrival = tokio::select! {
        arrival = parked => arrival,
        _ = &mut first => return Ok((false, "connected without reaching the gate".into())),
    };
    drop(first);
    run.say(format!(
        "server {} parked in initialize; the first caller was dropped",
        arrival.pid
    ));
    arrival.release().await;
    let results = futures::future::join_all(others).await;
    let connections = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let shared = connections.iter().all(|c| Arc::ptr_eq(c, &connections[0]));
    run.say(format!(
        "the 4 others got one connection (shared: {shared})"
    ));
    let after_a = client.stats().counts();

    // b) Every caller is dropped: the connect is dropped, its process killed, the key freed.
    client
        .set_config("other", run.config(&["--label", "other"]))
        .await;
    let other_key = client.key("other")?;
    let parked = run.gates.hold(gates::INITIALIZE);
    let mut only = Box::pin(client.connection("other"));
    let arrival = tokio::select! {
        arrival = parked => arrival,
        _ = &mut only => return Ok((false, "connected without reaching the gate".into())),
    };
    drop(only);
    arrival.gone().await;
    let freed = client.connections().epoch(&other_key).is_none();
    let again = client.connection("other").await?;
    run.say(format!(
        "the only caller of \"other\" dropped mid-initialize: server killed, key {}; next call connected ({})",
        if freed { "free" } else { "still taken" },
        describe(&again)
    ));
    run.measure();
    Ok((
        shared && (after_a.spawned, after_a.initialize) == (1, 1) && freed,
        "dropped callers did not cancel the others nor poison the key".to_owned(),
    ))
}

/// 9. `list_changed` with a tool list in hand: callers keep the current list while one refresh
///    fetches the new one, and a second `list_changed` detaches the refresh that started before
///    it (its answer may predate the change: it is never stored). Fixed mode only: the naive
///    client has no refresh, it drops the list.
pub async fn list_changed_refresh(target: &Target, mode: Mode) -> Verdict {
    let mut run = Run::new(target, mode).await;
    let outcome = list_changed_refresh_steps(&mut run).await;
    run.finish("list_changed refreshes the tool list", outcome)
        .await
}

async fn list_changed_refresh_steps(run: &mut Run) -> Outcome {
    let client = run.client.clone();
    let connection = client.connection(SERVER).await?;
    let current = client.tools(SERVER).await?;
    let first = run.gates.hold(gates::TOOLS_LIST);
    client.call_tool(SERVER, "change_tools").await?;
    connection.list_changed_handled(1).await;
    let stale = first.await;
    run.say("list_changed #1: a refresh's tools/list is parked in the server (one new tool)");
    // A hit: nothing to wait for, so the call is ready at its first poll.
    let served = client.tools(SERVER).now_or_never();
    let kept = matches!(&served, Some(Ok(list)) if Arc::ptr_eq(list, &current));
    run.say(format!(
        "meanwhile a caller {}",
        if kept {
            "got the current list at once"
        } else {
            "did not get the current list at once"
        }
    ));
    let second = run.gates.hold(gates::TOOLS_LIST);
    client.call_tool(SERVER, "change_tools").await?;
    connection.list_changed_handled(2).await;
    let fresh = second.await;
    run.say(
        "list_changed #2: the first refresh is detached, a second one is parked (two new tools)",
    );
    fresh.release().await;
    stale.release().await;
    // Both refreshes finish in their own tasks: wait until the second committed and the first
    // finished detached (conditions, not time; the test's watchdog bounds the wait).
    while client.tools_stats().refreshes_committed < 1
        || client.tools_stats().refreshes_detached < 1
    {
        tokio::task::yield_now().await;
    }
    let stored = client
        .cached_tools(&connection)
        .map(|e| e.into_value())
        .unwrap_or_default();
    let new_tools = stored.iter().filter(|t| t.name.starts_with("new_")).count();
    let stats = client.tools_stats();
    let lists = run.measure().tools_list;
    run.say(format!(
        "stored: {} tools ({new_tools} new); refreshes committed {}, detached {}",
        stored.len(),
        stats.refreshes_committed,
        stats.refreshes_detached
    ));
    Ok((
        kept && new_tools == 2 && lists == 3,
        format!(
            "callers kept the current list; the stale refresh was {}",
            if new_tools == 2 {
                "never stored"
            } else {
                "stored"
            }
        ),
    ))
}
