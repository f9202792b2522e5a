//! An MCP client whose connection and tool caches are built on `AsyncMemo`, and a demo of the
//! races they survive.
//!
//! ```text
//! cargo run --example mcp_client                       # the scenarios, fixed client
//! cargo run --example mcp_client -- --naive            # the same with delete-by-key: the seed bug
//! cargo run --example mcp_client -- --server CMD ARGS  # against your own stdio MCP server
//! ```
//!
//! Files, one job each: `client.rs` (the caches and the removal listener that closes what leaves
//! them: the part to copy), `connection.rs` (one connection: child process, handshake, close
//! handler), `cache.rs` (the fixed/naive switch), `naive.rs` (the seed bug), `server.rs`,
//! `chatter.rs` and `gates.rs` (the example server, what it says unasked, how scenarios park it),
//! `scenarios.rs`, `stats.rs`.

mod cache;
mod chatter;
mod client;
mod connection;
mod gates;
mod naive;
mod scenarios;
mod server;
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use cache::Mode;
use client::McpClient;
use connection::ServerConfig;
use scenarios::{Target, Verdict};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return server::main();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let passed = match args.first().map(String::as_str) {
        None => runtime.block_on(demo(Mode::Fixed)),
        Some("--naive") => runtime.block_on(demo(Mode::Naive)),
        Some("--server") if args.len() > 1 => runtime.block_on(external(ServerConfig {
            command: args[1].clone(),
            args: args[2..].to_vec(),
            env: Vec::new(),
        })),
        _ => {
            eprintln!("usage: mcp_client [--naive | --server <command> [args...]]");
            return ExitCode::from(2);
        }
    };
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A scenario fails instead of hanging if an interleaving ever gets stuck.
const WATCHDOG: Duration = Duration::from_secs(30);

async fn demo(mode: Mode) -> bool {
    let exe = std::env::current_exe().expect("current exe");
    let target = Target::Demo { exe };
    match mode {
        Mode::Fixed => {
            println!("MCP client on async-memo: deletes are compare-and-delete by epoch")
        }
        Mode::Naive => {
            println!("MCP client, NAIVE: deletes are `cache.delete(key)` (the seed bug)")
        }
    }
    let mut verdicts = vec![
        run(1, scenarios::seed_race(&target, mode)).await,
        run(2, scenarios::list_changed_in_flight(&target, mode)).await,
        run(3, scenarios::old_connection_events(&target, mode)).await,
        run(4, scenarios::server_crash(&target, mode)).await,
        run(5, scenarios::coalescing(&target, mode)).await,
        run(6, scenarios::config_change(&target, mode)).await,
        run(7, scenarios::failed_connect(&target, mode)).await,
        run(8, scenarios::cancellation(&target, mode)).await,
    ];
    if mode == Mode::Fixed {
        // Refresh has no naive counterpart: the seed's client drops the list.
        verdicts.push(run(9, scenarios::list_changed_refresh(&target, mode)).await);
    }
    conclude(&verdicts, mode)
}

/// A user's server: connect, list its tools, run the scenarios that need no special behaviour.
async fn external(config: ServerConfig) -> bool {
    let target = Target::External(config);
    println!("MCP client on async-memo, against your server");
    let client = McpClient::new(Mode::Fixed);
    let Target::External(config) = &target else {
        unreachable!()
    };
    client.set_config(scenarios::SERVER, config.clone()).await;
    let intro = async {
        let connection = client.connection(scenarios::SERVER).await?;
        let tools = client.tools(scenarios::SERVER).await?;
        println!(
            "connected to {:?} (pid {}), {} tools:",
            connection.server_name(),
            connection.pid().unwrap_or(0),
            tools.len()
        );
        for tool in tools.iter() {
            println!("  - {}", tool.name);
        }
        Ok::<_, client::ClientError>(connection.list_changed_count())
    };
    let intro = tokio::time::timeout(WATCHDOG, intro).await;
    client.shutdown().await;
    let list_changed = match intro {
        Ok(Ok(seen)) => seen,
        Ok(Err(e)) => {
            println!("FAIL  could not talk to the server: {e}");
            return false;
        }
        Err(_) => {
            println!("FAIL  the server did not answer within {WATCHDOG:?}");
            return false;
        }
    };
    let verdicts = vec![
        run(1, scenarios::seed_race(&target, Mode::Fixed)).await,
        run(5, scenarios::coalescing(&target, Mode::Fixed)).await,
    ];
    println!(
        "\nlist_changed: the server sent {list_changed} notification(s) while we listed its tools{}",
        if list_changed == 0 {
            " (each would invalidate that connection's tool list)"
        } else {
            "; each invalidated that connection's tool list"
        }
    );
    conclude(&verdicts, Mode::Fixed)
}

async fn run(number: u8, scenario: impl Future<Output = Verdict>) -> Verdict {
    let verdict = match tokio::time::timeout(WATCHDOG, scenario).await {
        Ok(verdict) => verdict,
        Err(_) => Verdict {
            title: "(stuck)",
            passed: false,
            summary: format!("watchdog: no verdict within {WATCHDOG:?}"),
            story: Vec::new(),
            counts: stats::Stats::default().counts(),
            leaked: Vec::new(),
        },
    };
    println!("\n{number}. {}", verdict.title);
    for line in &verdict.story {
        println!("   {line}");
    }
    let word = if verdict.passed { "PASS" } else { "FAIL" };
    println!("   {word}  {}", verdict.summary);
    verdict
}

fn conclude(verdicts: &[Verdict], mode: Mode) -> bool {
    let passed = verdicts.iter().filter(|v| v.passed).count();
    let spawned: usize = verdicts.iter().map(|v| v.counts.spawned).sum();
    let leaked: usize = verdicts.iter().map(|v| v.leaked.len()).sum();
    println!(
        "\n{passed} of {} verdicts passed. Servers spawned in all: {spawned}, left running: {leaked}.",
        verdicts.len()
    );
    if mode == Mode::Naive && passed < verdicts.len() {
        println!("Run without --naive: the same scenarios on compare-and-delete all pass.");
    }
    passed == verdicts.len()
}
