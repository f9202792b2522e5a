//! What a reader process reports to the coordinator, as one line on its stdout.

/// A reader process's counts over the whole run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) stale_reads: u64,
    pub(crate) stale_commits: u64,
    /// Reads that returned a value (and were checked).
    pub(crate) reads: u64,
    /// Reads that returned a load's error (the server was unreachable), each retried.
    pub(crate) failed_reads: u64,
    /// Invalidations applied one by one.
    pub(crate) applied: u64,
    /// Gaps the log detected (each flushed the memo).
    pub(crate) gaps: u64,
    /// Flushes of the whole memo, for any reason (gaps included).
    pub(crate) flushes: u64,
    /// Whether the process applied the writer's end marker before it reported: then the counts
    /// cover every commit of the run.
    pub(crate) drained: bool,
    /// Propagation of each invalidation applied, in microseconds.
    pub(crate) lags_us: Vec<u64>,
}

impl Report {
    pub(crate) fn to_line(&self) -> String {
        let lags: Vec<String> = self.lags_us.iter().map(u64::to_string).collect();
        format!(
            "RESULT {} {} {} {} {} {} {} {} {}",
            self.stale_reads,
            self.stale_commits,
            self.reads,
            self.failed_reads,
            self.applied,
            self.gaps,
            self.flushes,
            u8::from(self.drained),
            lags.join(",")
        )
    }

    pub(crate) fn parse(line: &str) -> Option<Report> {
        let mut parts = line.strip_prefix("RESULT ")?.split(' ');
        let mut n = || parts.next()?.parse::<u64>().ok();
        let (stale_reads, stale_commits, reads, failed_reads) = (n()?, n()?, n()?, n()?);
        let (applied, gaps, flushes, drained) = (n()?, n()?, n()?, n()? == 1);
        let lags_us = parts
            .next()
            .unwrap_or("")
            .split(',')
            .filter_map(|l| l.parse().ok())
            .collect();
        Some(Report {
            stale_reads,
            stale_commits,
            reads,
            failed_reads,
            applied,
            gaps,
            flushes,
            drained,
            lags_us,
        })
    }
}
