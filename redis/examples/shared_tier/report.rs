//! What a reader process reports to the coordinator, as one line on its stdout.

use async_memo_redis::WaitLatency;

/// A reader process's counts over the whole run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) reads: u64,
    pub(crate) failed_reads: u64,
    /// Runs of the loader (with a lease, or without one).
    pub(crate) loads: u64,
    pub(crate) shared_hits: u64,
    pub(crate) takeovers: u64,
    pub(crate) refused_sets: u64,
    pub(crate) gaps: u64,
    pub(crate) stale_reads: u64,
    /// Values older than an invalidation the process had applied, found in its own memo (each
    /// (key, version) counted once).
    pub(crate) stale_commits: u64,
    /// Whether the process applied the writer's end marker before it reported.
    pub(crate) drained: bool,
    /// The (key, version) pairs it read.
    pub(crate) generations: Vec<(String, u64)>,
    pub(crate) waits: WaitLatency,
    /// How long its loads took.
    pub(crate) load_times: WaitLatency,
}

impl Report {
    /// `RESULT <counts…> <key:version,…> <waits: bucket:count,…> <loads: bucket:count,…>`
    /// (`-` for an empty list).
    pub(crate) fn to_line(&self) -> String {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(",")
            }
        };
        let generations = list(
            self.generations
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect(),
        );
        let histogram = |h: &WaitLatency| {
            list(
                h.counts()
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(i, c)| format!("{i}:{c}"))
                    .collect(),
            )
        };
        let (waits, load_times) = (histogram(&self.waits), histogram(&self.load_times));
        format!(
            "RESULT {} {} {} {} {} {} {} {} {} {} {generations} {waits} {load_times}",
            self.reads,
            self.failed_reads,
            self.loads,
            self.shared_hits,
            self.takeovers,
            self.refused_sets,
            self.gaps,
            self.stale_reads,
            self.stale_commits,
            u8::from(self.drained),
        )
    }

    pub(crate) fn parse(line: &str) -> Option<Report> {
        let mut parts = line.strip_prefix("RESULT ")?.split(' ');
        let mut n = || parts.next()?.parse::<u64>().ok();
        let (reads, failed_reads, loads, shared_hits) = (n()?, n()?, n()?, n()?);
        let (takeovers, refused_sets, gaps, stale_reads) = (n()?, n()?, n()?, n()?);
        let (stale_commits, drained) = (n()?, n()? == 1);
        let pairs = |text: Option<&str>| -> Vec<(String, u64)> {
            text.unwrap_or("-")
                .split(',')
                .filter_map(|pair| {
                    let (a, b) = pair.split_once(':')?;
                    Some((a.to_string(), b.parse().ok()?))
                })
                .collect()
        };
        let generations = pairs(parts.next());
        let histogram = |text: Option<&str>| -> Option<WaitLatency> {
            let mut counts = Vec::new();
            for (bucket, count) in pairs(text) {
                let bucket: usize = bucket.parse().ok()?;
                if counts.len() <= bucket {
                    counts.resize(bucket + 1, 0);
                }
                counts[bucket] = count;
            }
            Some(WaitLatency::from_counts(&counts))
        };
        let waits = histogram(parts.next())?;
        let load_times = histogram(parts.next())?;
        Some(Report {
            reads,
            failed_reads,
            loads,
            shared_hits,
            takeovers,
            refused_sets,
            gaps,
            stale_reads,
            stale_commits,
            drained,
            generations,
            waits,
            load_times,
        })
    }
}
