//! What a health poll of a processor produces, and what routing and metrics read of
//! it: the `service-health` answer, when it was polled, and why a poll gave none.
//!
//! A leaf module: the health monitor writes these, the cores' vitals and the metrics
//! read them, and none of those depend on each other through it.

use std::time::Duration;

use crate::processor::Processor;
use domain::time::Micros;

/// Largest `minResponseTime` believed (a report beyond it is clamped): longer than any
/// request timeout.
pub const MAX_MIN_RESPONSE: Duration = Duration::from_secs(60);

/// The `service-health` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub failing: bool,
    pub min_response: Duration,
}

impl Health {
    /// An answer with `minResponseTime` in milliseconds, clamped to
    /// [`MAX_MIN_RESPONSE`]: it feeds timeouts and `requestedAt`.
    pub fn from_millis(failing: bool, min_response_ms: u64) -> Health {
        Health {
            failing,
            min_response: Duration::from_millis(min_response_ms).min(MAX_MIN_RESPONSE),
        }
    }
}

/// A health answer and when it was polled (wall clock in microseconds since the Unix
/// epoch, so that it crosses instances).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub health: Health,
    pub at: Micros,
}

/// Why a poll gave no report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// 429: more than one caller in a window. Must not happen; counted in metrics.
    Limited,
    Other(String),
}

/// How a poll ended, as metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// A report.
    Reported,
    /// Answered 429.
    Limited,
    /// Any other failure.
    Failed,
}

impl Polled {
    pub const ALL: [Polled; 3] = [Polled::Reported, Polled::Limited, Polled::Failed];

    pub fn of(result: &Result<Report, PollError>) -> Polled {
        match result {
            Ok(_) => Polled::Reported,
            Err(PollError::Limited) => Polled::Limited,
            Err(PollError::Other(_)) => Polled::Failed,
        }
    }

    /// Position in [`Polled::ALL`].
    pub fn index(self) -> usize {
        match self {
            Polled::Reported => 0,
            Polled::Limited => 1,
            Polled::Failed => 2,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Polled::Reported => "ok",
            Polled::Limited => "limited",
            Polled::Failed => "error",
        }
    }
}

/// Where the monitor counts each poll it makes (the instance's metrics).
pub trait PollCounter {
    fn health_poll(&self, p: Processor, result: &Result<Report, PollError>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_labels_follow_all() {
        crate::label_table::assert_consistent(&Polled::ALL, Polled::index, Polled::name);
    }

    #[test]
    fn absurd_delays_are_clamped() {
        assert_eq!(
            Health::from_millis(false, u64::MAX).min_response,
            MAX_MIN_RESPONSE
        );
        assert_eq!(
            Health::from_millis(true, 2_000),
            Health {
                failing: true,
                min_response: Duration::from_millis(2_000)
            }
        );
    }
}
