//! The HTTP/1.1 connection loop shared by the gateway and the processor simulator.
//!
//! Each core runs [`serve`] (or [`serve_limited`], under a [`ConnLimit`]) on its own
//! listener. A connection reads into one buffer, parses every complete request in it
//! (pipelining), lets the [`Service`] append each answer to one output buffer, and
//! writes them in one go. Connection state is the `ConnState` enum: idle between
//! requests, or receiving a request, which is the only time the slow-client timeout
//! runs; a new connection starts out receiving, so its first request head must arrive
//! within the request timeout of the accept.
//!
//! A connection with no request bytes pending holds no buffer: it waits for readiness
//! ([`Conn::readable`]) and only then allocates its read buffer, so thousands of idle or
//! silent connections cost their task and nothing more. Buffers grown by a burst are
//! dropped the next time the connection has nothing pending.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;

use net::listen::Listener;
use net::Stream;

use crate::limit::ConnLimit;
use crate::request::{self, Request, Status, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::response::Reply;

/// Bytes a connection's read buffer starts with, once a read has data to give it: a
/// payment request is ~200 bytes, so dozens of pipelined ones fit before the buffer
/// ever grows.
pub const READ_BUF_INITIAL: usize = 4 * 1024;
/// The least free room a read is given; the buffer grows (up to [`READ_BUF_MAX`]) when
/// less is left.
const READ_MIN_ROOM: usize = 1024;
/// The largest a read buffer grows: one maximal head plus one maximal body is the
/// longest request the parser lets through; more is rejected before this is reached.
pub const READ_BUF_MAX: usize = MAX_HEAD_BYTES + MAX_BODY_BYTES + READ_MIN_ROOM;
/// Bytes the output buffer starts with, once there is a request to answer: dozens of
/// pipelined 202s.
pub const WRITE_BUF_INITIAL: usize = 4 * 1024;

/// A connection the loop can wait on before it has a buffer to read into.
#[allow(async_fn_in_trait)]
pub trait Conn: AsyncReadRent + AsyncWriteRent {
    /// Waits until a read would not block (data, end of stream or an error).
    async fn readable(&self) -> io::Result<()>;
}

impl Conn for Stream {
    async fn readable(&self) -> io::Result<()> {
        // Not relaxed: under epoll the readiness left over from the last read is
        // checked with a poll, so an idle connection really waits here, holding no
        // buffer (the read that follows then completes at once).
        match self {
            Stream::Tcp(s) => s.readable(false).await,
            Stream::Unix(s) => s.readable(false).await,
        }
    }
}

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

/// Accepts connections forever and serves each on its own task, with no cap.
pub async fn serve<S: Service + 'static>(listener: Listener, service: Rc<S>, timeouts: Timeouts) {
    serve_limited(listener, service, timeouts, &ConnLimit::unlimited()).await
}

/// Accepts connections forever and serves each on its own task while `limit` has a
/// slot for it; beyond the cap a connection is refused ([`refuse`]).
pub async fn serve_limited<S: Service + 'static>(
    listener: Listener,
    service: Rc<S>,
    timeouts: Timeouts,
    limit: &ConnLimit,
) {
    net::listen::accept_each(&listener, |stream| {
        admit(stream, &service, timeouts, limit);
    })
    .await
}

/// Serves `io` on its own task if `limit` has a slot for it (the task holds the slot
/// until it ends), or refuses it. False when refused.
pub fn admit<S, IO>(io: IO, service: &Rc<S>, timeouts: Timeouts, limit: &ConnLimit) -> bool
where
    S: Service + 'static,
    IO: Conn + 'static,
{
    match limit.try_acquire() {
        Some(slot) => {
            let service = service.clone();
            monoio::spawn(async move {
                serve_conn(io, service, timeouts).await;
                drop(slot);
            });
            true
        }
        None => {
            monoio::spawn(refuse(io, timeouts));
            false
        }
    }
}

/// Answers a connection beyond the cap with one `503` (`{"error": "too many
/// connections"}`, `Connection: close`) and closes it without reading: the answer is a
/// hundred bytes, which the socket's send buffer takes at once.
pub async fn refuse<IO: AsyncWriteRent>(mut io: IO, timeouts: Timeouts) {
    let mut out = Vec::with_capacity(128);
    Reply::new(&mut out, true).error(503, "too many connections");
    let _ = monoio::time::timeout(timeouts.request, io.write_all(out)).await;
    let _ = io.shutdown().await;
}

/// Where a connection is between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// No request bytes pending: waiting for the next request (idle timeout).
    Idle,
    /// A new connection, or part of a request has arrived: the request must complete
    /// before this deadline.
    Receiving { deadline: Instant },
}

/// Serves one connection until the peer closes it, asks to close, errs or times out.
/// Its first request must arrive within `timeouts.request` of this call (408 then).
pub async fn serve_conn<S, IO>(mut io: IO, service: Rc<S>, timeouts: Timeouts)
where
    S: Service,
    IO: Conn,
{
    // Allocated once bytes arrive (see the module doc).
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut state = ConnState::Receiving {
        deadline: Instant::now() + timeouts.request,
    };
    loop {
        // Answer every complete request in the buffer.
        let mut consumed = 0;
        let mut closing = false;
        if !buf.is_empty() && out.capacity() == 0 {
            out.reserve(WRITE_BUF_INITIAL);
        }
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
            state = ConnState::Idle;
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
        if !buf.is_empty() && state == ConnState::Idle {
            state = ConnState::Receiving {
                deadline: Instant::now() + timeouts.request,
            };
        }
        let deadline = match state {
            ConnState::Idle => Instant::now() + timeouts.idle,
            ConnState::Receiving { deadline } => deadline,
        };
        let pending = !buf.is_empty();
        if !pending {
            // Nothing pending: wait holding no buffer.
            buf = Vec::new();
            out = Vec::new();
        } else if buf.capacity() - buf.len() < READ_MIN_ROOM {
            let target = (buf.capacity() * 2).min(READ_BUF_MAX);
            buf.reserve(target.saturating_sub(buf.len()).max(READ_MIN_ROOM));
        }
        // One timer covers the wait for readiness and the read. A read cancelled by the
        // timeout may still complete inside the driver; the connection is closed right
        // after, so any such bytes are never looked at.
        let conn = &mut io;
        let read = monoio::time::timeout_at(deadline, async move {
            if !pending {
                if let Err(e) = conn.readable().await {
                    return (Err(e), buf);
                }
                buf.reserve(READ_BUF_INITIAL);
            }
            let len = buf.len();
            let cap = buf.capacity();
            let (res, slice) = conn.read(buf.slice_mut(len..cap)).await;
            (res, slice.into_inner())
        })
        .await;
        let (res, back) = match read {
            Ok(r) => r,
            Err(_) => {
                if let ConnState::Receiving { .. } = state {
                    let mut tail = Vec::new();
                    Reply::new(&mut tail, true).error(408, "request not completed in time");
                    let _ = monoio::time::timeout(timeouts.request, io.write_all(tail)).await;
                }
                return;
            }
        };
        buf = back;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
