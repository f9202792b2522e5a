//! A local hit through a `NearMemo`, with and without the shared tier, beside the plain
//! `AsyncMemo` hit (issue 20's target: a local hit exactly as fast as without the tier).
//!
//! `cargo bench -p async-memo-redis --bench hits`. Starts its own `redis-server` (unix socket in
//! a temporary folder); without one on the PATH it says so and measures nothing.

use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_memo::AsyncMemo;
use async_memo_redis::{NearMemo, Plain, RedisLog, SharedTier};
use criterion::{Criterion, criterion_group, criterion_main};

const KEYS: u64 = 1_000;

/// A throwaway server, killed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn start() -> Option<Server> {
        let dir = std::env::temp_dir().join(format!("async-memo-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(dir.join("redis.sock"))
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(server.socket()).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(server)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls a future that a hit makes ready at once.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a hit was not ready at once"),
    }
}

fn hits(c: &mut Criterion) {
    let Some(server) = Server::start() else {
        eprintln!("hits: no redis-server could be started; nothing measured");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let near = |ns: &str, shared: bool| {
        let log = RedisLog::open(server.url(), ns).expect("the server's URL");
        let builder = NearMemo::<u64, u64>::builder(log);
        let builder = if shared {
            builder.shared(SharedTier::new(Plain))
        } else {
            builder
        };
        runtime
            .block_on(builder.start(AsyncMemo::new()))
            .expect("the bench's own server answers")
    };
    let plain: AsyncMemo<u64, u64> = AsyncMemo::new();
    let (without, with) = (near("bench-plain", false), near("bench-shared", true));
    runtime.block_on(async {
        for k in 0..KEYS {
            plain.get_or_init(k, || async move { k }).await;
            without.get_or_init(k, || async move { k }).await;
            with.get_or_init(k, || async move { k }).await;
        }
    });
    eprintln!(
        "future sizes: AsyncMemo {} B, NearMemo {} B, NearMemo with the tier {} B",
        std::mem::size_of_val(&plain.get_or_init(0, || async { 0 })),
        std::mem::size_of_val(&without.get_or_init(0, || async { 0 })),
        std::mem::size_of_val(&with.get_or_init(0, || async { 0 })),
    );
    let mut group = c.benchmark_group("local hit, 1K keys");
    let mut k = 0;
    let mut next = move || {
        k = (k + 617) % KEYS;
        k
    };
    group.bench_function("AsyncMemo::get_or_init", |b| {
        b.iter(|| now(plain.get_or_init(black_box(next()), || async { 0 })))
    });
    group.bench_function("NearMemo::get_or_init", |b| {
        b.iter(|| now(without.get_or_init(black_box(next()), || async { 0 })))
    });
    group.bench_function("NearMemo::get_or_init, shared tier", |b| {
        b.iter(|| now(with.get_or_init(black_box(next()), || async { 0 })))
    });
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
