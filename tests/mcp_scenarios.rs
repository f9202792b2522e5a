//! The scenarios of the MCP example (`examples/mcp_client/`), as tests: real server child
//! processes, interleavings driven by gates in the example server, no sleeps. Every scenario ends
//! by shutting its client down and checking, by pid, that no server process is left running.
//!
//! The server is the example binary run with `--serve`; the first test to need it builds it.
#![cfg(unix)]

#[allow(dead_code)]
#[path = "../examples/mcp_client/cache.rs"]
mod cache;
#[allow(dead_code)]
#[path = "../examples/mcp_client/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/mcp_client/connection.rs"]
mod connection;
#[allow(dead_code)]
#[path = "../examples/mcp_client/gates.rs"]
mod gates;
#[allow(dead_code)]
#[path = "../examples/mcp_client/naive.rs"]
mod naive;
#[allow(dead_code)]
#[path = "../examples/mcp_client/scenarios.rs"]
mod scenarios;
#[allow(dead_code)]
#[path = "../examples/mcp_client/stats.rs"]
mod stats;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use cache::Mode;
use scenarios::{Target, Verdict};

/// The example binary, built once per test run (a no-op when it is up to date).
fn example_server() -> Target {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    let exe = EXE.get_or_init(|| {
        // target/<profile>/deps/mcp_scenarios-<hash> -> target/<profile>/examples/mcp_client
        let test_exe = std::env::current_exe().expect("current exe");
        let profile_dir = test_exe.parent().and_then(|deps| deps.parent()).unwrap();
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "--quiet",
                "--example",
                "mcp_client",
                "--manifest-path",
            ])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo build --example mcp_client");
        assert!(status.success(), "cargo build --example mcp_client failed");
        profile_dir.join("examples").join("mcp_client")
    });
    Target::Demo { exe: exe.clone() }
}

/// Runs a scenario under a watchdog (it fails instead of hanging).
async fn run(scenario: impl Future<Output = Verdict>) -> Verdict {
    let verdict = tokio::time::timeout(Duration::from_secs(30), scenario)
        .await
        .expect("watchdog: the scenario got stuck");
    assert!(
        verdict.leaked.is_empty(),
        "server processes left running: {:?}",
        verdict.leaked
    );
    verdict
}

#[track_caller]
fn assert_passed(verdict: &Verdict) {
    assert!(
        verdict.passed,
        "{}: {}\n  {}",
        verdict.title,
        verdict.summary,
        verdict.story.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_race_b_survives() {
    let verdict = run(scenarios::seed_race(&example_server(), Mode::Fixed)).await;
    assert_passed(&verdict);
    assert_eq!((verdict.counts.spawned, verdict.counts.live), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_race_naive_loses_b_and_leaks_a_live_process() {
    let verdict = run(scenarios::seed_race(&example_server(), Mode::Naive)).await;
    assert!(!verdict.passed, "the naive memo should show the seed bug");
    // B deleted while running, C spawned next to it: two live servers for one name.
    assert_eq!((verdict.counts.spawned, verdict.counts.live), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_while_tools_list_in_flight() {
    let verdict = run(scenarios::list_changed_in_flight(
        &example_server(),
        Mode::Fixed,
    ))
    .await;
    assert_passed(&verdict);
    assert_eq!(verdict.counts.tools_list, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_an_old_connection_leave_the_new_one_alone() {
    let verdict = run(scenarios::old_connection_events(
        &example_server(),
        Mode::Fixed,
    ))
    .await;
    assert_passed(&verdict);
    // A's connect was detached, so A never was in the memo: only B's tool list was fetched.
    let c = verdict.counts;
    assert_eq!((c.spawned, c.live, c.tools_list), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_close_event_deletes_the_new_connection_when_naive() {
    let verdict = run(scenarios::old_connection_events(
        &example_server(),
        Mode::Naive,
    ))
    .await;
    assert!(!verdict.passed, "the naive memo should lose B");
    assert_eq!((verdict.counts.spawned, verdict.counts.live), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_crash_fails_the_call_and_the_next_reconnects() {
    let verdict = run(scenarios::server_crash(&example_server(), Mode::Fixed)).await;
    assert_passed(&verdict);
    let c = verdict.counts;
    assert_eq!(
        (c.spawned, c.initialize, c.tools_list, c.live),
        (2, 2, 2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_share_one_connect_and_one_tools_list() {
    let verdict = run(scenarios::coalescing(&example_server(), Mode::Fixed)).await;
    assert_passed(&verdict);
    let c = verdict.counts;
    assert_eq!((c.spawned, c.initialize, c.tools_list), (1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_is_a_new_key_and_closes_the_old_connection() {
    let verdict = run(scenarios::config_change(&example_server(), Mode::Fixed)).await;
    assert_passed(&verdict);
    assert_eq!((verdict.counts.spawned, verdict.counts.live), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connect_is_not_cached() {
    let verdict = run(scenarios::failed_connect(&example_server(), Mode::Fixed)).await;
    assert_passed(&verdict);
    assert_eq!((verdict.counts.spawned, verdict.counts.live), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_callers_do_not_poison_the_key() {
    let verdict = run(scenarios::cancellation(&example_server(), Mode::Fixed)).await;
    assert_passed(&verdict);
    assert_eq!((verdict.counts.spawned, verdict.counts.initialize), (3, 3));
}
