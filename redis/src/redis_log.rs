//! The Redis implementation of [`Transport`]: one stream per namespace.
//!
//! Publishing is one `XADD … MAXLEN ~ N`; for a namespace that shares values
//! ([`RedisLog::with_shared_tier`]), one Lua script (`lua/publish.lua`) that also deletes the
//! invalidated key's shared value and lease, or bumps the generation (`scripts.rs`).
//! Reading is one Lua script (`lua/read.lua`) that returns
//! the records after the cursor together with the stream's own description (`entries-added`,
//! `length`, `last-generated-id`, whether the cursor's record is present) and the server's
//! `run_id`, all seen at one instant, so the gap check (`gap.rs`) never compares numbers from
//! two moments. When there is nothing new, the reader parks in `XREAD BLOCK` on its own
//! connection and reads again when it returns (a record arrived, or the block timed out —
//! which bounds how long a stream deleted under a connected reader goes unnoticed).
//!
//! Connections are made lazily and dropped on any error; the next call reconnects
//! (`conn.rs`). The reader's cursor, not the connection, carries the state, and the first read
//! on a new connection runs the gap check like every other.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Client, IntoConnectionInfo, RedisError, RedisResult, Value};

use crate::conn::LazyConnection;
use crate::gap::{self, Batch, StreamState};
use crate::scripts::{Call, Namespace, SCRIPTS};
use crate::{Cursor, Invalidation, LogId, Outgoing, Read, Record, Transport};

const FIELD_KEY: &str = "k";
const FIELD_ALL: &str = "all";
const FIELD_WAKE: &str = "w";
const FIELD_ORIGIN: &str = "o";
const FIELD_TIME: &str = "t";

/// An invalidation log in a Redis Stream, the [`Transport`] of
/// [`NearMemo`](crate::NearMemo). Needs Redis 7.0 or later.
///
/// The stream's key is `async-memo:{namespace}:log` (or any key, with
/// [`from_client`](Self::from_client)); every process of one namespace must use the same key
/// and the same [`KeyCodec`](crate::KeyCodec). The stream is capped with `MAXLEN ~`
/// ([`max_len`](Self::max_len), default 100,000 records): a reader that falls further behind
/// than that sees a gap and invalidates its whole memo.
///
/// Sentinel and Cluster: the log is one key, so it lives on one shard; connect the client to
/// the primary that holds it. A [shared tier](crate::SharedTier) needs one server (or one
/// primary) for the whole namespace: its scripts name keys outside the log's slot. A failover changes the server's `run_id`, which every reader
/// treats as a gap (one flush), because a promoted replica may lack the log's tail.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use async_memo_redis::RedisLog;
///
/// # fn f() -> Result<(), redis::RedisError> {
/// let log = RedisLog::open("redis://127.0.0.1/", "users")?
///     .max_len(10_000)
///     .block(Duration::from_millis(500));
/// assert_eq!(log.stream_key(), "async-memo:users:log");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisLog {
    client: Client,
    namespace: Namespace,
    block: Duration,
    publisher: LazyConnection,
    reader: LazyConnection,
    script: redis::Script,
    shared_tier: bool,
}

impl RedisLog {
    /// The log of `namespace` on the server at `url` (`redis://host:port/db`,
    /// `redis+unix:///path/to/socket`, …). Nothing is connected until the first call.
    ///
    /// # Errors
    ///
    /// The URL does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// let log = async_memo_redis::RedisLog::open("redis://127.0.0.1:6379/", "tokens")?;
    /// assert_eq!(log.stream_key(), "async-memo:tokens:log");
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn open(url: impl IntoConnectionInfo, namespace: &str) -> RedisResult<RedisLog> {
        Ok(RedisLog::from_client(
            Client::open(url)?,
            format!("async-memo:{namespace}:log"),
        ))
    }

    /// The log in the stream `stream_key`, through `client`.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let log = async_memo_redis::RedisLog::from_client(client, "my-stream".into());
    /// assert_eq!(log.stream_key(), "my-stream");
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn from_client(client: Client, stream_key: String) -> RedisLog {
        let block = Duration::from_secs(1);
        RedisLog {
            client,
            namespace: Namespace::new(stream_key, 100_000),
            block,
            publisher: LazyConnection::new(None),
            reader: LazyConnection::new(Some(read_timeout(block))),
            script: redis::Script::new(include_str!("lua/read.lua")),
            shared_tier: false,
        }
    }

    /// Caps the stream near `records` (`XADD … MAXLEN ~ records`; Redis trims whole nodes, so
    /// it may keep somewhat more). A reader further behind than this sees a gap.
    ///
    /// # Panics
    ///
    /// If `records` is 0: every record would be trimmed at once and every reader would flush
    /// at every read.
    ///
    /// # Examples
    ///
    /// ```
    /// let log = async_memo_redis::RedisLog::open("redis://127.0.0.1/", "ns")?.max_len(1_000);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn max_len(mut self, records: u64) -> RedisLog {
        assert!(
            records > 0,
            "RedisLog::max_len(0) would trim every record at once"
        );
        self.namespace.set_max_len(records);
        self
    }

    /// How long one `XREAD BLOCK` waits for a record (default 1 s, rounded to whole
    /// milliseconds, at least 1). It bounds how long a stream deleted under a connected reader
    /// goes unnoticed, and, plus 2 s (the reader connection's response timeout), how long a
    /// silent network partition goes unnoticed. Records themselves arrive as soon as they are
    /// appended.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let log = async_memo_redis::RedisLog::open("redis://127.0.0.1/", "ns")?
    ///     .block(Duration::from_millis(200));
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn block(mut self, wait: Duration) -> RedisLog {
        self.block = wait.clamp(Duration::from_millis(1), Duration::from_secs(24 * 3600));
        self.reader = LazyConnection::new(Some(read_timeout(self.block)));
        self
    }

    /// Publishes through the [shared tier](crate::SharedTier)'s script: every invalidation
    /// also deletes its key's shared value and revokes its lease (`invalidate_all` bumps the
    /// namespace's generation), in the same atomic step that appends the record.
    /// [`NearMemoBuilder::shared`](crate::NearMemoBuilder::shared) turns it on; a process that
    /// publishes into a namespace whose values are shared, but without a shared tier of its
    /// own (a writer that never reads, say), must turn it on here, or its invalidations leave
    /// the shared values in place.
    ///
    /// The script names keys outside the stream's hash slot, so it runs on one server (or one
    /// primary), not across a Cluster's slots; without it, publishing is a plain `XADD`.
    ///
    /// # Examples
    ///
    /// ```
    /// let log = async_memo_redis::RedisLog::open("redis://127.0.0.1/", "prices")?.with_shared_tier();
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn with_shared_tier(mut self) -> RedisLog {
        self.set_shared_tier();
        self
    }

    /// The stream's key.
    ///
    /// # Examples
    ///
    /// ```
    /// let log = async_memo_redis::RedisLog::open("redis://127.0.0.1/", "ns")?;
    /// assert_eq!(log.stream_key(), "async-memo:ns:log");
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn stream_key(&self) -> &str {
        self.namespace.stream()
    }

    /// The client, for the source-of-truth writes of
    /// [`NearMemo::commit_and_invalidate`](crate::NearMemo::commit_and_invalidate).
    ///
    /// # Examples
    ///
    /// ```
    /// let log = async_memo_redis::RedisLog::open("redis://127.0.0.1/", "ns")?;
    /// let _client: &redis::Client = log.client();
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `writes` and appends `record` in one `MULTI`/`EXEC`: either both happen or
    /// neither does. Returns the replies of `writes` and the record's id.
    ///
    /// # Errors
    ///
    /// The connection failed (then it is unknown whether the transaction ran), or the server
    /// refused a command.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may or may not have run the transaction.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use async_memo_redis::{Invalidation, Outgoing, RedisLog};
    /// # async fn f(log: RedisLog) -> redis::RedisResult<()> {
    /// let mut writes = redis::pipe();
    /// writes.hset("users", "7", "Ada");
    /// let record = Outgoing { invalidation: Invalidation::Key(b"7".to_vec()), origin: 1, published_us: 0 };
    /// let (_replies, id) = log.publish_with(&writes, &record).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_with(
        &self,
        writes: &redis::Pipeline,
        record: &Outgoing,
    ) -> RedisResult<(Vec<Value>, LogId)> {
        let mut pipe = writes.clone();
        pipe.atomic()
            .add_command(self.publish_call(record).eval_publish());
        let mut connection = self.publisher.get(&self.client).await?;
        let replies: RedisResult<Vec<Value>> = pipe.query_async(&mut connection).await;
        let mut replies = self.publisher.forget_on_error(replies)?;
        let id = replies.pop().map(redis::from_redis_value::<String>);
        match id {
            Some(Ok(id)) => Ok((replies, parse_id(&id)?)),
            Some(Err(e)) => Err(e.into()),
            None => Err(protocol("the transaction returned no reply for XADD")),
        }
    }

    fn xadd(&self, record: &Outgoing) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.namespace.stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.namespace.max_len())
            .arg("*");
        match &record.invalidation {
            Invalidation::Key(bytes) => cmd.arg(FIELD_KEY).arg(bytes.as_slice()),
            // Not an invalidation: appended by the shared tier's scripts only. Published by
            // hand, it is widened to what every reader can safely apply.
            Invalidation::All | Invalidation::Wake(_) => cmd.arg(FIELD_ALL).arg(1),
        };
        cmd.arg(FIELD_ORIGIN)
            .arg(record.origin)
            .arg(FIELD_TIME)
            .arg(record.published_us);
        cmd
    }

    /// The publish script's call for `record`: deletes the shared tier's keys of the key it
    /// invalidates (or bumps the generation, for all) and appends it, atomically.
    fn publish_call(&self, record: &Outgoing) -> Call<'_> {
        let mut call = self.namespace.call(record.origin, record.published_us);
        match &record.invalidation {
            Invalidation::Key(bytes) => call.arg("k").arg(bytes.as_slice()),
            Invalidation::All => call.arg("all"),
            // Not an invalidation: published by the shared tier's scripts only. Published by
            // hand, it is widened to what every reader can safely apply.
            Invalidation::Wake(_) => call.arg("all"),
        };
        call
    }

    pub(crate) fn set_shared_tier(&mut self) {
        self.shared_tier = true;
    }

    pub(crate) fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// One run of the read script.
    async fn snapshot(
        &self,
        connection: &mut MultiplexedConnection,
        from: &Cursor,
        max: usize,
    ) -> RedisResult<Snapshot> {
        let reply: Value = self
            .script
            .key(self.namespace.stream())
            .arg(from.id().to_string())
            .arg(max)
            .invoke_async(connection)
            .await?;
        Snapshot::parse(reply)
    }

    async fn read_once(&self, from: &Cursor, max: usize) -> RedisResult<Read> {
        let mut connection = self.reader.get(&self.client).await?;
        let first = self.snapshot(&mut connection, from, max).await?;
        let snapshot = if first.is_empty_read() {
            // Park until a record arrives after the cursor (or the block times out), then look
            // again with the script: XREAD's own answer comes without the stream's description.
            let mut xread = redis::cmd("XREAD");
            xread
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(self.block.as_millis() as u64);
            xread
                .arg("STREAMS")
                .arg(self.namespace.stream())
                .arg(from.id().to_string());
            let _: Value = xread.query_async(&mut connection).await?;
            self.snapshot(&mut connection, from, max).await?
        } else {
            first
        };
        Ok(snapshot.verdict(from, max))
    }
}

impl Transport for RedisLog {
    type Error = RedisError;

    async fn publish(&self, record: &Outgoing) -> RedisResult<LogId> {
        let mut connection = self.publisher.get(&self.client).await?;
        let id: RedisResult<String> = if self.shared_tier {
            let call = self.publish_call(record);
            call.invocation(&SCRIPTS.publish)
                .invoke_async(&mut connection)
                .await
        } else {
            self.xadd(record).query_async(&mut connection).await
        };
        parse_id(&self.publisher.forget_on_error(id)?)
    }

    async fn tail(&self) -> RedisResult<Cursor> {
        let mut connection = self.publisher.get(&self.client).await?;
        let snapshot = self
            .snapshot(&mut connection, &Cursor::new(LogId::ZERO, 0, 0), 0)
            .await;
        Ok(self.publisher.forget_on_error(snapshot)?.end())
    }

    async fn read(&self, from: &Cursor, max: usize) -> RedisResult<Read> {
        let read = self.read_once(from, max.max(1)).await;
        self.reader.forget_on_error(read)
    }
}

/// What the read script saw.
struct Snapshot {
    incarnation: u64,
    stream: Option<StreamState>,
    records: Vec<Record>,
}

impl Snapshot {
    fn parse(reply: Value) -> RedisResult<Snapshot> {
        let Value::Array(mut parts) = reply else {
            return Err(protocol("the read script did not return an array"));
        };
        parts.resize(7, Value::Nil);
        let mut parts = parts.into_iter();
        let mut next = || parts.next().unwrap_or(Value::Nil);
        let run_id: String = redis::from_redis_value(next())?;
        let mut hasher = DefaultHasher::new();
        run_id.hash(&mut hasher);
        let incarnation = hasher.finish();
        let exists: i64 = redis::from_redis_value(next())?;
        if exists == 0 {
            return Ok(Snapshot {
                incarnation,
                stream: None,
                records: Vec::new(),
            });
        }
        let last: String = redis::from_redis_value(next())?;
        let added: u64 = redis::from_redis_value(next())?;
        let length: u64 = redis::from_redis_value(next())?;
        let present: i64 = redis::from_redis_value(next())?;
        let records = match next() {
            Value::Array(entries) => entries
                .into_iter()
                .map(parse_record)
                .collect::<RedisResult<_>>()?,
            _ => return Err(protocol("the read script returned no record list")),
        };
        let stream = StreamState {
            last: parse_id(&last)?,
            added,
            length,
            cursor_present: present > 0,
        };
        Ok(Snapshot {
            incarnation,
            stream: Some(stream),
            records,
        })
    }

    fn is_empty_read(&self) -> bool {
        self.records.is_empty()
    }

    /// The cursor at the stream's end.
    fn end(&self) -> Cursor {
        match &self.stream {
            Some(s) => Cursor::new(s.last, s.added, self.incarnation),
            None => Cursor::new(LogId::ZERO, 0, self.incarnation),
        }
    }

    fn verdict(self, from: &Cursor, max: usize) -> Read {
        let batch = Batch {
            len: self.records.len(),
            last: self.records.last().map(|r| r.id),
            max,
        };
        if let Err(cause) = gap::check(from, self.incarnation, self.stream.as_ref(), batch) {
            return Read::Gap {
                cause,
                cursor: self.end(),
            };
        }
        let cursor = match self.records.last() {
            Some(last) => Cursor::new(
                last.id,
                from.added() + self.records.len() as u64,
                self.incarnation,
            ),
            None => *from,
        };
        let behind = self
            .stream
            .map_or(0, |s| s.added.saturating_sub(cursor.added()));
        Read::Records {
            records: self.records,
            cursor,
            behind,
        }
    }
}

/// One stream entry, `[id, [field, value, …]]`. Fields this crate did not write make the
/// record an `Invalidation::All`: an unknown record could have meant anything.
fn parse_record(entry: Value) -> RedisResult<Record> {
    let (id, fields): (String, Vec<Vec<u8>>) = redis::from_redis_value(entry)?;
    let mut key = None;
    let mut wake = None;
    let mut all = false;
    let mut origin = 0;
    let mut published_us = 0;
    for pair in fields.chunks(2) {
        let [name, value] = pair else { break };
        let text = || std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        match name.as_slice() {
            n if n == FIELD_KEY.as_bytes() => key = Some(value.clone()),
            n if n == FIELD_ALL.as_bytes() => all = true,
            n if n == FIELD_WAKE.as_bytes() => wake = Some(value.clone()),
            n if n == FIELD_ORIGIN.as_bytes() => origin = text().unwrap_or(0),
            n if n == FIELD_TIME.as_bytes() => published_us = text().unwrap_or(0),
            _ => {}
        }
    }
    let invalidation = match (key, wake) {
        (Some(bytes), None) if !all => Invalidation::Key(bytes),
        (None, Some(bytes)) if !all => Invalidation::Wake(bytes),
        _ => Invalidation::All,
    };
    Ok(Record {
        id: parse_id(&id)?,
        body: Outgoing {
            invalidation,
            origin,
            published_us,
        },
    })
}

fn parse_id(text: &str) -> RedisResult<LogId> {
    text.parse()
        .map_err(|_| protocol("the server returned a malformed stream id"))
}

pub(crate) fn protocol(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Parse, what))
}

/// The reader connection's response timeout: a blocked read plus 2 s.
fn read_timeout(block: Duration) -> Duration {
    block + Duration::from_secs(2)
}
