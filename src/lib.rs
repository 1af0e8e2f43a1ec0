//! Rinha de Backend 2025 payment gateway.
//!
//! # Architecture map
//!
//! ```text
//! client ──► intake::routes ──► engine::queue (per-core backlog) ──► engine::dispatch ──► upstream::api ──► processor
//!                 │                                                        │
//!                 └── ledger (summary, purge) ◄────────────────────────────┘ (record settled payments)
//! ```
//!
//! Folders depend downwards: [`app`] on [`intake`], [`engine`], [`upstream`] and
//! [`ledger`], and those on the leaf modules [`processor`] and [`upstream::report`].
//! Three tasks run on the per-core state of [`app::state::Core`] (with its metrics and
//! configuration) and so look up into [`app`]: the dispatcher
//! ([`engine::dispatch`]), the journal's lease and takeovers ([`engine::takeover`]) and
//! the endpoints ([`intake::routes`], [`intake::internal`]);
//! the configuration names a token type of the leaf [`intake::token`]; the backlog
//! preallocates the default queue capacity of [`app::config`].
//! The HTTP/1.1 server and client, listeners, runtimes and fd passing live in the
//! workspace's `http1` and `net` crates; the Redis wire in `redis-wire`; money, ids and
//! ISO-8601 times in `domain`.
//!
//! [`intake`]: the client-facing request path, and the internal plane beside it.
//! - [`intake::routes`]: the public plane ([`intake::routes::Public`]), on `LISTEN` and
//!   the hand-off. `POST /payments` validates, marks the correlationId accepted
//!   ([`app::state::Instance`]), pushes on the core's [`engine::queue::Backlog`] and
//!   answers a constant 202.
//! - [`intake::internal`]: the internal plane ([`intake::internal::Internal`]), on
//!   `INTERNAL_LISTEN` only: the peer routes (summary, purge, health push, claims;
//!   behind `PEER_TOKEN`) and `/metrics`.
//! - [`intake::token`]: the tokens' headers, constant-time comparison and rate-limited
//!   refusal log (leaf module).
//! - [`intake::body`]: reads the `POST /payments` body (correlationId, amount in cents).
//! - [`intake::handoff`]: with `HANDOFF` set, also serves client connections the lb
//!   accepted and passed over a Unix socket.
//!
//! [`engine`]: the per-core payment path from queue to settlement.
//! - [`engine::payment`]: a payment and its stage (queued, or uncertain on a processor).
//! - [`engine::queue`]: the per-core backlog, its lanes and retry timer.
//! - [`engine::dispatch`]: the dispatcher that places each payment by
//!   [`engine::policy::decide`] and one task per attempt, which claims the payment
//!   before its first attempt and journals each step.
//! - [`engine::pace`]: the pace at which a core starts processor requests, so that a
//!   drained backlog does not delay the 202s.
//! - [`engine::policy`]: the routing decision, a pure function of both processors'
//!   views, the payment's age and the configuration.
//! - [`engine::takeover`]: with the Redis ledger, the lease on this instance's journal
//!   and the takeover of dead instances' unsettled payments (one task on core 0).
//! - [`engine::settle`]: the exactly-once rules (fixed `requestedAt` per processor, 422
//!   proven by lookup, uncertain outcomes pinned to their processor).
//! - [`engine::vitals`]: per core and processor, the state machine built on latency
//!   ([`engine::vitals::latency`]), requests in flight ([`engine::vitals::flight`]),
//!   the in-flight limit and pauses ([`engine::vitals::throttle`]) and health reports.
//!
//! [`upstream`]: the payment processors as the gateway sees them.
//! - [`upstream::api`]: `POST /payments` and `GET /payments/{id}`, and what their
//!   answers mean.
//! - [`upstream::report`]: a health report and why a poll gave none (leaf module).
//! - [`upstream::health`]: one health poll per processor per 5 s window for the cluster
//!   ([`upstream::health::poll`]), by a Redis lease or the elected peer
//!   ([`upstream::health::monitor`]), shared as text ([`upstream::health::encoding`])
//!   and kept in a [`upstream::health::board::Board`].
//!
//! [`ledger`]: settled payments keyed by correlationId; [`ledger::memory`] (per
//! instance, peers merged over `/internal/summary`) or [`ledger::redis`] (shared);
//! [`ledger::idset`], the seeded set of correlationIds behind the memory ledger and the
//! accepted set (leaf module); [`ledger::claims`], which instance may charge a
//! correlationId (the owner's table, `/internal/claims`, or a Redis hash);
//! [`ledger::journal`], the memory ledger's append-only journal, replayed at start;
//! [`ledger::redis::stream`], the Redis ledger's journal, a Redis Stream from which
//! survivors take a dead instance's unsettled payments over.
//!
//! [`app`]: everything wired together.
//! - [`app::config`]: environment variables, errors naming the variable.
//! - [`app::state`]: per-instance ([`app::state::Instance`]) and per-core
//!   ([`app::state::Core`]) state.
//! - [`app::metrics`]: counters, per-core gauges and latency histograms
//!   ([`app::metrics::histogram`]) behind `GET /metrics`, written by
//!   [`app::metrics::render`].
//! - [`app::start`]: binds, starts one runtime per core and spawns each core's tasks.
//!
//! [`processor`]: the two processors' names (leaf module).
//!
//! `label_table` (test builds only): the check that an enum's metrics labels follow its
//! `ALL` table.

pub mod app;
pub mod engine;
pub mod intake;
#[cfg(test)]
mod label_table;
pub mod ledger;
pub mod processor;
pub mod upstream;
