//! The keep-alive pool of one [`Client`](super::Client): its target, the idle
//! connections to it and the address its name last resolved to.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::time::Instant;
use net::addr::Addr;

use super::connection::Connection;
use super::{connect_timed_out, within, ClientError, Response};

/// Pooled connections idle longer than this are closed rather than reused: servers close
/// idle keep-alive connections (our gateways after 60 s, nginx after 75 s), and a request
/// written while the server closes its end fails.
const POOL_IDLE_LIMIT: Duration = Duration::from_secs(20);

/// One target's pool, shared by the clones of a client.
pub(super) struct Pool {
    target: Addr,
    /// Value of the Host header, computed once.
    host_header: String,
    max_idle: usize,
    state: RefCell<PoolState>,
}

/// What changes as the pool is used.
struct PoolState {
    /// Idle connections, most recently used last (taken first: least likely to have been
    /// closed by the server's idle timeout).
    idle: Vec<(Connection, Instant)>,
    /// Last address a TCP connect succeeded to; cleared when a connect fails.
    resolved: Option<SocketAddr>,
}

impl Pool {
    pub(super) fn new(target: Addr, max_idle: usize) -> Pool {
        Pool {
            host_header: target.host_header(),
            target,
            max_idle,
            state: RefCell::new(PoolState {
                idle: Vec::new(),
                resolved: None,
            }),
        }
    }

    pub(super) fn target(&self) -> &Addr {
        &self.target
    }

    pub(super) fn host_header(&self) -> &str {
        &self.host_header
    }

    /// Number of idle connections.
    pub(super) fn idle(&self) -> usize {
        self.state.borrow().idle.len()
    }

    /// The most recently used idle connection that has not been idle too long; older
    /// ones are closed.
    pub(super) fn take_idle(&self) -> Option<Connection> {
        let now = Instant::now();
        let mut state = self.state.borrow_mut();
        while let Some((conn, since)) = state.idle.pop() {
            if now.saturating_duration_since(since) <= POOL_IDLE_LIMIT {
                return Some(conn);
            }
        }
        None
    }

    /// Pools a reusable connection and returns the exchange's result.
    pub(super) fn finish(
        &self,
        result: Option<Result<(Response, Option<Connection>), ClientError>>,
    ) -> Result<Response, ClientError> {
        match result {
            None => Err(ClientError::Timeout),
            Some(Err(e)) => Err(e),
            Some(Ok((response, reusable))) => {
                if let Some(conn) = reusable {
                    let mut state = self.state.borrow_mut();
                    if state.idle.len() < self.max_idle {
                        state.idle.push((conn, Instant::now()));
                    }
                }
                Ok(response)
            }
        }
    }

    /// Opens a new connection to the target before `deadline`. A TCP target's resolved
    /// address is remembered while connects to it succeed, so that only the first
    /// connect (or one after a failure) resolves the name again.
    pub(super) async fn connect(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Connection, ClientError> {
        let stream = match &self.target {
            Addr::Unix(_) => match within(deadline, net::connect(&self.target)).await {
                None => return Err(connect_timed_out()),
                Some(result) => result.map_err(ClientError::Connect)?,
            },
            Addr::Tcp { host, port } => {
                let cached = self.state.borrow().resolved;
                let candidates = match cached {
                    Some(addr) => vec![addr],
                    None => net::stream::resolve(host, *port).map_err(ClientError::Connect)?,
                };
                let connected = within(deadline, net::stream::connect_first(&candidates)).await;
                let mut state = self.state.borrow_mut();
                match connected {
                    None => {
                        state.resolved = None;
                        return Err(connect_timed_out());
                    }
                    Some(Err(e)) => {
                        state.resolved = None;
                        return Err(ClientError::Connect(e));
                    }
                    Some(Ok((stream, addr))) => {
                        state.resolved = Some(addr);
                        stream
                    }
                }
            }
        };
        Ok(Connection::new(stream))
    }
}
