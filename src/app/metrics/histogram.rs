//! A latency histogram cheap enough to leave on: fixed buckets, tenths of a millisecond
//! up to 1 ms and fifths up to 2 ms, coarser beyond, each a relaxed atomic add; written
//! in the Prometheus text format (cumulative `_bucket`s, `_sum`, `_count`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The buckets' inclusive upper bounds, in microseconds; one more bucket holds the rest.
pub const BOUNDS_US: [u64; 28] = [
    50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 1_000, 1_200, 1_400, 1_600, 1_800, 2_000,
    2_500, 3_000, 4_000, 5_000, 7_500, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Counts of durations by bucket, with their count and sum.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Counts `n` durations of `d` each.
    pub fn observe(&self, d: Duration, n: u32) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(u64::from(n), Relaxed);
        self.count.fetch_add(u64::from(n), Relaxed);
        self.sum_us
            .fetch_add(us.saturating_mul(u64::from(n)), Relaxed);
    }

    /// Writes the samples of `name` with `labels` (`key="value",…`, or empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = match BOUNDS_US.get(i) {
                Some(&us) => format!("{}", us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50), 1); // on a bound: that bucket
        h.observe(Duration::from_micros(51), 2);
        h.observe(Duration::from_micros(1_050), 1);
        h.observe(Duration::from_secs(3), 1); // beyond the last bound
        let mut out = String::new();
        h.render(&mut out, "t_seconds", "route=\"x\"");
        for line in [
            "t_seconds_bucket{route=\"x\",le=\"0.00005\"} 1",
            "t_seconds_bucket{route=\"x\",le=\"0.0001\"} 3",
            "t_seconds_bucket{route=\"x\",le=\"0.001\"} 3",
            "t_seconds_bucket{route=\"x\",le=\"0.0012\"} 4",
            "t_seconds_bucket{route=\"x\",le=\"1\"} 4",
            "t_seconds_bucket{route=\"x\",le=\"+Inf\"} 5",
            "t_seconds_count{route=\"x\"} 5",
            "t_seconds_sum{route=\"x\"} 3.001202",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert_eq!(out.lines().count(), BOUNDS_US.len() + 3);
        let mut bare = String::new();
        Histogram::default().render(&mut bare, "u_seconds", "");
        assert!(bare.contains("u_seconds_bucket{le=\"+Inf\"} 0\n"), "{bare}");
        assert!(bare.contains("u_seconds_count 0\n"), "{bare}");
    }

    #[test]
    fn bounds_rise() {
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }
}
