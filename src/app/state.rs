//! The gateway's state: instance-wide ([`Instance`]) and per core ([`Core`]).
//!
//! Instance-wide ([`Instance`], behind `Arc`): the configuration, the set of accepted
//! correlationIds (so a payment accepted twice is queued once), and the memory
//! ledger's records. Per core ([`Core`], behind `Rc`): the backlog, the processor
//! connection pools, the ledger handle. Only the accepted set and the memory ledger
//! cross threads, each behind one mutex held for a single hash operation (or, for a
//! summary, two binary searches).
//!
//! The accepted set is an [`IdSet`]: correlationIds are chosen by clients, so it hashes
//! them under a random per-process seed (no choice of ids piles them into one place),
//! in 16-byte slots. It is never cleared, not even by `POST /purge-payments`: a
//! correlationId seen before stays a duplicate, so a payment replayed after a purge is
//! not charged twice. It is bounded anyway, by the payments this instance accepted
//! (a payment refused with 503 for a full queue is taken out again): 16 bytes per slot
//! at a load between 3/8 and 3/4, so 21 to 43 bytes per id, and 165 MB would hold 3.8
//! to 7.7 M ids. With the memory ledger's own 37 to 59 bytes per settled payment
//! (16 in its series, 21 to 43 in its id set), a 165 MB gateway holds 1.6 to 2.8 M
//! payments.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monoio::time::Instant;
use net::stop::StopFlag;

use crate::app::config::{GatewayConfig, LedgerConfig};
use crate::app::metrics::Metrics;
use crate::engine::queue::Backlog;
use crate::engine::vitals::{View, Vitals};
use crate::ledger::claims::{ClaimTable, Ring};
use crate::ledger::idset::IdSet;
use crate::ledger::journal::{CoreJournal, Entry};
use crate::ledger::Ledger;
use crate::upstream::health::board::Board;
use http1::client::Client;

/// State shared by every core of this instance.
pub struct Instance {
    pub config: GatewayConfig,
    /// correlationIds this instance accepted (queued once each).
    accepted: Mutex<IdSet>,
    /// Memory ledger with peers: every instance's internal address, which owns the
    /// claims on each id ([`crate::ledger::claims`]).
    pub ring: Option<Arc<Ring>>,
    /// The claims on the ids this instance owns.
    pub claims: Arc<ClaimTable>,
    /// The latest health report of each processor.
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    /// Set when a stop signal came: the cores stop accepting and drain
    /// ([`crate::app::start`]).
    pub stop: StopFlag,
}

impl Instance {
    pub fn new(config: GatewayConfig) -> Instance {
        let metrics = Arc::new(Metrics::new(config.cores));
        let ring = match (&config.ledger, &config.internal) {
            (LedgerConfig::Memory { peers }, Some(me)) if !peers.is_empty() => {
                Some(Arc::new(Ring::new(me, peers)))
            }
            _ => None,
        };
        Instance {
            config,
            accepted: Mutex::new(IdSet::new()),
            ring,
            claims: Arc::default(),
            board: Arc::new(Board::default()),
            metrics,
            stop: StopFlag::new(),
        }
    }

    /// Marks `id` accepted; false when it already was.
    pub fn accept(&self, id: u128) -> bool {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
    }

    /// Forgets an acceptance whose payment could not be queued.
    pub fn unaccept(&self, id: u128) {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// How often the latency percentile gauge is refreshed: the dispatcher publishes its
/// gauges after every round, and the percentile sorts the last answers.
const P99_EVERY: Duration = Duration::from_millis(250);

/// One core's state.
pub struct Core<L> {
    pub id: usize,
    pub instance: Arc<Instance>,
    /// Same as `instance.config`, for brevity.
    pub config: GatewayConfig,
    pub backlog: Backlog,
    pub ledger: L,
    /// Connection pools to the processors, by `Processor::index`.
    pub processors: [Client; 2],
    /// What this core's requests tell about each processor, by `Processor::index`.
    pub vitals: [RefCell<Vitals>; 2],
    /// Same as `instance.board` and `instance.metrics`, for brevity.
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    /// With `JOURNAL_DIR`: this core's handle on the journal.
    pub journal: Option<CoreJournal>,
    /// When the latency percentile was last published (it sorts the recent answers).
    p99_published: Cell<Option<Instant>>,
    /// Payments accepted on this core and not settled yet.
    unsettled: Cell<usize>,
    /// Set once this core, stopping, has settled everything: it accepts no payment
    /// after that.
    sealed: Cell<bool>,
}

impl<L: Ledger> Core<L> {
    pub fn new(
        id: usize,
        instance: Arc<Instance>,
        ledger: L,
        journal: Option<CoreJournal>,
    ) -> Core<L> {
        let config = instance.config.clone();
        let limit = config.max_in_flight_per_core();
        let vitals = || RefCell::new(Vitals::new(limit, config.deadline, config.probe_interval));
        Core {
            id,
            backlog: Backlog::new(config.queue_capacity),
            processors: [
                Client::new(config.processors[0].clone(), limit),
                Client::new(config.processors[1].clone(), limit),
            ],
            vitals: [vitals(), vitals()],
            ledger,
            board: instance.board.clone(),
            metrics: instance.metrics.clone(),
            journal,
            p99_published: Cell::new(None),
            unsettled: Cell::new(0),
            sealed: Cell::new(false),
            config,
            instance,
        }
    }

    /// Both processors as the policy sees them now.
    pub fn views(&self, now: Instant) -> [View; 2] {
        [
            self.vitals[0].borrow_mut().view(now),
            self.vitals[1].borrow_mut().view(now),
        ]
    }

    /// Buffers a journal entry (with a journal), for the next commit.
    pub fn journal_add(&self, entry: Entry) {
        if let Some(j) = &self.journal {
            j.add(entry);
        }
    }

    /// Journals `entry` at once (with a journal); false if that failed.
    pub fn journal_write(&self, entry: Entry) -> bool {
        self.journal.as_ref().is_none_or(|j| j.write(entry))
    }

    /// Appends the buffered journal entries (with a journal); false if that failed.
    pub fn journal_commit(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.commit())
    }

    /// Counts a payment accepted into this core's backlog.
    pub fn took(&self) {
        self.unsettled.set(self.unsettled.get() + 1);
    }

    /// Counts a payment of this core settled (recorded, or found charged by another).
    pub fn settled(&self) {
        self.unsettled.set(self.unsettled.get().saturating_sub(1));
    }

    /// Payments accepted on this core and not settled yet.
    pub fn unsettled(&self) -> usize {
        self.unsettled.get()
    }

    /// Seals the core if it has nothing left to settle: from then on it accepts no
    /// payment. One step with the check, so no payment can slip in between. True when
    /// sealed.
    pub fn seal_if_settled(&self) -> bool {
        if self.unsettled.get() == 0 {
            self.sealed.set(true);
        }
        self.sealed.get()
    }

    /// Whether this core has stopped accepting payments.
    pub fn is_sealed(&self) -> bool {
        self.sealed.get()
    }

    /// Stores this core's gauges for `/metrics`.
    pub fn publish(&self) {
        let g = self.metrics.core(self.id);
        let now = Instant::now();
        let with_p99 = self
            .p99_published
            .get()
            .is_none_or(|t| now.saturating_duration_since(t) >= P99_EVERY);
        if with_p99 {
            self.p99_published.set(Some(now));
        }
        g.queue_depth.store(self.backlog.len() as u64, Relaxed);
        g.unsettled.store(self.unsettled.get() as u64, Relaxed);
        for (i, s) in self.vitals.iter().enumerate() {
            let s = s.borrow();
            g.in_flight[i].store(s.in_flight() as u64, Relaxed);
            g.limit[i].store(s.cap() as u64, Relaxed);
            g.state[i].store(s.state().index() as u64, Relaxed);
            let us = |d: Option<Duration>| d.map_or(0, |d| d.as_micros() as u64);
            g.latency_ewma_us[i].store(us(s.ewma()), Relaxed);
            let ppm = |share: f64| (share * 1e6) as u64;
            g.error_ppm[i].store(ppm(s.error_rate()), Relaxed);
            g.timeout_ppm[i].store(ppm(s.timeout_rate()), Relaxed);
            if with_p99 {
                g.latency_p99_us[i].store(us(s.p99()), Relaxed);
            }
        }
    }
}
