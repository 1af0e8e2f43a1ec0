//! Rinha de Backend 2025 payment gateway.
//!
//! # Architecture map
//!
//! ```text
//! client ──► server ──► api ──► queue (per-core backlog) ──► worker ──► processor ──► http::client
//!                        │                                      │
//!                        └── ledger (summary, purge) ◄──────────┘ (record settled payments)
//! ```
//!
//! Request path (one monoio runtime per core, [`runtime`]):
//! - [`server`]: binds (SO_REUSEPORT per core for TCP), accepts, and runs the
//!   connection loop: read, parse every complete request, answer, write once.
//! - [`handoff`]: with `HANDOFF` set, also takes client connections the lb accepted
//!   and passed over a Unix socket ([`fdpass`]: SCM_RIGHTS, one of the crate's two
//!   unsafe modules), and serves them with the same connection loop.
//! - [`http::request`]: our HTTP/1.1 parser (`Status::Partial` is not an error; named
//!   limits give 431/413/411/400). [`http::response`]: pre-serialized answers.
//! - [`api`]: the endpoints. `POST /payments` validates ([`payment`], [`money`]),
//!   marks the correlationId accepted ([`gateway::Instance`]), pushes on the core's
//!   [`queue::Backlog`] and answers a constant 202.
//!
//! Payment path:
//! - [`worker`]: one dispatcher per core places each payment by [`policy::decide`]
//!   (a pure function of [`signals`] views, the payment's age and the configuration)
//!   and starts one attempt task per placement; attempts settle payments by the
//!   exactly-once rules (fixed `requestedAt` per processor, 422 proven by lookup,
//!   uncertain outcomes pinned to their processor).
//! - [`signals`]: per core and processor, latency, stalls, failures and refusals (429
//!   and other 4XX, which pause the processor) from our own requests, the shared
//!   health report, and the state machine built on them.
//! - [`health`]: one health poll per processor per 5 s window for the cluster (Redis
//!   lease, or the elected peer pushing to the others), kept in a [`health::Board`].
//! - [`processor`]: the processor API calls over [`http::client`] (keep-alive pools,
//!   [`addr`] for TCP or Unix targets).
//! - [`ledger`]: settled payments keyed by correlationId; [`ledger::memory`] (per
//!   instance, peers merged over `/internal/summary`) or [`ledger::redis`] (shared,
//!   over [`resp`]).
//! - [`metrics`]: counters and per-core gauges behind `GET /metrics`.
//!
//! Around them: [`config`] (environment variables, errors naming the variable),
//! [`gateway`] (per-instance and per-core state, startup), [`time`] (ISO-8601 in
//! microseconds), [`log`], and [`sim`], the payment-processor simulator behind the
//! `processor-sim` binary.
//!
//! Local runner: [`stack`] starts redis (optional), two simulators, two gateways and the
//! lb as child processes and prints where they listen (`stack` binary); its signal and
//! child-process control is [`procctl`], the crate's second and last unsafe module.

pub mod app;
pub mod engine;
pub mod intake;
pub mod ledger;
pub mod processor;
pub mod upstream;
