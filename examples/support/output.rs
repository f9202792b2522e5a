//! Formatting and the machine's description for the bench report.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "–".into()
    } else if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.1} ns")
    }
}

pub fn fmt_ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() {
        "–".into()
    } else {
        format!("{:.2}", a / b)
    }
}

/// A row of the main table, times in ns: ours, moka, quick_cache, floor, and the lock-free probe
/// (NaN where not run).
pub struct Row {
    pub group: &'static str,
    pub workload: String,
    pub t: [f64; 5],
}

/// The times of a row that the probe does not run (it only reads).
pub fn no_probe(t: [f64; 4]) -> [f64; 5] {
    [t[0], t[1], t[2], t[3], f64::NAN]
}

pub fn print_rows(rows: &[Row]) {
    println!(
        "| group | workload | async-memo | moka | quick_cache | RwLock<HashMap> | lock-free probe | ours/moka | ours/quick_cache | ours/floor | ours/probe |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ours = r.t[0];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.group,
            r.workload,
            fmt_ns(r.t[0]),
            fmt_ns(r.t[1]),
            fmt_ns(r.t[2]),
            fmt_ns(r.t[3]),
            fmt_ns(r.t[4]),
            fmt_ratio(ours, r.t[1]),
            fmt_ratio(ours, r.t[2]),
            fmt_ratio(ours, r.t[3]),
            fmt_ratio(ours, r.t[4]),
        );
    }
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Today's date (UTC), from the system clock.
pub fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}
