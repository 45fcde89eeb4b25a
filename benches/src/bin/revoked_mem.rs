//! The revoked-session set's memory per entry: fills a set with N ended
//! sessions (sids shaped like the gateway's, 22 base64url characters) and
//! prints the resident memory it took, per entry.
//!
//! `cargo run --release -p minigate-benches --bin revoked_mem [-- N]`

// A measuring tool: a broken fixture stops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use minigate::sessions::revoked::{now_ms, RevokedSet};
use minigate::telemetry::metrics::RevokedMetrics;
use minigate::tokens::EndReason;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Made first, so their memory is not counted.
    let sids: Vec<String> = (0..n).map(|i| format!("{i:0>22}")).collect();
    let set = RevokedSet::new(Duration::from_secs(930), RevokedMetrics::noop());
    let until = now_ms() + 3_600_000;
    let before = rss_bytes();
    set.insert_all(
        sids.iter()
            .map(|s| (s.as_str(), until, EndReason::LoggedOut)),
    );
    let after = rss_bytes();
    assert_eq!(set.len(), n);
    println!(
        "{n} entries: {:.1} MiB resident, {:.0} bytes per entry",
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / n as f64
    );
}
