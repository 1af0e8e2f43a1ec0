//! The requests one core has in flight to one processor: how many (and how many are
//! probes), and how long the oldest have been waiting, which shows a slowdown before
//! any answer does.

use std::collections::VecDeque;
use std::time::Duration;

use monoio::time::Instant;

/// In-flight requests that must all be older than the average before their age counts
/// as the expected latency: one stuck request is not a slow processor.
const STALL_QUORUM: usize = 3;

/// A request in flight, returned by [`super::Vitals::start`] and given back to
/// [`super::Vitals::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    seq: u64,
    pub(super) started: Instant,
    pub probe: bool,
}

/// The requests in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Start times of requests in flight (and whether each is a probe), by sequence
    /// number from `first_seq`; `None` once finished (removed when they reach the
    /// front).
    starts: VecDeque<Option<(Instant, bool)>>,
    first_seq: u64,
    count: usize,
    probes: usize,
}

impl InFlight {
    /// Requests in flight.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Probes among them.
    pub fn probes(&self) -> usize {
        self.probes
    }

    /// A request starts now.
    pub fn start(&mut self, now: Instant, probe: bool) -> Ticket {
        let seq = self.first_seq + self.starts.len() as u64;
        self.starts.push_back(Some((now, probe)));
        self.count += 1;
        if probe {
            self.probes += 1;
        }
        Ticket {
            seq,
            started: now,
            probe,
        }
    }

    /// Forgets a request in flight.
    pub fn end(&mut self, ticket: Ticket) {
        if let Some(i) = ticket.seq.checked_sub(self.first_seq) {
            if let Some(slot) = self.starts.get_mut(i as usize) {
                *slot = None;
            }
        }
        while self.starts.front() == Some(&None) {
            self.starts.pop_front();
            self.first_seq += 1;
        }
        self.count = self.count.saturating_sub(1);
        if ticket.probe {
            self.probes = self.probes.saturating_sub(1);
        }
    }

    /// Age of the `STALL_QUORUM`-th oldest request in flight. Probes do not count:
    /// they were sent while the processor was failing, and its delay then says nothing
    /// about the payments sent after it recovered.
    pub fn stalled_for(&self, now: Instant) -> Option<Duration> {
        self.starts
            .iter()
            .flatten()
            .filter(|(_, probe)| !probe)
            .nth(STALL_QUORUM - 1)
            .map(|(t, _)| now.saturating_duration_since(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_end_in_any_order() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        let a = f.start(t0, false);
        let b = f.start(t0 + ms(1), true);
        let c = f.start(t0 + ms(2), false);
        assert_eq!((f.count(), f.probes()), (3, 1));
        f.end(b);
        assert_eq!((f.count(), f.probes()), (2, 0));
        f.end(a);
        f.end(c);
        assert_eq!(f.count(), 0);
        assert!(
            f.starts.is_empty(),
            "finished requests are dropped from the front"
        );
    }

    #[test]
    fn a_stall_takes_a_quorum_of_payments_not_probes() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        for i in 0..STALL_QUORUM as u64 {
            f.start(t0 + ms(i), true);
        }
        assert_eq!(f.stalled_for(t0 + ms(100)), None);
        let first = f.start(t0 + ms(10), false);
        for i in 1..STALL_QUORUM as u64 {
            assert_eq!(f.stalled_for(t0 + ms(100)), None);
            f.start(t0 + ms(10 + i), false);
        }
        // The quorum-th oldest payment sets the age.
        assert_eq!(
            f.stalled_for(t0 + ms(100)),
            Some(ms(100 - 10 - (STALL_QUORUM as u64 - 1)))
        );
        f.end(first);
        assert_eq!(f.stalled_for(t0 + ms(100)), None);
    }
}
