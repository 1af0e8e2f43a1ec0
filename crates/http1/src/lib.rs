//! The HTTP/1.1 wire, both sides.
//!
//! ```text
//! server: bytes ──► request (parser) ──► Service::call ──► response (pre-serialized) ──► bytes
//! client: Client (keep-alive pool) ──► request bytes ──► response head + body (framing)
//! ```
//!
//! - [`request`]: the request parser. `Status::Partial` is not an error; named limits
//!   give 431, 413, 411 and 400.
//! - [`response`]: answers written straight into the connection's output buffer, and
//!   the constant `202`.
//! - [`server`]: the connection loop shared by every server: read, parse every
//!   complete request, answer, write once; small buffers while a connection waits.
//! - [`limit`]: the cap on open connections ([`limit::ConnLimit`]) shared by a
//!   server's cores and listeners.
//! - [`client`]: the keep-alive client the gateway calls the processors with.

pub mod client;
pub mod limit;
pub mod request;
pub mod response;
pub mod server;
