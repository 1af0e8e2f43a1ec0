//! The payment path of one core: a dispatcher that places payments by the routing
//! policy, and one task per attempt that carries out the actions of
//! [`crate::engine::settle`], which holds the exactly-once rules of
//! `docs/payment-life.md`: the task sends the attempt, looks the payment up, writes
//! the ledger, places the payment again at once or after `RETRY_DELAY_MS`, and feeds
//! each answer to the vitals and the metrics.
//!
//! The `requestedAt` of a first attempt on a processor is the moment the processor is
//! expected to store the payment (now plus its expected latency), so that a payment a
//! slow processor stores late does not fall into an audit window ours missed. An
//! answer that turns the payment away (429, or another 4XX but 422) also pauses the
//! processor (see [`crate::engine::vitals`]).
//!
//! The dispatcher ([`run`]) looks at the heads of the backlog's lanes, asks
//! [`crate::engine::policy::decide`] with this core's [`crate::engine::vitals`] views, starts an
//! attempt task for each payment placed, and otherwise sleeps until something changes
//! (a payment arrives, an attempt ends, a probe or a patience comes due). It starts
//! attempts at the pace of [`crate::engine::pace`], so that a backlog drained when a
//! processor comes back does not delay the 202s.

use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

use crate::app::state::Core;
use crate::engine::pace::Pacer;
use crate::engine::payment::Payment;
use crate::engine::policy::{decide, Decision, Placing, Rules};
use crate::engine::queue::Lane;
use crate::engine::settle::{first_action, fix_requested_at, settle, Action, Answer, Facts};
use crate::engine::vitals::{timeout_for, AttemptSignal, Ticket};
use crate::ledger::claims::ClaimVerdict;
use crate::ledger::journal::Entry;
use crate::ledger::{Claim, Ledger, Permit, Record};
use crate::processor::Processor;
use crate::upstream::api::{get_payment, post_payment, PostOutcome};
use domain::time::{now_micros, Micros};
use net::log::Throttle;

/// Pause between attempts to write a settled payment to an unreachable ledger (Redis
/// restarting): the record must land, and this keeps a dead Redis from being hammered.
const RECORD_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Failed claims, intents and releases: at most one line a second of each.
static CLAIM_FAILURES: Throttle = Throttle::new();
static INTENT_FAILURES: Throttle = Throttle::new();
static RELEASE_FAILURES: Throttle = Throttle::new();

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
    let mut pacer = Pacer::new(core.config.dispatch_rate);
    loop {
        let now = Instant::now();
        if core.board.version() != health_seen {
            health_seen = core.board.version();
            sync_health(&core, now);
        }
        // Lanes whose head was told to wait this round: it stays so until something
        // changes, and its other payments are younger.
        let mut held = [false; 2];
        // Set when a payment could be placed but the pace says not yet.
        let mut paced = None;
        'placing: loop {
            let mut sent = false;
            for (li, lane) in [Lane::Ready, Lane::Fresh].into_iter().enumerate() {
                if held[li] {
                    continue;
                }
                let Some((pinned, accepted)) = core.backlog.head(lane) else {
                    continue;
                };
                let now = Instant::now();
                let ready_at = pacer.ready_at(now);
                if ready_at > now {
                    paced = Some(ready_at);
                    break 'placing;
                }
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
                let ticket = core.vitals[to.index()].borrow_mut().start(now, probe);
                pacer.take(now);
                monoio::spawn(attempt_task(core.clone(), p, to, ticket, timeout, expected));
                sent = true;
                break;
            }
            if !sent {
                break;
            }
        }
        let waiting = held.contains(&true);
        core.publish();
        if let Some(ready_at) = paced {
            // The timer gives the connection loop the core until the pace allows more.
            monoio::time::sleep_until(ready_at).await;
        } else if waiting {
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

/// Copies the instance's health reports into this core's vitals.
fn sync_health<L>(core: &Core<L>, now: Instant) {
    let wall = now_micros();
    for (i, r) in core.board.get().into_iter().enumerate() {
        if let Some(r) = r {
            let age = Duration::from_micros(wall.saturating_sub(r.at).max(0) as u64);
            let at = now.checked_sub(age).unwrap_or(now);
            core.vitals[i].borrow_mut().on_health(r.health, at, now);
        }
    }
}

/// One attempt, then the payment's next place: settled, or placed again after the wait
/// settlement asked for.
async fn attempt_task<L: Ledger>(
    core: Rc<Core<L>>,
    mut p: Payment,
    to: Processor,
    ticket: Ticket,
    timeout: Duration,
    expected: Duration,
) {
    let again = attempt(&core, &mut p, to, ticket, timeout, expected).await;
    match again {
        Some(wait) => core.backlog.retry_at(Instant::now() + wait, p),
        None => core.settled(),
    }
    core.backlog.kick();
}

/// What a `POST /payments` outcome signals to the vitals. A 4XX (422 is `AlreadyThere`)
/// turns the payment away without the processor failing: a 429 when its queue is full,
/// anything else when it refuses our requests (a wrong URL answering 404, say). Either
/// way it pauses the processor, so that waiting payments do not hammer it.
fn signal_of(o: PostOutcome) -> AttemptSignal {
    match o {
        PostOutcome::Charged | PostOutcome::AlreadyThere => AttemptSignal::Answered,
        PostOutcome::TurnedAway(_) => AttemptSignal::TurnedAway,
        PostOutcome::NotCharged(_) => AttemptSignal::Failed,
        PostOutcome::Unknown => AttemptSignal::TimedOut,
    }
}

/// One attempt on `target`, carrying out [`settle`]'s actions until the payment is
/// settled or due to be placed again. `None`: settled; `Some(wait)`: placed again
/// after `wait`. The ticket is given back to the vitals as soon as the processor's
/// answer is known (before any lookup or ledger write, which are not the processor's
/// latency), or cancelled once a lookup settled the payment without sending it.
async fn attempt<L: Ledger>(
    core: &Core<L>,
    p: &mut Payment,
    target: Processor,
    ticket: Ticket,
    timeout: Duration,
    expected: Duration,
) -> Option<Duration> {
    let vitals = &core.vitals[target.index()];
    let client = &core.processors[target.index()];
    let mut ticket = Some(ticket);
    let mut action = first_action(p.stage, target);
    let again = loop {
        let (answer, now) = match action {
            Action::LookUp(asked) => {
                let lookup = get_payment(client, p.id, core.config.processor_timeout).await;
                (Answer::Looked { lookup, asked }, Instant::now())
            }
            Action::Send => {
                if !p.claimed {
                    match claim(core, p).await {
                        Some(true) => p.claimed = true,
                        Some(false) => {
                            release(core, p).await;
                            break None;
                        }
                        None => break Some(core.config.retry_delay),
                    }
                }
                let sent = fix_requested_at(&mut p.requested_at, target, || {
                    now_micros()
                        .saturating_add(expected.as_micros().min(MAX_AHEAD_MICROS) as Micros)
                });
                // The intent is journaled before the request can reach the processor: a
                // restart then knows where the payment may be stored, and with which
                // requestedAt. Not journaled, it is not sent.
                let intent = Entry::Intent {
                    id: p.id,
                    processor: target,
                    requested_at: sent.requested_at,
                };
                if !core.journal_write(intent) {
                    break Some(core.config.retry_delay);
                }
                let permit = core
                    .ledger
                    .intent(p.id, p.origin, target, sent.requested_at)
                    .await;
                match permit {
                    Ok(Permit::Go) => {}
                    Ok(Permit::Theirs) => {
                        release(core, p).await;
                        break None;
                    }
                    // The instance that took this payment over settles it.
                    Ok(Permit::TakenOver) => break None,
                    Err(e) => {
                        INTENT_FAILURES.log(|| {
                            format!("journaling an attempt failed, it waits and tries again: {e}")
                        });
                        break Some(core.config.retry_delay);
                    }
                }
                let outcome = post_payment(client, p.id, p.cents, sent.requested_at, timeout).await;
                let now = Instant::now();
                if let Some(t) = ticket.take() {
                    vitals.borrow_mut().finish(t, signal_of(outcome), now);
                }
                core.metrics.attempt(target, outcome);
                (Answer::Posted { outcome, sent }, now)
            }
            Action::Record {
                processor,
                requested_at,
            } => {
                record(core, p, processor, requested_at).await;
                break None;
            }
            Action::Nothing => {
                release(core, p).await;
                break None;
            }
            Action::PlaceNow => break Some(Duration::ZERO),
            Action::PlaceLater => break Some(core.config.retry_delay),
        };
        let next = settle(
            &Facts::of(p),
            target,
            answer,
            now,
            core.config.uncertain_settle,
        );
        p.stage = next.stage;
        if let Some(r) = next.resolved {
            core.metrics.resolved(r);
        }
        action = next.action;
    };
    if let Some(t) = ticket {
        vitals.borrow_mut().cancel(t);
    }
    again
}

/// Claims payment `p` for its journal entry before its first attempt: `Some(true)` when
/// this instance may charge it (a claim it keeps itself is journaled first),
/// `Some(false)` when another instance or entry charges it, `None` when the claim could
/// not be made (the payment waits and claims again).
async fn claim<L: Ledger>(core: &Core<L>, p: &Payment) -> Option<bool> {
    let id = p.id;
    let verdict = match core.ledger.claim(id, p.origin).await {
        Ok(Claim::Mine { kept_here }) => {
            let claimant = core.instance.ring.as_ref().map_or(0, |r| r.me() as u8);
            if kept_here && !core.journal_write(Entry::Claimed { id, claimant }) {
                return None;
            }
            ClaimVerdict::Mine
        }
        Ok(Claim::Theirs) => ClaimVerdict::Theirs,
        Err(e) => {
            CLAIM_FAILURES
                .log(|| format!("claiming a payment failed, it waits and claims again: {e}"));
            ClaimVerdict::Failed
        }
    };
    core.metrics.claim(verdict);
    match verdict {
        ClaimVerdict::Mine => Some(true),
        ClaimVerdict::Theirs => Some(false),
        ClaimVerdict::Failed => None,
    }
}

/// Settles payment `p` without a charge here: journaled as done, and its entry in the
/// ledger's journal closed. A release that fails leaves the entry open; whoever takes
/// it over later finds the payment claimed by another and releases it then.
async fn release<L: Ledger>(core: &Core<L>, p: &Payment) {
    core.journal_write(Entry::Done { id: p.id });
    if let Err(e) = core.ledger.release(p.id, p.origin).await {
        RELEASE_FAILURES.log(|| format!("closing a settled payment's journal entry failed: {e}"));
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
    // A record the journal lost is found again by a lookup after a restart (its intent
    // is there).
    core.journal_write(Entry::Recorded(rec));
    loop {
        match core.ledger.settle(rec, p.origin).await {
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
    fn outcomes_feed_the_vitals() {
        assert_eq!(signal_of(PostOutcome::Charged), AttemptSignal::Answered);
        assert_eq!(
            signal_of(PostOutcome::AlreadyThere),
            AttemptSignal::Answered
        );
        assert_eq!(
            signal_of(PostOutcome::TurnedAway(429)),
            AttemptSignal::TurnedAway
        );
        // A request the processor refuses is not the processor failing.
        assert_eq!(
            signal_of(PostOutcome::TurnedAway(400)),
            AttemptSignal::TurnedAway
        );
        assert_eq!(
            signal_of(PostOutcome::TurnedAway(404)),
            AttemptSignal::TurnedAway
        );
        assert_eq!(
            signal_of(PostOutcome::NotCharged(500)),
            AttemptSignal::Failed
        );
        assert_eq!(signal_of(PostOutcome::NotCharged(0)), AttemptSignal::Failed);
        assert_eq!(signal_of(PostOutcome::Unknown), AttemptSignal::TimedOut);
    }
}
