//! Listeners: bound before the runtimes start (one per core), adopted by each core's
//! runtime, and one accept loop for every server (gateway, simulator, lb).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use monoio::io::{CancelHandle, Canceller};

use crate::addr::Addr;
use crate::stream::Stream;

/// Pause after a failed accept before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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

impl Listener {
    /// Accepts one connection, as it comes (no socket option is set).
    pub async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
        }
    }

    /// [`Listener::accept`] until `stop`'s canceller cancels it: then (or if it already
    /// has) the error is [`is_stopped`].
    pub async fn accept_until(&self, stop: CancelHandle) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.cancelable_accept(stop).await.map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l
                .cancelable_accept(stop)
                .await
                .map(|(s, _)| Stream::Unix(s)),
        }
    }
}

/// Whether an accept failed because its [`Canceller`] stopped it.
pub fn is_stopped(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}

/// Failed accepts in this process so far, every listener and core together (for
/// metrics).
static ACCEPT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Failed accepts in this process so far.
pub fn accept_failures() -> u64 {
    ACCEPT_FAILURES.load(Relaxed)
}

/// Accepts connections forever, handing each to `serve` (which spawns its task). TCP
/// connections get `TCP_NODELAY`: answers are small and must leave at once. A failed
/// accept is counted, logged once per burst and retried after a pause ([`AcceptBurst`]).
pub async fn accept_each(listener: &Listener, serve: impl FnMut(Stream)) {
    accept_each_until(listener, Canceller::new().handle(), serve).await
}

/// [`accept_each`] until `stop`'s [`Canceller`] cancels it, then returns (the caller
/// drops the listener, which closes it: new connections are refused by the kernel).
pub async fn accept_each_until(
    listener: &Listener,
    stop: CancelHandle,
    mut serve: impl FnMut(Stream),
) {
    let mut burst = AcceptBurst::default();
    loop {
        match listener.accept_until(stop.clone()).await {
            Ok(s) => {
                burst.accepted();
                let _ = s.set_nodelay();
                serve(s)
            }
            Err(e) if is_stopped(&e) => return,
            Err(e) => burst.failed(e).await,
        }
    }
}

/// The failed accepts of one accept loop in a row. Out of file descriptors (`EMFILE`,
/// `ENFILE`) every accept fails until a connection closes, so the loop pauses
/// 50 ms between tries instead of spinning, logs the first failure of
/// a burst, and logs once more when an accept succeeds again. Pending connections wait
/// in the kernel's backlog meanwhile.
#[derive(Debug, Default)]
pub struct AcceptBurst {
    failed: u64,
}

impl AcceptBurst {
    /// Records an accept that worked; ends a burst of failures (logged).
    pub fn accepted(&mut self) {
        if self.failed > 0 {
            crate::log!("accepting again after {} failed accepts", self.failed);
            self.failed = 0;
        }
    }

    /// Counts a failed accept, logs it if it starts a burst, and pauses.
    pub async fn failed(&mut self, e: std::io::Error) {
        ACCEPT_FAILURES.fetch_add(1, Relaxed);
        if self.failed == 0 {
            let why = match e.raw_os_error() {
                Some(libc::EMFILE) => ": out of file descriptors (this process's RLIMIT_NOFILE)",
                Some(libc::ENFILE) => ": out of file descriptors (the system's limit)",
                _ => "",
            };
            crate::log!(
                "accept failed: {e}{why}; retrying every {} ms, logged again once an accept \
                 succeeds",
                ACCEPT_ERROR_PAUSE.as_millis()
            );
        }
        self.failed += 1;
        monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
    }
}
