//! The pace at which a core starts processor requests: at most `DISPATCH_RATE` a second,
//! after a burst of [`BURST`].
//!
//! A backlog that builds up while both processors fail is drained when one comes back.
//! Drained at once, its hundreds of requests leave together and their answers come back
//! together, a few milliseconds of work on the core and on the processors during which
//! the 202s of new payments wait for a CPU. Paced, the same backlog drains in a fraction
//! of a second (well inside the audits' lag) while the core stays mostly idle, so the
//! connection loop keeps ahead of it. A core that starts fewer requests than the rate,
//! as in steady traffic, never waits.
//!
//! The bucket is kept as the moment its allowance would be spent (the generic cell rate
//! algorithm): one instant, no token count to refill.

use std::time::Duration;

use monoio::time::Instant;

/// Requests a core may start back to back before the pace applies.
pub const BURST: u32 = 32;

/// One core's allowance of request starts.
#[derive(Debug)]
pub struct Pacer {
    /// Time one start uses up: a second divided by the rate.
    interval: Duration,
    /// How far ahead of now the allowance may be spent: `BURST - 1` intervals.
    tolerance: Duration,
    /// When the starts so far would all have been paid for at the rate.
    spent_until: Option<Instant>,
}

impl Pacer {
    /// A pacer allowing `rate` starts a second (at least one).
    pub fn new(rate: usize) -> Pacer {
        let rate = u32::try_from(rate).unwrap_or(u32::MAX).max(1);
        let interval = Duration::from_secs(1) / rate;
        Pacer {
            interval,
            tolerance: interval * (BURST - 1),
            spent_until: None,
        }
    }

    /// When the next request may start: `now` when it may start at once.
    pub fn ready_at(&self, now: Instant) -> Instant {
        match self.spent_until {
            Some(t) => t.checked_sub(self.tolerance).map_or(now, |at| at.max(now)),
            None => now,
        }
    }

    /// Counts one request started at `now` (call it when [`Pacer::ready_at`] is `now`).
    pub fn take(&mut self, now: Instant) {
        let from = self.spent_until.map_or(now, |t| t.max(now));
        self.spent_until = Some(from + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts as many requests as the pacer allows at `now`.
    fn drain(p: &mut Pacer, now: Instant, most: u32) -> u32 {
        let mut n = 0;
        while n < most && p.ready_at(now) <= now {
            p.take(now);
            n += 1;
        }
        n
    }

    #[test]
    fn a_burst_goes_at_once_then_the_rate_applies() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000);
        assert_eq!(drain(&mut p, t0, 1000), BURST);
        // The next start waits one interval (1 ms at 1000 a second).
        let next = p.ready_at(t0);
        assert_eq!(next, t0 + Duration::from_millis(1));
        assert_eq!(drain(&mut p, next, 1000), 1);
        // Ten milliseconds later, ten more.
        let later = next + Duration::from_millis(10);
        assert_eq!(drain(&mut p, later, 1000), 10);
    }

    #[test]
    fn an_idle_pacer_refills_to_the_burst_only() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000);
        assert_eq!(drain(&mut p, t0, 1000), BURST);
        let much_later = t0 + Duration::from_secs(5);
        assert_eq!(drain(&mut p, much_later, 1000), BURST);
    }

    #[test]
    fn steady_starts_below_the_rate_never_wait() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000);
        for i in 0..10_000u32 {
            // 500 a second: one every 2 ms.
            let now = t0 + Duration::from_millis(2 * u64::from(i));
            assert_eq!(p.ready_at(now), now);
            p.take(now);
        }
    }
}
