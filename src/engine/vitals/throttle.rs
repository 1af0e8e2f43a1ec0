//! How much one core may send to one processor: an in-flight limit that a turned-away
//! payment halves and each answer raises by one, and a pause after a payment is turned
//! away (429, or another 4XX but 422) that grows while payments keep being turned away.

use std::time::Duration;

use monoio::time::Instant;

/// Smallest in-flight limit a 429 can push a processor down to.
pub const MIN_CAP: usize = 4;
/// After a payment is turned away (429, or another 4XX but 422) nothing more is sent to
/// that processor for this long; each one turned away that was sent after the pause
/// ended doubles the next pause, up to [`BUSY_PAUSE_MAX`].
/// Payments wait in the backlog meanwhile, so a processor whose queue is full is not
/// asked again at round-trip speed, however many payments are waiting.
pub const BUSY_PAUSE_FIRST: Duration = Duration::from_millis(50);
/// Longest pause after payments turned away in a row. The processor suggests 5 s (`Retry-After`), but
/// its queue drains in well under that when its delay is short.
pub const BUSY_PAUSE_MAX: Duration = Duration::from_millis(1_000);

/// The in-flight limit and the pause.
#[derive(Debug)]
pub struct Throttle {
    cap: usize,
    max_cap: usize,
    /// Nothing is sent before this, after a payment was turned away.
    busy_until: Option<Instant>,
    /// The last pause after a payment was turned away; zero once something was answered
    /// since.
    busy_pause: Duration,
}

impl Throttle {
    /// At most `max_in_flight` (at least one) requests in flight.
    pub fn new(max_in_flight: usize) -> Throttle {
        let max_cap = max_in_flight.max(1);
        Throttle {
            cap: max_cap,
            max_cap,
            busy_until: None,
            busy_pause: Duration::ZERO,
        }
    }

    /// The current in-flight limit.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A request was answered: the limit grows back by one and the pause resets.
    pub fn answered(&mut self) {
        self.cap = (self.cap + 1).min(self.max_cap);
        self.busy_pause = Duration::ZERO;
    }

    /// A request sent at `started` was turned away at `now`.
    pub fn turned_away(&mut self, started: Instant, now: Instant) {
        self.cap = (self.cap / 2).max(MIN_CAP.min(self.max_cap));
        // Requests sent before the current pause ended add nothing to it.
        if self.busy_until.is_none_or(|t| started >= t) {
            self.busy_pause = (self.busy_pause * 2).clamp(BUSY_PAUSE_FIRST, BUSY_PAUSE_MAX);
            self.busy_until = Some(now + self.busy_pause);
        }
    }

    /// Requests that may still be started now, with `in_flight` out.
    pub fn free(&self, now: Instant, in_flight: usize) -> usize {
        if self.busy_until.is_some_and(|t| now < t) {
            0
        } else {
            self.cap.saturating_sub(in_flight)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_limit_never_drops_below_the_floor_nor_the_maximum() {
        let t0 = Instant::now();
        let mut small = Throttle::new(2);
        small.turned_away(t0, t0);
        assert_eq!(small.cap(), 2, "a limit below the floor stays whole");
        let mut t = Throttle::new(100);
        for _ in 0..10 {
            t.turned_away(t0, t0);
        }
        assert_eq!(t.cap(), MIN_CAP);
        for _ in 0..200 {
            t.answered();
        }
        assert_eq!(t.cap(), 100);
        assert_eq!(Throttle::new(0).cap(), 1);
    }

    #[test]
    fn a_pause_blocks_everything_until_it_ends() {
        let t0 = Instant::now();
        let mut t = Throttle::new(10);
        assert_eq!(t.free(t0, 3), 7);
        t.turned_away(t0, t0);
        assert_eq!(t.free(t0 + BUSY_PAUSE_FIRST - ms(1), 0), 0);
        assert_eq!(t.free(t0 + BUSY_PAUSE_FIRST, 0), t.cap());
    }
}
