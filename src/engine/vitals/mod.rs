//! What this core knows about one processor: passive signals from its own requests
//! (latency, errors, timeouts, 429s), the shared health report, and the explicit state
//! machine built on them.
//!
//! ```text
//!            expected latency > deadline                 FAIL_AFTER failures in a row,
//!   Healthy ─────────────────────────────► Degraded      or health says failing
//!      ▲  ◄─────────────────────────────     │   (Healthy/Degraded) ──────────────► Failing
//!      │     expected < RECOVER × deadline   │                                      │  ▲
//!      │                                     │              a probe is sent         ▼  │ the probe fails
//!      └──── an answer (any attempt), or health says not failing ◄──────────── Probing
//! ```
//!
//! Every method takes the clock as an argument: the state machine is pure and its
//! tests run on a controllable clock. Its parts: [`latency`] (average and percentile
//! of the answers), [`flight`] (requests in flight, and their age as a stall) and
//! [`throttle`] (the in-flight limit and the pause after a payment is turned away).

pub mod flight;
pub mod latency;
pub mod throttle;

use std::time::Duration;

use monoio::time::Instant;

use crate::upstream::report::Health;
use flight::InFlight;
pub use flight::Ticket;
use latency::Latency;
use throttle::Throttle;

/// Failures in a row (500s, refused connections, timeouts) before a processor counts
/// as failing: one is noise, three at the official rates is a few milliseconds.
pub const FAIL_AFTER: u32 = 3;
/// Weight of the newest outcome in the error and timeout shares: about the last ten.
const RATE_WEIGHT: f64 = 0.1;
/// A degraded processor is healthy again once its expected latency is below this
/// share of the deadline (hysteresis, so that it does not flap at the boundary).
const RECOVER_SHARE: f64 = 0.8;
/// How long a health report is believed: one poll per 5 s window, plus the wait for
/// that window.
pub const HEALTH_FRESH: Duration = Duration::from_millis(11_000);
/// Margin added to twice the expected latency for a request's timeout: room for a
/// processor's own overhead under load.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(1_000);
/// Shortest request timeout. A timeout leaves the payment uncertain (lookups, pinned to
/// that processor), so it must absorb a sudden slowdown of a fast processor: the
/// official scenarios jump from ~0.1 s to 2 s.
const TIMEOUT_FLOOR: Duration = Duration::from_millis(2_500);

/// The processor's state as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Answers within the deadline.
    Healthy,
    /// Answers, but slower than the deadline.
    Degraded,
    /// Refuses or does not answer; only probes go there.
    Failing,
    /// Failing, with probes in flight.
    Probing,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Healthy,
        State::Degraded,
        State::Failing,
        State::Probing,
    ];

    /// Position in [`State::ALL`].
    pub fn index(self) -> usize {
        match self {
            State::Healthy => 0,
            State::Degraded => 1,
            State::Failing => 2,
            State::Probing => 3,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Failing => "failing",
            State::Probing => "probing",
        }
    }

    /// Whether payments may go there (not only probes).
    pub fn is_up(self) -> bool {
        matches!(self, State::Healthy | State::Degraded)
    }
}

/// The signal one `POST /payments` attempt gives about the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptSignal {
    /// An answer that shows the processor working (200 or 422).
    Answered,
    /// 500, another refusal, or no connection.
    Failed,
    /// 429, or another 4XX but 422: the processor takes no payments from us now. Not a
    /// failure: a reason to send fewer, and none for a while.
    TurnedAway,
    /// No answer in time, or the connection dropped.
    TimedOut,
}

/// What the policy needs to know about a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub state: State,
    /// How long a payment sent now should take to settle.
    pub expected: Duration,
    /// Requests that may still be started now.
    pub free: usize,
    /// A probe may be sent now (only meaningful when not healthy).
    pub probe_due: bool,
}

/// One processor's vitals on one core: what its requests and the health reports
/// showed, and the state built on them.
#[derive(Debug)]
pub struct Vitals {
    state: State,
    deadline: Duration,
    probe_interval: Duration,
    latency: Latency,
    failures_in_a_row: u32,
    /// Running shares of failures and timeouts among outcomes (weighted by
    /// `RATE_WEIGHT`).
    error_rate: f64,
    timeout_rate: f64,
    flight: InFlight,
    throttle: Throttle,
    next_probe: Option<Instant>,
    health: Option<(Health, Instant)>,
    last_answer: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Vitals {
    pub fn new(max_in_flight: usize, deadline: Duration, probe_interval: Duration) -> Vitals {
        Vitals {
            state: State::Healthy,
            deadline,
            probe_interval,
            latency: Latency::default(),
            failures_in_a_row: 0,
            error_rate: 0.0,
            timeout_rate: 0.0,
            flight: InFlight::default(),
            throttle: Throttle::new(max_in_flight),
            next_probe: None,
            health: None,
            last_answer: None,
            last_failure: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn in_flight(&self) -> usize {
        self.flight.count()
    }

    pub fn cap(&self) -> usize {
        self.throttle.cap()
    }

    pub fn error_rate(&self) -> f64 {
        self.error_rate
    }

    pub fn timeout_rate(&self) -> f64 {
        self.timeout_rate
    }

    /// The latency average, if anything answered yet.
    pub fn ewma(&self) -> Option<Duration> {
        self.latency.ewma()
    }

    /// The 99th percentile of the last answers.
    pub fn p99(&self) -> Option<Duration> {
        self.latency.p99()
    }

    /// A request starts now.
    pub fn start(&mut self, now: Instant, probe: bool) -> Ticket {
        let ticket = self.flight.start(now, probe);
        if probe && self.state == State::Failing {
            self.state = State::Probing;
        }
        self.next_probe = Some(now + self.probe_interval);
        ticket
    }

    /// A started request was not sent after all (a lookup settled the payment first).
    pub fn cancel(&mut self, ticket: Ticket) {
        self.flight.end(ticket);
        if self.state == State::Probing && self.flight.probes() == 0 {
            self.state = State::Failing;
        }
    }

    /// A request ends with `outcome`.
    pub fn finish(&mut self, ticket: Ticket, outcome: AttemptSignal, now: Instant) {
        self.flight.end(ticket);
        let share = |hit: bool, rate: f64| rate + (f64::from(u8::from(hit)) - rate) * RATE_WEIGHT;
        self.error_rate = share(outcome == AttemptSignal::Failed, self.error_rate);
        self.timeout_rate = share(outcome == AttemptSignal::TimedOut, self.timeout_rate);
        match outcome {
            AttemptSignal::Answered => {
                self.latency
                    .record(now.saturating_duration_since(ticket.started));
                self.last_answer = Some(now);
                self.failures_in_a_row = 0;
                self.throttle.answered();
                if !self.state.is_up() {
                    self.state = State::Healthy;
                }
                self.reclassify(now);
            }
            AttemptSignal::TurnedAway => self.throttle.turned_away(ticket.started, now),
            AttemptSignal::Failed | AttemptSignal::TimedOut => {
                self.failures_in_a_row += 1;
                self.last_failure = Some(now);
                if self.failures_in_a_row >= FAIL_AFTER || ticket.probe {
                    self.fail(now);
                }
            }
        }
        if self.state == State::Probing && self.flight.probes() == 0 {
            self.state = State::Failing;
        }
    }

    /// The shared health report arrived (polled at `at`).
    pub fn on_health(&mut self, health: Health, at: Instant, now: Instant) {
        let stale = now.saturating_duration_since(at) > HEALTH_FRESH;
        if stale || self.health.is_some_and(|(_, seen)| at <= seen) {
            return;
        }
        self.health = Some((health, at));
        if health.failing {
            // Unless one of our own requests was answered since it was polled.
            if self.state.is_up() && self.last_answer.is_none_or(|a| at > a) {
                self.fail(now);
            }
        } else if !self.state.is_up() && self.last_failure.is_none_or(|f| at > f) {
            // Polled after our last failure: it works again.
            self.failures_in_a_row = 0;
            self.state = State::Healthy;
            self.reclassify(now);
        } else {
            self.reclassify(now);
        }
    }

    fn fail(&mut self, now: Instant) {
        self.state = if self.flight.probes() > 0 {
            State::Probing
        } else {
            State::Failing
        };
        // The next probe waits a full interval: the failure just seen is fresh news.
        self.next_probe = Some(now + self.probe_interval);
    }

    /// Healthy or Degraded by the expected latency.
    fn reclassify(&mut self, now: Instant) {
        let expected = self.expected(now);
        self.reclassify_by(expected);
    }

    fn reclassify_by(&mut self, expected: Duration) {
        self.state = match self.state {
            State::Healthy if expected > self.deadline => State::Degraded,
            State::Degraded if expected < self.deadline.mul_f64(RECOVER_SHARE) => State::Healthy,
            s => s,
        };
    }

    /// How long a payment sent now should take: the newer of the latency average and
    /// a fresh health report's `minResponseTime`, raised by the age of requests still
    /// in flight (a processor that just slowed down shows it before it answers).
    pub fn expected(&self, now: Instant) -> Duration {
        let reported = self.health.and_then(|(h, at)| {
            let fresh = now.saturating_duration_since(at) <= HEALTH_FRESH;
            let newer = self.last_answer.is_none_or(|a| at > a);
            (fresh && newer).then_some(h.min_response)
        });
        let e = reported.or(self.ewma()).unwrap_or_default();
        match self.flight.stalled_for(now) {
            Some(stalled) => e.max(stalled),
            None => e,
        }
    }

    /// The view the policy decides on. Re-evaluates Healthy/Degraded first, so that a
    /// processor that stalled shows as degraded before any answer.
    pub fn view(&mut self, now: Instant) -> View {
        let expected = self.expected(now);
        if self.state.is_up() {
            self.reclassify_by(expected);
        }
        View {
            state: self.state,
            expected,
            free: self.throttle.free(now, self.flight.count()),
            probe_due: self.next_probe.is_none_or(|t| now >= t),
        }
    }
}

/// The timeout for a request expected to take `expected`: twice that plus a margin,
/// within `[TIMEOUT_FLOOR, ceiling]` (the ceiling wins if lower).
pub fn timeout_for(expected: Duration, ceiling: Duration) -> Duration {
    (2 * expected + TIMEOUT_MARGIN)
        .max(TIMEOUT_FLOOR)
        .min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use throttle::{BUSY_PAUSE_FIRST, MIN_CAP};

    const DEADLINE: Duration = Duration::from_millis(1_500);
    const PROBE: Duration = Duration::from_millis(200);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn vitals() -> Vitals {
        Vitals::new(10, DEADLINE, PROBE)
    }

    /// Sends one request at `t` that ends `after` later with `outcome`.
    fn one(s: &mut Vitals, t: Instant, after: Duration, outcome: AttemptSignal) -> Instant {
        let k = s.start(t, false);
        s.finish(k, outcome, t + after);
        t + after
    }

    #[test]
    fn healthy_to_degraded_and_back_by_latency() {
        let t0 = Instant::now();
        let mut s = vitals();
        let mut t = one(&mut s, t0, ms(5), AttemptSignal::Answered);
        assert_eq!(s.view(t).state, State::Healthy);
        for _ in 0..4 {
            t = one(&mut s, t, ms(2_000), AttemptSignal::Answered);
        }
        assert_eq!(s.view(t).state, State::Degraded);
        assert!(s.view(t).expected > DEADLINE);
        // Back below the deadline but above the hysteresis share: still degraded.
        for _ in 0..8 {
            t = one(&mut s, t, ms(1_300), AttemptSignal::Answered);
        }
        assert_eq!(s.view(t).state, State::Degraded);
        for _ in 0..8 {
            t = one(&mut s, t, ms(20), AttemptSignal::Answered);
        }
        assert_eq!(s.view(t).state, State::Healthy);
    }

    #[test]
    fn requests_in_flight_show_a_slowdown_before_any_answer() {
        let t0 = Instant::now();
        let mut s = vitals();
        one(&mut s, t0, ms(1), AttemptSignal::Answered);
        let tickets: Vec<Ticket> = (0..3).map(|_| s.start(t0, false)).collect();
        assert_eq!(s.view(t0 + ms(100)).state, State::Healthy);
        let late = t0 + ms(1_600);
        let v = s.view(late);
        assert_eq!(v.state, State::Degraded);
        assert_eq!(v.expected, ms(1_600));
        assert_eq!(v.free, 7);
        for k in tickets {
            s.finish(k, AttemptSignal::Answered, t0 + ms(10));
        }
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn probes_in_flight_are_not_a_slowdown() {
        let t0 = Instant::now();
        let mut s = vitals();
        let mut t = t0;
        for _ in 0..FAIL_AFTER {
            t = one(&mut s, t, ms(1), AttemptSignal::Failed);
        }
        // Probes sent into a 2 s failing delay; the processor recovers and a new probe
        // answers at once: the old probes still out must not make it look slow.
        let _old: Vec<Ticket> = (0..5).map(|i| s.start(t + ms(i * 10), true)).collect();
        let k = s.start(t + ms(900), true);
        s.finish(k, AttemptSignal::Answered, t + ms(905));
        let v = s.view(t + ms(1_800));
        assert_eq!(v.state, State::Healthy);
        assert_eq!(v.expected, ms(5));
    }

    #[test]
    fn one_stuck_request_is_not_a_slowdown() {
        let t0 = Instant::now();
        let mut s = vitals();
        one(&mut s, t0, ms(1), AttemptSignal::Answered);
        let _stuck = s.start(t0, false);
        assert_eq!(s.view(t0 + ms(5_000)).state, State::Healthy);
    }

    #[test]
    fn failures_in_a_row_make_it_failing_and_an_answer_heals_it() {
        let t0 = Instant::now();
        let mut s = vitals();
        let mut t = t0;
        for n in 1..=FAIL_AFTER {
            t = one(&mut s, t, ms(10), AttemptSignal::Failed);
            let want = if n < FAIL_AFTER {
                State::Healthy
            } else {
                State::Failing
            };
            assert_eq!(s.state(), want, "after {n} failures");
        }
        // The next probe waits an interval after the last failure.
        assert!(!s.view(t + ms(100)).probe_due);
        assert!(s.view(t + PROBE).probe_due);
        let k = s.start(t + PROBE, true);
        assert_eq!(s.state(), State::Probing);
        assert!(!s.view(t + PROBE).probe_due);
        s.finish(k, AttemptSignal::Answered, t + PROBE + ms(3));
        assert_eq!(s.state(), State::Healthy);
    }

    #[test]
    fn a_failed_probe_returns_to_failing() {
        let t0 = Instant::now();
        let mut s = vitals();
        let mut t = t0;
        for _ in 0..FAIL_AFTER {
            t = one(&mut s, t, ms(1), AttemptSignal::Failed);
        }
        let k = s.start(t + PROBE, true);
        assert_eq!(s.state(), State::Probing);
        s.finish(k, AttemptSignal::Failed, t + PROBE + ms(100));
        assert_eq!(s.state(), State::Failing);
        // Probes overlap: a second one may start while the first is out.
        let a = s.start(t + ms(600), true);
        let b = s.start(t + ms(800), true);
        s.finish(a, AttemptSignal::Failed, t + ms(900));
        assert_eq!(s.state(), State::Probing, "the other probe is still out");
        assert_eq!(s.view(t + ms(900)).free, 9);
        s.finish(b, AttemptSignal::Answered, t + ms(950));
        assert_eq!(s.state(), State::Healthy);
    }

    #[test]
    fn timeouts_count_as_failures() {
        let t0 = Instant::now();
        let mut s = vitals();
        let mut t = t0;
        for _ in 0..FAIL_AFTER {
            t = one(&mut s, t, ms(6_000), AttemptSignal::TimedOut);
        }
        assert_eq!(s.state(), State::Failing);
        assert!(s.timeout_rate() > 0.0);
        assert_eq!(s.error_rate(), 0.0);
    }

    #[test]
    fn health_reports_switch_state() {
        let t0 = Instant::now();
        let mut s = vitals();
        let failing = Health {
            failing: true,
            min_response: ms(100),
        };
        s.on_health(failing, t0, t0);
        assert_eq!(s.state(), State::Failing);
        // A report older than our own last failure does not heal it.
        let t1 = one(&mut s, t0 + ms(10), ms(5), AttemptSignal::Failed);
        let ok = Health {
            failing: false,
            min_response: ms(0),
        };
        s.on_health(ok, t0 + ms(1), t1);
        assert_eq!(s.state(), State::Failing);
        s.on_health(ok, t1 + ms(1), t1 + ms(2));
        assert_eq!(s.state(), State::Healthy);
        // Its minResponseTime raises the expected latency while fresh.
        let slow = Health {
            failing: false,
            min_response: ms(2_000),
        };
        s.on_health(slow, t1 + ms(3), t1 + ms(3));
        assert_eq!(s.view(t1 + ms(4)).state, State::Degraded);
        assert_eq!(s.view(t1 + ms(4)).expected, ms(2_000));
        // A newer answer outweighs the report.
        let t2 = one(&mut s, t1 + ms(5), ms(10), AttemptSignal::Answered);
        assert_eq!(s.view(t2).expected, ms(10));
        // ...and a newer report outweighs the answers: the processor says it is fast again.
        s.on_health(
            Health {
                failing: false,
                min_response: ms(0),
            },
            t2 + ms(1),
            t2 + ms(1),
        );
        assert_eq!(s.view(t2 + ms(1)).expected, ms(0));
        assert_eq!(s.view(t2 + ms(1)).state, State::Healthy);
        // A report is applied once, and a failing one older than our last answer is
        // outweighed by it.
        s.on_health(failing, t2 + ms(1) - ms(1), t2 + ms(2));
        assert_eq!(s.state(), State::Healthy);
        let t3 = one(&mut s, t2 + ms(3), ms(1), AttemptSignal::Answered);
        s.on_health(failing, t3 - ms(1), t3);
        assert_eq!(s.state(), State::Healthy);
        s.on_health(failing, t3 + ms(1), t3 + ms(1));
        assert_eq!(s.state(), State::Failing);
        // A stale report is ignored.
        let mut s = vitals();
        s.on_health(failing, t0, t0 + HEALTH_FRESH + ms(1));
        assert_eq!(s.state(), State::Healthy);
    }

    #[test]
    fn too_many_requests_halve_the_limit_and_answers_grow_it_back() {
        let t0 = Instant::now();
        let mut s = vitals();
        let t = one(&mut s, t0, ms(1), AttemptSignal::TurnedAway);
        assert_eq!(s.cap(), 5);
        let t = one(&mut s, t, ms(1), AttemptSignal::TurnedAway);
        assert_eq!(s.cap(), MIN_CAP);
        assert_eq!(s.state(), State::Healthy, "a 429 is not a failure");
        let mut t = t;
        for _ in 0..20 {
            t = one(&mut s, t, ms(1), AttemptSignal::Answered);
        }
        assert_eq!(s.cap(), 10);
    }

    #[test]
    fn a_429_pauses_the_processor_longer_each_time_until_an_answer() {
        let t0 = Instant::now();
        let mut s = vitals();
        // Two requests out; the first is turned away: nothing may be sent for 50 ms.
        let (a, b) = (s.start(t0, false), s.start(t0, false));
        s.finish(a, AttemptSignal::TurnedAway, t0 + ms(1));
        let paused = t0 + ms(1);
        assert_eq!(s.view(paused).free, 0);
        assert_eq!(s.view(paused + BUSY_PAUSE_FIRST - ms(1)).free, 0);
        // The other one, sent before the pause, is turned away too: no longer pause.
        s.finish(b, AttemptSignal::TurnedAway, t0 + ms(2));
        let free = s.cap() - s.in_flight();
        assert_eq!(s.view(paused + BUSY_PAUSE_FIRST).free, free);
        // Each 429 to a request sent after a pause doubles the next one...
        let mut at = paused + BUSY_PAUSE_FIRST;
        for pause in [100, 200, 400, 800, 1_000, 1_000] {
            let end = one(&mut s, at, ms(1), AttemptSignal::TurnedAway);
            assert_eq!(s.view(end + ms(pause) - ms(1)).free, 0, "{pause} ms");
            at = end + ms(pause);
            assert!(s.view(at).free > 0, "{pause} ms");
        }
        // ...until something is answered: the next 429 pauses for the first length again.
        let end = one(&mut s, at, ms(1), AttemptSignal::Answered);
        let end = one(&mut s, end, ms(1), AttemptSignal::TurnedAway);
        assert_eq!(s.view(end + BUSY_PAUSE_FIRST - ms(1)).free, 0);
        assert!(s.view(end + BUSY_PAUSE_FIRST).free > 0);
        assert_eq!(s.state(), State::Healthy, "a 429 is not a failure");
    }

    #[test]
    fn timeouts_follow_the_expected_latency() {
        let t0 = Instant::now();
        let mut s = vitals();
        let ceiling = ms(6_000);
        assert_eq!(timeout_for(s.expected(t0), ceiling), TIMEOUT_FLOOR);
        let t = one(&mut s, t0, ms(1_000), AttemptSignal::Answered);
        assert_eq!(timeout_for(s.expected(t), ceiling), ms(3_000));
        assert_eq!(timeout_for(s.expected(t), ms(2_000)), ms(2_000));
        s.on_health(
            Health {
                failing: true,
                min_response: ms(5_000),
            },
            t + ms(1),
            t + ms(1),
        );
        assert_eq!(timeout_for(s.expected(t + ms(1)), ceiling), ceiling);
    }

    #[test]
    fn state_labels_follow_all() {
        crate::label_table::assert_consistent(&State::ALL, State::index, State::name);
    }
}
