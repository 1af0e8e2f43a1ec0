//! Counters and gauges of one instance, served as `GET /metrics` in the Prometheus text
//! format.
//!
//! Counters are relaxed atomics shared by the cores (one add per event); so are the
//! buckets of the request and first-byte histograms ([`histogram`]), which the
//! connection loop feeds once per answered batch and once per connection. Per-core
//! gauges (queue depth, in-flight, processor state, latency) are stored by that core's
//! dispatcher each time it runs, and read by whichever core answers `/metrics`.
//! [`render`] writes them out.

pub mod histogram;
pub mod render;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use histogram::Histogram;
use http1::limit::ConnLimit;

use crate::engine::policy::Decision;
use crate::engine::settle::Resolved;
use crate::ledger::claims::ClaimVerdict;
use crate::processor::Processor;
use crate::upstream::api::PostOutcome;
use crate::upstream::report::{PollCounter, PollError, Polled, Report};

/// The route labels of the request histogram, by timing label: the public routes in the
/// order of `intake::routes::Route::index`, then the requests of no route (its test
/// checks the order).
pub const ROUTE_LABELS: [&str; 5] = ["payments", "summary", "purge", "health", "other"];

/// One core's gauges.
#[derive(Default)]
pub struct CoreGauges {
    pub queue_depth: AtomicU64,
    /// Payments accepted on this core and not settled yet (queued, in flight, or being
    /// recorded).
    pub unsettled: AtomicU64,
    pub in_flight: [AtomicU64; 2],
    pub limit: [AtomicU64; 2],
    /// The processor state as its [`crate::engine::vitals::State::index`].
    pub state: [AtomicU64; 2],
    pub latency_ewma_us: [AtomicU64; 2],
    pub latency_p99_us: [AtomicU64; 2],
    /// Shares of failed and timed-out requests among recent outcomes, in millionths.
    pub error_ppm: [AtomicU64; 2],
    pub timeout_ppm: [AtomicU64; 2],
}

impl Metrics {
    /// Payments accepted and not settled yet, over every core (as last published).
    pub fn unsettled(&self) -> u64 {
        self.cores.iter().map(|c| c.unsettled.load(Relaxed)).sum()
    }
}

/// The instance's metrics.
pub struct Metrics {
    cores: Vec<CoreGauges>,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    refused_full: AtomicU64,
    decisions: [AtomicU64; Decision::ALL.len()],
    probes: [AtomicU64; 2],
    attempts: [[AtomicU64; PostOutcome::ALL.len()]; 2],
    settled: [AtomicU64; 2],
    resolved: [AtomicU64; Resolved::ALL.len()],
    claims: [AtomicU64; ClaimVerdict::ALL.len()],
    inherited: AtomicU64,
    /// Public requests from first byte read to answer written, by timing label
    /// ([`ROUTE_LABELS`]).
    requests: [Histogram; ROUTE_LABELS.len()],
    /// Public connections from accept to first bytes read.
    first_bytes: Histogram,
    health_polls: [[AtomicU64; Polled::ALL.len()]; 2],
    health: [AtomicU64; 2],
    /// The client connection cap, whose open, refused and out-of-fds counts are shown
    /// (set once at startup by [`Metrics::watch_connections`]).
    connections: OnceLock<ConnLimit>,
}

impl Metrics {
    pub fn new(cores: usize) -> Metrics {
        Metrics {
            cores: (0..cores).map(|_| CoreGauges::default()).collect(),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            decisions: Default::default(),
            probes: Default::default(),
            attempts: Default::default(),
            settled: Default::default(),
            resolved: Default::default(),
            claims: Default::default(),
            inherited: AtomicU64::new(0),
            requests: Default::default(),
            first_bytes: Histogram::default(),
            health_polls: Default::default(),
            health: Default::default(),
            connections: OnceLock::new(),
        }
    }

    /// Core `i`'s gauges (core ids come from the runtime, below `cores`).
    pub fn core(&self, i: usize) -> &CoreGauges {
        &self.cores[i.min(self.cores.len() - 1)]
    }

    /// Shows `limit`'s counts (open connections, refusals) in `/metrics`; the first
    /// call wins.
    pub fn watch_connections(&self, limit: ConnLimit) {
        let _ = self.connections.set(limit);
    }

    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    /// A payment answered 202 and not queued: this instance accepted its correlationId
    /// before.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Relaxed);
    }

    pub fn refused_full(&self) {
        self.refused_full.fetch_add(1, Relaxed);
    }

    pub fn decision(&self, d: Decision) {
        self.decisions[d.index()].fetch_add(1, Relaxed);
        if let Decision::Send { to, probe: true } = d {
            self.probes[to.index()].fetch_add(1, Relaxed);
        }
    }

    pub fn attempt(&self, p: Processor, o: PostOutcome) {
        self.attempts[p.index()][o.index()].fetch_add(1, Relaxed);
    }

    pub fn settled(&self, p: Processor) {
        self.settled[p.index()].fetch_add(1, Relaxed);
    }

    pub fn resolved(&self, r: Resolved) {
        self.resolved[r.index()].fetch_add(1, Relaxed);
    }

    pub fn claim(&self, v: ClaimVerdict) {
        self.claims[v.index()].fetch_add(1, Relaxed);
    }

    /// `n` public requests of timing label `label` answered `elapsed` after their first
    /// byte was read.
    pub fn answered(&self, label: usize, n: u32, elapsed: std::time::Duration) {
        self.requests[label.min(ROUTE_LABELS.len() - 1)].observe(elapsed, n);
    }

    /// A public connection's first bytes, `elapsed` after its accept.
    pub fn first_bytes(&self, elapsed: std::time::Duration) {
        self.first_bytes.observe(elapsed, 1);
    }

    /// A payment taken over from a dead instance's journal.
    pub fn inherited(&self) {
        self.inherited.fetch_add(1, Relaxed);
    }
}

impl PollCounter for Metrics {
    fn health_poll(&self, p: Processor, r: &Result<Report, PollError>) {
        if let Ok(rep) = r {
            let v =
                (u64::from(rep.health.failing) << 63) | rep.health.min_response.as_millis() as u64;
            self.health[p.index()].store(v, Relaxed);
        }
        self.health_polls[p.index()][Polled::of(r).index()].fetch_add(1, Relaxed);
    }
}
