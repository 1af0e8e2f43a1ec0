//! The latency of one processor as this core's answered requests show it: a running
//! average that follows a change of the processor's delay within a few answers, and
//! the recent answers for a percentile.

use std::collections::VecDeque;
use std::time::Duration;

/// Weight of the newest answer in the latency average: half, so that a change of the
/// processor's delay shows within a few answers.
const EWMA_WEIGHT: f64 = 0.5;
/// Answers kept for the latency percentile.
const RECENT: usize = 128;

/// Latency of the answered requests.
#[derive(Debug)]
pub struct Latency {
    /// Average in microseconds (None before the first answer).
    ewma_us: Option<f64>,
    recent: VecDeque<Duration>,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            ewma_us: None,
            recent: VecDeque::with_capacity(RECENT),
        }
    }
}

impl Latency {
    /// A request was answered after `latency`.
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros() as f64;
        self.ewma_us = Some(match self.ewma_us {
            None => us,
            Some(avg) => avg + (us - avg) * EWMA_WEIGHT,
        });
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(latency);
    }

    /// The average, if anything answered yet.
    pub fn ewma(&self) -> Option<Duration> {
        self.ewma_us.map(|us| Duration::from_micros(us as u64))
    }

    /// The 99th percentile of the last answers.
    pub fn p99(&self) -> Option<Duration> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v: Vec<Duration> = self.recent.iter().copied().collect();
        v.sort_unstable();
        let i = (v.len() * 99).div_ceil(100).saturating_sub(1);
        Some(v[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentile() {
        let mut l = Latency::default();
        assert_eq!(l.p99(), None);
        for i in 1..=100 {
            l.record(ms(i));
        }
        assert_eq!(l.p99(), Some(ms(99)));
    }

    #[test]
    fn the_average_follows_half_of_each_answer() {
        let mut l = Latency::default();
        assert_eq!(l.ewma(), None);
        l.record(ms(100));
        assert_eq!(l.ewma(), Some(ms(100)));
        l.record(ms(300));
        assert_eq!(l.ewma(), Some(ms(200)));
    }

    #[test]
    fn only_the_recent_answers_count_for_the_percentile() {
        let mut l = Latency::default();
        for _ in 0..RECENT {
            l.record(ms(1_000));
        }
        for _ in 0..RECENT {
            l.record(ms(1));
        }
        assert_eq!(l.p99(), Some(ms(1)));
    }
}
