//! The ledger: every payment a processor settled, keyed by correlationId.
//!
//! Two implementations sit behind [`Ledger`]:
//! - [`memory::MemoryLedger`]: this instance's records in memory; the cluster-wide
//!   summary adds the peers' partial sums fetched over the internal endpoint;
//! - [`redis::RedisLedger`]: one shared ledger in Redis for every instance.
//!
//! [`journal`] makes the memory ledger durable: every payment's life appended to a file
//! and replayed at start. The Redis ledger journals to a Redis Stream instead
//! ([`redis::stream`]), through the journal hooks of [`Ledger`] (staging and committing
//! acceptances, intents, releases, heartbeats and takeovers), which the memory ledger
//! leaves at their defaults.
//!
//! [`claims`] decides which instance of the cluster may charge a correlationId: the first
//! to claim it ([`Ledger::claim`]), before its first attempt.
//!
//! [`idset`] is the compact, seeded set of correlationIds (a leaf module) that the memory
//! ledger keeps its recorded ids in, and the instance its accepted ones.
//!
//! A record is written once per correlationId: recording it again is a no-op, so an
//! outcome learned twice (a retry answered 422, a peer's duplicate) is never counted
//! twice.

pub mod claims;
pub mod idset;
pub mod journal;
pub mod memory;
pub mod redis;

use crate::processor::Processor;
use domain::money::Cents;
use domain::time::Micros;

/// One settled payment: the processor that charged it and the `requestedAt` it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The correlationId as a 128-bit UUID value.
    pub id: u128,
    pub processor: Processor,
    /// The `requestedAt` the processor stored, in microseconds since the Unix epoch.
    pub requested_at: Micros,
    /// The amount the processor stored, in cents.
    pub cents: i64,
}

/// Count and sum of one processor's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: u64,
    pub cents: i64,
}

impl Totals {
    pub fn add(&mut self, other: Totals) {
        self.count += other.count;
        self.cents += other.cents;
    }
}

/// Totals per processor, as `GET /payments-summary` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub default: Totals,
    pub fallback: Totals,
}

impl Summary {
    pub fn add(&mut self, other: Summary) {
        self.default.add(other.default);
        self.fallback.add(other.fallback);
    }

    pub fn totals_mut(&mut self, p: Processor) -> &mut Totals {
        match p {
            Processor::Default => &mut self.default,
            Processor::Fallback => &mut self.fallback,
        }
    }
}

/// An inclusive `requestedAt` window; `None` means unbounded on that side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<Micros>,
    pub to: Option<Micros>,
}

impl Window {
    pub const ALL: Window = Window {
        from: None,
        to: None,
    };

    pub fn contains(&self, t: Micros) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t <= e)
    }
}

/// Why a ledger operation failed. The caller decides whether to retry (records) or to
/// answer 503 (summaries, purges): a ledger never answers with a partial number.
#[derive(Debug)]
pub enum LedgerError {
    /// Redis could not be reached or answered with an error.
    Redis(String),
    /// A peer gateway could not be asked (memory mode).
    Peer { peer: String, reason: String },
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Redis(e) => write!(f, "redis: {e}"),
            LedgerError::Peer { peer, reason } => write!(f, "peer {peer}: {reason}"),
        }
    }
}

impl std::error::Error for LedgerError {}

/// The answer to [`Ledger::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This instance may charge the payment. `kept_here`: the claim is kept in this
    /// instance's claim table, so its journal must say so.
    Mine { kept_here: bool },
    /// Another instance claimed it first and charges it: this one must not.
    Theirs,
}

/// Which journal entry a payment of this core is: this process's own acceptance, or one
/// taken over from a gateway that died ([`Ledger::take_over`]). The handle that took it
/// over knows whose it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin(pub u16);

impl Origin {
    /// Accepted by this process.
    pub const OWN: Origin = Origin(0);
}

/// The answer to [`Ledger::intent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The intent is journaled: the attempt may go out.
    Go,
    /// Another acceptance of this correlationId holds the claim: this one is settled
    /// without a charge.
    Theirs,
    /// Another instance took this payment's journal over and settles it: this instance
    /// must leave it.
    TakenOver,
}

/// The answer to [`Ledger::heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// This ledger keeps no shared journal: there is nothing to renew or take over.
    NoJournal,
    /// The lease is renewed.
    Alive,
    /// The lease had run out and the consumer named took this instance's journal over.
    TakenOver { by: String },
}

/// A payment taken over from a dead instance's journal, to be settled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inherited {
    pub origin: Origin,
    pub id: u128,
    pub cents: Cents,
    /// The processor and `requestedAt` of its last attempt's intent, if it was sent.
    pub intent: Option<(Processor, Micros)>,
}

/// The ledger as one core's tasks see it. Implementations are per-core handles
/// (`!Send` is fine); state shared between cores lives behind them.
///
/// The journal hooks (from [`Ledger::stage`] on) have defaults that journal nothing:
/// the memory ledger's journal is the file of [`journal`], kept beside it.
#[allow(async_fn_in_trait)]
pub trait Ledger {
    /// Records a settled payment. Returns `false` when that correlationId was already
    /// recorded (the first record stands).
    async fn record(&self, rec: Record) -> Result<bool, LedgerError>;
    /// Totals over the whole cluster (this instance plus its peers, or Redis).
    async fn summary(&self, window: Window) -> Result<Summary, LedgerError>;
    /// Totals of what this handle can see without asking peers.
    async fn local_summary(&self, window: Window) -> Result<Summary, LedgerError>;
    /// Forgets every record in the cluster.
    async fn purge(&self) -> Result<(), LedgerError>;
    /// Forgets this instance's records only.
    async fn local_purge(&self) -> Result<(), LedgerError>;
    /// Claims the payment `id` of journal entry `origin` before its first attempt: the
    /// first claim in the cluster stands ([`claims`]).
    async fn claim(&self, id: u128, origin: Origin) -> Result<Claim, LedgerError>;

    /// Stages an acceptance, to be journaled by the next [`Ledger::commit`].
    fn stage(&self, _id: u128, _cents: Cents) {}
    /// Journals every acceptance staged so far, before their 202s leave.
    async fn commit(&self) -> Result<(), LedgerError> {
        Ok(())
    }
    /// Journals the intent of an attempt on `processor` with `requested_at`, before it
    /// is sent, and says whether it may be.
    async fn intent(
        &self,
        _id: u128,
        _origin: Origin,
        _processor: Processor,
        _requested_at: Micros,
    ) -> Result<Permit, LedgerError> {
        Ok(Permit::Go)
    }
    /// Records a payment settled by a charge and closes its journal entry.
    async fn settle(&self, rec: Record, _origin: Origin) -> Result<bool, LedgerError> {
        self.record(rec).await
    }
    /// Closes the journal entry of a payment settled without a charge here.
    async fn release(&self, _id: u128, _origin: Origin) -> Result<(), LedgerError> {
        Ok(())
    }
    /// Renews this instance's lease on its journal.
    async fn heartbeat(&self) -> Result<Liveness, LedgerError> {
        Ok(Liveness::NoJournal)
    }
    /// Takes over some pending payments of instances whose lease ran out; empty when
    /// there are none.
    async fn take_over(&self) -> Result<Vec<Inherited>, LedgerError> {
        Ok(Vec::new())
    }
}
