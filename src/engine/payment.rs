//! A payment from intake to settlement: the lifecycle the processor-client tasks
//! drive.
//!
//! ```text
//! Queued ──► in flight to P (requestedAt fixed for P) ──► Done        (200, or 422 proven ours: recorded)
//!                   │                                 └─► Done        (422 charged by someone else: nothing)
//!                   ├─ 500 / 429 / refused ──► Queued again (P did not store it)
//!                   └─ timeout / lost connection ──► Uncertain{P} ──► only P, same requestedAt,
//!                                                                     until P settles it or a
//!                                                                     GET /payments/{id} 404 after the
//!                                                                     settle time frees it
//! ```

use crate::ledger::Origin;
use crate::processor::Processor;
use domain::money::Cents;
use domain::time::Micros;

/// Where a payment is between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No attempt may still land: any processor may be tried.
    Queued,
    /// An attempt on `processor` timed out or lost its connection at `since`: it may
    /// still be stored there, so only that processor may be tried until it is settled.
    Uncertain {
        processor: Processor,
        since: monoio::time::Instant,
    },
}

/// A payment accepted by this instance and not yet settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: u128,
    pub cents: Cents,
    /// The `requestedAt` sent to each processor (by `Processor::index`), fixed at the
    /// first attempt there and reused for every retry, so that whatever a processor
    /// stored is always known.
    pub requested_at: [Option<Micros>; 2],
    pub stage: Stage,
    /// Whether this instance's claim on it was granted ([`crate::ledger::claims`]):
    /// until then it is not sent anywhere.
    pub claimed: bool,
    /// Which journal entry it is: this instance's own acceptance, or one taken over.
    pub origin: Origin,
    /// When this instance accepted it: its age decides how long it may still wait.
    pub accepted: monoio::time::Instant,
}

impl Payment {
    /// A payment accepted now.
    pub fn new(id: u128, cents: Cents) -> Payment {
        Payment {
            id,
            cents,
            requested_at: [None, None],
            stage: Stage::Queued,
            claimed: false,
            origin: Origin::OWN,
            accepted: monoio::time::Instant::now(),
        }
    }

    /// A payment picked up again after a crash (its own journal replayed, or a dead
    /// instance's taken over): the `requestedAt` each processor was sent, and, when its
    /// last attempt went to `pinned`, uncertain there from `now`, so it is looked up first
    /// and a 404 is believed only after the settle time.
    pub fn resumed(
        id: u128,
        cents: Cents,
        requested_at: [Option<Micros>; 2],
        pinned: Option<Processor>,
        now: monoio::time::Instant,
    ) -> Payment {
        let mut p = Payment::new(id, cents);
        p.requested_at = requested_at;
        if let Some(processor) = pinned {
            p.stage = Stage::Uncertain {
                processor,
                since: now,
            };
        }
        p
    }

    /// The processor an uncertain attempt pins it to.
    pub fn pinned(&self) -> Option<Processor> {
        match self.stage {
            Stage::Uncertain { processor, .. } => Some(processor),
            Stage::Queued => None,
        }
    }
}
