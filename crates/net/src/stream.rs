//! A connected socket of either kind (TCP or Unix), and the one way to open one to an
//! [`Addr`].
//!
//! [`Stream`] reads and writes with monoio's owned buffers ([`AsyncReadRent`],
//! [`AsyncWriteRent`]); each call is a `match` on the kind, with no dynamic dispatch.
//! TCP connections get `TCP_NODELAY` wherever they come from (accepted or connected):
//! every message in this workspace is small and must leave at once.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::{TcpStream, UnixStream};
use monoio::BufResult;

use crate::addr::Addr;

/// A connected TCP or Unix stream socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Adopts a connected socket received from another process (fd passing): a TCP or
    /// Unix stream socket, made non-blocking (monoio's epoll driver keeps the mode it
    /// finds) and, for TCP, given `TCP_NODELAY`. Anything else is an `InvalidInput`
    /// error, and the fd is closed.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Stream> {
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
        if sock.local_addr()?.is_unix() {
            let s = std::os::unix::net::UnixStream::from(fd);
            s.set_nonblocking(true)?;
            Ok(Stream::Unix(UnixStream::from_std(s)?))
        } else {
            let s = std::net::TcpStream::from(fd);
            s.set_nonblocking(true)?;
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(TcpStream::from_std(s)?))
        }
    }

    /// Sets `TCP_NODELAY` on a TCP stream; nothing to do on a Unix one.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl AsyncReadRent for Stream {
    #[inline]
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
        }
    }

    #[inline]
    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.readv(buf).await,
            Stream::Unix(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Stream {
    #[inline]
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.write(buf).await,
            Stream::Unix(s) => s.write(buf).await,
        }
    }

    #[inline]
    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.writev(buf).await,
            Stream::Unix(s) => s.writev(buf).await,
        }
    }

    #[inline]
    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush().await,
            Stream::Unix(s) => s.flush().await,
        }
    }

    #[inline]
    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown().await,
            Stream::Unix(s) => s.shutdown().await,
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// Resolves `host:port` with the system resolver. This blocks the calling core for the
/// lookup, so callers connect rarely or keep the result (see [`connect_first`]).
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        ));
    }
    Ok(addrs)
}

/// Connects to the first of `candidates` that accepts (`localhost` may name both `::1`
/// and `127.0.0.1`, and a server may listen on only one), with `TCP_NODELAY` set.
/// Returns the stream and the address that answered, for callers that remember it.
pub async fn connect_first(candidates: &[SocketAddr]) -> io::Result<(Stream, SocketAddr)> {
    let mut last_error = None;
    for &addr in candidates {
        match TcpStream::connect_addr(addr).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok((Stream::Tcp(s), addr));
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to")))
}

/// Connects to `addr`: a TCP host is resolved (blocking, see [`resolve`]) and its
/// addresses tried in turn; a Unix path is connected to directly.
pub async fn connect(addr: &Addr) -> io::Result<Stream> {
    match addr {
        Addr::Tcp { host, port } => {
            let candidates = resolve(host, *port)?;
            Ok(connect_first(&candidates).await?.0)
        }
        Addr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
    }
}

/// [`connect`], given up after `timeout` with an [`io::ErrorKind::TimedOut`] error.
pub async fn connect_within(addr: &Addr, timeout: Duration) -> io::Result<Stream> {
    match monoio::time::timeout(timeout, connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection to {addr} within {timeout:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncWriteRentExt;

    /// Echoes one read back, then closes.
    fn echo_once(mut conn: impl std::io::Read + std::io::Write) {
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).unwrap();
        conn.write_all(&buf[..n]).unwrap();
    }

    async fn round_trip(addr: &Addr) {
        let mut s = connect_within(addr, Duration::from_secs(5)).await.unwrap();
        let (res, _) = s.write_all(b"ping".to_vec()).await;
        res.unwrap();
        let (res, buf) = s.read(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"ping");
    }

    /// Numbers the test directories of this process.
    static NEXT_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    #[monoio::test_all(timer_enabled = true)]
    async fn connects_over_tcp_and_unix() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        std::thread::spawn(move || echo_once(tcp.accept().unwrap().0));
        round_trip(&Addr::parse(&format!("localhost:{port}")).unwrap()).await;

        // The test runs once per driver, possibly at the same time: one directory each
        // (the counter is the module's: a static in this body would be one per driver).
        let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("net-stream-test-{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("echo.sock");
        let _ = std::fs::remove_file(&path);
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || echo_once(unix.accept().unwrap().0));
        round_trip(&Addr::Unix(path)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn refused_and_unresolvable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = Addr::parse(&format!("127.0.0.1:{port}")).unwrap();
        assert!(connect(&refused).await.is_err());
        let missing = Addr::Unix("/nonexistent/dir/x.sock".into());
        assert!(connect(&missing).await.is_err());
        assert!(connect_first(&[]).await.is_err());
    }
}
