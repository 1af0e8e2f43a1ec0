//! The local runner behind the `stack` binary: the whole topology in the foreground;
//! and, as a library, the one place that knows how to start each part of it (the
//! integration tests start their processes through it).
//!
//! It starts, in this order and each once the one before it is ready:
//! - `redis-server` on a Unix socket, when `LEDGER=redis`;
//! - two `processor-sim`s (fees `PROCESSOR_DEFAULT_FEE`, `PROCESSOR_FALLBACK_FEE`),
//!   unless `PROCESSOR_DEFAULT_URL` and `PROCESSOR_FALLBACK_URL` are both given;
//! - two gateways on Unix sockets (memory ledger: each other's `INTERNAL_LISTEN` as
//!   `PEERS`; redis ledger: `REDIS_URL`), each with a `HANDOFF` socket and an
//!   `INTERNAL_LISTEN` socket (peer routes, `/metrics`), sharing a random `PEER_TOKEN`
//!   (16 bytes from `/dev/urandom`, hex) drawn for the run;
//! - the lb on `LISTEN` in `LB_MODE`.
//!
//! A child is ready once it writes its ready line on stdout (`ready listen <addr> ...`,
//! see `net::ready`); redis-server once it answers `PING` with `+PONG` on its socket.
//! The binaries are the `gateway`, `processor-sim` and `lb` next to the `stack`
//! executable. Sockets live in a fresh private directory (mode 0700) under the system
//! temp directory, removed at exit. Every child inherits the environment (`IO_DRIVER`,
//! `CORES`, gateway tuning); the runner sets what wires them together. Their output
//! (logs and ready lines) goes to the runner's stderr, each line prefixed with the
//! child's name.
//!
//! # Output
//!
//! Standard output carries one line per component as it becomes ready, then `ready`
//! once all are; a line is a name, an address, then `key value` pairs:
//!
//! ```text
//! run-dir /tmp/rinha-stack-4242-1a2b3c
//! redis unix:/tmp/rinha-stack-4242-1a2b3c/redis.sock pid 4243
//! processor-default http://127.0.0.1:40001 fee 0.07 pid 4244
//! processor-fallback http://127.0.0.1:40002 fee 0.10 pid 4245
//! gateway-1 unix:/tmp/rinha-stack-4242-1a2b3c/gateway-1.sock internal unix:/tmp/rinha-stack-4242-1a2b3c/gateway-1.internal handoff unix:/tmp/rinha-stack-4242-1a2b3c/gateway-1.handoff pid 4246
//! gateway-2 unix:/tmp/rinha-stack-4242-1a2b3c/gateway-2.sock internal unix:/tmp/rinha-stack-4242-1a2b3c/gateway-2.internal handoff unix:/tmp/rinha-stack-4242-1a2b3c/gateway-2.handoff pid 4247
//! lb http://127.0.0.1:9999 mode handoff pid 4248
//! ready
//! ```
//!
//! A gateway's `internal` address serves its peer routes and `GET /metrics` (the
//! public address and the lb answer 404 there). `redis` appears only with
//! `LEDGER=redis`. Given processors appear as
//! `processor-default <url> external` (no fee, no pid). TCP addresses are written
//! `http://host:port`, Unix sockets `unix:/path`.
//!
//! # Stopping
//!
//! SIGINT, SIGTERM or SIGHUP: the children get SIGTERM one at a time (lb first, then the
//! gateways, which settle what they accepted, redis last), each SIGKILL after
//! [`supervisor::STOP_GRACE`]; all are reaped, the directory is removed, and the runner
//! exits 0. A gateway that dies is started again on the same sockets (logged, and
//! `restarted <name> pid <pid>` on stdout), unless it crashed
//! [`supervisor::FAST_CRASHES`] times in a row within [`supervisor::FAST_CRASH`] of its
//! start. Any other child that exits on its own, or a gateway given up on, stops
//! everything the same way and the runner exits 1, naming it. Children run in their own process group (a Ctrl-C
//! reaches only the runner, which stops them in order) and are killed by the kernel if
//! the runner dies ([`procctl::tie_to_parent`]).

//!
//! # The library
//!
//! - [`config`]: the runner's environment variables ([`StackConfig`]).
//! - [`child`]: one child process ([`child::Child`]): spawned tied to this process, its
//!   output forwarded or captured, its ready line ([`child::Ready`]), stopped.
//! - [`supervisor`]: the children of one run watched together with the stop signals
//!   ([`supervisor::Supervisor`]).
//! - [`servers`]: how `processor-sim`, `gateway` and `lb` are started and wired
//!   ([`servers::SimSpec`], [`servers::GatewaySpec`], [`servers::LbSpec`]), and a
//!   started, ready one ([`servers::Server`]).
//! - [`redis`]: redis-server on a Unix socket, optionally TCP; stop and restart
//!   ([`redis::Redis`]).
//! - [`rundir`]: the private directory of a run's sockets ([`rundir::RunDir`]).
//! - [`topology`]: the whole stack ([`run`]).
//! - [`procctl`]: signal masks, signals and the tie to the parent (`unsafe`, in one
//!   place).

pub mod child;
pub mod config;
pub mod procctl;
pub mod redis;
pub mod rundir;
pub mod servers;
pub mod supervisor;
pub mod topology;

pub use config::{LedgerKind, Processors, StackConfig};
pub use topology::run;
