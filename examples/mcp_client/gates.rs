//! Gates: how a scenario holds the example server at a chosen point, without sleeps.
//!
//! The scenario side (the *director*) listens on a Unix socket whose path it hands to the server
//! in [`GATES_ENV`]. At each checkpoint (`startup`, `initialize`, `tools/list`) the server connects,
//! says which gate it reached, and waits for one word back: `go` or `exit`. A gate nobody holds is
//! answered `go` at once. A held gate is handed to the scenario as an [`Arrival`]: the scenario now
//! *knows* the server is parked there, does what it wants to race against it, then releases it.
//!
//! Without [`GATES_ENV`] (a user's own server, or `--serve` by hand) checkpoints cost nothing.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

/// The environment variable that tells the example server where the director listens.
pub const GATES_ENV: &str = "ASYNC_MEMO_MCP_GATES";

/// Before the server reads anything from stdin.
pub const STARTUP: &str = "startup";
/// Inside the server's `initialize` handler, before it answers.
pub const INITIALIZE: &str = "initialize";
/// Inside the server's `tools/list` handler, after it took its snapshot of the tool set.
pub const TOOLS_LIST: &str = "tools/list";

/// Server side: stops at `gate` until the director says `go` (or exits if it says `exit`).
pub async fn checkpoint(gate: &str) {
    let Some(path) = std::env::var_os(GATES_ENV) else {
        return;
    };
    let mut stream = UnixStream::connect(&path)
        .await
        .unwrap_or_else(|e| panic!("gates: cannot reach the director at {path:?}: {e}"));
    let hello = format!("{gate} {}\n", std::process::id());
    stream
        .write_all(hello.as_bytes())
        .await
        .expect("gates: say hello");
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .expect("gates: read the answer");
    if answer.trim() == "exit" {
        // Told to behave like a server command that dies at once.
        std::process::exit(3);
    }
}

/// The director: decides, per gate, whether an arriving server passes, waits or exits.
pub struct Gates {
    path: PathBuf,
    rules: Arc<Mutex<Rules>>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Rules {
    holds: HashMap<String, VecDeque<oneshot::Sender<Arrival>>>,
    exits: HashMap<String, usize>,
}

/// A server parked at a gate. Dropping it without [`release`](Arrival::release) lets the server
/// read EOF, which it treats like `go`.
pub struct Arrival {
    /// The pid of the server process that arrived.
    pub pid: u32,
    stream: UnixStream,
}

impl Arrival {
    /// Lets the server go on.
    pub async fn release(mut self) {
        // The server may be gone already (killed while parked): nothing to release then.
        let _ = self.stream.write_all(b"go\n").await;
    }

    /// Resolves once the parked server process has died (its end of the socket closed).
    pub async fn gone(mut self) {
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest).await;
    }
}

impl Gates {
    /// Starts a director on a fresh socket in the temp dir.
    pub fn new() -> std::io::Result<Gates> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("async-memo-mcp-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let rules = Arc::new(Mutex::new(Rules::default()));
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&rules)));
        Ok(Gates {
            path,
            rules,
            accept,
        })
    }

    /// The value of [`GATES_ENV`] for the servers of this director.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Holds the next server that reaches `gate`; resolves when one has arrived.
    pub fn hold(&self, gate: &str) -> impl Future<Output = Arrival> + use<> {
        let (tx, rx) = oneshot::channel();
        let mut rules = self.rules.lock().unwrap();
        rules
            .holds
            .entry(gate.to_owned())
            .or_default()
            .push_back(tx);
        async move { rx.await.expect("gates: the director stopped") }
    }

    /// Tells the next server that reaches `gate` to exit at once.
    pub fn exit_next(&self, gate: &str) {
        *self
            .rules
            .lock()
            .unwrap()
            .exits
            .entry(gate.to_owned())
            .or_default() += 1;
    }
}

impl Drop for Gates {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, rules: Arc<Mutex<Rules>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(arrive(stream, Arc::clone(&rules)));
    }
}

async fn arrive(stream: UnixStream, rules: Arc<Mutex<Rules>>) {
    let mut reader = BufReader::new(stream);
    let mut hello = String::new();
    if reader.read_line(&mut hello).await.is_err() {
        return;
    }
    // The server writes one line and waits, so the reader has buffered nothing more.
    let mut stream = reader.into_inner();
    let mut words = hello.split_whitespace();
    let gate = words.next().unwrap_or_default().to_owned();
    let pid = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let answer = {
        let mut rules = rules.lock().unwrap();
        let held = rules.holds.get_mut(&gate).and_then(VecDeque::pop_front);
        if let Some(holder) = held {
            // The holder owns the stream now; if it is gone, the server reads EOF and goes on.
            let _ = holder.send(Arrival { pid, stream });
            return;
        }
        match rules.exits.get_mut(&gate) {
            Some(n) if *n > 0 => {
                *n -= 1;
                "exit\n"
            }
            _ => "go\n",
        }
    };
    let _ = stream.write_all(answer.as_bytes()).await;
}
