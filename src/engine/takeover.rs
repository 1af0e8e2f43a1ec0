//! The lease on this instance's journal, and the takeover of dead instances' payments
//! (Redis ledger, [`crate::ledger::redis::stream`]). One task on core 0 renews the lease
//! three times per `JOURNAL_LEASE_MS` and, unless this instance is stopping, takes over
//! the unsettled payments of every instance whose lease ran out. A taken payment goes
//! into core 0's backlog as a restarted instance's replayed payment does: pinned to the
//! processor of its last intent and looked up first, with the `requestedAt` that was
//! sent. A lookup's 404 is believed only `UNCERTAIN_SETTLE_MS` after the takeover, so an
//! attempt the dead instance sent just before it died cannot be charged twice.
//!
//! An instance takes over only once it has reached Redis for a whole lease: after Redis
//! comes back from an outage longer than a lease, every lease has run out, and each live
//! instance must first have had the time to renew its own.
//!
//! An instance that finds its own journal taken over (it stalled past its lease) exits:
//! its unsettled payments are the taker's now, and it can charge none of them.

use std::rc::Rc;

use monoio::time::Instant;

use crate::app::state::Core;
use crate::engine::payment::Payment;
use crate::ledger::{Inherited, Ledger, Liveness};
use net::log::Throttle;

/// The exit status of an instance whose journal was taken over.
pub const TAKEN_OVER_EXIT: i32 = 75;

/// Lease and takeover failures, logged at most once a second.
static FAILURES: Throttle = Throttle::new();

/// Runs the lease and the takeovers for as long as the instance runs; returns at once
/// when the ledger keeps no shared journal.
pub async fn run<L: Ledger>(core: Rc<Core<L>>) {
    let lease = core.config.journal_lease;
    let every = lease / 3;
    // Since when every renewal has reached Redis.
    let mut reachable_since: Option<Instant> = None;
    loop {
        match core.ledger.heartbeat().await {
            Ok(Liveness::NoJournal) => return,
            Ok(Liveness::Alive) => {
                reachable_since.get_or_insert_with(Instant::now);
            }
            Ok(Liveness::TakenOver { by }) => {
                net::log!(
                    "this instance's journal was taken over by {by} (its lease ran out): \
                     exiting, since its unsettled payments are settled there"
                );
                std::process::exit(TAKEN_OVER_EXIT);
            }
            Err(e) => {
                reachable_since = None;
                FAILURES.log(|| format!("renewing the journal's lease failed: {e}"));
            }
        }
        let settled_in = reachable_since.is_some_and(|t| t.elapsed() >= lease);
        if settled_in && !core.instance.stop.is_set() {
            take_over(&core).await;
        }
        monoio::time::sleep(every).await;
    }
}

/// Takes over every payment of the instances whose lease ran out.
async fn take_over<L: Ledger>(core: &Core<L>) {
    loop {
        match core.ledger.take_over().await {
            Ok(taken) if taken.is_empty() => return,
            Ok(taken) => {
                net::log!(
                    "took over {} unsettled payments of an instance whose lease ran out",
                    taken.len()
                );
                for t in taken {
                    inherit(core, t);
                }
            }
            Err(e) => {
                return FAILURES
                    .log(|| format!("taking over a dead instance's payments failed: {e}"))
            }
        }
    }
}

/// Puts a taken-over payment into this core's backlog.
fn inherit<L: Ledger>(core: &Core<L>, t: Inherited) {
    let now = Instant::now();
    // A client's retry here is a duplicate from now on; the claims decide which
    // acceptance charges it.
    core.instance.accept(t.id);
    let mut requested_at = [None, None];
    if let Some((processor, at)) = t.intent {
        requested_at[processor.index()] = Some(at);
    }
    let pinned = t.intent.map(|(processor, _)| processor);
    let mut p = Payment::resumed(t.id, t.cents, requested_at, pinned, now);
    p.origin = t.origin;
    core.took();
    core.metrics.inherited();
    core.backlog.retry_at(now, p);
    core.backlog.kick();
}
