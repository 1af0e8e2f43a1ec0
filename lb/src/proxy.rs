//! Proxy mode: a byte-copying L4 proxy, for environments where fds cannot be passed.
//!
//! Each client connection gets its own connection to the next live upstream (the
//! gateways' `LISTEN` addresses, TCP or Unix); bytes are copied both ways until each
//! side has finished sending. A side that closes its sending half is relayed as a
//! half-close (`shutdown(SHUT_WR)`) to the other, so pipelined requests followed by a
//! close still get every answer.

use std::rc::Rc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use net::Stream;

use crate::upstreams::Upstreams;

/// Bytes read at a time in each direction: a few dozen pipelined payment requests
/// (~200 bytes each) or their 202s fit in one read.
const COPY_BUF_BYTES: usize = 16 * 1024;
/// Longest wait to connect to an upstream before trying the next one: the gateways are
/// on the same host or network, where a connect takes well under a millisecond.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Serves one client: connects to the next live upstream and copies bytes both ways
/// until both directions are done. With no live upstream the client is closed.
pub async fn serve(client: Stream, upstreams: Rc<Upstreams>) {
    for i in upstreams.order() {
        match net::connect_within(upstreams.addr(i), CONNECT_TIMEOUT).await {
            Ok(up) => {
                upstreams.mark_up(i);
                // Each pair of socket kinds gets its own copy loop, with no dispatch per
                // read or write.
                match client {
                    Stream::Tcp(c) => splice_to(c, up).await,
                    Stream::Unix(c) => splice_to(c, up).await,
                }
                return;
            }
            Err(e) => upstreams.mark_down(i, &e),
        }
    }
}

async fn splice_to<C>(client: C, upstream: Stream)
where
    C: Splitable,
    C::OwnedRead: AsyncReadRent,
    C::OwnedWrite: AsyncWriteRent,
{
    match upstream {
        Stream::Tcp(s) => splice(client, s).await,
        Stream::Unix(s) => splice(client, s).await,
    }
}

/// Copies both ways between `a` and `b` until both directions have ended.
async fn splice<A, B>(a: A, b: B)
where
    A: Splitable,
    B: Splitable,
    A::OwnedRead: AsyncReadRent,
    A::OwnedWrite: AsyncWriteRent,
    B::OwnedRead: AsyncReadRent,
    B::OwnedWrite: AsyncWriteRent,
{
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    monoio::join!(copy(a_read, b_write), copy(b_read, a_write));
}

/// Copies `from` to `to` until `from` ends or either side fails, then shuts down `to`'s
/// sending half: the peer sees the end of this direction (a relayed half-close), and
/// after a failure the other direction ends too, once that peer closes.
async fn copy<R: AsyncReadRent, W: AsyncWriteRent>(mut from: R, mut to: W) {
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_BUF_BYTES);
    loop {
        buf.clear();
        let (res, back) = from.read(buf).await;
        buf = back;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let (res, back) = to.write_all(buf).await;
        buf = back;
        if res.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
