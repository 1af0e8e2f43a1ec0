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
//! A connection that waits with nothing pending (for its first bytes, or idle between
//! requests) holds a [`READ_BUF_RESTING`] read buffer and at most a
//! [`WRITE_BUF_RESTING`] output buffer, allocated with its first answer; a request or
//! a burst that does not fit grows them, and they are cut back to those sizes the next
//! time nothing is pending. The read stays one read: with owned-buffer I/O the buffer
//! belongs to the read while it waits, so a small one is what an idle connection holds.

use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, Canceller};
use monoio::time::Instant;

use net::listen::Listener;

use crate::limit::ConnLimit;
use crate::request::{self, Request, Status, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::response::Reply;

/// Bytes of a connection's read buffer while nothing is pending (its first read, and
/// every read after its requests were answered): one request of any real client (a
/// payment is ~200 bytes with its headers), so a waiting connection holds 1 KiB.
pub const READ_BUF_RESTING: usize = 1024;
/// Bytes a read buffer grows to first, when a request or a pipelined burst does not fit
/// in [`READ_BUF_RESTING`]: dozens of pipelined payment requests.
pub const READ_BUF_INITIAL: usize = 4 * 1024;
/// The least free room a read into a partly filled buffer is given; the buffer grows
/// (up to [`READ_BUF_MAX`]) when less is left.
const READ_MIN_ROOM: usize = 1024;
/// The largest a read buffer grows: one maximal head plus one maximal body is the
/// longest request the parser lets through; more is rejected before this is reached.
pub const READ_BUF_MAX: usize = MAX_HEAD_BYTES + MAX_BODY_BYTES + READ_MIN_ROOM;
/// Bytes of the output buffer, allocated with the first answer: a 202 is 45 bytes, a
/// summary a few hundred; bigger answers and pipelined bursts grow it.
pub const WRITE_BUF_RESTING: usize = 512;

/// How many timing labels a service may tell apart ([`Service::label`]).
pub const MAX_LABELS: usize = 8;

/// What a server does with each complete request.
///
/// The connection loop also times what it serves, for services that count it: each
/// request from the read that brought its first byte to the end of the write that
/// carried its answer ([`Service::answered`], by the request's [`Service::label`]), and
/// each connection from its accept to its first bytes ([`Service::first_bytes`]). The
/// requests answered by one write share its time; a request's first byte is dated by
/// the read that brought it, or, for one that began in the rest of the buffer after an
/// answered batch, by the last read before that batch's write.
#[allow(async_fn_in_trait)]
pub trait Service {
    /// Answers `req` by appending one complete response to `reply`.
    async fn call(&self, req: &Request<'_>, reply: &mut Reply<'_>);

    /// Makes durable what the answers of one batch promise, just before they are
    /// written (one call per batch of requests read together: group commit). False:
    /// that failed, and the answers are not sent (the connection is closed).
    async fn commit(&self) -> bool {
        true
    }

    /// Whether every connection should close after its current answer (the service is
    /// stopping): its answers then say `Connection: close`.
    fn closing(&self) -> bool {
        false
    }

    /// The timing label of `req`, below [`MAX_LABELS`] (larger ones count as the last).
    fn label(&self, _req: &Request<'_>) -> usize {
        0
    }

    /// `n` requests of label `label`, answered by one write, took `elapsed` from their
    /// first byte read to that write's end.
    fn answered(&self, _label: usize, _n: u32, _elapsed: Duration) {}

    /// A connection's first bytes were read `elapsed` after it was accepted.
    fn first_bytes(&self, _elapsed: Duration) {}
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
    serve_until(
        listener,
        service,
        timeouts,
        limit,
        Canceller::new().handle(),
    )
    .await
}

/// [`serve_limited`] until `stop`'s canceller stops accepting; the connections already
/// open go on being served on their tasks.
pub async fn serve_until<S: Service + 'static>(
    listener: Listener,
    service: Rc<S>,
    timeouts: Timeouts,
    limit: &ConnLimit,
    stop: CancelHandle,
) {
    net::listen::accept_each_until(&listener, stop, |stream| {
        admit(stream, &service, timeouts, limit);
    })
    .await
}

/// Serves `io` on its own task if `limit` has a slot for it (the task holds the slot
/// until it ends), or refuses it. False when refused.
pub fn admit<S, IO>(io: IO, service: &Rc<S>, timeouts: Timeouts, limit: &ConnLimit) -> bool
where
    S: Service + 'static,
    IO: AsyncReadRent + AsyncWriteRent + 'static,
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
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF_RESTING);
    // Allocated with the first answer.
    let mut out: Vec<u8> = Vec::new();
    let accepted_at = Instant::now();
    let mut state = ConnState::Receiving {
        deadline: accepted_at + timeouts.request,
    };
    // Timing: whether a byte was read yet, the last read's end, when the first byte of
    // the oldest unanswered request was read, and the requests of the batch by label.
    let mut read_any = false;
    let mut last_read = accepted_at;
    let mut started: Option<Instant> = None;
    let mut batch = [0u32; MAX_LABELS];
    loop {
        // Answer every complete request in the buffer.
        let mut consumed = 0;
        let mut closing = false;
        if out.capacity() == 0 && !buf.is_empty() {
            out.reserve_exact(WRITE_BUF_RESTING);
        }
        while consumed < buf.len() {
            match request::parse(&buf[consumed..]) {
                Ok(Status::Complete(req)) => {
                    consumed += req.len();
                    batch[service.label(&req).min(MAX_LABELS - 1)] += 1;
                    closing = !req.keep_alive || service.closing();
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
            if !service.commit().await {
                return;
            }
            let deadline = Instant::now() + timeouts.request;
            let (res, back) = match monoio::time::timeout_at(deadline, io.write_all(out)).await {
                Ok(r) => r,
                Err(_) => return,
            };
            out = back;
            if res.is_err() {
                return;
            }
            if let Some(t) = started {
                let elapsed = Instant::now().saturating_duration_since(t);
                for (label, n) in batch.iter_mut().enumerate() {
                    if *n > 0 {
                        service.answered(label, *n, elapsed);
                        *n = 0;
                    }
                }
            }
            // A request begun in the rest of the buffer arrived by the last read.
            started = (!buf.is_empty()).then_some(last_read);
            out.clear();
            if out.capacity() > WRITE_BUF_RESTING {
                // Cut back after a burst (allocated again with the next answer).
                out = Vec::new();
            }
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
        if buf.is_empty() {
            if buf.capacity() > READ_BUF_RESTING {
                // Cut back after a burst: a waiting connection holds the resting size.
                buf = Vec::with_capacity(READ_BUF_RESTING);
            }
        } else if buf.capacity() - buf.len() < READ_MIN_ROOM {
            let target = (buf.capacity() * 2).clamp(READ_BUF_INITIAL, READ_BUF_MAX);
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
            Ok(_) => {
                last_read = Instant::now();
                started.get_or_insert(last_read);
                if !read_any {
                    read_any = true;
                    service.first_bytes(last_read.saturating_duration_since(accepted_at));
                }
            }
        }
    }
}
