//! The gateway's HTTP/1.1 client: one keep-alive connection pool per target.
//!
//! Used to call the payment processors (`POST /payments`, `GET /payments/{id}`,
//! `GET /payments/service-health`) and the peer gateways' internal endpoints.
//!
//! A [`Client`] belongs to one core: it is `!Send`, and its clones share one pool. Each
//! [`Client::request`] takes an idle connection (or opens one), writes the request head and
//! body in one write, reads the whole response and puts the connection back only when the
//! response ended cleanly and allows keep-alive. The client never retries: whether a failed
//! request may be sent again is the caller's decision, and [`ClientError::not_sent`] tells
//! when the peer certainly never saw it.
//!
//! Responses are framed by `Content-Length`, by `Transfer-Encoding: chunked` (extensions and
//! trailers are skipped), or by the end of the connection. 1xx interim responses are
//! skipped; responses to HEAD and 204/304 responses have no body.
//!
//! Inside, in the order a request meets them:
//!
//! - `pool`: the keep-alive pool of one target (idle connections, the resolved address).
//! - `connection`: one connection and one exchange on it (write the request, read the
//!   response).
//! - [`framing`]: response-head parsing and how the body is delimited.
//! - [`chunked`]: the incremental decoder of chunked bodies.
//!
//! The two decoders are public so that fuzz targets (`fuzz/`) can drive them directly.

pub mod chunked;
mod connection;
pub mod framing;
mod pool;

use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;
use net::addr::Addr;

use connection::encode_request;
use pool::Pool;

/// Largest response (head, interim responses and body as received) the client accepts.
/// Processor and peer answers are a few hundred bytes; anything near this is a broken or
/// hostile peer, and the bound keeps a core's memory small.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One connection pool to one target, owned by one core. Clones share the pool.
#[derive(Clone)]
pub struct Client {
    pool: Rc<Pool>,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// Could not connect (resolution or connect failed, or the deadline passed while
    /// connecting): the request was certainly not sent.
    Connect(io::Error),
    /// The deadline passed after the request may have been (partly) sent.
    Timeout,
    /// I/O error or EOF after the request may have been (partly) sent.
    Io(io::Error),
    /// The peer sent something that is not a valid HTTP/1.1 response (or one over
    /// [`MAX_RESPONSE_BYTES`]).
    BadResponse(&'static str),
}

impl ClientError {
    /// True only for [`ClientError::Connect`]: the peer certainly did not receive the request.
    pub fn not_sent(&self) -> bool {
        matches!(self, ClientError::Connect(_))
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::Timeout => f.write_str("timed out waiting for the response"),
            ClientError::Io(e) => write!(f, "connection failed during the exchange: {e}"),
            ClientError::BadResponse(why) => write!(f, "bad response: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(e) | ClientError::Io(e) => Some(e),
            ClientError::Timeout | ClientError::BadResponse(_) => None,
        }
    }
}

impl Client {
    /// A client for `target` keeping at most `max_idle` idle connections for reuse (others
    /// are closed after use). No connection is opened until the first request.
    pub fn new(target: Addr, max_idle: usize) -> Client {
        Client {
            pool: Rc::new(Pool::new(target, max_idle)),
        }
    }

    pub fn target(&self) -> &Addr {
        self.pool.target()
    }

    /// Number of idle pooled connections (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.pool.idle()
    }

    /// Sends one request and reads its whole response, within `timeout` overall (connect
    /// included).
    ///
    /// `path` is the request target (`/payments`); `head_extra` is extra header lines
    /// already formatted `"Name: value\r\n"` (may be empty). Host and, when the body is
    /// non-empty or the method is POST or PUT, Content-Length are added; the connection is
    /// kept alive.
    ///
    /// A deadline that passes while connecting is [`ClientError::Connect`] (nothing was
    /// sent); once a connection is in hand it is [`ClientError::Timeout`], and that
    /// connection is closed.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        head_extra: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        debug_assert!(is_visible_ascii(method), "bad method {method:?}");
        debug_assert!(is_visible_ascii(path), "bad request target {path:?}");
        debug_assert!(
            head_extra.is_empty() || head_extra.ends_with("\r\n"),
            "head_extra must be whole header lines"
        );
        let deadline = Instant::now().checked_add(timeout);
        let mut request = encode_request(method, path, self.pool.host_header(), head_extra, body);
        let no_body = method.eq_ignore_ascii_case("HEAD");
        let idempotent = no_body || method.eq_ignore_ascii_case("GET");
        if let Some(conn) = self.pool.take_idle() {
            // Only a request that may be sent twice keeps a copy for a second try.
            let first = if idempotent {
                request.clone()
            } else {
                std::mem::take(&mut request)
            };
            match within(deadline, conn.exchange(first, no_body)).await {
                // The server closed the pooled connection before answering (its idle
                // timeout raced our reuse): a GET is safe to send again, on a new one.
                Some(Err(ClientError::Io(_))) if idempotent => {}
                result => return self.pool.finish(result),
            }
        }
        let conn = self.pool.connect(deadline).await?;
        let result = within(deadline, conn.exchange(request, no_body)).await;
        self.pool.finish(result)
    }
}

fn connect_timed_out() -> ClientError {
    ClientError::Connect(io::Error::new(
        io::ErrorKind::TimedOut,
        "deadline passed while connecting",
    ))
}

/// Runs `future` until `deadline`; `None` when the deadline passed first (the future is then
/// dropped, cancelling its I/O). No deadline (a timeout too large to represent) means none.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => monoio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// What a method or request target must be to keep the request line intact: non-empty
/// visible ASCII (no spaces, CR or LF).
fn is_visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::chunked::tests::{CHUNKED, CHUNKED_BODY};
    use super::connection::READ_BUF_BYTES;
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    /// Generous deadline for exchanges that are expected to complete.
    const PATIENT: Duration = Duration::from_secs(10);
    /// Deadline for exchanges that are expected to time out.
    const IMPATIENT: Duration = Duration::from_millis(200);

    /// A blocking socket of either kind, as seen by a scripted test server.
    trait Duplex: Read + Write + Send {}
    impl<T: Read + Write + Send> Duplex for T {}

    /// A scripted server on a std thread: each accepted connection runs `script` with its
    /// index (0 for the first) on its own thread.
    struct TestServer {
        addr: Addr,
        accepts: Arc<AtomicUsize>,
        /// Requests as received, in order, from every connection.
        requests: mpsc::Receiver<Vec<u8>>,
    }

    impl TestServer {
        fn accepts(&self) -> usize {
            self.accepts.load(Ordering::SeqCst)
        }

        fn next_request(&self) -> Vec<u8> {
            self.requests
                .recv_timeout(PATIENT)
                .expect("server saw no request")
        }
    }

    type Script = dyn Fn(usize, &mut dyn Duplex, &mpsc::Sender<Vec<u8>>) + Send + Sync;

    fn spawn_acceptor<S: Duplex + 'static>(
        mut accept: impl FnMut() -> S + Send + 'static,
        script: Arc<Script>,
        accepts: Arc<AtomicUsize>,
        requests: mpsc::Sender<Vec<u8>>,
    ) {
        std::thread::spawn(move || loop {
            let mut conn = accept();
            let index = accepts.fetch_add(1, Ordering::SeqCst);
            let script = Arc::clone(&script);
            let requests = requests.clone();
            std::thread::spawn(move || script(index, &mut conn, &requests));
        });
    }

    fn tcp_server(
        script: impl Fn(usize, &mut dyn Duplex, &mpsc::Sender<Vec<u8>>) + Send + Sync + 'static,
    ) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepts = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let accept = move || {
            let (conn, _) = listener.accept().unwrap();
            conn.set_nodelay(true).unwrap();
            conn
        };
        spawn_acceptor(accept, Arc::new(script), Arc::clone(&accepts), tx);
        TestServer {
            addr: Addr::Tcp {
                host: "127.0.0.1".to_string(),
                port,
            },
            accepts,
            requests: rx,
        }
    }

    fn unix_server(
        script: impl Fn(usize, &mut dyn Duplex, &mpsc::Sender<Vec<u8>>) + Send + Sync + 'static,
    ) -> TestServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gateway-client-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let accept = move || listener.accept().unwrap().0;
        spawn_acceptor(accept, Arc::new(script), Arc::clone(&accepts), tx);
        TestServer {
            addr: Addr::Unix(path),
            accepts,
            requests: rx,
        }
    }

    /// Reads one request (head and Content-Length body); `None` at EOF before a full one.
    fn read_request(conn: &mut dyn Duplex) -> Option<Vec<u8>> {
        let mut data = Vec::new();
        let mut byte = [0u8; 1];
        while !data.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => data.push(byte[0]),
                _ => return None,
            }
        }
        let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).ok()?;
        data.extend_from_slice(&body);
        Some(data)
    }

    /// Waits until the client closes the connection, discarding what it sends.
    fn wait_for_close(conn: &mut dyn Duplex) {
        let mut sink = [0u8; 256];
        while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
    }

    /// A server answering every request on every connection with `response`.
    fn answering(response: &'static [u8]) -> TestServer {
        tcp_server(move |_, conn, requests| {
            while let Some(request) = read_request(conn) {
                let _ = requests.send(request);
                if conn.write_all(response).is_err() {
                    return;
                }
            }
        })
    }

    async fn get(client: &Client, path: &str) -> Result<Response, ClientError> {
        client.request("GET", path, "", b"", PATIENT).await
    }

    fn ok(status: u16, body: &[u8]) -> Response {
        Response {
            status,
            body: body.to_vec(),
        }
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn post_writes_exact_request_and_reads_content_length_body() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let client = Client::new(server.addr.clone(), 4);
        let body = br#"{"amount":19.90}"#;
        let response = client
            .request("POST", "/payments", "X-Trace: 7\r\n", body, PATIENT)
            .await
            .unwrap();
        assert_eq!(response, ok(200, b"hello"));
        let expected = format!(
            "POST /payments HTTP/1.1\r\nHost: {}\r\nX-Trace: 7\r\nContent-Length: 16\r\n\r\n{}",
            server.addr,
            std::str::from_utf8(body).unwrap()
        );
        assert_eq!(server.next_request(), expected.as_bytes());
        assert_eq!(client.idle(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn get_without_body_sends_no_content_length_but_empty_post_does() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(
            get(&client, "/payments/service-health").await.unwrap(),
            ok(200, b"")
        );
        let expected = format!(
            "GET /payments/service-health HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        );
        assert_eq!(server.next_request(), expected.as_bytes());
        client
            .request("POST", "/purge", "", b"", PATIENT)
            .await
            .unwrap();
        let expected = format!(
            "POST /purge HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            server.addr
        );
        assert_eq!(server.next_request(), expected.as_bytes());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn sequential_requests_share_one_connection() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(client.idle(), 0);
        for _ in 0..3 {
            assert_eq!(get(&client, "/x").await.unwrap(), ok(200, b"ok"));
            assert_eq!(client.idle(), 1);
        }
        assert_eq!(server.accepts(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn clones_share_the_pool() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let client = Client::new(server.addr.clone(), 4);
        let other = client.clone();
        get(&client, "/a").await.unwrap();
        assert_eq!(other.idle(), 1);
        get(&other, "/b").await.unwrap();
        assert_eq!(server.accepts(), 1);
        assert_eq!(other.target(), &server.addr);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn concurrent_requests_open_connections_and_pool_up_to_max_idle() {
        // The server answers the first request only once the second connection exists,
        // so that both requests are in flight together.
        let (both_tx, both_rx) = mpsc::channel::<()>();
        let both_rx = std::sync::Mutex::new(both_rx);
        let server = tcp_server(move |index, conn, _| {
            while read_request(conn).is_some() {
                if index == 0 {
                    let _ = both_rx.lock().unwrap().recv_timeout(PATIENT);
                } else {
                    let _ = both_tx.send(());
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!");
            }
        });
        let client = Client::new(server.addr.clone(), 1);
        let (a, b) = monoio::join!(get(&client, "/a"), get(&client, "/b"));
        assert_eq!(a.unwrap(), ok(200, b"!"));
        assert_eq!(b.unwrap(), ok(200, b"!"));
        assert_eq!(server.accepts(), 2);
        assert_eq!(client.idle(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn max_idle_zero_never_pools() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let client = Client::new(server.addr.clone(), 0);
        get(&client, "/a").await.unwrap();
        assert_eq!(client.idle(), 0);
        get(&client, "/b").await.unwrap();
        assert_eq!(server.accepts(), 2);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn chunked_body_written_byte_by_byte() {
        let server = tcp_server(|_, conn, _| {
            while read_request(conn).is_some() {
                for &byte in CHUNKED {
                    if conn.write_all(&[byte]).is_err() {
                        return;
                    }
                }
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        for _ in 0..2 {
            assert_eq!(get(&client, "/c").await.unwrap(), ok(200, CHUNKED_BODY));
            assert_eq!(client.idle(), 1);
        }
        assert_eq!(server.accepts(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn chunked_body_in_one_write() {
        let server = answering(CHUNKED);
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/c").await.unwrap(), ok(200, CHUNKED_BODY));
        assert_eq!(client.idle(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn connection_close_is_not_pooled() {
        let server = tcp_server(|_, conn, _| {
            if read_request(conn).is_some() {
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 3\r\n\r\nbye",
                );
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/a").await.unwrap(), ok(200, b"bye"));
        assert_eq!(client.idle(), 0);
        assert_eq!(get(&client, "/b").await.unwrap(), ok(200, b"bye"));
        assert_eq!(server.accepts(), 2);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn http10_body_until_eof_is_not_pooled() {
        let server = tcp_server(|_, conn, _| {
            if read_request(conn).is_some() {
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n");
                let _ = conn.write_all(b"until ");
                let _ = conn.write_all(b"the end");
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/").await.unwrap(), ok(200, b"until the end"));
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn http10_with_length_is_not_pooled() {
        let server = answering(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/").await.unwrap(), ok(200, b"ok"));
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn interim_responses_are_skipped() {
        let server = answering(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n\
              HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 2\r\n\r\n{}",
        );
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/").await.unwrap(), ok(422, b"{}"));
        assert_eq!(client.idle(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn no_body_for_head_204_and_304() {
        let server = tcp_server(|_, conn, _| {
            while let Some(request) = read_request(conn) {
                let response: &[u8] = if request.starts_with(b"HEAD") {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                } else if request.starts_with(b"GET /204") {
                    b"HTTP/1.1 204 No Content\r\n\r\n"
                } else {
                    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
                };
                if conn.write_all(response).is_err() {
                    return;
                }
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        let head = client.request("HEAD", "/", "", b"", PATIENT).await.unwrap();
        assert_eq!(head, ok(200, b""));
        assert_eq!(get(&client, "/204").await.unwrap(), ok(204, b""));
        assert_eq!(get(&client, "/304").await.unwrap(), ok(304, b""));
        assert_eq!(client.idle(), 1);
        assert_eq!(server.accepts(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn body_larger_than_one_read() {
        const SIZE: usize = 3 * READ_BUF_BYTES + 17;
        let server = tcp_server(|_, conn, _| {
            while read_request(conn).is_some() {
                let mut response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").into_bytes();
                response.extend((0..SIZE).map(|i| (i % 251) as u8));
                if conn.write_all(&response).is_err() {
                    return;
                }
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        let response = get(&client, "/big").await.unwrap();
        assert_eq!(response.body.len(), SIZE);
        assert!(response
            .body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8));
        assert_eq!(client.idle(), 1);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn responses_over_the_limit_are_bad() {
        let server = tcp_server(|index, conn, _| {
            if read_request(conn).is_none() {
                return;
            }
            let response = match index {
                0 => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    MAX_RESPONSE_BYTES + 1
                )
                .into_bytes(),
                1 => {
                    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    for _ in 0..(MAX_RESPONSE_BYTES / 1000 + 1) {
                        r.extend_from_slice(b"3e8\r\n");
                        r.extend_from_slice(&[b'x'; 1000]);
                        r.extend_from_slice(b"\r\n");
                    }
                    r.extend_from_slice(b"0\r\n\r\n");
                    r
                }
                _ => {
                    let mut r = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
                    r.resize(MAX_RESPONSE_BYTES + 1, b'x');
                    r
                }
            };
            let _ = conn.write_all(&response);
            wait_for_close(conn);
        });
        let client = Client::new(server.addr.clone(), 4);
        for _ in 0..3 {
            let err = get(&client, "/").await.unwrap_err();
            assert!(matches!(err, ClientError::BadResponse(_)), "{err}");
            assert!(!err.not_sent());
            assert_eq!(client.idle(), 0);
        }
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn response_of_exactly_the_limit_until_eof_is_read() {
        const LIMIT_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
        let server = tcp_server(|_, conn, _| {
            if read_request(conn).is_some() {
                let mut r = LIMIT_HEAD.to_vec();
                r.resize(MAX_RESPONSE_BYTES, b'y');
                let _ = conn.write_all(&r);
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        let response = get(&client, "/").await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body.len(), MAX_RESPONSE_BYTES - LIMIT_HEAD.len());
        assert!(response.body.iter().all(|&b| b == b'y'));
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn garbage_is_a_bad_response() {
        let server = tcp_server(|index, conn, _| {
            if read_request(conn).is_none() {
                return;
            }
            let response: &[u8] = match index {
                0 => b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                1 => b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                2 => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
                3 => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                _ => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            };
            let _ = conn.write_all(response);
            wait_for_close(conn);
        });
        let client = Client::new(server.addr.clone(), 4);
        for _ in 0..5 {
            let err = get(&client, "/").await.unwrap_err();
            assert!(matches!(err, ClientError::BadResponse(_)), "{err}");
        }
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn extra_bytes_after_response_prevent_reuse() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200");
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/").await.unwrap(), ok(200, b"ok"));
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn silent_server_times_out_and_the_connection_is_dropped() {
        let server = tcp_server(|index, conn, requests| {
            while let Some(request) = read_request(conn) {
                let _ = requests.send(request);
                if index == 0 {
                    // Never answer; return once the client gives up on the connection.
                    wait_for_close(conn);
                    return;
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        let err = client
            .request("GET", "/slow", "", b"", IMPATIENT)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout), "{err}");
        assert!(!err.not_sent());
        assert_eq!(client.idle(), 0);
        assert_eq!(get(&client, "/next").await.unwrap(), ok(200, b"ok"));
        assert_eq!(server.accepts(), 2);
        assert!(server.next_request().starts_with(b"GET /slow "));
        assert!(server.next_request().starts_with(b"GET /next "));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn timeout_in_the_middle_of_a_body() {
        let server = tcp_server(|_, conn, _| {
            if read_request(conn).is_some() {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
                wait_for_close(conn);
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        let err = client
            .request("GET", "/", "", b"", IMPATIENT)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout), "{err}");
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn server_closing_at_once_is_io() {
        let server = tcp_server(|_, _, _| {});
        let client = Client::new(server.addr.clone(), 4);
        let err = get(&client, "/").await.unwrap_err();
        assert!(matches!(err, ClientError::Io(_)), "{err}");
        assert!(!err.not_sent());
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn truncated_body_is_io() {
        let server = tcp_server(|_, conn, _| {
            if read_request(conn).is_some() {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        let err = get(&client, "/").await.unwrap_err();
        match err {
            ClientError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected Io, got {other}"),
        }
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn stale_pooled_connection_gets_are_sent_again_posts_are_not() {
        // Answers one request per connection, keep-alive, then closes.
        let server = tcp_server(|_, conn, _| {
            if read_request(conn).is_some() {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/1").await.unwrap(), ok(200, b"ok"));
        assert_eq!(client.idle(), 1);
        // A GET is safe to repeat: sent again on a new connection.
        assert_eq!(get(&client, "/2").await.unwrap(), ok(200, b"ok"));
        assert_eq!(server.accepts(), 2);
        assert_eq!(client.idle(), 1);
        // A POST may have been received: not repeated, the caller decides.
        let err = client
            .request("POST", "/3", "", b"x", PATIENT)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Io(_)), "{err}");
        assert!(!err.not_sent());
        assert_eq!(client.idle(), 0);
        assert_eq!(get(&client, "/4").await.unwrap(), ok(200, b"ok"));
        assert_eq!(server.accepts(), 3);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn refused_connection_is_connect_and_not_sent() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = Client::new(
            Addr::Tcp {
                host: "127.0.0.1".to_string(),
                port,
            },
            4,
        );
        let err = get(&client, "/").await.unwrap_err();
        assert!(matches!(err, ClientError::Connect(_)), "{err}");
        assert!(err.not_sent());
        assert_eq!(client.idle(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn missing_unix_socket_is_connect() {
        let path = std::env::temp_dir().join(format!(
            "gateway-client-test-{}-missing.sock",
            std::process::id()
        ));
        let client = Client::new(Addr::Unix(path), 4);
        let err = get(&client, "/").await.unwrap_err();
        assert!(matches!(err, ClientError::Connect(_)), "{err}");
        assert!(err.not_sent());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn host_name_is_resolved() {
        let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let Addr::Tcp { port, .. } = server.addr else {
            unreachable!()
        };
        let client = Client::new(
            Addr::Tcp {
                host: "localhost".to_string(),
                port,
            },
            4,
        );
        // `localhost` may resolve to ::1 first, where nothing listens: the client tries
        // each address.
        assert_eq!(get(&client, "/").await.unwrap(), ok(200, b"ok"));
        let request = server.next_request();
        let expected = format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
        assert_eq!(request, expected.as_bytes());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn unix_socket_round_trip_and_pooling() {
        let server = unix_server(|_, conn, requests| {
            while let Some(request) = read_request(conn) {
                let _ = requests.send(request);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                );
            }
        });
        let client = Client::new(server.addr.clone(), 4);
        assert_eq!(get(&client, "/internal").await.unwrap(), ok(200, b"{}"));
        assert_eq!(get(&client, "/internal").await.unwrap(), ok(200, b"{}"));
        assert_eq!(client.idle(), 1);
        assert_eq!(server.accepts(), 1);
        assert_eq!(
            server.next_request(),
            b"GET /internal HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
    }

    #[test]
    fn error_display_and_not_sent() {
        let table = [
            (
                ClientError::Connect(io::Error::from(io::ErrorKind::ConnectionRefused)),
                true,
                "connect failed",
            ),
            (ClientError::Timeout, false, "timed out"),
            (
                ClientError::Io(io::Error::from(io::ErrorKind::UnexpectedEof)),
                false,
                "connection failed",
            ),
            (
                ClientError::BadResponse("invalid status code"),
                false,
                "bad response: invalid status code",
            ),
        ];
        for (err, not_sent, text) in table {
            assert_eq!(err.not_sent(), not_sent);
            assert!(err.to_string().contains(text), "{err}");
        }
    }
}
