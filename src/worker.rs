//! Processor-client tasks: each takes a payment from its core's backlog, sends it to
//! a processor, and settles it by the rules of "The payment's life" in `design.md`:
//!
//! - `requestedAt` is fixed per processor at the first attempt there and reused, so
//!   whatever a processor stored is known;
//! - 200 records the payment; 422 records it only when a lookup proves the stored
//!   attempt was ours (same `requestedAt`), otherwise someone else charged it;
//! - 500, 429 and refused connections stored nothing: another processor may be tried;
//! - a timeout or a lost connection leaves the payment uncertain on that processor:
//!   only that processor is tried, with the same `requestedAt`, until it answers, or
//!   until `GET /payments/{id}` answers 404 after the settle time, when no attempt can
//!   still be inside the processor. A payment is never charged by both.
//!
//! Routing here is simple: default first, fallback when default refuses.

use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

use crate::gateway::Core;
use crate::ledger::{Ledger, Record};
use crate::payment::{Payment, Stage};
use crate::processor::{get_payment, post_payment, Lookup, PostOutcome, Processor};
use crate::time::{now_micros, Micros};

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

/// Runs one processor-client task forever.
pub async fn run<L: Ledger>(core: Rc<Core<L>>) {
    loop {
        let p = core.backlog.pop().await;
        handle(&core, p).await;
    }
}

async fn handle<L: Ledger>(core: &Core<L>, mut p: Payment) {
    let first = match p.stage {
        Stage::Uncertain { processor, .. } => processor,
        Stage::Queued => Processor::Default,
    };
    let mut step = attempt(core, &mut p, first).await;
    if step == Step::Refused && first == Processor::Default {
        step = attempt(core, &mut p, Processor::Fallback).await;
    }
    match step {
        Step::Done => {}
        Step::Refused | Step::Later => {
            core.backlog
                .retry_at(Instant::now() + core.config.retry_delay, p);
        }
    }
}

/// One attempt on `target`.
async fn attempt<L: Ledger>(core: &Core<L>, p: &mut Payment, target: Processor) -> Step {
    if matches!(p.stage, Stage::Uncertain { processor, .. } if processor == target) {
        // A lookup is answered without the processor's delay: an earlier attempt that
        // was stored settles the payment now, not after another full delay.
        if let Some(step) = look_up_uncertain(core, p, target).await {
            return step;
        }
    }
    let slot = &mut p.requested_at[target.index()];
    let attempted_before = slot.is_some();
    let requested_at = *slot.get_or_insert_with(now_micros);
    let client = &core.processors[target.index()];
    match post_payment(
        client,
        p.id,
        p.cents,
        requested_at,
        core.config.processor_timeout,
    )
    .await
    {
        PostOutcome::Charged => {
            record(core, p, target, requested_at).await;
            Step::Done
        }
        PostOutcome::AlreadyThere if attempted_before => resolve(core, p, target).await,
        PostOutcome::AlreadyThere => {
            // Never sent there by us, yet stored: charged by another instance (the
            // same correlationId was accepted twice). It is theirs to record.
            Step::Done
        }
        PostOutcome::NotCharged(_) => match p.stage {
            Stage::Uncertain { processor, .. } if processor == target => {
                resolve(core, p, target).await
            }
            _ => Step::Refused,
        },
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
    match get_payment(client, p.id, core.config.processor_timeout).await {
        Lookup::Found { requested_at, .. } if Some(requested_at) == ours => {
            record(core, p, target, requested_at).await;
            Looked::Settled
        }
        // Stored with another requestedAt: another instance charged it.
        Lookup::Found { .. } => Looked::Settled,
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
            Ok(_) => return,
            Err(e) => {
                crate::log!("recording a settled payment failed, retrying: {e}");
                monoio::time::sleep(RECORD_RETRY_PAUSE).await;
            }
        }
    }
}
