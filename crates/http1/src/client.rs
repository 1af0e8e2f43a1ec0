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

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::time::Instant;

use net::addr::Addr;
use net::Stream;

/// Largest response (head, interim responses and body as received) the client accepts.
/// Processor and peer answers are a few hundred bytes; anything near this is a broken or
/// hostile peer, and the bound keeps a core's memory small.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Bytes asked of the socket per read. One read holds a whole processor answer (head and
/// JSON body are well under 1 KiB), so a response costs one read syscall.
const READ_BUF_BYTES: usize = 4 * 1024;

/// Response header fields parsed. Processors send under ten; more means a peer we do not
/// understand.
const MAX_HEADERS: usize = 32;

/// Room reserved for the request line's fixed parts, `Host` and `Content-Length` lines,
/// so that building a request allocates once.
const REQUEST_HEAD_RESERVE: usize = 96;
/// Pooled connections idle longer than this are closed rather than reused: servers close
/// idle keep-alive connections (our gateways after 60 s, nginx after 75 s), and a request
/// written while the server closes its end fails.
const POOL_IDLE_LIMIT: Duration = Duration::from_secs(20);

/// One connection pool to one target, owned by one core. Clones share the pool.
#[derive(Clone)]
pub struct Client {
    shared: Rc<Shared>,
}

struct Shared {
    target: Addr,
    /// Value of the Host header, computed once.
    host_header: String,
    max_idle: usize,
    pool: RefCell<Pool>,
}

struct Pool {
    /// Idle connections, most recently used last (taken first: least likely to have been
    /// closed by the server's idle timeout).
    idle: Vec<(Conn, Instant)>,
    /// Last address a TCP connect succeeded to; cleared when a connect fails.
    resolved: Option<SocketAddr>,
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
            shared: Rc::new(Shared {
                host_header: target.host_header(),
                target,
                max_idle,
                pool: RefCell::new(Pool {
                    idle: Vec::new(),
                    resolved: None,
                }),
            }),
        }
    }

    pub fn target(&self) -> &Addr {
        &self.shared.target
    }

    /// Number of idle pooled connections (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.shared.pool.borrow().idle.len()
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
        let mut request = encode_request(method, path, &self.shared.host_header, head_extra, body);
        let no_body = method.eq_ignore_ascii_case("HEAD");
        let idempotent = no_body || method.eq_ignore_ascii_case("GET");
        if let Some(conn) = self.take_idle() {
            // Only a request that may be sent twice keeps a copy for a second try.
            let first = if idempotent {
                request.clone()
            } else {
                std::mem::take(&mut request)
            };
            match within(deadline, exchange(conn, first, no_body)).await {
                // The server closed the pooled connection before answering (its idle
                // timeout raced our reuse): a GET is safe to send again, on a new one.
                Some(Err(ClientError::Io(_))) if idempotent => {}
                result => return self.finish(result),
            }
        }
        let conn = self.connect(deadline).await?;
        let result = within(deadline, exchange(conn, request, no_body)).await;
        self.finish(result)
    }

    /// The most recently used idle connection that has not been idle too long; older
    /// ones are closed.
    fn take_idle(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut pool = self.shared.pool.borrow_mut();
        while let Some((conn, since)) = pool.idle.pop() {
            if now.saturating_duration_since(since) <= POOL_IDLE_LIMIT {
                return Some(conn);
            }
        }
        None
    }

    /// Pools a reusable connection and returns the exchange's result.
    fn finish(
        &self,
        result: Option<Result<(Response, Option<Conn>), ClientError>>,
    ) -> Result<Response, ClientError> {
        match result {
            None => Err(ClientError::Timeout),
            Some(Err(e)) => Err(e),
            Some(Ok((response, reusable))) => {
                if let Some(conn) = reusable {
                    let mut pool = self.shared.pool.borrow_mut();
                    if pool.idle.len() < self.shared.max_idle {
                        pool.idle.push((conn, Instant::now()));
                    }
                }
                Ok(response)
            }
        }
    }

    /// Opens a new connection to the target before `deadline`. A TCP target's resolved
    /// address is remembered while connects to it succeed, so that only the first
    /// connect (or one after a failure) resolves the name again.
    async fn connect(&self, deadline: Option<Instant>) -> Result<Conn, ClientError> {
        let stream = match &self.shared.target {
            Addr::Unix(_) => match within(deadline, net::connect(&self.shared.target)).await {
                None => return Err(connect_timed_out()),
                Some(result) => result.map_err(ClientError::Connect)?,
            },
            Addr::Tcp { host, port } => {
                let cached = self.shared.pool.borrow().resolved;
                let candidates = match cached {
                    Some(addr) => vec![addr],
                    None => net::stream::resolve(host, *port).map_err(ClientError::Connect)?,
                };
                let connected = within(deadline, net::stream::connect_first(&candidates)).await;
                let mut pool = self.shared.pool.borrow_mut();
                match connected {
                    None => {
                        pool.resolved = None;
                        return Err(connect_timed_out());
                    }
                    Some(Err(e)) => {
                        pool.resolved = None;
                        return Err(ClientError::Connect(e));
                    }
                    Some(Ok((stream, addr))) => {
                        pool.resolved = Some(addr);
                        stream
                    }
                }
            }
        };
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(READ_BUF_BYTES),
            received: 0,
        })
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

/// The request head and body in one buffer, so that one write sends both.
fn encode_request(method: &str, path: &str, host: &str, head_extra: &str, body: &[u8]) -> Vec<u8> {
    let mut req = Vec::with_capacity(
        REQUEST_HEAD_RESERVE
            + method.len()
            + path.len()
            + host.len()
            + head_extra.len()
            + body.len(),
    );
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(head_extra.as_bytes());
    let method_has_body = method.eq_ignore_ascii_case("POST") || method.eq_ignore_ascii_case("PUT");
    if !body.is_empty() || method_has_body {
        req.extend_from_slice(b"Content-Length: ");
        req.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}

/// What a method or request target must be to keep the request line intact: non-empty
/// visible ASCII (no spaces, CR or LF).
fn is_visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Writes the request and reads its response. Returns the connection when it may be reused.
async fn exchange(
    mut conn: Conn,
    request: Vec<u8>,
    no_body: bool,
) -> Result<(Response, Option<Conn>), ClientError> {
    let (written, _) = conn.stream.write_all(request).await;
    written.map_err(ClientError::Io)?;
    conn.received = 0;
    let head = conn.read_head(no_body).await?;
    let body = conn.read_body(head.framing).await?;
    let reusable = head.keep_alive && head.framing != Framing::UntilEof && conn.buf.is_empty();
    // An idle connection keeps at most one read buffer's worth of memory.
    conn.buf.shrink_to(READ_BUF_BYTES);
    let response = Response {
        status: head.status,
        body,
    };
    Ok((response, reusable.then_some(conn)))
}

/// A connection and the bytes received on it but not yet consumed.
struct Conn {
    stream: Stream,
    /// Received, unconsumed bytes. Empty between exchanges.
    buf: Vec<u8>,
    /// Bytes received for the current response, checked against [`MAX_RESPONSE_BYTES`].
    received: usize,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection (no length given).
    UntilEof,
}

/// What the client needs from a final response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// HTTP/1.1 without `Connection: close`.
    keep_alive: bool,
    framing: Framing,
}

fn eof_error(received: usize) -> ClientError {
    let why = if received == 0 {
        "connection closed before any response byte"
    } else {
        "connection closed before the response was complete"
    };
    ClientError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, why))
}

impl Conn {
    /// Appends received bytes to `buf`. Returns 0 at end of stream.
    async fn fill(&mut self) -> Result<usize, ClientError> {
        // Ask for one byte past the limit, so that a response of exactly the limit that is
        // framed by EOF still sees its EOF.
        let want = READ_BUF_BYTES.min(MAX_RESPONSE_BYTES + 1 - self.received);
        self.buf.reserve(want);
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let (result, slice) = self.stream.read(buf.slice_mut(len..len + want)).await;
        self.buf = slice.into_inner();
        let n = result.map_err(ClientError::Io)?;
        self.received += n;
        if self.received > MAX_RESPONSE_BYTES {
            return Err(ClientError::BadResponse(
                "response larger than MAX_RESPONSE_BYTES",
            ));
        }
        Ok(n)
    }

    /// Reads up to the head of the final response, skipping 1xx interim responses, and
    /// leaves the bytes after the head in `buf`.
    async fn read_head(&mut self, no_body: bool) -> Result<Head, ClientError> {
        loop {
            match parse_head(&self.buf, no_body)? {
                Some((len, head)) => {
                    self.buf.drain(..len);
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    return Ok(head);
                }
                None => {
                    if self.fill().await? == 0 {
                        return Err(eof_error(self.received));
                    }
                }
            }
        }
    }

    /// Reads the body framed by `framing`; bytes after it stay in `buf`.
    async fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, ClientError> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => {
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        return Err(eof_error(self.received));
                    }
                }
                let body = self.buf[..n].to_vec();
                self.buf.drain(..n);
                Ok(body)
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let used = decoder
                        .feed(&self.buf, &mut body)
                        .map_err(ClientError::BadResponse)?;
                    self.buf.drain(..used);
                    if decoder.is_done() {
                        return Ok(body);
                    }
                    if self.fill().await? == 0 {
                        return Err(eof_error(self.received));
                    }
                }
            }
            Framing::UntilEof => {
                while self.fill().await? != 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }
}

/// Parses a response head at the start of `buf`: `None` when more bytes are needed, else
/// the head's length and what it says. `no_body` is set for responses to HEAD.
fn parse_head(buf: &[u8], no_body: bool) -> Result<Option<(usize, Head)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ClientError::BadResponse(describe_parse_error(e))),
    };
    let status = response.code.unwrap_or(0);
    if status == 101 {
        return Err(ClientError::BadResponse(
            "unexpected 101 Switching Protocols",
        ));
    }
    let mut content_length: Option<usize> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(header.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(ClientError::BadResponse(
                    "conflicting Content-Length values",
                ));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // The last coding of the last field decides whether the body is chunked.
            if let Some(last) = tokens(header.value).last() {
                chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            close |= tokens(header.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    let framing = if no_body || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_encoding {
        // A coding other than a final chunked one is delimited by the end of the connection.
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilEof
        }
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::UntilEof
    };
    let head = Head {
        status,
        keep_alive: response.version == Some(1) && !close,
        framing,
    };
    Ok(Some((len, head)))
}

fn describe_parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::Version => "not an HTTP/1.x response",
        httparse::Error::Status => "invalid status code",
        httparse::Error::TooManyHeaders => "too many response header fields",
        httparse::Error::HeaderName | httparse::Error::HeaderValue => "invalid response header",
        _ => "invalid response head",
    }
}

/// Comma-separated list elements of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// A Content-Length value: decimal digits, or a list of identical ones.
fn parse_content_length(value: &[u8]) -> Result<usize, ClientError> {
    const BAD: ClientError = ClientError::BadResponse("invalid Content-Length");
    let mut result = None;
    for token in value.split(|&b| b == b',').map(|t| t.trim_ascii()) {
        if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
            return Err(BAD);
        }
        let mut n: usize = 0;
        for &digit in token {
            n = n * 10 + usize::from(digit - b'0');
            if n > MAX_RESPONSE_BYTES {
                return Err(ClientError::BadResponse(
                    "Content-Length larger than MAX_RESPONSE_BYTES",
                ));
            }
        }
        if result.is_some_and(|prev| prev != n) {
            return Err(ClientError::BadResponse(
                "conflicting Content-Length values",
            ));
        }
        result = Some(n);
    }
    result.ok_or(BAD)
}

/// Where a [`ChunkedDecoder`] is in the chunked body grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits of a chunk size.
    Size(usize),
    /// After whitespace following the size: only `;` or CR may come.
    SizeEnd(usize),
    /// Inside chunk extensions, up to the CR.
    Extension(usize),
    /// CR of the chunk-size line seen, expecting LF.
    SizeLf(usize),
    /// Bytes of chunk data still to come.
    Data(usize),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line, up to the CR.
    Trailer,
    /// CR of a trailer field line seen, expecting LF.
    TrailerLf,
    /// CR of the final empty line seen, expecting LF.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Incremental decoder of a chunked body: accepts input split at any byte.
#[derive(Debug)]
struct ChunkedDecoder {
    state: Chunk,
}

impl ChunkedDecoder {
    fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: Chunk::SizeStart,
        }
    }

    fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Decodes from `input`, appending data to `body`. Returns the bytes consumed: all of
    /// `input`, or fewer when the body ended (the rest belongs to what follows).
    fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < input.len() && self.state != Chunk::Done {
            if let Chunk::Data(remaining) = self.state {
                let take = remaining.min(input.len() - i);
                body.extend_from_slice(&input[i..i + take]);
                i += take;
                self.state = match remaining - take {
                    0 => Chunk::DataCr,
                    left => Chunk::Data(left),
                };
                continue;
            }
            let byte = input[i];
            i += 1;
            self.state = step(self.state, byte)?;
        }
        Ok(i)
    }
}

/// One byte of the chunked grammar outside chunk data.
fn step(state: Chunk, byte: u8) -> Result<Chunk, &'static str> {
    const BARE_LF: &str = "bare LF in chunked body";
    let next = match (state, byte) {
        (Chunk::SizeStart, _) => match hex_value(byte) {
            Some(d) => Chunk::Size(d),
            None => return Err("invalid chunk size"),
        },
        (Chunk::Size(n), b';') => Chunk::Extension(n),
        (Chunk::Size(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::Size(n), b' ' | b'\t') => Chunk::SizeEnd(n),
        (Chunk::Size(n), _) => match hex_value(byte) {
            Some(d) => {
                let n = n * 16 + d;
                if n > MAX_RESPONSE_BYTES {
                    return Err("chunk larger than MAX_RESPONSE_BYTES");
                }
                Chunk::Size(n)
            }
            None => return Err("invalid chunk size"),
        },
        (Chunk::SizeEnd(n), b' ' | b'\t') => Chunk::SizeEnd(n),
        (Chunk::SizeEnd(n), b';') => Chunk::Extension(n),
        (Chunk::SizeEnd(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::SizeEnd(_), _) => return Err("invalid chunk size"),
        (Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::Extension(_), b'\n') => return Err(BARE_LF),
        (Chunk::Extension(n), _) => Chunk::Extension(n),
        (Chunk::SizeLf(0), b'\n') => Chunk::TrailerStart,
        (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
        (Chunk::SizeLf(_), _) => return Err("chunk size line not ended by CRLF"),
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataCr, _) => return Err("chunk data not followed by CRLF"),
        (Chunk::DataLf, b'\n') => Chunk::SizeStart,
        (Chunk::DataLf, _) => return Err("chunk data not followed by CRLF"),
        (Chunk::TrailerStart, b'\r') => Chunk::FinalLf,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::TrailerStart | Chunk::Trailer, b'\n') => return Err(BARE_LF),
        (Chunk::TrailerStart | Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
        (Chunk::TrailerLf, _) => return Err("trailer field not ended by CRLF"),
        (Chunk::FinalLf, b'\n') => Chunk::Done,
        (Chunk::FinalLf, _) => return Err("chunked body not ended by CRLF"),
        (Chunk::Data(_) | Chunk::Done, _) => {
            return Err("internal: byte fed in data or done state")
        }
    };
    Ok(next)
}

fn hex_value(byte: u8) -> Option<usize> {
    match byte {
        b'0'..=b'9' => Some(usize::from(byte - b'0')),
        b'a'..=b'f' => Some(usize::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(usize::from(byte - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
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

    /// A chunked body with extensions, upper- and lower-case hex, leading zeros and
    /// trailers.
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\n\r\n\
        5;name=\"a;b\"\r\n{\"a\":\r\n\
        00a \t; ext\r\n1234567890\r\n\
        1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
        1\r\n}\r\n\
        0;last\r\nX-Trailer: yes\r\nOther: 1\r\n\r\n";
    const CHUNKED_BODY: &[u8] = b"{\"a\":1234567890abcdefghijklmnopqrstuvwxyz}";

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

    /// Feeds `input` to a fresh decoder in pieces cut at `cuts`; returns the body, the
    /// bytes consumed and whether the body ended.
    fn decode_in_pieces(
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize, bool), &'static str> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut consumed = 0;
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            pending.extend_from_slice(&input[start..end]);
            start = end;
            let used = decoder.feed(&pending, &mut body)?;
            consumed += used;
            pending.drain(..used);
            if decoder.is_done() {
                break;
            }
        }
        Ok((body, consumed, decoder.is_done()))
    }

    #[test]
    fn chunked_decoder_handles_every_split() {
        let start = CHUNKED.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut chunked = CHUNKED[start..].to_vec();
        let end = chunked.len();
        chunked.extend_from_slice(b"HTTP/1.1 next");
        for a in 0..=chunked.len() {
            for b in a..=chunked.len() {
                let (body, consumed, done) = decode_in_pieces(&chunked, &[a, b]).unwrap();
                assert_eq!(body, CHUNKED_BODY, "cuts {a} {b}");
                assert_eq!(consumed, end, "cuts {a} {b}");
                assert!(done);
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..chunked.len()).collect();
        let (body, consumed, done) = decode_in_pieces(&chunked, &cuts).unwrap();
        assert_eq!((body.as_slice(), consumed, done), (CHUNKED_BODY, end, true));
    }

    #[test]
    fn chunked_decoder_table() {
        let good: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"3\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"3 ; a=b\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"3;a=\"x;y\";b\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"F\r\n0123456789abcde\r\n0\r\n\r\n", b"0123456789abcde"),
            (b"2\r\n\r\n\r\n0\r\nA: b\r\n\r\n", b"\r\n"),
        ];
        for &(input, want) in good {
            let (body, consumed, done) = decode_in_pieces(input, &[]).unwrap();
            assert_eq!((body.as_slice(), consumed, done), (want, input.len(), true));
        }
        let bad: &[&[u8]] = &[
            b"\r\n",
            b"g\r\n",
            b";x\r\n",
            b"3 x\r\n",
            b"3\nabc",
            b"3;x\nabc",
            b"3\r\nabcX\r\n",
            b"3\r\nabc\rX",
            b"0\r\nTrailer: x\nmore",
            b"0\r\n\rX",
            b"0\r\nA: b\rX",
            b"0\r\n\n",
            b"10001\r\n",
        ];
        for &input in bad {
            assert!(
                decode_in_pieces(input, &[]).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Incomplete input is not an error: the decoder waits for more.
        let (_, consumed, done) = decode_in_pieces(b"3\r\nab", &[]).unwrap();
        assert_eq!((consumed, done), (5, false));
    }

    #[test]
    fn content_length_table() {
        let table: &[(&[u8], Option<usize>)] = &[
            (b"0", Some(0)),
            (b"42", Some(42)),
            (b" 7 ", Some(7)),
            (b"5, 5", Some(5)),
            (b"65536", Some(MAX_RESPONSE_BYTES)),
            (b"65537", None),
            (b"99999999999999999999999", None),
            (b"", None),
            (b"-1", None),
            (b"+1", None),
            (b"1 2", None),
            (b"5, 6", None),
            (b"5,", None),
            (b"0x10", None),
        ];
        for &(value, want) in table {
            let got = parse_content_length(value).ok();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn head_table() {
        let table: &[(&[u8], bool, Head)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Head { status: 200, keep_alive: true, framing: Framing::Length(3) },
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n",
                false,
                Head { status: 200, keep_alive: true, framing: Framing::Chunked },
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false,
                Head { status: 200, keep_alive: true, framing: Framing::UntilEof },
            ),
            (
                b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false,
                Head { status: 500, keep_alive: false, framing: Framing::Length(0) },
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                Head { status: 200, keep_alive: true, framing: Framing::Empty },
            ),
            (
                b"HTTP/1.0 429 Too Many Requests\r\n\r\n",
                false,
                Head { status: 429, keep_alive: false, framing: Framing::UntilEof },
            ),
        ];
        for (input, no_body, want) in table {
            let (len, head) = parse_head(input, *no_body).unwrap().unwrap();
            assert_eq!(len, input.len());
            assert_eq!(&head, want, "{:?}", String::from_utf8_lossy(input));
            // Every proper prefix needs more bytes.
            for cut in 0..input.len() {
                assert!(parse_head(&input[..cut], *no_body).unwrap().is_none());
            }
        }
    }

    #[test]
    fn request_encoding() {
        let got = encode_request("PUT", "/x?y=1", "h:1", "A: b\r\n", b"");
        assert_eq!(
            got,
            b"PUT /x?y=1 HTTP/1.1\r\nHost: h:1\r\nA: b\r\nContent-Length: 0\r\n\r\n"
        );
        let got = encode_request("DELETE", "/x", "h:1", "", b"zz");
        assert_eq!(
            got,
            b"DELETE /x HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\nzz"
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
