//! The payment path of one core: a dispatcher that places payments by the routing
//! policy, and one task per attempt that settles it by the rules of "The payment's
//! life" in `design.md`:
//!
//! - `requestedAt` is fixed per processor at the first attempt there and reused, so
//!   whatever a processor stored is always known. It is the moment the processor is
//!   expected to store the payment (now plus its expected latency), so that a payment
//!   a slow processor stores late does not fall into an audit window ours missed;
//! - 200 records the payment; 422 records it only when a lookup proves the stored
//!   attempt was ours (same `requestedAt`), otherwise someone else charged it;
//! - 500, 429 and refused connections stored nothing: the payment is placed again, at
//!   once after a 500 or a refused connection, after `RETRY_DELAY_MS` after a 4XX
//!   (a 429 means the processor's queue is full: sending again at once would loop at
//!   round-trip speed), which also pauses the processor (see [`crate::engine::vitals`]);
//! - a timeout or a lost connection leaves the payment uncertain on that processor:
//!   only that processor is tried, with the same `requestedAt`, until it answers, or
//!   until `GET /payments/{id}` answers 404 after the settle time, when no attempt can
//!   still be inside the processor. A payment is never charged by both.
//!
//! The dispatcher ([`run`]) looks at the heads of the backlog's lanes, asks
//! [`crate::engine::policy::decide`] with this core's [`crate::engine::vitals`] views, starts an
//! attempt task for each payment placed, and otherwise sleeps until something changes
//! (a payment arrives, an attempt ends, a probe or a patience comes due). It yields to
//! the connection loop after every [`BURST`] placements, so that a drained backlog does
//! not delay the 202s.

use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

use crate::app::core::Core;
use crate::app::metrics::Resolved;
use crate::engine::payment::{Payment, Stage};
use crate::engine::policy::{decide, Decision, Placing, Rules};
use crate::engine::queue::Lane;
use crate::engine::vitals::{timeout_for, Outcome, Ticket};
use crate::ledger::{Ledger, Record};
use crate::processor::Processor;
use crate::upstream::api::{get_payment, post_payment, Lookup, PostOutcome};
use domain::time::{now_micros, Micros};

/// Pause between attempts to write a settled payment to an unreachable ledger (Redis
/// restarting): the record must land, and this keeps a dead Redis from being hammered.
const RECORD_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The result of one step on a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Settled: recorded, or known to be charged by someone else.
    Done,
    /// This processor did not store it, and no earlier attempt can still land there:
    /// the payment is free to go anywhere.
    Refused,
    /// Try again later on the same processor (uncertain, or not resolvable yet).
    Later,
}

/// Placements in a row before the dispatcher lets the connection loop run: a backlog
/// of thousands drained at once would otherwise hold the core for milliseconds.
pub const BURST: usize = 32;
/// Furthest ahead of now a `requestedAt` is set (the expected latency, bounded by the
/// longest timeout a request may have).
const MAX_AHEAD_MICROS: u128 = 60_000_000;
/// Longest the dispatcher sleeps while payments wait: health reports from other
/// threads do not wake it, so it looks again this often.
const IDLE_TICK: Duration = Duration::from_millis(50);

/// Runs one core's dispatcher forever.
pub async fn run<L: Ledger + 'static>(core: Rc<Core<L>>) {
    let rules = Rules {
        deadline: core.config.deadline,
        patience: core.config.patience(),
    };
    let mut health_seen = u64::MAX;
    loop {
        let now = Instant::now();
        if core.board.version() != health_seen {
            health_seen = core.board.version();
            sync_health(&core, now);
        }
        let mut placed = 0;
        // Lanes whose head was told to wait this round: it stays so until something
        // changes, and its other payments are younger.
        let mut held = [false; 2];
        loop {
            let mut sent = false;
            for (li, lane) in [Lane::Ready, Lane::Fresh].into_iter().enumerate() {
                if held[li] {
                    continue;
                }
                let Some((pinned, accepted)) = core.backlog.head(lane) else {
                    continue;
                };
                let now = Instant::now();
                let views = core.views(now);
                let age = now.saturating_duration_since(accepted);
                let decision = decide(&views, Placing { pinned, age }, &rules);
                core.metrics.decision(decision);
                let Decision::Send { to, probe } = decision else {
                    held[li] = true;
                    continue;
                };
                let Some(p) = core.backlog.take(lane) else {
                    continue;
                };
                let expected = views[to.index()].expected;
                let timeout = if probe {
                    // A probe waits for the real answer: a timeout would pin a payment
                    // to a failing processor.
                    core.config.processor_timeout
                } else {
                    timeout_for(expected, core.config.processor_timeout)
                };
                let ticket = core.signals[to.index()].borrow_mut().start(now, probe);
                monoio::spawn(attempt_task(core.clone(), p, to, ticket, timeout, expected));
                sent = true;
                placed += 1;
                if placed % BURST == 0 {
                    core.publish();
                    yield_now().await;
                }
                break;
            }
            if !sent {
                break;
            }
        }
        let waiting = held.contains(&true);
        core.publish();
        if waiting {
            let wake_at = Instant::now() + IDLE_TICK;
            monoio::select! {
                _ = core.backlog.changed() => {}
                _ = monoio::time::sleep_until(wake_at) => {}
            }
        } else {
            core.backlog.changed().await;
        }
    }
}

/// Copies the instance's health reports into this core's signals.
fn sync_health<L>(core: &Core<L>, now: Instant) {
    let wall = now_micros();
    for (i, r) in core.board.get().into_iter().enumerate() {
        if let Some(r) = r {
            let age = Duration::from_micros(wall.saturating_sub(r.at).max(0) as u64);
            let at = now.checked_sub(age).unwrap_or(now);
            core.signals[i].borrow_mut().on_health(r.health, at, now);
        }
    }
}

/// Lets the other tasks of this core run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// One attempt, then the payment's next place: settled, placed again at once, or
/// retried after the retry delay.
async fn attempt_task<L: Ledger>(
    core: Rc<Core<L>>,
    mut p: Payment,
    to: Processor,
    ticket: Ticket,
    timeout: Duration,
    expected: Duration,
) {
    let step = attempt(&core, &mut p, to, ticket, timeout, expected).await;
    let now = Instant::now();
    match step {
        Step::Done => {}
        Step::Refused => core.backlog.retry_at(now, p),
        Step::Later => core.backlog.retry_at(now + core.config.retry_delay, p),
    }
    core.backlog.kick();
}

/// What a `POST /payments` outcome tells the signals. A 4XX (422 is `AlreadyThere`)
/// turns the payment away without the processor failing: a 429 when its queue is full,
/// anything else when it refuses our requests (a wrong URL answering 404, say). Either
/// way it pauses the processor, so that waiting payments do not hammer it.
fn signal_of(o: PostOutcome) -> Outcome {
    match o {
        PostOutcome::Charged | PostOutcome::AlreadyThere => Outcome::Answered,
        PostOutcome::TurnedAway(_) => Outcome::TurnedAway,
        PostOutcome::NotCharged(_) => Outcome::Failed,
        PostOutcome::Unknown => Outcome::TimedOut,
    }
}

/// One attempt on `target`. The ticket is given back to the signals as soon as the
/// processor's answer is known (before any lookup or ledger write, which are not the
/// processor's latency).
async fn attempt<L: Ledger>(
    core: &Core<L>,
    p: &mut Payment,
    target: Processor,
    ticket: Ticket,
    timeout: Duration,
    expected: Duration,
) -> Step {
    let signals = &core.signals[target.index()];
    if p.pinned() == Some(target) {
        // A lookup is answered without the processor's delay: an earlier attempt that
        // was stored settles the payment now, not after another full delay.
        if let Some(step) = look_up_uncertain(core, p, target).await {
            signals.borrow_mut().cancel(ticket);
            return step;
        }
    }
    let slot = &mut p.requested_at[target.index()];
    let attempted_before = slot.is_some();
    let requested_at = *slot.get_or_insert_with(|| {
        now_micros().saturating_add(expected.as_micros().min(MAX_AHEAD_MICROS) as Micros)
    });
    let client = &core.processors[target.index()];
    let outcome = post_payment(client, p.id, p.cents, requested_at, timeout).await;
    signals
        .borrow_mut()
        .finish(ticket, signal_of(outcome), Instant::now());
    core.metrics.attempt(target, outcome);
    let was_uncertain = p.pinned() == Some(target);
    match outcome {
        PostOutcome::Charged => {
            if was_uncertain {
                core.metrics.resolved(Resolved::Recorded);
            }
            record(core, p, target, requested_at).await;
            Step::Done
        }
        PostOutcome::AlreadyThere if attempted_before => {
            // The processor says it holds the payment: it goes nowhere else until a
            // lookup settles it (or, after a purge there, a 404 past the settle time).
            if !was_uncertain {
                p.stage = Stage::Uncertain {
                    processor: target,
                    since: Instant::now(),
                };
            }
            resolve(core, p, target).await
        }
        PostOutcome::AlreadyThere => {
            // Never sent there by us, yet stored: charged by another instance (the
            // same correlationId was accepted twice). It is theirs to record.
            Step::Done
        }
        PostOutcome::NotCharged(_) | PostOutcome::TurnedAway(_) if was_uncertain => {
            resolve(core, p, target).await
        }
        // Refused as a request (400...) or turned away (429: the processor's queue is
        // full): not again at once, and not only here.
        PostOutcome::TurnedAway(_) => Step::Later,
        PostOutcome::NotCharged(_) => Step::Refused,
        PostOutcome::Unknown => {
            p.stage = Stage::Uncertain {
                processor: target,
                since: Instant::now(),
            };
            Step::Later
        }
    }
}

/// What a lookup told, once acted on.
enum Looked {
    /// Stored there: recorded if the stored `requestedAt` is ours, otherwise someone
    /// else charged it. Either way the payment is settled.
    Settled,
    /// 404: not stored there (yet).
    Missing,
    /// No usable answer.
    Unknown,
}

/// Asks `target` whether it stored the payment, recording it if the stored attempt is
/// ours.
async fn look_up<L: Ledger>(core: &Core<L>, p: &Payment, target: Processor) -> Looked {
    let ours = p.requested_at[target.index()];
    let client = &core.processors[target.index()];
    let uncertain = p.pinned() == Some(target);
    match get_payment(client, p.id, core.config.processor_timeout).await {
        Lookup::Found { requested_at, .. } if Some(requested_at) == ours => {
            if uncertain {
                core.metrics.resolved(Resolved::Recorded);
            }
            record(core, p, target, requested_at).await;
            Looked::Settled
        }
        // Stored with another requestedAt: another instance charged it.
        Lookup::Found { .. } => {
            if uncertain {
                core.metrics.resolved(Resolved::Elsewhere);
            }
            Looked::Settled
        }
        Lookup::NotFound => Looked::Missing,
        Lookup::Unknown => Looked::Unknown,
    }
}

/// Whether an uncertain payment has waited long enough that a 404 proves no attempt
/// can still land; if so it is free again.
fn free_if_settled<L>(core: &Core<L>, p: &mut Payment, target: Processor) -> bool {
    match p.stage {
        Stage::Uncertain { processor, since } if processor == target => {
            let settled = since.elapsed() >= core.config.uncertain_settle;
            if settled {
                p.stage = Stage::Queued;
                core.metrics.resolved(Resolved::Freed);
            }
            settled
        }
        _ => false,
    }
}

/// Before retrying an uncertain payment: settles it if `target` stored it, and frees
/// it once a 404 comes after the settle time. `None`: go on and send it again (always
/// safe on the same processor with the same `requestedAt`).
async fn look_up_uncertain<L: Ledger>(
    core: &Core<L>,
    p: &mut Payment,
    target: Processor,
) -> Option<Step> {
    match look_up(core, p, target).await {
        Looked::Settled => Some(Step::Done),
        Looked::Missing => {
            free_if_settled(core, p, target);
            None
        }
        Looked::Unknown => None,
    }
}

/// After a 422 following our own attempts, or a refusal while uncertain: settles what
/// a lookup allows.
async fn resolve<L: Ledger>(core: &Core<L>, p: &mut Payment, target: Processor) -> Step {
    match look_up(core, p, target).await {
        Looked::Settled => Step::Done,
        // Uncertain and past the settle time: free to go elsewhere. Still within it, an
        // attempt may be waiting inside the processor. Not uncertain (a 422 said it is
        // there, the lookup says it is not: a purge in between): ask again later.
        Looked::Missing if free_if_settled(core, p, target) => Step::Refused,
        Looked::Missing | Looked::Unknown => Step::Later,
    }
}

/// Writes a settled payment to the ledger, retrying until it lands.
async fn record<L: Ledger>(
    core: &Core<L>,
    p: &Payment,
    processor: Processor,
    requested_at: Micros,
) {
    let rec = Record {
        id: p.id,
        processor,
        requested_at,
        cents: p.cents,
    };
    loop {
        match core.ledger.record(rec).await {
            Ok(_) => {
                core.metrics.settled(processor);
                return;
            }
            Err(e) => {
                net::log!("recording a settled payment failed, retrying: {e}");
                monoio::time::sleep(RECORD_RETRY_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_feed_the_signals() {
        assert_eq!(signal_of(PostOutcome::Charged), Outcome::Answered);
        assert_eq!(signal_of(PostOutcome::AlreadyThere), Outcome::Answered);
        assert_eq!(signal_of(PostOutcome::TurnedAway(429)), Outcome::TurnedAway);
        // A request the processor refuses is not the processor failing.
        assert_eq!(signal_of(PostOutcome::TurnedAway(400)), Outcome::TurnedAway);
        assert_eq!(signal_of(PostOutcome::TurnedAway(404)), Outcome::TurnedAway);
        assert_eq!(signal_of(PostOutcome::NotCharged(500)), Outcome::Failed);
        assert_eq!(signal_of(PostOutcome::NotCharged(0)), Outcome::Failed);
        assert_eq!(signal_of(PostOutcome::Unknown), Outcome::TimedOut);
    }
}
