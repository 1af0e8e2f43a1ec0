//! The HTTP/1.1 connection loop shared by the gateway and the processor simulator.
//!
//! Each core runs [`serve`] on its own listener. A connection reads into one buffer,
//! parses every complete request in it (pipelining), lets the [`Service`] append each
//! answer to one output buffer, and writes them in one go. Connection state is the
//! [`Conn`] enum: idle between requests, or inside a partly received request, which is
//! the only time the slow-client timeout runs.

use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;

use crate::addr::Addr;
use crate::http::request::{self, Request, Status, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::http::response::Reply;

/// Bytes a connection's read buffer starts with: a payment request is ~200 bytes, so
/// dozens of pipelined ones fit before the buffer ever grows.
pub const READ_BUF_INITIAL: usize = 4 * 1024;
/// The least free room a read is given; the buffer grows (up to [`READ_BUF_MAX`]) when
/// less is left.
const READ_MIN_ROOM: usize = 1024;
/// The largest a read buffer grows: one maximal head plus one maximal body is the
/// longest request the parser lets through; more is rejected before this is reached.
pub const READ_BUF_MAX: usize = MAX_HEAD_BYTES + MAX_BODY_BYTES + READ_MIN_ROOM;
/// Bytes the output buffer starts with: dozens of pipelined 202s.
const WRITE_BUF_INITIAL: usize = 4 * 1024;
/// Pause after a failed accept (EMFILE and the like) before accepting again, so a full
/// fd table does not spin the core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What a server does with each complete request.
#[allow(async_fn_in_trait)]
pub trait Service {
    /// Answers `req` by appending one complete response to `reply`.
    async fn call(&self, req: &Request<'_>, reply: &mut Reply<'_>);
}

/// Connection timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long a partly received request may take to complete (slow clients), and how
    /// long writing the answers may take; then the connection is closed.
    pub request: Duration,
    /// How long a keep-alive connection may stay idle between requests.
    pub idle: Duration,
}

/// One core's listener.
pub enum Listener {
    Tcp(monoio::net::TcpListener),
    Unix(monoio::net::UnixListener),
}

/// Bound std listeners, one per core, made before the runtimes start so that a bad
/// address fails at startup and the bound port is known (port 0 picks one).
pub enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl StdListener {
    /// Turns this into a monoio listener. Must run inside the runtime that will use it.
    pub fn into_monoio(self) -> std::io::Result<Listener> {
        // Under epoll monoio's from_std keeps the fd's blocking mode, so it is set here
        // for both drivers (io_uring does not mind).
        match self {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Tcp(monoio::net::TcpListener::from_std(l)?))
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Unix(monoio::net::UnixListener::from_std(l)?))
            }
        }
    }
}

/// Kernel accept backlog: the official test opens ~600 connections within a minute,
/// and a burst of them must not be refused.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds `addr` once per core. TCP: one SO_REUSEPORT socket per core, so the kernel
/// spreads connections over the cores. Unix: one socket (monoio's own bind would set
/// SO_REUSEPORT, which recent kernels reject on Unix sockets) shared by every core; a
/// stale socket file is replaced. Returns the listeners and the address actually bound.
pub fn bind(addr: &Addr, cores: usize) -> std::io::Result<(Vec<StdListener>, Addr)> {
    match addr {
        Addr::Tcp { host, port } => {
            use std::net::ToSocketAddrs;
            let sa = (host.as_str(), *port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "address did not resolve")
                })?;
            let first = bind_tcp(sa)?;
            let bound = first.local_addr()?;
            let mut out = vec![StdListener::Tcp(first)];
            for _ in 1..cores {
                out.push(StdListener::Tcp(bind_tcp(bound)?));
            }
            let addr = Addr::Tcp {
                host: bound.ip().to_string(),
                port: bound.port(),
            };
            Ok((out, addr))
        }
        Addr::Unix(path) => {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let l = std::os::unix::net::UnixListener::bind(path)?;
            let mut out = Vec::with_capacity(cores);
            for _ in 1..cores {
                out.push(StdListener::Unix(l.try_clone()?));
            }
            out.push(StdListener::Unix(l));
            Ok((out, addr.clone()))
        }
    }
}

fn bind_tcp(sa: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&sa.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Accepts connections forever and serves each on its own task.
pub async fn serve<S: Service + 'static>(listener: Listener, service: Rc<S>, timeouts: Timeouts) {
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Accepted::Tcp(s)
            }),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        };
        match accepted {
            Ok(Accepted::Tcp(s)) => {
                monoio::spawn(serve_conn(s, service.clone(), timeouts));
            }
            Ok(Accepted::Unix(s)) => {
                monoio::spawn(serve_conn(s, service.clone(), timeouts));
            }
            Err(e) => {
                crate::log!("accept failed: {e}");
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

enum Accepted {
    Tcp(monoio::net::TcpStream),
    Unix(monoio::net::UnixStream),
}

/// Where a connection is between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No request bytes pending: waiting for the next request (idle timeout).
    Idle,
    /// Part of a request has arrived; it must complete before this deadline.
    Receiving { deadline: Instant },
}

/// Serves one connection until the peer closes it, asks to close, errs or times out.
pub async fn serve_conn<S, IO>(mut io: IO, service: Rc<S>, timeouts: Timeouts)
where
    S: Service,
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF_INITIAL);
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BUF_INITIAL);
    let mut state = Conn::Idle;
    loop {
        // Answer every complete request in the buffer.
        let mut consumed = 0;
        let mut closing = false;
        while consumed < buf.len() {
            match request::parse(&buf[consumed..]) {
                Ok(Status::Complete(req)) => {
                    consumed += req.len();
                    closing = !req.keep_alive;
                    let mut reply = Reply::new(&mut out, closing);
                    service.call(&req, &mut reply).await;
                    if closing {
                        break;
                    }
                }
                Ok(Status::Partial) => break,
                Err(e) => {
                    Reply::new(&mut out, true).error(e.status(), e.reason());
                    closing = true;
                    break;
                }
            }
        }
        if consumed > 0 {
            buf.drain(..consumed);
            state = Conn::Idle;
        }
        if !out.is_empty() {
            let deadline = Instant::now() + timeouts.request;
            let (res, back) = match monoio::time::timeout_at(deadline, io.write_all(out)).await {
                Ok(r) => r,
                Err(_) => return,
            };
            out = back;
            if res.is_err() {
                return;
            }
            out.clear();
        }
        if closing {
            let _ = io.shutdown().await;
            return;
        }
        // Read more.
        if !buf.is_empty() && state == Conn::Idle {
            state = Conn::Receiving {
                deadline: Instant::now() + timeouts.request,
            };
        }
        let deadline = match state {
            Conn::Idle => Instant::now() + timeouts.idle,
            Conn::Receiving { deadline } => deadline,
        };
        if buf.capacity() - buf.len() < READ_MIN_ROOM {
            let target = (buf.capacity() * 2).min(READ_BUF_MAX);
            buf.reserve(target.saturating_sub(buf.len()).max(READ_MIN_ROOM));
        }
        let len = buf.len();
        let cap = buf.capacity();
        // A read cancelled by the timeout may still complete inside the driver; the
        // connection is closed right after, so any such bytes are never looked at.
        let read = monoio::time::timeout_at(deadline, io.read(buf.slice_mut(len..cap))).await;
        let (res, slice) = match read {
            Ok(r) => r,
            Err(_) => {
                if let Conn::Receiving { .. } = state {
                    let mut tail = Vec::new();
                    Reply::new(&mut tail, true).error(408, "request not completed in time");
                    let _ = monoio::time::timeout(timeouts.request, io.write_all(tail)).await;
                }
                return;
            }
        };
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
