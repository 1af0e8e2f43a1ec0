//! Connection hand-off: client connections the lb accepted and passed over a Unix socket.
//!
//! With `HANDOFF=unix:/path` a gateway also listens on that socket. The lb keeps a few
//! connections to it and sends each accepted client connection as one byte carrying
//! the client's fd ([`net::fdpass`]). Every core accepts lb connections on the shared
//! socket; for each, it takes the fds as they arrive and serves every client with
//! [`server::serve_conn`] on that core, exactly like a connection accepted on `LISTEN`.

use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use http1::server::{self, Service, Timeouts};
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

/// Accepts lb connections forever and serves the connections each one hands over.
pub async fn serve<S: Service + 'static>(listener: Listener, service: Rc<S>, timeouts: Timeouts) {
    net::listen::accept_each(&listener, |lb| match lb {
        Stream::Unix(lb) => {
            monoio::spawn(serve_lb(lb, service.clone(), timeouts));
        }
        Stream::Tcp(_) => net::log!("hand-off: closed a TCP connection on the Unix socket"),
    })
    .await
}

/// Takes the fds an lb connection carries until the lb closes it.
async fn serve_lb<S: Service + 'static>(
    lb: monoio::net::UnixStream,
    service: Rc<S>,
    timeouts: Timeouts,
) {
    let mut fds = Vec::new();
    loop {
        match fdpass::recv_fds(&lb, &mut fds) {
            Ok(got) => {
                if got.truncated {
                    net::log!(
                        "hand-off: a message carried more than {} fds; the rest were closed",
                        fdpass::MAX_FDS_PER_MSG
                    );
                }
                for fd in fds.drain(..) {
                    adopt(fd, &service, timeouts);
                }
                if got.bytes == 0 {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
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

/// Serves one handed-over connection on this core; anything but a stream socket is
/// closed and logged.
fn adopt<S: Service + 'static>(fd: OwnedFd, service: &Rc<S>, timeouts: Timeouts) {
    match Stream::from_fd(fd) {
        Ok(s) => {
            monoio::spawn(server::serve_conn(s, service.clone(), timeouts));
        }
        Err(e) => net::log!("hand-off: closed a received fd: {e}"),
    }
}
