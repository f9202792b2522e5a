//! The seed bug, `clearServerCache` (anthropics/claude-code#48260), made deterministic at the
//! memo level (semantics 3: compare-and-delete; a stale epoch changes nothing).
//!
//! The seed's interleaving: `clearServerCache` [1] gets the cached connection, [2] closes it; the
//! close runs the transport's `onclose`, which deletes the connection's own cache entry and
//! reconnects, storing a replacement [3]; back in `clearServerCache`, [4] an unconditional
//! `cache.delete(key)` clobbers the replacement. The app still holds the replacement, the cache
//! does not, so the next connect opens a second live connection ("Already connected to a
//! transport").
//!
//! Here a "connection" counts itself live from connect to close (or `Drop`). The close hook runs
//! inside the clear, like `onclose`: it removes its own entry by epoch and stores a replacement.
//! These tests show that the unconditional `remove` at [4] clobbers the replacement, and that
//! `invalidate(key, observed)` leaves exactly one live connection: the replacement.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_memo::{AsyncMemo, Entry};
use futures::executor::block_on;

const KEY: &str = "mcp-server";

/// A connection to the server: live from `open` until `close` (or drop).
struct Connection {
    id: usize,
    closed: AtomicBool,
    live: Arc<AtomicUsize>,
}

impl Connection {
    /// Closes the transport; returns whether it was open.
    fn close(&self) -> bool {
        let was_open = !self.closed.swap(true, Ordering::SeqCst);
        if was_open {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
        was_open
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// The app: the memoized `connectToServer`, and the connection state its reconnect logic holds
/// (`useManageMCPConnections`).
struct App {
    memo: AsyncMemo<&'static str, Arc<Connection>>,
    live: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    reconnected: Mutex<Option<Arc<Connection>>>,
}

impl App {
    fn new() -> Self {
        App {
            memo: AsyncMemo::new(),
            live: Arc::new(AtomicUsize::new(0)),
            opened: Arc::new(AtomicUsize::new(0)),
            reconnected: Mutex::new(None),
        }
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The memoized `connectToServer`: a cache miss opens a new connection.
    async fn connect(&self) -> Entry<Arc<Connection>> {
        let live = Arc::clone(&self.live);
        let opened = Arc::clone(&self.opened);
        self.memo
            .get_or_init(KEY, move || async move {
                let id = opened.fetch_add(1, Ordering::SeqCst) + 1;
                live.fetch_add(1, Ordering::SeqCst);
                Arc::new(Connection {
                    id,
                    closed: AtomicBool::new(false),
                    live,
                })
            })
            .await
    }

    /// `cleanup()`: closes the transport, which runs `onclose` right there.
    async fn cleanup(&self, connection: &Entry<Arc<Connection>>) {
        assert!(connection.value().close());
        self.on_close(connection).await;
    }

    /// `onclose`: delete the connection's own entry (by its epoch), then reconnect [3].
    async fn on_close(&self, connection: &Entry<Arc<Connection>>) {
        self.memo.invalidate(KEY, connection.epoch());
        let replacement = self.connect().await;
        *self.reconnected.lock().unwrap() = Some(replacement.into_value());
    }

    fn replacement(&self) -> Arc<Connection> {
        let held = self.reconnected.lock().unwrap();
        Arc::clone(held.as_ref().expect("onclose reconnected"))
    }

    /// `clearServerCache` as in the seed: [1] get, [2] cleanup, [4] unconditional delete.
    async fn clear_server_cache_seed(&self) {
        let connection = self.connect().await;
        self.cleanup(&connection).await;
        self.memo.remove(KEY);
    }

    /// `clearServerCache` with compare-and-delete: [4] removes only the entry observed at [1].
    async fn clear_server_cache_fixed(&self) -> bool {
        let connection = self.connect().await;
        let observed = connection.epoch();
        self.cleanup(&connection).await;
        self.memo.invalidate(KEY, observed)
    }

    /// The seed's suggested fix, in memo terms: delete first (by epoch), then clean up.
    async fn clear_server_cache_delete_first(&self) -> bool {
        let Some(connection) = self.memo.get(KEY) else {
            return false;
        };
        let deleted = self.memo.invalidate(KEY, connection.epoch());
        self.cleanup(&connection).await;
        deleted
    }
}

#[test]
fn unconditional_remove_after_close_clobbers_the_replacement() {
    let app = App::new();
    block_on(async {
        let first = app.connect().await;
        assert_eq!((first.value().id, app.live()), (1, 1));
        drop(first);

        app.clear_server_cache_seed().await;

        let replacement = app.replacement();
        assert_eq!(replacement.id, 2, "onclose reconnected");
        assert_eq!(app.live(), 1, "the replacement is live, held by the app");
        assert!(
            app.memo.get(KEY).is_none(),
            "the unconditional remove deleted the replacement's entry"
        );

        // The next connect misses and opens a second live connection next to the replacement:
        // "Already connected to a transport".
        let next = app.connect().await;
        assert_eq!(next.value().id, 3);
        assert!(!Arc::ptr_eq(next.value(), &replacement));
        assert_eq!(app.live(), 2, "the seed bug: two live connections");
    });
}

#[test]
fn invalidate_with_observed_epoch_leaves_exactly_the_replacement() {
    let app = App::new();
    block_on(async {
        drop(app.connect().await);

        let deleted = app.clear_server_cache_fixed().await;
        assert!(
            !deleted,
            "the observed entry was already gone: a stale epoch"
        );

        let replacement = app.replacement();
        let cached = app
            .memo
            .get(KEY)
            .expect("the replacement survived the clear");
        assert!(Arc::ptr_eq(cached.value(), &replacement));
        assert_eq!(app.live(), 1, "exactly one live connection");

        // The next connect hits the replacement: no new connection.
        let next = app.connect().await;
        assert!(Arc::ptr_eq(next.value(), &replacement));
        assert_eq!(app.opened.load(Ordering::SeqCst), 2);
        assert_eq!(
            app.live(),
            1,
            "still exactly one live connection, the replacement"
        );
    });
    let live = Arc::clone(&app.live);
    drop(app);
    assert_eq!(live.load(Ordering::SeqCst), 0, "nothing leaked");
}

#[test]
fn delete_first_then_close_also_keeps_the_replacement() {
    let app = App::new();
    block_on(async {
        drop(app.connect().await);
        assert!(app.clear_server_cache_delete_first().await);
        let replacement = app.replacement();
        assert_eq!(replacement.id, 2);
        let cached = app.memo.get(KEY).expect("the replacement is cached");
        assert!(Arc::ptr_eq(cached.value(), &replacement));
        assert_eq!(app.live(), 1);
    });
}

#[test]
fn clearing_twice_with_invalidate_keeps_one_live_connection() {
    let app = App::new();
    block_on(async {
        for round in 0..3 {
            app.clear_server_cache_fixed().await;
            assert_eq!(app.live(), 1, "round {round}");
            let cached = app.memo.get(KEY).expect("a connection is cached");
            assert!(Arc::ptr_eq(cached.value(), &app.replacement()));
        }
        // Each clear closed one connection and opened one replacement, plus the first connect.
        assert_eq!(app.opened.load(Ordering::SeqCst), 4);
    });
}
