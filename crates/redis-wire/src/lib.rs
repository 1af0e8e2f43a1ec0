//! Redis over monoio sockets.
//!
//! The `redis` crate's async connections need tokio, so it is used here only to pack
//! commands ([`redis::Cmd`], [`redis::Pipeline`]) and to parse replies
//! ([`redis::parse_redis_value`]). The bytes travel over a monoio `TcpStream` or
//! `UnixStream`, and [`frame_len`] finds where each RESP2 reply ends, so a reply split
//! across reads at any byte is parsed only once it is complete and the next one starts
//! right after it.
//!
//! - [`RedisTarget`]: where Redis listens, parsed from `REDIS_URL`;
//! - [`RedisConn`]: one connection, used one command (or pipeline) at a time;
//! - [`RespError`]: why a command got no usable reply.
//!
//! A connection speaks RESP2 (it never sends `HELLO 3`), so every reply is a simple
//! string, an error, an integer, a bulk string or an array of those.

use std::fmt;
use std::path::PathBuf;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use net::Stream;
use redis::Value;

/// The port Redis listens on when `REDIS_URL` names none: Redis's own default.
pub const DEFAULT_PORT: u16 = 6379;

/// Capacity of a connection's read buffer when it is created: the gateway's replies
/// (integers, a four-integer summary, `OK`) are a few dozen bytes, so one small
/// allocation serves every command of a connection's life.
const READ_BUF_INITIAL: usize = 4 * 1024;

/// Free space ensured before each read. A reply larger than the buffer grows it by at
/// least this much per read, so a large reply takes few reads and few reallocations.
const READ_CHUNK_MIN: usize = 16 * 1024;

/// Capacity of the reusable buffer commands are packed into: a ledger script with its
/// arguments is well under a kilobyte.
const WRITE_BUF_INITIAL: usize = 1024;

/// Largest buffer a connection keeps between commands. A large command or reply (a
/// diagnostic dump) is freed after use rather than held for the connection's life.
const MAX_KEPT_BUF: usize = 64 * 1024;

/// Largest single reply a connection accepts. The gateway's replies are tiny; this bound
/// only stops a confused or hostile peer from growing memory without limit, and leaves
/// room for diagnostic commands. Each reply of a pipeline is bounded on its own.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// Deepest array nesting [`frame_len`] accepts. The gateway's replies nest at most two
/// deep and Redis's deepest replies (e.g. `COMMAND DOCS`) stay well below this; the bound
/// keeps the scanner's state and the reply parser's recursion small.
pub const MAX_NESTING: usize = 16;

/// Longest decimal length header (`$n` or `*n`) accepted: `u64::MAX` has 20 digits, so
/// anything longer is garbage, rejected before any arithmetic.
const MAX_LENGTH_DIGITS: usize = 20;

/// Why a command got no usable reply.
#[derive(Debug)]
pub enum RespError {
    /// The socket failed or the server closed it.
    Io(std::io::Error),
    /// The bytes received are not a valid RESP2 reply (or exceed [`MAX_REPLY_BYTES`]).
    Protocol(String),
    /// Redis answered with an error reply (`-ERR ...`), given without the leading `-`.
    Server(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "i/o error: {e}"),
            RespError::Protocol(e) => write!(f, "protocol error: {e}"),
            RespError::Server(e) => write!(f, "server error: {e}"),
        }
    }
}

impl std::error::Error for RespError {}

impl From<std::io::Error> for RespError {
    fn from(e: std::io::Error) -> Self {
        RespError::Io(e)
    }
}

/// How to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// Where Redis listens: `REDIS_URL` is `redis://host[:port][/db]` (port defaults to
/// 6379; a database number other than 0 is selected right after connecting) or
/// `unix:/path` (also accepted as `unix:///path`). IPv6 hosts go in brackets:
/// `redis://[::1]:6379`. Credentials, query strings and TLS are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    endpoint: Endpoint,
    db: u32,
}

impl RedisTarget {
    /// Parses a `REDIS_URL`. The error names what is wrong and shows the accepted forms.
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        const FORMS: &str = "expected redis://host[:port][/db] or unix:/path";
        if let Some(path) = url.strip_prefix("unix:") {
            // `unix:///path` is the URL spelling of `unix:/path`.
            let path = match path.strip_prefix("//") {
                Some(rest) if rest.starts_with('/') => rest,
                _ => path,
            };
            if path.is_empty() {
                return Err(format!(
                    "REDIS_URL {url:?} has an empty socket path; {FORMS}"
                ));
            }
            return Ok(RedisTarget {
                endpoint: Endpoint::Unix(PathBuf::from(path)),
                db: 0,
            });
        }
        let Some(rest) = url.strip_prefix("redis://") else {
            return Err(format!(
                "REDIS_URL {url:?} has an unsupported scheme; {FORMS}"
            ));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(format!(
                "REDIS_URL {url:?} has a query or fragment, which is not supported; {FORMS}"
            ));
        }
        let (authority, db) = match rest.split_once('/') {
            None => (rest, 0),
            Some((authority, "")) => (authority, 0),
            Some((authority, db)) => match db.parse::<u32>() {
                Ok(n) if db.bytes().all(|b| b.is_ascii_digit()) => (authority, n),
                _ => {
                    return Err(format!(
                        "REDIS_URL {url:?} has database {db:?}, which is not a number; {FORMS}"
                    ))
                }
            },
        };
        if authority.contains('@') {
            return Err(format!(
                "REDIS_URL {url:?} has credentials, which are not supported; {FORMS}"
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(format!("REDIS_URL {url:?} has an unclosed '[' in its host"));
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => {
                        return Err(format!(
                            "REDIS_URL {url:?} has {after:?} after its host; {FORMS}"
                        ))
                    }
                },
            }
        } else {
            match authority.split_once(':') {
                None => (authority, None),
                Some((host, port)) => (host, Some(port)),
            }
        };
        if host.is_empty() {
            return Err(format!("REDIS_URL {url:?} has an empty host; {FORMS}"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "REDIS_URL {url:?} has port {p:?}; a port is a number from 1 to 65535"
                    ))
                }
            },
        };
        Ok(RedisTarget {
            endpoint: Endpoint::Tcp {
                host: host.to_owned(),
                port,
            },
            db,
        })
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp { host, port } => {
                if host.contains(':') {
                    write!(f, "redis://[{host}]:{port}")?;
                } else {
                    write!(f, "redis://{host}:{port}")?;
                }
                if self.db != 0 {
                    write!(f, "/{}", self.db)?;
                }
                Ok(())
            }
        }
    }
}

/// One connection to Redis, owned by one core's tasks (not `Send`) and used one command
/// (or pipeline) at a time.
///
/// After an I/O or protocol error, or when a `query` future is dropped before it
/// completes, replies can no longer be matched to commands: the connection then answers
/// every further command with `RespError::Protocol`, and its owner should drop it and
/// connect again. A server error reply (`RespError::Server`) leaves it usable.
pub struct RedisConn {
    stream: Stream,
    /// Bytes received and not yet consumed, from index 0.
    read_buf: Vec<u8>,
    /// Packed commands on their way out; kept to reuse its allocation.
    write_buf: Vec<u8>,
    /// A command was sent and its replies were not all read: an I/O or protocol error,
    /// or a dropped future, interrupted the exchange. Replies can no longer be matched
    /// to commands, so the connection refuses further use.
    out_of_step: bool,
}

impl RedisConn {
    /// Connects and, when the target names a database other than 0, selects it.
    ///
    /// A TCP host name is resolved with the system resolver, which blocks this core for
    /// the lookup; connections are opened rarely (once, then after failures).
    pub async fn connect(target: &RedisTarget) -> std::io::Result<RedisConn> {
        // TCP_NODELAY is set: commands are small and answered one at a time.
        let stream = match &target.endpoint {
            Endpoint::Tcp { host, port } => {
                net::connect(&net::addr::Addr::Tcp {
                    host: host.clone(),
                    port: *port,
                })
                .await?
            }
            Endpoint::Unix(path) => net::connect(&net::addr::Addr::Unix(path.clone())).await?,
        };
        let mut conn = RedisConn {
            stream,
            read_buf: Vec::with_capacity(READ_BUF_INITIAL),
            write_buf: Vec::with_capacity(WRITE_BUF_INITIAL),
            out_of_step: false,
        };
        if target.db != 0 {
            let reply = conn
                .query(redis::cmd("SELECT").arg(target.db))
                .await
                .map_err(|e| match e {
                    RespError::Io(e) => e,
                    e => std::io::Error::other(format!("SELECT {}: {e}", target.db)),
                })?;
            if !matches!(reply, Value::Okay) {
                return Err(std::io::Error::other(format!(
                    "SELECT {}: unexpected reply {reply:?}",
                    target.db
                )));
            }
        }
        Ok(conn)
    }

    /// Sends one command and returns its reply. An error reply from Redis is returned as
    /// `Err(RespError::Server)`; errors nested inside an array reply (e.g. in `EXEC`'s)
    /// stay `Value::ServerError` elements.
    pub async fn query(&mut self, cmd: &redis::Cmd) -> Result<Value, RespError> {
        let mut out = std::mem::take(&mut self.write_buf);
        out.clear();
        cmd.write_packed_command(&mut out);
        let mut replies = self.exchange(out, 1).await?;
        replies
            .pop()
            .ok_or_else(|| RespError::Protocol("no reply".to_owned()))
    }

    /// Sends all commands of a pipeline in one write and returns one reply per command
    /// (including those marked `ignore`). If any reply is an error, every reply is still
    /// read (the connection stays usable) and the first error is returned as
    /// `Err(RespError::Server)`.
    ///
    /// An atomic pipeline is sent wrapped in `MULTI`/`EXEC` and returns `EXEC`'s replies;
    /// a transaction aborted by `WATCH` is reported as `RespError::Server`.
    pub async fn query_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> Result<Vec<Value>, RespError> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        let atomic = pipe.is_transaction();
        let expected = if atomic { pipe.len() + 2 } else { pipe.len() };
        let mut replies = self.exchange(pipe.get_packed_pipeline(), expected).await?;
        if !atomic {
            return Ok(replies);
        }
        match replies.pop() {
            Some(Value::Array(inner)) if inner.len() == pipe.len() => Ok(inner),
            Some(Value::Nil) => Err(RespError::Server(
                "EXEC aborted: a watched key changed".to_owned(),
            )),
            other => Err(RespError::Protocol(format!(
                "unexpected EXEC reply {other:?}"
            ))),
        }
    }

    /// Sends packed commands and reads `count` replies. Refuses to run on a connection
    /// whose previous exchange did not finish, since its late replies would be taken as
    /// the answers to these commands.
    async fn exchange(&mut self, out: Vec<u8>, count: usize) -> Result<Vec<Value>, RespError> {
        if self.out_of_step {
            return Err(RespError::Protocol(
                "an earlier command on this connection failed or was abandoned before its reply"
                    .to_owned(),
            ));
        }
        self.out_of_step = true;
        self.send(out).await?;
        self.receive(count).await
    }

    /// Writes all of `out`, then keeps its allocation for the next command.
    async fn send(&mut self, out: Vec<u8>) -> Result<(), RespError> {
        let (res, out) = self.stream.write_all(out).await;
        if out.capacity() <= MAX_KEPT_BUF {
            self.write_buf = out;
        }
        res?;
        Ok(())
    }

    /// Reads until `count` complete replies have arrived and parses them. If any of
    /// them is an error reply, the first one's text is returned as `RespError::Server`
    /// (after every reply was read, so the connection stays in step). Any byte beyond
    /// the last reply is a protocol error: Redis speaks only when asked.
    async fn receive(&mut self, count: usize) -> Result<Vec<Value>, RespError> {
        let mut replies = Vec::with_capacity(count);
        let mut first_error = None;
        let mut start = 0;
        while replies.len() < count {
            match frame_len(&self.read_buf[start..])? {
                Some(n) => {
                    let frame = &self.read_buf[start..start + n];
                    if frame[0] == b'-' && first_error.is_none() {
                        // The line as Redis sent it, without `-` and CRLF.
                        let text = &frame[1..n - 2];
                        first_error = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    let value = redis::parse_redis_value(frame)
                        .map_err(|e| RespError::Protocol(format!("unparsable reply: {e}")))?;
                    replies.push(value);
                    start += n;
                }
                None => {
                    if self.read_buf.len() - start >= MAX_REPLY_BYTES {
                        return Err(RespError::Protocol(format!(
                            "reply exceeds {MAX_REPLY_BYTES} bytes"
                        )));
                    }
                    self.read_more().await?;
                }
            }
        }
        if start != self.read_buf.len() {
            return Err(RespError::Protocol(format!(
                "{} unexpected bytes after the reply",
                self.read_buf.len() - start
            )));
        }
        self.read_buf.clear();
        if self.read_buf.capacity() > MAX_KEPT_BUF {
            self.read_buf = Vec::with_capacity(READ_BUF_INITIAL);
        }
        self.out_of_step = false;
        match first_error {
            Some(e) => Err(RespError::Server(e)),
            None => Ok(replies),
        }
    }

    /// Appends one read's worth of bytes to `read_buf`; the server closing the
    /// connection is an error, since a reply is always pending when this is called.
    async fn read_more(&mut self) -> Result<(), RespError> {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.reserve(READ_CHUNK_MIN);
        let len = buf.len();
        let cap = buf.capacity();
        let slice: SliceMut<Vec<u8>> = buf.slice_mut(len..cap);
        let (res, slice) = self.stream.read(slice).await;
        self.read_buf = slice.into_inner();
        match res? {
            0 => Err(RespError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ))),
            _ => Ok(()),
        }
    }
}

/// Length of the complete RESP2 frame at the start of `buf`, `Ok(None)` while more
/// bytes are needed, or an error if the bytes cannot be the start of a RESP2 reply.
///
/// Accepts `+`, `-` and `:` lines, `$n` bulk strings (including the null `$-1`) and `*n`
/// arrays (including the null `*-1`), nested up to [`MAX_NESTING`] deep. The contents of
/// lines are left to the reply parser; lengths are checked here.
///
/// The scan starts over from the frame's first byte after every read. That costs
/// nothing for the gateway's small replies and stays cheap for long bulk strings (their
/// bodies are skipped by length); only huge arrays arriving in many reads pay for it.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, RespError> {
    // remaining[d]: values still to come at nesting level d (level 0 is the frame).
    let mut remaining = [0usize; MAX_NESTING + 1];
    let mut depth = 0;
    remaining[0] = 1;
    let mut pos = 0;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(line_end) = line_end(buf, pos + 1)? else {
            return Ok(None);
        };
        let line = &buf[pos + 1..line_end - 2];
        match kind {
            b'+' | b'-' | b':' => pos = line_end,
            b'$' => match parse_length(line)? {
                None => pos = line_end,
                Some(n) => {
                    if n > MAX_REPLY_BYTES {
                        return Err(RespError::Protocol(format!(
                            "bulk string of {n} bytes exceeds {MAX_REPLY_BYTES}"
                        )));
                    }
                    let end = line_end + n + 2;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(RespError::Protocol(
                            "bulk string not followed by CRLF".to_owned(),
                        ));
                    }
                    pos = end;
                }
            },
            b'*' => {
                pos = line_end;
                match parse_length(line)? {
                    None | Some(0) => {}
                    Some(n) => {
                        // Every element takes at least 3 bytes (`:0\r\n` is 4).
                        if n > MAX_REPLY_BYTES / 3 {
                            return Err(RespError::Protocol(format!(
                                "array of {n} elements exceeds {MAX_REPLY_BYTES} bytes"
                            )));
                        }
                        if depth == MAX_NESTING {
                            return Err(RespError::Protocol(format!(
                                "arrays nested deeper than {MAX_NESTING}"
                            )));
                        }
                        depth += 1;
                        remaining[depth] = n;
                        continue;
                    }
                }
            }
            other => {
                return Err(RespError::Protocol(format!(
                    "unexpected reply type byte 0x{other:02x}"
                )))
            }
        }
        // One value is complete; so is every array it was the last element of.
        loop {
            remaining[depth] -= 1;
            if remaining[depth] > 0 {
                break;
            }
            if depth == 0 {
                return Ok(Some(pos));
            }
            depth -= 1;
        }
    }
}

/// Index just past the CRLF ending the line that starts at `from`, or `None` if the line
/// is not complete yet. A CR not followed by LF is a protocol error.
fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, RespError> {
    let Some(rest) = buf.get(from..) else {
        return Ok(None);
    };
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(from + cr + 2)),
        Some(_) => Err(RespError::Protocol("CR not followed by LF".to_owned())),
    }
}

/// Parses the length of a `$` or `*` header: `Some(n)`, or `None` for the null `-1`.
fn parse_length(line: &[u8]) -> Result<Option<usize>, RespError> {
    if line == b"-1" {
        return Ok(None);
    }
    let bad = || {
        RespError::Protocol(format!(
            "invalid length {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    if line.is_empty() || line.len() > MAX_LENGTH_DIGITS || !line.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    line.iter()
        .try_fold(0usize, |n, &d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(any(test, feature = "test-server"))]
pub mod test_server {
    //! A real `redis-server` per test, on a Unix socket in a unique temporary directory
    //! (and optionally on a TCP port), killed when the guard drops.

    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    /// How long a server may take to accept connections before the test gives up. Redis
    /// starts in milliseconds; the margin is for loaded CI machines.
    const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

    /// Pause between readiness probes.
    const PROBE_INTERVAL: Duration = Duration::from_millis(5);

    /// Attempts to start a TCP server: the port is free when chosen but another process
    /// may take it before Redis binds it, so a failed start is retried on a new port.
    const TCP_ATTEMPTS: u32 = 5;

    static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

    /// A running `redis-server`; dropping it kills the server and removes its directory.
    pub struct RedisServer {
        child: Option<Child>,
        dir: PathBuf,
        port: Option<u16>,
    }

    impl RedisServer {
        /// Starts a server listening only on a Unix socket.
        pub fn start() -> RedisServer {
            let dir = std::env::temp_dir().join(format!(
                "gateway-redis-test-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the server's temp dir");
            let mut server = RedisServer {
                child: None,
                dir,
                port: None,
            };
            server.spawn(None).expect("redis-server did not start");
            server
        }

        /// Starts a server listening on a Unix socket and on a TCP port of 127.0.0.1.
        ///
        /// The port is found by binding port 0 and releasing it, so another process may
        /// take it in between; that start is then retried on another port.
        pub fn start_tcp() -> RedisServer {
            let mut server = RedisServer::start();
            server.stop();
            for _ in 0..TCP_ATTEMPTS {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("bind an ephemeral port")
                    .port();
                if server.spawn(Some(port)).is_ok() {
                    server.port = Some(port);
                    return server;
                }
            }
            panic!("redis-server did not start on TCP after {TCP_ATTEMPTS} attempts");
        }

        pub fn socket(&self) -> PathBuf {
            self.dir.join("redis.sock")
        }

        pub fn unix_url(&self) -> String {
            format!("unix:{}", self.socket().display())
        }

        pub fn tcp_url(&self) -> String {
            let port = self.port.expect("server started with start_tcp");
            format!("redis://127.0.0.1:{port}")
        }

        /// Kills the server (its data is lost: nothing is saved).
        pub fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_file(self.socket());
        }

        /// Starts a fresh, empty server on the same socket path (and port).
        pub fn restart(&mut self) {
            self.stop();
            self.spawn(self.port).expect("redis-server did not restart");
        }

        fn spawn(&mut self, port: Option<u16>) -> Result<(), String> {
            let socket = self.socket();
            let mut cmd = Command::new("redis-server");
            cmd.arg("--port")
                .arg(port.unwrap_or(0).to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--unixsocket")
                .arg(&socket)
                .arg("--save")
                .arg("")
                .arg("--appendonly")
                .arg("no")
                .arg("--dir")
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = cmd
                .spawn()
                .map_err(|e| format!("cannot run redis-server (is it installed?): {e}"))?;
            self.child = Some(child);
            let deadline = Instant::now() + STARTUP_DEADLINE;
            loop {
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        self.child = None;
                        return Err(format!("redis-server exited: {status}"));
                    }
                }
                if accepts(&socket, port) {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    self.stop();
                    return Err("redis-server did not accept connections in time".to_owned());
                }
                std::thread::sleep(PROBE_INTERVAL);
            }
        }
    }

    fn accepts(socket: &Path, port: Option<u16>) -> bool {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
            && port.is_none_or(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::test_server::RedisServer;
    use super::*;

    macro_rules! frames {
        ($($name:literal: $input:expr => $expected:expr,)*) => {
            &[$(($name, $input as &[u8], $expected)),*]
        };
    }

    /// Complete frames and their lengths.
    const COMPLETE: &[(&str, &[u8], usize)] = frames! {
        "simple": b"+OK\r\n" => 5,
        "empty simple": b"+\r\n" => 3,
        "error": b"-ERR unknown command 'FOO'\r\n" => 28,
        "integer": b":1\r\n" => 4,
        "negative integer": b":-42\r\n" => 6,
        "bulk": b"$5\r\nhello\r\n" => 11,
        "bulk with CRLF inside": b"$4\r\na\r\nb\r\n" => 10,
        "empty bulk": b"$0\r\n\r\n" => 6,
        "null bulk": b"$-1\r\n" => 5,
        "empty array": b"*0\r\n" => 4,
        "null array": b"*-1\r\n" => 5,
        "flat array": b"*4\r\n:1\r\n:250\r\n:0\r\n:0\r\n" => 22,
        "mixed array": b"*3\r\n$3\r\nfoo\r\n$-1\r\n+OK\r\n" => 23,
        "nested": b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n$1\r\nx\r\n" => 27,
        "nested empty last": b"*2\r\n:1\r\n*0\r\n" => 12,
        "deep last": b"*1\r\n*1\r\n*1\r\n:7\r\n" => 16,
    };

    /// Byte strings that can never become a valid frame.
    const INVALID: &[(&str, &[u8])] = &[
        ("unknown type", b"!3\r\n"),
        ("resp3 map", b"%1\r\n+a\r\n+b\r\n"),
        ("CR without LF", b"+OK\rX\n"),
        ("bulk missing CRLF", b"$3\r\nabcde\r\n"),
        ("negative bulk", b"$-2\r\n"),
        ("non-numeric bulk", b"$x\r\n"),
        ("empty bulk length", b"$\r\n"),
        ("signed bulk", b"$+3\r\nabc\r\n"),
        ("huge bulk", b"$99999999999999999999999\r\n"),
        ("bulk over max", b"$999999999\r\n"),
        ("negative array", b"*-5\r\n"),
        ("array over max", b"*999999999\r\n"),
    ];

    #[test]
    fn complete_frames_and_every_split() {
        for &(name, input, len) in COMPLETE {
            assert_eq!(input.len(), len, "{name}: table length");
            assert_eq!(frame_len(input).unwrap(), Some(len), "{name}");
            for cut in 0..len {
                assert_eq!(
                    frame_len(&input[..cut]).unwrap(),
                    None,
                    "{name}: cut at {cut}"
                );
            }
            // A following frame does not change where this one ends.
            let mut two = input.to_vec();
            two.extend_from_slice(b":5\r\n");
            assert_eq!(frame_len(&two).unwrap(), Some(len), "{name}: followed");
        }
    }

    #[test]
    fn invalid_frames() {
        for &(name, input) in INVALID {
            assert!(
                matches!(frame_len(input), Err(RespError::Protocol(_))),
                "{name}: {:?}",
                frame_len(input)
            );
        }
    }

    #[test]
    fn nesting_limit() {
        let mut ok = b"*1\r\n".repeat(MAX_NESTING);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(frame_len(&ok).unwrap(), Some(ok.len()));
        let mut deep = b"*1\r\n".repeat(MAX_NESTING + 1);
        deep.extend_from_slice(b":1\r\n");
        assert!(matches!(frame_len(&deep), Err(RespError::Protocol(_))));
    }

    #[test]
    fn frames_parse_with_redis_crate() {
        for &(name, input, _) in COMPLETE {
            assert!(redis::parse_redis_value(input).is_ok(), "{name}");
        }
    }

    #[test]
    fn parse_targets() {
        let tcp = |host: &str, port, db| RedisTarget {
            endpoint: Endpoint::Tcp {
                host: host.to_owned(),
                port,
            },
            db,
        };
        let unix = |path: &str| RedisTarget {
            endpoint: Endpoint::Unix(PathBuf::from(path)),
            db: 0,
        };
        let ok: &[(&str, RedisTarget, &str)] = &[
            (
                "redis://redis:6379",
                tcp("redis", 6379, 0),
                "redis://redis:6379",
            ),
            ("redis://redis", tcp("redis", 6379, 0), "redis://redis:6379"),
            (
                "redis://redis/",
                tcp("redis", 6379, 0),
                "redis://redis:6379",
            ),
            (
                "redis://10.0.0.2:7000/3",
                tcp("10.0.0.2", 7000, 3),
                "redis://10.0.0.2:7000/3",
            ),
            ("redis://h:1/0", tcp("h", 1, 0), "redis://h:1"),
            (
                "redis://[::1]:6380",
                tcp("::1", 6380, 0),
                "redis://[::1]:6380",
            ),
            ("redis://[::1]", tcp("::1", 6379, 0), "redis://[::1]:6379"),
            (
                "unix:/run/redis.sock",
                unix("/run/redis.sock"),
                "unix:/run/redis.sock",
            ),
            (
                "unix:///run/redis.sock",
                unix("/run/redis.sock"),
                "unix:/run/redis.sock",
            ),
            ("unix:redis.sock", unix("redis.sock"), "unix:redis.sock"),
        ];
        for (url, want, shown) in ok {
            let got = RedisTarget::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(&got, want, "{url}");
            assert_eq!(got.to_string(), *shown, "{url}");
            assert_eq!(
                RedisTarget::parse(shown).as_ref(),
                Ok(want),
                "{shown} again"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("", "scheme"),
            ("redis:6379", "scheme"),
            ("http://redis:6379", "scheme"),
            ("rediss://redis:6379", "scheme"),
            ("unix:", "empty socket path"),
            ("redis://", "empty host"),
            ("redis://:6379", "empty host"),
            ("redis://redis:", "port"),
            ("redis://redis:0", "port"),
            ("redis://redis:65536", "port"),
            ("redis://redis:+1", "port"),
            ("redis://redis:63x9", "port"),
            ("redis://::1:6379", "port"),
            ("redis://redis:6379/x", "database"),
            ("redis://redis:6379/+1", "database"),
            ("redis://redis:6379/1/2", "database"),
            ("redis://user:pw@redis:6379", "credentials"),
            ("redis://redis:6379?db=1", "query"),
            ("redis://[::1:6379", "unclosed"),
            ("redis://[::1]x", "after its host"),
        ];
        for (url, needle) in bad {
            match RedisTarget::parse(url) {
                Ok(t) => panic!("{url:?} parsed as {t:?}"),
                Err(e) => assert!(e.contains(needle), "{url:?}: {e:?} lacks {needle:?}"),
            }
        }
    }

    async fn connect(url: &str) -> RedisConn {
        RedisConn::connect(&RedisTarget::parse(url).unwrap())
            .await
            .unwrap()
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn query_round_trips() {
        let server = RedisServer::start();
        let mut conn = connect(&server.unix_url()).await;
        assert_eq!(
            conn.query(&redis::cmd("PING")).await.unwrap(),
            Value::SimpleString("PONG".to_owned())
        );
        assert_eq!(
            conn.query(redis::cmd("SET").arg("k").arg("v"))
                .await
                .unwrap(),
            Value::Okay
        );
        assert_eq!(
            conn.query(redis::cmd("GET").arg("k")).await.unwrap(),
            Value::BulkString(b"v".to_vec())
        );
        assert_eq!(
            conn.query(redis::cmd("GET").arg("missing")).await.unwrap(),
            Value::Nil
        );
        assert_eq!(
            conn.query(redis::cmd("INCRBY").arg("n").arg(-5))
                .await
                .unwrap(),
            Value::Int(-5)
        );
        match conn.query(&redis::cmd("NOSUCHCOMMAND")).await {
            Err(RespError::Server(e)) => assert!(e.starts_with("ERR unknown command"), "{e}"),
            other => panic!("{other:?}"),
        }
        // The connection is still in step after an error reply.
        assert_eq!(
            conn.query(redis::cmd("GET").arg("k")).await.unwrap(),
            Value::BulkString(b"v".to_vec())
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn large_replies_span_many_reads() {
        let server = RedisServer::start();
        let mut conn = connect(&server.unix_url()).await;
        // Bigger than any socket buffer, so it arrives in many reads split anywhere.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        conn.query(redis::cmd("SET").arg("big").arg(&big[..]))
            .await
            .unwrap();
        assert_eq!(
            conn.query(redis::cmd("GET").arg("big")).await.unwrap(),
            Value::BulkString(big.clone())
        );
        // Many replies in one pipeline, the big one in the middle.
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET").arg(format!("key{i}")).arg(i);
        }
        pipe.cmd("GET").arg("big");
        for i in 0..1000 {
            pipe.cmd("GET").arg(format!("key{i}"));
        }
        let replies = conn.query_pipeline(&pipe).await.unwrap();
        assert_eq!(replies.len(), 2001);
        assert!(replies[..1000].iter().all(|v| *v == Value::Okay));
        assert_eq!(replies[1000], Value::BulkString(big));
        for (i, v) in replies[1001..].iter().enumerate() {
            assert_eq!(*v, Value::BulkString(i.to_string().into_bytes()));
        }
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn pipelines() {
        let server = RedisServer::start();
        let mut conn = connect(&server.unix_url()).await;
        assert_eq!(conn.query_pipeline(&redis::pipe()).await.unwrap(), vec![]);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("a").arg(1).ignore();
        pipe.cmd("INCR").arg("a");
        pipe.cmd("LPUSH").arg("l").arg("x").arg("y");
        pipe.cmd("LRANGE").arg("l").arg(0).arg(-1);
        assert_eq!(
            conn.query_pipeline(&pipe).await.unwrap(),
            vec![
                Value::Okay,
                Value::Int(2),
                Value::Int(2),
                Value::Array(vec![
                    Value::BulkString(b"y".to_vec()),
                    Value::BulkString(b"x".to_vec())
                ]),
            ]
        );
        // An error in the middle is reported, and every reply was still consumed.
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg("a");
        pipe.cmd("INCR").arg("l");
        pipe.cmd("INCR").arg("a");
        match conn.query_pipeline(&pipe).await {
            Err(RespError::Server(e)) => assert!(e.starts_with("WRONGTYPE "), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            conn.query(redis::cmd("GET").arg("a")).await.unwrap(),
            Value::BulkString(b"4".to_vec())
        );
        // An atomic pipeline returns EXEC's replies.
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("INCR").arg("a");
        pipe.cmd("GET").arg("a");
        assert_eq!(
            conn.query_pipeline(&pipe).await.unwrap(),
            vec![Value::Int(5), Value::BulkString(b"5".to_vec())]
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn tcp_and_database_selection() {
        let server = RedisServer::start_tcp();
        let mut db0 = connect(&server.tcp_url()).await;
        let mut db2 = connect(&format!("{}/2", server.tcp_url())).await;
        // A name works too, whichever addresses it resolves to first.
        let port = server.tcp_url().rsplit(':').next().unwrap().to_owned();
        let mut by_name = connect(&format!("redis://localhost:{port}")).await;
        assert_eq!(
            by_name.query(&redis::cmd("PING")).await.unwrap(),
            Value::SimpleString("PONG".to_owned())
        );
        db2.query(redis::cmd("SET").arg("where").arg("db2"))
            .await
            .unwrap();
        assert_eq!(
            db0.query(redis::cmd("GET").arg("where")).await.unwrap(),
            Value::Nil
        );
        assert_eq!(
            db2.query(redis::cmd("GET").arg("where")).await.unwrap(),
            Value::BulkString(b"db2".to_vec())
        );
        // The same data over the Unix socket, which starts in database 0.
        let mut unix = connect(&server.unix_url()).await;
        assert_eq!(
            unix.query(&redis::cmd("DBSIZE")).await.unwrap(),
            Value::Int(0)
        );
        // A database Redis does not have fails the connection.
        let bad = RedisTarget::parse(&format!("{}/999", server.tcp_url())).unwrap();
        assert!(RedisConn::connect(&bad).await.is_err());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn abandoned_query_poisons_the_connection() {
        let server = RedisServer::start();
        let mut conn = connect(&server.unix_url()).await;
        {
            // Blocks in Redis until a push that never comes, so it is surely pending.
            let cmd = redis::cmd("BLPOP").arg("never").arg(0).clone();
            let mut fut = std::pin::pin!(conn.query(&cmd));
            std::future::poll_fn(|cx| {
                assert!(fut.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
        }
        assert!(matches!(
            conn.query(&redis::cmd("PING")).await,
            Err(RespError::Protocol(_))
        ));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn server_gone() {
        let mut server = RedisServer::start();
        let target = RedisTarget::parse(&server.unix_url()).unwrap();
        let mut conn = RedisConn::connect(&target).await.unwrap();
        server.stop();
        assert!(matches!(
            conn.query(&redis::cmd("PING")).await,
            Err(RespError::Io(_))
        ));
        assert!(RedisConn::connect(&target).await.is_err());
        server.restart();
        let mut conn = RedisConn::connect(&target).await.unwrap();
        assert_eq!(
            conn.query(&redis::cmd("PING")).await.unwrap(),
            Value::SimpleString("PONG".to_owned())
        );
    }
}
