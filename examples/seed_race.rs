//! The bug this crate grew from, replayed at the memo level, broken and fixed.
//!
//! An MCP client memoized its server connections. `clear_server_cache` awaited the old
//! connection's `cleanup()`; the close handler that `cleanup()` fired reconnected and stored a new
//! connection; then `clear_server_cache` deleted the key, removing the *new* connection and
//! leaking it, still alive ("Already connected to a transport" on the next connect).
//!
//! Run it with `cargo run --example seed_race`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::AsyncMemo;

/// A stand-in for a server connection: counts how many are open.
struct Connection {
    id: usize,
    open: Arc<AtomicUsize>,
}

impl Connection {
    fn open(id: usize, open: &Arc<AtomicUsize>) -> Arc<Connection> {
        open.fetch_add(1, Ordering::SeqCst);
        Arc::new(Connection {
            id,
            open: Arc::clone(open),
        })
    }

    fn close(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

type Connections = AsyncMemo<&'static str, Arc<Connection>>;

/// What the transport's close handler does: forget this connection (by its epoch, as it must)
/// and reconnect at once, storing the new connection.
async fn on_close(
    memo: &Connections,
    closed: &async_memo::Entry<Arc<Connection>>,
    open: &Arc<AtomicUsize>,
) {
    memo.invalidate("server", closed.epoch());
    let open = Arc::clone(open);
    memo.get_or_init("server", move || async move { Connection::open(2, &open) })
        .await;
}

/// Runs the seed's interleaving; `fixed` chooses the late delete. Returns (in the memo, open).
async fn clear_server_cache(fixed: bool) -> (Option<usize>, usize) {
    let memo = Connections::new();
    let open = Arc::new(AtomicUsize::new(0));
    let first = {
        let open = Arc::clone(&open);
        memo.get_or_init("server", move || async move { Connection::open(1, &open) })
            .await
    };

    // cleanup(): closing the transport runs the close handler, which reconnects.
    first.value().close();
    on_close(&memo, &first, &open).await;

    // The late delete of the original clearServerCache.
    if fixed {
        memo.invalidate("server", first.epoch()); // compare-and-delete: a no-op now
    } else {
        memo.remove("server"); // deletes whatever is there: the new connection
    }
    let cached = memo.get("server").map(|entry| entry.value().id);
    (cached, open.load(Ordering::SeqCst))
}

fn main() {
    futures::executor::block_on(async {
        let (cached, open) = clear_server_cache(false).await;
        println!(
            "naive  remove(key):            memo holds {cached:?}, open connections: {open} \
             -> the reconnect is lost and leaks"
        );
        assert_eq!((cached, open), (None, 1));

        let (cached, open) = clear_server_cache(true).await;
        println!(
            "fixed  invalidate(key, epoch): memo holds {cached:?}, open connections: {open} \
             -> the reconnect survives and is reused"
        );
        assert_eq!((cached, open), (Some(2), 1));
    });
}
