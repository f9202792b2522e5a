//! The Lua scripts that write a namespace, and how to call them.
//!
//! Every write of the adapter — an invalidation, and the shared tier's fetch, store and
//! release — is one script (`src/lua/`), so that each compare-and-set runs atomically on the
//! server: a read followed by a separate write is the race this crate exists to prevent. All of
//! them begin with `namespace.lua`, which keeps the namespace's generation (bumped by every
//! invalidate-all and by every new server incarnation) and names the keys.
//!
//! Layout of a namespace whose log is the stream `S` (`async-memo:<namespace>:log` by default):
//!
//! | key | what |
//! |---|---|
//! | `S` | the invalidation log |
//! | `S:gen` | the generation `g`, an integer |
//! | `S:run` | the server `run_id` the generation was last bumped for |
//! | `async-memo:v:{k:<key>}:<g>:S` | a shared value: a hash of `t` (its lease token) and `d` (its bytes) |
//! | `async-memo:l:{k:<key>}:<g>:S` | a lease: a hash of `t` (its token) and `w` (set once a process waits) |
//!
//! A key's value and lease share the hash tag `{k:<key>}` (one Cluster slot). The scripts name
//! the value and lease keys themselves (from the generation they read), so they run on one
//! server, not across a Cluster's slots.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Cmd, Script, ScriptInvocation};

pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) fetch: Script,
    pub(crate) store: Script,
    pub(crate) release: Script,
}

const PREAMBLE: &str = include_str!("lua/namespace.lua");
const PUBLISH: &str = include_str!("lua/publish.lua");

fn with_preamble(body: &str) -> String {
    format!("{PREAMBLE}\n{body}")
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    publish: Script::new(&with_preamble(PUBLISH)),
    fetch: Script::new(&with_preamble(include_str!("lua/fetch.lua"))),
    store: Script::new(&with_preamble(include_str!("lua/store.lua"))),
    release: Script::new(&with_preamble(include_str!("lua/release.lua"))),
});

/// The keys and log settings every namespace script needs.
#[derive(Clone, Debug)]
pub(crate) struct Namespace {
    stream: String,
    generation: String,
    run: String,
    max_len: u64,
}

/// The arguments of one script call: the namespace's three keys, its three common arguments
/// (`MAXLEN ~`, the writer's origin, its clock), then the script's own.
pub(crate) struct Call<'n> {
    namespace: &'n Namespace,
    args: Vec<Vec<u8>>,
}

impl Namespace {
    pub(crate) fn new(stream: String, max_len: u64) -> Namespace {
        Namespace {
            generation: format!("{stream}:gen"),
            run: format!("{stream}:run"),
            stream,
            max_len,
        }
    }

    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    pub(crate) fn max_len(&self) -> u64 {
        self.max_len
    }

    pub(crate) fn set_max_len(&mut self, max_len: u64) {
        self.max_len = max_len;
    }

    /// A call made by `origin` at `published_us`.
    pub(crate) fn call(&self, origin: u64, published_us: u64) -> Call<'_> {
        let mut call = Call {
            namespace: self,
            args: Vec::new(),
        };
        call.arg(self.max_len).arg(origin).arg(published_us);
        call
    }
}

impl Call<'_> {
    pub(crate) fn arg(&mut self, arg: impl redis::ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// The call as `EVALSHA` (loading the script if the server lacks it).
    pub(crate) fn invocation<'s>(&self, script: &'s Script) -> ScriptInvocation<'s> {
        let ns = self.namespace;
        let mut invocation = script.prepare_invoke();
        invocation.key(&ns.generation).key(&ns.run).key(&ns.stream);
        for arg in &self.args {
            invocation.arg(arg.as_slice());
        }
        invocation
    }

    /// The publish script as a plain `EVAL`, for a `MULTI` block: there an `EVALSHA` that
    /// fails with `NOSCRIPT` would let the block's other commands commit without it.
    pub(crate) fn eval_publish(&self) -> Cmd {
        let ns = self.namespace;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(with_preamble(PUBLISH))
            .arg(3)
            .arg(&ns.generation)
            .arg(&ns.run)
            .arg(&ns.stream);
        for arg in &self.args {
            cmd.arg(arg.as_slice());
        }
        cmd
    }
}

/// Whole milliseconds for a script argument, at least 1 (`PEXPIRE 0` deletes the key) and at
/// most a year (longer is no backstop at all, and keeps the arithmetic far from overflow).
pub(crate) fn millis(duration: Duration) -> u64 {
    const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, YEAR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_whole_milliseconds_within_bounds() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(Duration::MAX), 365 * 24 * 3600 * 1000);
    }

    #[test]
    fn the_namespace_keys_are_named_after_the_log() {
        let ns = Namespace::new("async-memo:users:log".into(), 10);
        assert_eq!(ns.generation, "async-memo:users:log:gen");
        assert_eq!(ns.run, "async-memo:users:log:run");
    }
}
