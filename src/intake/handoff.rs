//! Connection hand-off: client connections the lb accepted and passed over a Unix socket.
//!
//! With `HANDOFF=unix:/path` a gateway also listens on that socket. The lb keeps a few
//! connections to it and sends each accepted client connection as one byte carrying
//! the client's fd ([`net::fdpass`]). Every core accepts lb connections on the shared
//! socket; for each, it takes the fds as they arrive and serves every client with
//! [`server::serve_conn`] on that core, exactly like a connection accepted on `LISTEN`
//! and under the same connection cap. Each handed-over connection is answered with
//! one verdict byte, taken or refused (at the cap, or out of file descriptors: the
//! kernel then truncates the control data and drops the fd), so that the lb, which
//! still holds the client, can give a refused one to the other gateway.

use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use http1::limit::ConnLimit;
use http1::server::{self, Service, Timeouts};
use monoio::io::CancelHandle;
use net::addr::Addr;
use net::fdpass;
use net::listen::{Listener, StdListener};
use net::stream::Stream;

/// Binds the hand-off socket once and shares it with every core (a stale socket file
/// is replaced). `addr` must be a Unix address.
pub fn bind(addr: &Addr, cores: usize) -> io::Result<Vec<StdListener>> {
    if let Addr::Tcp { .. } = addr {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the hand-off socket must be unix:/path",
        ));
    }
    net::listen::bind(addr, cores).map(|(listeners, _)| listeners)
}

/// Accepts lb connections until `stop` cancels it, and serves the connections each one
/// hands over, under `limit` (shared with `LISTEN`). Once the service is closing, every
/// connection an lb hands over is refused and its link closed, so the lb gives its
/// clients to another gateway and, finding the socket closed, marks this one down.
pub async fn serve<S: Service + 'static>(
    listener: Listener,
    service: Rc<S>,
    timeouts: Timeouts,
    limit: ConnLimit,
    stop: CancelHandle,
) {
    net::listen::accept_each_until(&listener, stop, |lb| match lb {
        Stream::Unix(lb) => {
            monoio::spawn(serve_lb(lb, service.clone(), timeouts, limit.clone()));
        }
        Stream::Tcp(_) => net::log!("hand-off: closed a TCP connection on the Unix socket"),
    })
    .await
}

/// Takes the fds an lb connection carries until the lb closes it, and answers each
/// handed-over connection with one verdict byte ([`fdpass::TAKEN`] or
/// [`fdpass::REFUSED`]), in order, written once per batch of messages read.
async fn serve_lb<S: Service + 'static>(
    lb: monoio::net::UnixStream,
    service: Rc<S>,
    timeouts: Timeouts,
    limit: ConnLimit,
) {
    let mut fds = Vec::new();
    let mut verdicts = Vec::new();
    // Messages in a row whose fds the kernel could not install, for logging once.
    let mut truncated_run = 0u64;
    loop {
        match fdpass::recv_fds(&lb, &mut fds) {
            Ok(got) => {
                // One data byte per handed-over connection; the kernel drops the fds it
                // cannot install (out of fds), so the last ones may have none.
                let refused = got.bytes.saturating_sub(fds.len());
                if got.truncated {
                    if truncated_run == 0 {
                        net::log!(
                            "hand-off: control data truncated: out of file descriptors, or \
                             more than {} fds in one message; {refused} connection(s) refused \
                             back to the lb (logged once until a hand-off works)",
                            fdpass::MAX_FDS_PER_MSG
                        );
                    }
                    truncated_run += 1;
                    limit.count_out_of_fds(refused as u64);
                } else if truncated_run > 0 {
                    net::log!("hand-off: taking connections again after {truncated_run} truncated");
                    truncated_run = 0;
                }
                let closing = service.closing();
                for fd in fds.drain(..) {
                    verdicts.push(match closing {
                        false => adopt(fd, &service, timeouts, &limit),
                        true => fdpass::REFUSED,
                    });
                }
                verdicts.extend(std::iter::repeat_n(fdpass::REFUSED, refused));
                if closing {
                    if let Err(e) = answer(&lb, &mut verdicts).await {
                        net::log!("hand-off: answering the lb failed: {e}");
                    }
                    return;
                }
                if got.bytes == 0 {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Err(e) = answer(&lb, &mut verdicts).await {
                    net::log!("hand-off: answering the lb failed: {e}");
                    return;
                }
                if let Err(e) = lb.readable(false).await {
                    net::log!("hand-off: waiting on the lb connection failed: {e}");
                    return;
                }
            }
            Err(e) => {
                net::log!("hand-off: reading from the lb failed: {e}");
                return;
            }
        }
    }
}

/// Writes the pending verdicts to the lb (usually one non-blocking send).
async fn answer(lb: &monoio::net::UnixStream, verdicts: &mut Vec<u8>) -> io::Result<()> {
    let mut sent = 0;
    while sent < verdicts.len() {
        match fdpass::send_bytes(lb, &verdicts[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => lb.writable(false).await?,
            Err(e) => return Err(e),
        }
    }
    verdicts.clear();
    Ok(())
}

/// Serves one handed-over connection on this core if the cap has room; anything but a
/// stream socket is closed and logged. Returns the verdict for the lb.
fn adopt<S: Service + 'static>(
    fd: OwnedFd,
    service: &Rc<S>,
    timeouts: Timeouts,
    limit: &ConnLimit,
) -> u8 {
    // Refused at the cap, the lb gives the client to another gateway (or closes it).
    let Some(slot) = limit.try_acquire() else {
        return fdpass::REFUSED;
    };
    match Stream::from_fd(fd) {
        Ok(s) => {
            let service = service.clone();
            monoio::spawn(async move {
                server::serve_conn(s, service, timeouts).await;
                drop(slot);
            });
            fdpass::TAKEN
        }
        Err(e) => {
            net::log!("hand-off: closed a received fd: {e}");
            fdpass::REFUSED
        }
    }
}
