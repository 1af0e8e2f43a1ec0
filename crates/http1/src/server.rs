//! The HTTP/1.1 connection loop shared by the gateway and the processor simulator.
//!
//! Each core runs [`serve`] on its own listener. A connection reads into one buffer,
//! parses every complete request in it (pipelining), lets the [`Service`] append each
//! answer to one output buffer, and writes them in one go. Connection state is the
//! `ConnState` enum: idle between requests, or inside a partly received request, which is
//! the only time the slow-client timeout runs.

use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;

use net::listen::Listener;

use crate::request::{self, Request, Status, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::response::Reply;

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

/// Accepts connections forever and serves each on its own task.
pub async fn serve<S: Service + 'static>(listener: Listener, service: Rc<S>, timeouts: Timeouts) {
    net::listen::accept_each(&listener, |stream| {
        monoio::spawn(serve_conn(stream, service.clone(), timeouts));
    })
    .await
}

/// Where a connection is between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
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
    let mut state = ConnState::Idle;
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
                if let ConnState::Receiving { .. } = state {
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
