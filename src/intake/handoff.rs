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
use std::time::Duration;

use http1::server::{self, Service, Timeouts};
use net::addr::Addr;
use net::fdpass;
use net::listen::{Listener, StdListener};

/// Pause after a failed accept (EMFILE and the like) before accepting again, so a full
/// fd table does not spin the core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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
    let Listener::Unix(listener) = listener else {
        net::log!("hand-off: not a Unix listener; hand-off disabled on this core");
        return;
    };
    loop {
        match listener.accept().await {
            Ok((lb, _)) => {
                monoio::spawn(serve_lb(lb, service.clone(), timeouts));
            }
            Err(e) => {
                net::log!("hand-off: accept failed: {e}");
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
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

/// What a received fd turned out to be.
enum Passed {
    Tcp(monoio::net::TcpStream),
    Unix(monoio::net::UnixStream),
}

/// Serves one handed-over connection on this core; anything but a stream socket is
/// closed and logged.
fn adopt<S: Service + 'static>(fd: OwnedFd, service: &Rc<S>, timeouts: Timeouts) {
    match into_stream(fd) {
        Ok(Passed::Tcp(s)) => {
            monoio::spawn(server::serve_conn(s, service.clone(), timeouts));
        }
        Ok(Passed::Unix(s)) => {
            monoio::spawn(server::serve_conn(s, service.clone(), timeouts));
        }
        Err(e) => net::log!("hand-off: closed a received fd: {e}"),
    }
}

fn into_stream(fd: OwnedFd) -> io::Result<Passed> {
    use std::os::unix::fs::FileTypeExt;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.file_type().is_socket() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
    }
    let fd = OwnedFd::from(file);
    let sock = socket2::SockRef::from(&fd);
    if sock.r#type()? != socket2::Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a stream socket",
        ));
    }
    // Under epoll monoio's from_std keeps the fd's blocking mode, so it is set here.
    if sock.local_addr()?.is_unix() {
        let s = std::os::unix::net::UnixStream::from(fd);
        s.set_nonblocking(true)?;
        Ok(Passed::Unix(monoio::net::UnixStream::from_std(s)?))
    } else {
        let s = std::net::TcpStream::from(fd);
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        Ok(Passed::Tcp(monoio::net::TcpStream::from_std(s)?))
    }
}
