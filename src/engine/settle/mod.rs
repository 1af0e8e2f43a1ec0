//! Settlement: the exactly-once rules of `docs/payment-life.md` as pure functions.

use std::time::Duration;

use monoio::time::Instant;

use crate::engine::payment::{Payment, Stage};
use crate::processor::Processor;
use crate::upstream::api::{Lookup, PostOutcome};
use domain::time::Micros;

/// How an uncertain payment ended up settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Proven ours (a retry answered, or the lookup showed our `requestedAt`): recorded.
    Recorded,
    /// Stored there with someone else's `requestedAt`: theirs.
    Elsewhere,
    /// A 404 after the settle time: free to go anywhere again.
    Freed,
}

impl Resolved {
    pub const ALL: [Resolved; 3] = [Resolved::Recorded, Resolved::Elsewhere, Resolved::Freed];

    /// Position in [`Resolved::ALL`].
    pub fn index(self) -> usize {
        match self {
            Resolved::Recorded => 0,
            Resolved::Elsewhere => 1,
            Resolved::Freed => 2,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Resolved::Recorded => "recorded",
            Resolved::Elsewhere => "elsewhere",
            Resolved::Freed => "freed",
        }
    }
}

/// What settlement reads of a payment: where it is, and the `requestedAt` sent to each
/// processor (by `Processor::index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub stage: Stage,
    pub requested_at: [Option<Micros>; 2],
}

impl Facts {
    pub fn of(p: &Payment) -> Facts {
        Facts {
            stage: p.stage,
            requested_at: p.requested_at,
        }
    }
}

/// The `requestedAt` an attempt carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub requested_at: Micros,
    /// Nothing had been sent to that processor before: a 422 then means someone else
    /// stored the payment.
    pub first: bool,
}

/// Why a processor is asked `GET /payments/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Before an uncertain payment is sent again: a stored attempt settles it without
    /// another full delay; otherwise the attempt is sent.
    BeforeSending,
    /// After an answer that only a lookup can settle: a 422 following an attempt of
    /// ours, or an attempt turned down while the payment is uncertain there.
    AfterAnswer,
}

/// What a processor answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// To `POST /payments`, sent with `sent`.
    Posted { outcome: PostOutcome, sent: Sent },
    /// To `GET /payments/{id}`, asked for `asked`.
    Looked { lookup: Lookup, asked: Asked },
}

/// What the attempt task does next with the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask the processor `GET /payments/{id}`, and settle its answer.
    LookUp(Asked),
    /// Send `POST /payments` to the processor with the `requestedAt` fixed there
    /// ([`fix_requested_at`]), and settle its answer.
    Send,
    /// Settled: write it to the ledger as charged by `processor` at `requested_at`.
    Record {
        processor: Processor,
        requested_at: Micros,
    },
    /// Settled without a record: someone else charged it, and it is theirs to record.
    Nothing,
    /// Not stored by this attempt and free of it: place it again at once.
    PlaceNow,
    /// Place it again after `RETRY_DELAY_MS`: on its processor only while it is
    /// uncertain there, on either one otherwise.
    PlaceLater,
}

/// The payment's next stage, the action to take, and how an uncertain payment was
/// resolved (for the metrics), if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub stage: Stage,
    pub action: Action,
    pub resolved: Option<Resolved>,
}

/// The first action of an attempt on `on`: an uncertain payment is looked up there
/// before it is sent again; any other payment is sent.
pub fn first_action(stage: Stage, on: Processor) -> Action {
    if pinned_to(stage, on) {
        Action::LookUp(Asked::BeforeSending)
    } else {
        Action::Send
    }
}

/// The `requestedAt` for an attempt on `on`: the one fixed at the first attempt there,
/// or `fresh()`, then fixed, for the first. `fresh` is called only for a first attempt.
pub fn fix_requested_at(
    requested_at: &mut [Option<Micros>; 2],
    on: Processor,
    fresh: impl FnOnce() -> Micros,
) -> Sent {
    let slot = &mut requested_at[on.index()];
    let first = slot.is_none();
    Sent {
        requested_at: *slot.get_or_insert_with(fresh),
        first,
    }
}

/// Settles what processor `on` answered about a payment in `facts`, at `now`, with
/// `uncertain_settle` the time after the last uncertain attempt beyond which a 404
/// proves no attempt can still be stored. By the rows of `docs/payment-life.md`:
///
/// - 200 records the attempt's `requestedAt`;
/// - 422 records nothing after a first attempt there (someone else charged it), and
///   otherwise pins the payment there and looks it up;
/// - 500 or a refused connection places it again at once, a 4XX other than 422 after
///   the retry delay; while it is uncertain there, either is looked up first;
/// - a timeout or a lost connection makes it uncertain there since `now`;
/// - a lookup that finds our `requestedAt` records it, another one records nothing; a
///   404 frees an uncertain payment once `uncertain_settle` has passed; without a
///   settling answer, a lookup before sending goes on to send, one after an answer
///   places it again after the retry delay.
pub fn settle(
    facts: &Facts,
    on: Processor,
    answer: Answer,
    now: Instant,
    uncertain_settle: Duration,
) -> Next {
    let stage = facts.stage;
    let uncertain = pinned_to(stage, on);
    let next = |stage, action| Next {
        stage,
        action,
        resolved: None,
    };
    match answer {
        Answer::Posted { outcome, sent } => match outcome {
            PostOutcome::Charged => Next {
                stage,
                action: Action::Record {
                    processor: on,
                    requested_at: sent.requested_at,
                },
                resolved: uncertain.then_some(Resolved::Recorded),
            },
            // Never sent there by us, yet stored: charged by another instance (the same
            // correlationId was accepted twice).
            PostOutcome::AlreadyThere if sent.first => next(stage, Action::Nothing),
            // The processor says it holds the payment: it goes nowhere else until a
            // lookup settles it (or, after a purge there, a 404 past the settle time).
            PostOutcome::AlreadyThere => {
                let stage = if uncertain {
                    stage
                } else {
                    Stage::Uncertain {
                        processor: on,
                        since: now,
                    }
                };
                next(stage, Action::LookUp(Asked::AfterAnswer))
            }
            PostOutcome::NotCharged(_) | PostOutcome::TurnedAway(_) if uncertain => {
                next(stage, Action::LookUp(Asked::AfterAnswer))
            }
            // Refused as a request (400...) or turned away (429: the processor's queue
            // is full): not again at once, and not only here.
            PostOutcome::TurnedAway(_) => next(stage, Action::PlaceLater),
            PostOutcome::NotCharged(_) => next(stage, Action::PlaceNow),
            PostOutcome::Unknown => next(
                Stage::Uncertain {
                    processor: on,
                    since: now,
                },
                Action::PlaceLater,
            ),
        },
        Answer::Looked { lookup, asked } => {
            let unsettled = match asked {
                Asked::BeforeSending => Action::Send,
                Asked::AfterAnswer => Action::PlaceLater,
            };
            match lookup {
                Lookup::Found { requested_at, .. }
                    if Some(requested_at) == facts.requested_at[on.index()] =>
                {
                    Next {
                        stage,
                        action: Action::Record {
                            processor: on,
                            requested_at,
                        },
                        resolved: uncertain.then_some(Resolved::Recorded),
                    }
                }
                // Stored with another requestedAt: another instance charged it.
                Lookup::Found { .. } => Next {
                    stage,
                    action: Action::Nothing,
                    resolved: uncertain.then_some(Resolved::Elsewhere),
                },
                // Uncertain and past the settle time: no attempt can still be inside
                // the processor, so the payment is free. Within it, one may be.
                Lookup::NotFound if past_settle_time(stage, on, now, uncertain_settle) => Next {
                    stage: Stage::Queued,
                    action: match asked {
                        Asked::BeforeSending => Action::Send,
                        Asked::AfterAnswer => Action::PlaceNow,
                    },
                    resolved: Some(Resolved::Freed),
                },
                Lookup::NotFound | Lookup::Unknown => next(stage, unsettled),
            }
        }
    }
}

/// Whether `stage` pins the payment to `on`.
fn pinned_to(stage: Stage, on: Processor) -> bool {
    matches!(stage, Stage::Uncertain { processor, .. } if processor == on)
}

/// Whether a payment uncertain on `on` has waited long enough that a 404 there proves
/// no attempt can still land.
fn past_settle_time(stage: Stage, on: Processor, now: Instant, uncertain_settle: Duration) -> bool {
    match stage {
        Stage::Uncertain { processor, since } if processor == on => {
            now.saturating_duration_since(since) >= uncertain_settle
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
