//! The counts every verdict quotes: servers spawned, live processes, `initialize` and
//! `tools/list` requests sent, and `tools/list_changed` notifications received (what a server
//! did on its own, which a verdict must allow for).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub struct Stats {
    spawned: Mutex<Vec<u32>>,
    initialize: AtomicUsize,
    tools_list: AtomicUsize,
    list_changed: AtomicUsize,
}

/// A snapshot of [`Stats`], with the live processes counted at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub spawned: usize,
    pub live: usize,
    pub initialize: usize,
    pub tools_list: usize,
    /// `tools/list_changed` notifications received (counted before they invalidate anything).
    pub list_changed: usize,
}

impl Stats {
    pub fn spawned(&self, pid: Option<u32>) {
        self.spawned.lock().unwrap().push(pid.unwrap_or(0));
    }

    pub fn initialize_sent(&self) {
        self.initialize.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tools_list_sent(&self) {
        self.tools_list.fetch_add(1, Ordering::SeqCst);
    }

    pub fn list_changed_received(&self) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }

    /// Pids of the spawned servers that are still running (not exited, not a zombie).
    pub fn live_pids(&self) -> Vec<u32> {
        let spawned = self.spawned.lock().unwrap().clone();
        spawned.into_iter().filter(|&pid| is_live(pid)).collect()
    }

    pub fn counts(&self) -> Counts {
        let spawned = self.spawned.lock().unwrap().len();
        Counts {
            spawned,
            live: self.live_pids().len(),
            initialize: self.initialize.load(Ordering::Relaxed),
            // `tools/list` before `list_changed`: a notification is counted before it invalidates,
            // so every refetch it caused is matched by a count read after it.
            tools_list: self.tools_list.load(Ordering::SeqCst),
            list_changed: self.list_changed.load(Ordering::SeqCst),
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spawned {}, live {}, initialize {}, tools/list {}",
            self.spawned, self.live, self.initialize, self.tools_list
        )?;
        if self.list_changed > 0 {
            write!(f, ", list_changed received {}", self.list_changed)?;
        }
        Ok(())
    }
}

/// Whether `pid` is a running process. A zombie (exited, not yet reaped) is not running.
pub fn is_live(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) if std::path::Path::new("/proc/self").exists() => false,
        // No procfs (macOS, BSD): ask `ps`.
        Err(_) => std::process::Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .map(|out| {
                let state = String::from_utf8_lossy(&out.stdout);
                out.status.success() && !state.trim().is_empty() && !state.starts_with('Z')
            })
            .unwrap_or(false),
    }
}
