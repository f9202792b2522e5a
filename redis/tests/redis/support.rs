//! Real `redis-server` processes for the tests, and helpers to wait on conditions.
//!
//! Each test starts its own server: a temporary folder, a unix socket in it, no persistence
//! (`--save "" --appendonly no`), small stream nodes so that `MAXLEN ~` trims small streams.
//! The server is killed (and the folder removed) when the handle is dropped. Without
//! `redis-server` on the PATH the tests skip, with one line on stderr saying so, unless
//! `ASYNC_MEMO_REQUIRE_REDIS=1` (set by `.ci/run`) turns the skip into a failure.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A test's own `redis-server`.
pub struct RedisServer {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

const BINARY: &str = "redis-server";

/// The server, or `None` (after saying so once) if `redis-server` is not installed.
pub fn server() -> Option<RedisServer> {
    let installed = Command::new(BINARY)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        if std::env::var_os("ASYNC_MEMO_REQUIRE_REDIS").is_some_and(|v| v == "1") {
            panic!("ASYNC_MEMO_REQUIRE_REDIS=1 but `{BINARY}` is not on the PATH");
        }
        static SAY: Once = Once::new();
        SAY.call_once(|| {
            // Straight to stderr: libtest captures only the print macros, and a skip must be seen.
            let _ = std::io::stderr().write_all(
                b"async-memo-redis: SKIPPED the Redis tests (tests/redis: they pass without checking \
                  anything): `redis-server` is not on the PATH. Install it (`apt-get install \
                  redis-server`) and rerun; ASYNC_MEMO_REQUIRE_REDIS=1 makes this a failure.\n",
            );
        });
        return None;
    }
    Some(RedisServer::start())
}

/// `let server = server_or_skip!();` at the top of each test.
macro_rules! server_or_skip {
    () => {
        match $crate::support::server() {
            Some(server) => server,
            None => return,
        }
    };
}

impl RedisServer {
    fn start() -> RedisServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("async-memo-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the server's folder");
        let socket = dir.join("redis.sock");
        let mut server = RedisServer {
            dir,
            socket,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::File::create(self.dir.join("redis.log")).expect("create the log");
        let child = Command::new(BINARY)
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&self.dir)
            .args(["--stream-node-max-entries", "4", "--daemonize", "no"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // A failure guard only: the server answers PING in milliseconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING; see {:?}",
                self.dir
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// `redis+unix:///…/redis.sock`
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Kills the server at once (SIGKILL: no save, no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new one on the same socket, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A fresh async connection.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `condition` holds. The timeout is a failure guard, never part of the test:
/// conditions here turn true within milliseconds.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
