//! The auto traits of every public type and of every returned future (no server needed: these
//! are compile-time checks, run by merely compiling this file).

use std::future::Future;

use async_memo_redis::{
    Applied, Cursor, GapCause, Invalidation, LogId, LogStats, NearMemo, NearMemoBuilder, Outgoing,
    Plain, Read, Record, RedisLog, Reset, Transport, WhenDisconnected,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<NearMemo<String, u64>>();
    send_sync::<NearMemo<String, u64, RedisLog, Plain, std::hash::RandomState>>();
    send_sync::<NearMemoBuilder<String, u64, RedisLog>>();
    send_sync::<RedisLog>();
    send_sync::<(
        Cursor,
        LogId,
        LogStats,
        GapCause,
        Invalidation,
        Outgoing,
        Read,
        Record,
        Reset,
    )>();
    send_sync::<(Plain, WhenDisconnected, Applied<'static, String>)>();
}

#[allow(dead_code, clippy::manual_async_fn)]
fn returned_futures_are_send(
    near: NearMemo<String, u64>,
    log: RedisLog,
    cursor: Cursor,
    record: Outgoing,
) {
    let key = String::new();
    send(&near.get_or_init(key.clone(), || async { 1 }));
    send(&near.get_or_try_init(key.clone(), || async { Ok::<u64, std::io::Error>(1) }));
    send(&near.invalidate(&key));
    send(&near.invalidate_all());
    send(&near.commit_and_invalidate(&redis::pipe(), &key));
    send(&log.publish(&record));
    send(&log.tail());
    send(&log.read(&cursor, 1));
    send(&log.publish_with(&redis::pipe(), &record));
    fn start_is_send(builder: NearMemoBuilder<String, u64, RedisLog>) -> impl Future + Send {
        builder.start(async_memo::AsyncMemo::new())
    }
    let _ = start_is_send;
}
