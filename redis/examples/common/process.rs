//! The channel between a demo's coordinator and its reader processes (included with
//! `#[path]` by `near_cache` and `shared_tier`): the program re-run with reader arguments,
//! talked to over its stdin (`STOP [end-marker-id]`) and stdout (`READY`, then a report). The
//! channel does not go through Redis, so a restart of the server leaves it alone; a reader
//! that dies or falls silent is an error with a message, never a panic.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use async_memo_redis::LogId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// How long a reader may take to say READY, or its report after STOP (which includes up to
/// 10 s of waiting for the writer's last record).
pub(crate) const PROCESS_PATIENCE: Duration = Duration::from_secs(30);

/// A reader process and its control channel.
pub(crate) struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Process {
    /// Starts this program with `args` and waits until it says `READY` (it has recorded the
    /// log's end: no write of the writer is before it). It is killed when dropped.
    pub(crate) async fn spawn(args: &[String]) -> Result<Process, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("started without pipes".into());
        };
        let mut lines = BufReader::new(stdout).lines();
        match tokio::time::timeout(PROCESS_PATIENCE, lines.next_line()).await {
            Ok(Ok(Some(line))) if line == "READY" => Ok(Process {
                child,
                stdin,
                lines,
            }),
            Ok(Ok(Some(line))) => Err(format!("said {line:?} instead of READY")),
            Ok(Ok(None)) => Err("exited before it was ready (its message is above)".into()),
            Ok(Err(e)) => Err(format!("cannot read its output: {e}")),
            Err(_) => Err(format!("not ready after {PROCESS_PATIENCE:?}")),
        }
    }

    /// Sends one line.
    pub(crate) async fn send(&mut self, line: &str) -> Result<(), String> {
        let line = format!("{line}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot be told to stop: {e}"))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| format!("cannot be told to stop: {e}"))
    }

    /// The first line `parse` accepts (other lines are skipped).
    pub(crate) async fn receive<T>(
        &mut self,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, String> {
        let lines = &mut self.lines;
        let receive = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(report) = parse(&line) {
                            return Ok(report);
                        }
                    }
                    Ok(None) => return Err("exited without a report (its message is above)".into()),
                    Err(e) => return Err(format!("cannot read its report: {e}")),
                }
            }
        };
        tokio::time::timeout(PROCESS_PATIENCE, receive)
            .await
            .unwrap_or_else(|_| Err(format!("no report after {PROCESS_PATIENCE:?}")))
    }

    /// Waits (a while) for the process to exit.
    pub(crate) async fn wait(mut self) {
        let _ = tokio::time::timeout(PROCESS_PATIENCE, self.child.wait()).await;
    }
}

/// The reader's side: waits for `STOP [id]` on stdin: `Some(marker)`, or `None` when stdin
/// closed (or broke) first.
pub(crate) async fn wait_for_stop() -> Option<Option<LogId>> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("STOP") {
            return Some(rest.trim().parse().ok());
        }
    }
    None
}

/// The reader's side: a line to the coordinator. An error means the coordinator is gone.
pub(crate) fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Milliseconds since the Unix epoch, to name a run's namespace.
pub(crate) fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
