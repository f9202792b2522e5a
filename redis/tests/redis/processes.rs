//! Several OS processes against one server: this test binary re-runs itself as children
//! (`child_process` below) that each hold a near memo and obey commands on stdin. The source
//! of truth is a Redis key per memo key (`src:KEY`, a version number), written together with
//! its invalidation by `commit_and_invalidate`.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memo::AsyncMemo;
use async_memo_redis::{NearMemo, Plain, RedisLog, SharedTier};
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use crate::support::RedisServer;

const CHILD: &str = "ASYNC_MEMO_REDIS_CHILD";
/// Set for a child whose near memo has the shared tier (leases of `SHARED_LEASE`), on the
/// namespace `SHARED_NAMESPACE`.
const CHILD_SHARED: &str = "ASYNC_MEMO_REDIS_CHILD_SHARED";
pub(crate) const SHARED_NAMESPACE: &str = "shared-processes";
pub(crate) const SHARED_LEASE: Duration = Duration::from_secs(1);

/// A child process and its command pipe.
pub(crate) struct Child {
    name: &'static str,
    process: tokio::process::Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Child {
    fn spawn(server: &RedisServer, name: &'static str) -> Child {
        Child::start(server, name, false)
    }

    /// A child whose near memo shares values (the shared tier).
    pub(crate) fn spawn_shared(server: &RedisServer, name: &'static str) -> Child {
        Child::start(server, name, true)
    }

    fn start(server: &RedisServer, name: &'static str, shared: bool) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        if shared {
            command.env(CHILD_SHARED, "1");
        }
        let mut process = command
            .args([
                "--exact",
                "processes::child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, server.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a child process");
        let stdin = process.stdin.take().unwrap();
        let stdout = BufReader::new(process.stdout.take().unwrap()).lines();
        Child {
            name,
            process,
            stdin,
            stdout,
        }
    }

    /// SIGKILL: no destructor runs, no lease is given back.
    pub(crate) async fn kill(&mut self) {
        self.process.kill().await.expect("kill the child");
    }

    pub(crate) async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next protocol line (the harness's own lines are skipped). The timeout is a
    /// failure guard only.
    pub(crate) async fn next(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("{} said nothing for 30 s", self.name))
                .unwrap()
                .unwrap_or_else(|| panic!("{} exited", self.name));
            // libtest's "test child_process ... " may precede the first line on the same line.
            if let Some((_, line)) = line.split_once("@ ") {
                return line.to_string();
            }
        }
    }

    pub(crate) async fn ask(&mut self, command: &str) -> String {
        self.send(command).await;
        self.next().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_race_across_processes_never_stores_the_stale_load() {
    let server = server_or_skip!();
    let mut admin = server.connection().await;
    let _: () = admin.set("src:k", 1).await.unwrap();
    let mut a = Child::spawn(&server, "A");
    let mut b = Child::spawn(&server, "B");
    assert_eq!(a.ask("ready").await, "ready");
    assert_eq!(b.ask("ready").await, "ready");

    assert_eq!(
        a.ask("load k").await,
        "started k 1",
        "A's load read version 1 and waits"
    );
    assert_eq!(b.ask("write k").await, "written k 2");
    assert_eq!(
        a.ask("applied 1").await,
        "applied 1",
        "A applied B's invalidation mid-load"
    );
    assert_eq!(
        a.ask("release k").await,
        "loaded k 1 stored=false",
        "returned, never stored"
    );
    assert_eq!(a.ask("get k").await, "value k 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_sees_every_write() {
    let server = server_or_skip!();
    let mut readers = Vec::new();
    for name in ["R1", "R2", "R3"] {
        readers.push(Child::spawn(&server, name));
    }
    let mut writer = Child::spawn(&server, "W");
    assert_eq!(writer.ask("ready").await, "ready");
    for r in &mut readers {
        assert_eq!(r.ask("ready").await, "ready");
        assert_eq!(r.ask("get k").await, "value k 0");
    }
    for round in 1..=3 {
        assert_eq!(writer.ask("write k").await, format!("written k {round}"));
        for r in &mut readers {
            assert_eq!(
                r.ask(&format!("applied {round}")).await,
                format!("applied {round}")
            );
            assert_eq!(r.ask("get k").await, format!("value k {round}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_joins_late_reads_the_latest_and_follows() {
    let server = server_or_skip!();
    let mut writer = Child::spawn(&server, "W");
    assert_eq!(writer.ask("ready").await, "ready");
    for round in 1..=5 {
        assert_eq!(writer.ask("write k").await, format!("written k {round}"));
    }
    let mut late = Child::spawn(&server, "L");
    assert_eq!(late.ask("ready").await, "ready");
    assert_eq!(late.ask("get k").await, "value k 5");
    assert_eq!(writer.ask("write k").await, "written k 6");
    assert_eq!(
        late.ask("applied 1").await,
        "applied 1",
        "only the record after it joined"
    );
    assert_eq!(late.ask("get k").await, "value k 6");
}

/// Writes one protocol line to the parent, past libtest's capture.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("@ {line}\n").as_bytes()).unwrap();
    out.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child processes' entry point, started by the tests above"]
async fn child_process() {
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let client = redis::Client::open(url.as_str()).unwrap();
    let shared = std::env::var_os(CHILD_SHARED).is_some();
    let namespace = if shared {
        SHARED_NAMESPACE
    } else {
        "processes"
    };
    let mut builder = NearMemo::builder(RedisLog::open(url.as_str(), namespace).unwrap());
    if shared {
        builder = builder.shared(SharedTier::new(Plain).lease_ttl(SHARED_LEASE));
    }
    let near: NearMemo<String, u64> = builder.start(AsyncMemo::new()).await.unwrap();
    let gates: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>> = Arc::default();
    let source = |key: &str| {
        let client = client.clone();
        let key = format!("src:{key}");
        async move {
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let version: Option<u64> = c.get(&key).await.unwrap();
            version.unwrap_or(0)
        }
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let (command, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let key = arg.to_string();
        match command {
            "ready" => say("ready"),
            "load" => {
                let (open, gate) = oneshot::channel();
                gates.lock().unwrap().insert(key.clone(), open);
                let (near, load) = (near.clone(), source(&key));
                tokio::spawn(async move {
                    let k = key.clone();
                    let entry = near
                        .memo()
                        .get_or_init(key.clone(), move || async move {
                            let version = load.await;
                            say(&format!("started {k} {version}"));
                            gate.await.unwrap();
                            version
                        })
                        .await;
                    let stored = near.memo().get(&key).map(|e| e.epoch()) == Some(entry.epoch());
                    say(&format!("loaded {key} {} stored={stored}", entry.value()));
                });
            }
            "release" => {
                let open = gates
                    .lock()
                    .unwrap()
                    .remove(&key)
                    .expect("a load to release");
                open.send(()).unwrap();
            }
            "get" => {
                let value = near.get_or_init(key.clone(), || source(&key)).await;
                say(&format!("value {key} {value}"));
            }
            "counted" => {
                // Counts each source load in Redis (`loads:KEY`), then waits for the parent's
                // word (`LPUSH gate:KEY`): the parent releases the holder once every other
                // process waits for its lease. Errors are said, never unwrapped: the parent
                // fails on them with a message instead of at its timeout.
                let (near, client, load) = (near.clone(), client.clone(), source(&key));
                tokio::spawn(async move {
                    let k = key.clone();
                    let value = near
                        .get_or_try_init(key.clone(), move || async move {
                            let mut c = client.get_multiplexed_async_connection().await?;
                            let _: u64 = c.incr(format!("loads:{k}"), 1).await?;
                            let mut gate = client.get_multiplexed_async_connection().await?;
                            let _: Option<(String, String)> =
                                gate.blpop(format!("gate:{k}"), 30.0).await?;
                            Ok::<_, redis::RedisError>(load.await)
                        })
                        .await;
                    match value {
                        Ok(value) => say(&format!("value {key} {value}")),
                        Err(e) => say(&format!("error {key} {e}")),
                    }
                });
            }
            "waits" => {
                let waits = near.shared_stats().map_or(0, |s| s.waits);
                say(&format!("waits {waits}"));
            }
            "hold" => {
                // Takes the lease and never finishes: the parent kills this process.
                let near = near.clone();
                tokio::spawn(async move {
                    let k = key.clone();
                    near.get_or_init(key, move || async move {
                        say(&format!("holding {k}"));
                        std::future::pending::<u64>().await
                    })
                    .await;
                });
            }
            "write" => {
                let mut writes = redis::pipe();
                writes.incr(format!("src:{key}"), 1);
                let (replies, _) = near.commit_and_invalidate(&writes, &key).await.unwrap();
                let version: u64 = redis::from_redis_value(replies[0].clone()).unwrap();
                say(&format!("written {key} {version}"));
            }
            "applied" => {
                let n: u64 = arg.parse().unwrap();
                crate::support::until("records applied", || near.stats().applied >= n).await;
                say(&format!("applied {n}"));
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}
