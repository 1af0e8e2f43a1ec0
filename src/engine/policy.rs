//! The routing policy: a pure function from what is known about both processors, the
//! payment and the configuration to a decision. `docs/routing.md` explains it stage by
//! stage for both official scenarios; the tests below replay those stages.
//!
//! The objective is the largest net amount (amount − fee) over payments settled within
//! the deadline. In order:
//! 1. An uncertain payment goes only where it is pinned (exactly-once rule).
//! 2. A processor that is failing or too slow gets a real payment as a probe at a
//!    bounded rate: the only way to see it recover without waiting for a health poll.
//! 3. The default when it can settle the payment within the deadline; if it is only
//!    full, wait for a slot while that still settles it in time.
//! 4. The fallback when it can, and the default cannot: because it is too slow or
//!    full (a payment sent there cannot be moved), or because it is failing and the
//!    payment has already waited the patience (waiting keeps every option open, but
//!    risks the payment; see [`crate::app::config::GatewayConfig::patience`]).
//! 5. Past the deadline, the cheapest processor that works (waiting for a slot of a
//!    working default rather than paying the fallback).
//! 6. Otherwise wait.

use std::time::Duration;

use crate::engine::vitals::{State, View};
use crate::processor::Processor;

/// The configuration the policy reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub deadline: Duration,
    /// How long a payment may wait for a failing default.
    pub patience: Duration,
}

/// The payment being placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placing {
    /// Uncertain on this processor: it may go nowhere else.
    pub pinned: Option<Processor>,
    /// Time since it was accepted.
    pub age: Duration,
}

/// What to do with the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send { to: Processor, probe: bool },
    Wait,
}

impl Decision {
    /// One decision of each kind, in the order metrics lists them (sent as probes or
    /// not, a placement counts by its processor).
    pub const ALL: [Decision; 3] = [
        Decision::Send {
            to: Processor::Default,
            probe: false,
        },
        Decision::Send {
            to: Processor::Fallback,
            probe: false,
        },
        Decision::Wait,
    ];

    /// Position of this decision's kind in [`Decision::ALL`].
    pub fn index(self) -> usize {
        match self {
            Decision::Send { to, .. } => to.index(),
            Decision::Wait => 2,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Send {
                to: Processor::Default,
                ..
            } => "default",
            Decision::Send {
                to: Processor::Fallback,
                ..
            } => "fallback",
            Decision::Wait => "wait",
        }
    }
}

fn send(to: Processor) -> Decision {
    Decision::Send { to, probe: false }
}

/// Decides where `pay` goes now. `views` by `Processor::index`.
pub fn decide(views: &[View; 2], pay: Placing, rules: &Rules) -> Decision {
    let [d, f] = views;
    if let Some(p) = pay.pinned {
        let v = &views[p.index()];
        return if v.free > 0 {
            Decision::Send {
                to: p,
                probe: !v.state.is_up(),
            }
        } else {
            Decision::Wait
        };
    }
    if d.state != State::Healthy && d.free > 0 && d.probe_due {
        return Decision::Send {
            to: Processor::Default,
            probe: true,
        };
    }
    let remaining = rules.deadline.saturating_sub(pay.age);
    let in_time = |v: &View| v.state.is_up() && v.free > 0 && v.expected <= remaining;
    if in_time(d) {
        return send(Processor::Default);
    }
    // A full default frees a slot within about one latency: worth waiting for if the
    // payment still settles in time.
    let d_full = d.state.is_up() && d.free == 0;
    if d_full && d.expected * 2 <= remaining {
        return Decision::Wait;
    }
    let waited_enough = pay.age >= rules.patience;
    if in_time(f) && (d.state.is_up() || waited_enough) {
        return send(Processor::Fallback);
    }
    // Nothing settles it in time: the cheapest processor that works, waiting for a
    // slot of the default rather than paying the fallback's fee.
    if d.state.is_up() {
        return if d.free > 0 {
            send(Processor::Default)
        } else {
            Decision::Wait
        };
    }
    if f.free > 0 && waited_enough {
        if f.state.is_up() {
            return send(Processor::Fallback);
        }
        if f.probe_due {
            return Decision::Send {
                to: Processor::Fallback,
                probe: true,
            };
        }
    }
    Decision::Wait
}

#[cfg(test)]
mod tests {
    //! One test per stage of both official scenarios (`docs/routing.md`), with the
    //! views the signals show in that stage, plus the transitions between them.
    use super::*;

    const DEADLINE: Duration = Duration::from_millis(1_500);
    /// Patience with the preview's fees (5 % / 15 %) and the final's (7 % / 10 %).
    const PREVIEW: Rules = Rules {
        deadline: DEADLINE,
        patience: Duration::from_millis(25_263),
    };
    const FINAL: Rules = Rules {
        deadline: DEADLINE,
        patience: Duration::from_millis(7_741),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn up(latency_ms: u64) -> View {
        View {
            state: if ms(latency_ms) > DEADLINE {
                State::Degraded
            } else {
                State::Healthy
            },
            expected: ms(latency_ms),
            free: 100,
            probe_due: false,
        }
    }

    fn failing(probe_due: bool) -> View {
        View {
            state: State::Failing,
            expected: ms(0),
            free: 100,
            probe_due,
        }
    }

    fn fresh() -> Placing {
        Placing {
            pinned: None,
            age: ms(0),
        }
    }

    fn aged(n: u64) -> Placing {
        Placing {
            pinned: None,
            age: ms(n),
        }
    }

    const DEFAULT: Decision = Decision::Send {
        to: Processor::Default,
        probe: false,
    };
    const FALLBACK: Decision = Decision::Send {
        to: Processor::Fallback,
        probe: false,
    };
    const PROBE_DEFAULT: Decision = Decision::Send {
        to: Processor::Default,
        probe: true,
    };

    #[test]
    fn preview_0s_to_10s_both_fast_default() {
        assert_eq!(decide(&[up(1), up(1)], fresh(), &PREVIEW), DEFAULT);
    }

    #[test]
    fn preview_10s_default_100ms_still_default() {
        assert_eq!(decide(&[up(100), up(1)], fresh(), &PREVIEW), DEFAULT);
    }

    #[test]
    fn preview_20s_default_failing_payments_wait_for_it() {
        let views = [failing(false), up(1)];
        assert_eq!(decide(&views, fresh(), &PREVIEW), Decision::Wait);
        // Still waiting after 20 s: the preview's outage is shorter than its patience.
        assert_eq!(decide(&views, aged(20_000), &PREVIEW), Decision::Wait);
        // A probe goes when due.
        assert_eq!(
            decide(&[failing(true), up(1)], aged(3_000), &PREVIEW),
            PROBE_DEFAULT
        );
        // Past the patience the fallback is worth its fee.
        assert_eq!(decide(&views, aged(25_300), &PREVIEW), FALLBACK);
    }

    #[test]
    fn preview_30s_both_failing_wait_and_probe_the_default() {
        let views = [failing(false), failing(true)];
        assert_eq!(decide(&views, aged(5_000), &PREVIEW), Decision::Wait);
        assert_eq!(
            decide(&[failing(true), failing(true)], fresh(), &PREVIEW),
            PROBE_DEFAULT
        );
        // Past the patience the fallback is probed too.
        assert_eq!(
            decide(&views, aged(26_000), &PREVIEW),
            Decision::Send {
                to: Processor::Fallback,
                probe: true
            }
        );
    }

    #[test]
    fn preview_40s_default_recovered_backlog_drains_to_default() {
        // The backlog is older than the deadline: the cheapest working processor.
        assert_eq!(decide(&[up(20), up(20)], aged(19_000), &PREVIEW), DEFAULT);
        assert_eq!(decide(&[up(20), up(20)], fresh(), &PREVIEW), DEFAULT);
    }

    #[test]
    fn preview_50s_fallback_slow_changes_nothing() {
        assert_eq!(decide(&[up(1), up(5_000)], fresh(), &PREVIEW), DEFAULT);
    }

    #[test]
    fn final_30s_default_1s_still_in_time() {
        assert_eq!(decide(&[up(1_000), up(1)], fresh(), &FINAL), DEFAULT);
        // A payment that already waited cannot afford the default's second any more.
        assert_eq!(decide(&[up(1_000), up(1)], aged(800), &FINAL), FALLBACK);
    }

    #[test]
    fn final_60s_default_500ms_default() {
        assert_eq!(decide(&[up(500), up(1)], fresh(), &FINAL), DEFAULT);
    }

    #[test]
    fn final_90s_default_failing_fallback_1s_after_the_patience() {
        let views = [failing(false), up(1_000)];
        assert_eq!(decide(&views, fresh(), &FINAL), Decision::Wait);
        assert_eq!(decide(&views, aged(7_000), &FINAL), Decision::Wait);
        assert_eq!(decide(&views, aged(7_800), &FINAL), FALLBACK);
        // While it only looks slow (answers pending, no failure seen yet), the default
        // is too slow for the deadline and the fallback is not: no waiting.
        assert_eq!(decide(&[up(1_600), up(1_000)], fresh(), &FINAL), FALLBACK);
    }

    #[test]
    fn final_120s_default_failing_5s_fallback_fast() {
        let views = [failing(false), up(5)];
        assert_eq!(decide(&views, aged(1_000), &FINAL), Decision::Wait);
        assert_eq!(decide(&views, aged(8_000), &FINAL), FALLBACK);
    }

    #[test]
    fn final_150s_default_back_fallback_failing() {
        let views = [up(1), failing(true)];
        assert_eq!(decide(&views, fresh(), &FINAL), DEFAULT);
        assert_eq!(decide(&views, aged(7_000), &FINAL), DEFAULT);
    }

    #[test]
    fn final_180s_to_240s_small_delays_default() {
        for delay in [100, 50, 103] {
            assert_eq!(decide(&[up(delay), up(10)], fresh(), &FINAL), DEFAULT);
        }
    }

    #[test]
    fn final_270s_default_2s_goes_to_fallback_and_is_probed() {
        let mut d = up(2_000);
        assert_eq!(d.state, State::Degraded);
        assert_eq!(decide(&[d, up(1)], fresh(), &FINAL), FALLBACK);
        d.probe_due = true;
        assert_eq!(decide(&[d, up(1)], fresh(), &FINAL), PROBE_DEFAULT);
    }

    #[test]
    fn slow_default_and_no_fallback_still_uses_the_default() {
        assert_eq!(
            decide(&[up(2_000), failing(false)], fresh(), &FINAL),
            DEFAULT
        );
        assert_eq!(decide(&[up(2_000), up(3_000)], fresh(), &FINAL), DEFAULT);
    }

    #[test]
    fn a_full_default_is_waited_for_while_that_still_settles_in_time() {
        let mut d = up(20);
        d.free = 0;
        // A slot frees within ~20 ms: wait for it rather than pay the fallback.
        assert_eq!(decide(&[d, up(1)], fresh(), &FINAL), Decision::Wait);
        // The backlog drained after an outage is past its deadline: still the default.
        assert_eq!(decide(&[d, up(1)], aged(19_000), &PREVIEW), Decision::Wait);
        // A full default too slow to wait for: the fallback settles it in time.
        let mut slow = up(1_000);
        slow.free = 0;
        assert_eq!(decide(&[slow, up(1)], fresh(), &FINAL), FALLBACK);
        let mut f = up(1);
        f.free = 0;
        assert_eq!(decide(&[slow, f], fresh(), &FINAL), Decision::Wait);
    }

    #[test]
    fn pinned_payments_go_only_where_they_are_pinned() {
        let pinned = |p| Placing {
            pinned: Some(p),
            age: ms(30_000),
        };
        assert_eq!(
            decide(&[up(1), up(1)], pinned(Processor::Fallback), &FINAL),
            FALLBACK
        );
        assert_eq!(
            decide(&[failing(false), up(1)], pinned(Processor::Default), &FINAL),
            PROBE_DEFAULT
        );
        let mut full = up(1);
        full.free = 0;
        assert_eq!(
            decide(&[full, up(1)], pinned(Processor::Default), &FINAL),
            Decision::Wait
        );
    }

    #[test]
    fn no_patience_when_the_fallback_is_no_dearer() {
        let rules = Rules {
            deadline: DEADLINE,
            patience: Duration::ZERO,
        };
        assert_eq!(decide(&[failing(false), up(1)], fresh(), &rules), FALLBACK);
    }

    #[test]
    fn decision_labels_follow_all() {
        crate::label_table::assert_consistent(&Decision::ALL, Decision::index, Decision::name);
        let probe = Decision::Send {
            to: Processor::Fallback,
            probe: true,
        };
        assert_eq!(probe.index(), FALLBACK.index());
    }
}
