//! The network base that every binary of the workspace stands on.
//!
//! ```text
//! env ──► runtime (one monoio runtime per core) ──► listen (bind, accept) ──► the servers
//!  │                                                 fdpass (SCM_RIGHTS) ──► hand-off
//!  └── addr (host:port or unix:/path) ───────────────────────────────────────┘
//!       └──► stream (connect: Redis, processors, peers, upstreams) ──► the clients
//! ```
//!
//! Every socket the servers accept and the clients open is a [`Stream`] (TCP or Unix).
//!
//! - [`addr`]: `host:port`, `unix:/path` and `http://` targets, parsed once at startup.
//! - [`env`](mod@env): settings from environment variables; errors name the variable.
//! - [`runtime`]: the I/O driver choice (io_uring or epoll) and one runtime per core.
//! - [`listen`]: listeners bound before the runtimes start, and the one accept loop.
//! - [`stream`]: [`Stream`], a TCP or Unix connection, and the one [`connect`] to an
//!   [`addr::Addr`] (resolve, try each address, `TCP_NODELAY`).
//! - [`fdpass`]: passing connections between processes over a Unix socket
//!   (SCM_RIGHTS), one of the workspace's modules allowed `unsafe`.
//! - [`log`](mod@log): one-line logs on stderr, prefixed with the process's name.
//! - [`ready`]: the one line on stdout that says every listener is bound, and where.
//! - [`sched`]: a core thread's scheduler slice (short, so a waking core preempts a busy
//!   neighbour), also allowed `unsafe`.
//! - [`stop`]: stop signals taken as events (process control, also allowed `unsafe`), and the flag that stops every core's accept loops.

pub mod addr;
pub mod env;
pub mod fdpass;
pub mod listen;
pub mod log;
pub mod ready;
pub mod runtime;
pub mod sched;
pub mod stop;
pub mod stream;

pub use stream::{connect, connect_within, Stream};
