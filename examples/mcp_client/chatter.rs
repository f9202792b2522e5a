//! What the example server says without being asked (`--serve` flags), shared by the server and
//! the tests that start it: some third-party servers notify on their own, and `--server` must
//! judge the client fairly against them.

use std::time::Duration;

/// What the server says without being asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Chatter {
    /// Nothing: it notifies only when `change_tools` changes its tools.
    #[default]
    Quiet,
    /// `tools/list_changed` once, right after the client's `initialized`.
    ListChangedAfterInitialize,
    /// `tools/list_changed` periodically, from `initialized` on.
    ListChangedEvery(Duration),
}

impl Chatter {
    /// The flag (and value) that selects this chatter on the server's command line.
    #[allow(dead_code)] // the example server only parses; tests/mcp_scenarios.rs starts it so
    pub fn args(self) -> Vec<String> {
        match self {
            Chatter::Quiet => Vec::new(),
            Chatter::ListChangedAfterInitialize => vec!["--list-changed-after-initialize".into()],
            Chatter::ListChangedEvery(every) => {
                vec!["--list-changed-every".into(), every.as_millis().to_string()]
            }
        }
    }

    /// Reads the flags of [`args`](Self::args); other arguments (`--serve`, `--label`) are
    /// ignored.
    pub fn from_args(mut args: impl Iterator<Item = String>) -> Chatter {
        let mut chatter = Chatter::Quiet;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--list-changed-after-initialize" => chatter = Chatter::ListChangedAfterInitialize,
                "--list-changed-every" => {
                    let ms = args.next().and_then(|ms| ms.parse().ok()).unwrap_or(10);
                    chatter = Chatter::ListChangedEvery(Duration::from_millis(ms));
                }
                _ => {}
            }
        }
        chatter
    }
}
