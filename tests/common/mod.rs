//! Test harness: the real binaries (gateway, processor-sim, lb) and a real redis-server as
//! child processes on ephemeral ports or Unix sockets in a per-test directory, started
//! through the runner's library (`stack`: how each is wired, its ready line, redis-server's
//! PING), and a blocking HTTP client that speaks raw bytes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use stack::redis::Redis;
pub use stack::rundir::RunDir;
pub use stack::servers::{GatewayLedger, GatewaySpec, LbSpec};

use stack::child::Output;
use stack::servers::{Env, Server, SimSpec};

/// How long any wait in a test may last before the test fails: generous, since it only
/// bounds a hang, and machines under load are slow.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// Socket read timeout of the test client.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
pub const TOKEN: &str = "123";

/// A directory of its own for one test (mode 0700), removed at the end.
pub fn temp_dir(tag: &str) -> RunDir {
    RunDir::create(&format!("gw-{tag}")).unwrap()
}

/// One of our servers, started and ready; killed when dropped, its output shown if the
/// test fails.
pub struct Proc {
    pub name: String,
    server: Server,
    /// Where it listens, as its ready line says: "host:port" or "unix:/path".
    pub addr: String,
}

impl Proc {
    /// Starts `cmd` as `name` and waits for its ready line.
    fn start(name: &str, cmd: Command) -> Proc {
        let server = Server::start(name, cmd, Output::Captured, PATIENCE)
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        Proc {
            name: name.to_string(),
            addr: server.listen().to_string(),
            server,
        }
    }

    /// `http://host:port`, or `unix:/path` as it is: a URL for `PROCESSOR_*_URL`.
    pub fn url(&self) -> String {
        if self.addr.starts_with("unix:") {
            self.addr.clone()
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// A value of its ready line, such as the gateway's `handoff`.
    pub fn ready_value(&self, key: &str) -> Option<&str> {
        self.server.ready.get(key)
    }

    /// Its stdout and stderr so far.
    pub fn log(&self) -> String {
        self.server.child.log()
    }

    pub fn kill(&mut self) {
        self.server.child.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log());
        }
    }
}

/// Only `vars` and the wiring: nothing inherited from the test's environment.
fn only(vars: &[(&str, String)]) -> Env {
    Env::Only(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

pub fn gateway_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gateway")
}

pub fn sim_bin() -> &'static str {
    workspace_bin("processor-sim")
}

pub fn lb_bin() -> &'static str {
    workspace_bin("lb")
}

/// Path of a binary of another workspace package (`lb`, `processor-sim`, `stack`),
/// built once for this test run next to the gateway binary, with the same profile.
pub fn workspace_bin(name: &str) -> &'static str {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // The gateway binary sits in <target dir>/<profile dir>/; the others go next to it.
        let gateway = PathBuf::from(gateway_bin());
        let profile_dir = gateway.parent().expect("gateway binary has a directory");
        let target_dir = profile_dir
            .parent()
            .expect("profile directory has a parent");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("unexpected binary path {}", gateway.display()),
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--profile", profile])
            .args(["-p", "lb", "-p", "processor-sim", "-p", "stack", "--bins"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo to build the workspace's binaries");
        assert!(status.success(), "building the workspace's binaries failed");
        profile_dir.to_path_buf()
    });
    let path = dir.join(name).to_string_lossy().into_owned();
    Box::leak(path.into_boxed_str())
}

/// Starts a processor simulator on an ephemeral TCP port, on epoll unless `extra` says.
pub fn sim(name: &str, fee: &str, extra: &[(&str, String)]) -> Proc {
    let spec = SimSpec {
        name: name.to_string(),
        listen: "127.0.0.1:0".to_string(),
        fee: fee.to_string(),
    };
    let mut vars = vec![("IO_DRIVER", "epoll".to_string())];
    vars.extend(extra.iter().cloned());
    Proc::start(name, spec.command(Path::new(sim_bin()), &only(&vars)))
}

/// A gateway named `name` on `listen`, calling `processors` (URLs), with no hand-off
/// socket and a memory ledger of its own: change the fields for more.
pub fn gateway_spec(name: &str, listen: &str, processors: [String; 2]) -> GatewaySpec {
    GatewaySpec {
        name: name.to_string(),
        listen: listen.to_string(),
        handoff: None,
        processors,
        fees: None,
        ledger: GatewayLedger::Peers(Vec::new()),
    }
}

/// Starts a gateway; `vars` are its other settings (`IO_DRIVER`, `CORES`, tuning).
pub fn gateway(spec: &GatewaySpec, vars: &[(&str, String)]) -> Proc {
    Proc::start(
        &spec.name,
        spec.command(Path::new(gateway_bin()), &only(vars)),
    )
}

/// Starts the lb; `vars` are its other settings (`IO_DRIVER`).
pub fn lb(spec: &LbSpec, vars: &[(&str, String)]) -> Proc {
    Proc::start(&spec.name, spec.command(Path::new(lb_bin()), &only(vars)))
}

/// A running redis-server on a Unix socket in `dir`, with no TCP port.
pub fn redis(dir: &RunDir) -> Redis {
    Redis::start_in(dir.path(), stack::redis::Listen::Unix, Output::Captured)
        .unwrap_or_else(|e| panic!("redis-server must be installed (.ci/run installs it): {e}"))
}

/// Raw connection to "host:port" or "unix:/path".
pub enum RawSocket {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

impl RawSocket {
    pub fn open(addr: &str) -> RawSocket {
        let c = match addr.strip_prefix("unix:") {
            Some(p) => {
                RawSocket::Unix(UnixStream::connect(p).unwrap_or_else(|e| panic!("{addr}: {e}")))
            }
            None => {
                let s =
                    std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
                s.set_nodelay(true).unwrap();
                RawSocket::Tcp(s)
            }
        };
        match &c {
            RawSocket::Tcp(s) => s.set_read_timeout(Some(IO_TIMEOUT)).unwrap(),
            RawSocket::Unix(s) => s.set_read_timeout(Some(IO_TIMEOUT)).unwrap(),
        }
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        match self {
            RawSocket::Tcp(s) => s.write_all(bytes).unwrap(),
            RawSocket::Unix(s) => s.write_all(bytes).unwrap(),
        }
    }

    /// One read. A read interrupted by a signal is retried: with a receive timeout set,
    /// Linux does not restart socket reads after a signal (socket(7)), and this process
    /// does get SIGCHLD whenever a child of a parallel test exits.
    pub fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let r = match self {
                RawSocket::Tcp(s) => s.read(buf),
                RawSocket::Unix(s) => s.read(buf),
            };
            match r {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Reads one response: (status, head text, body).
    pub fn response(&mut self, pending: &mut Vec<u8>) -> Option<Response> {
        loop {
            if let Some(r) = take_response(pending) {
                return Some(r);
            }
            let mut buf = [0u8; 8192];
            match self.read_some(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads until the peer closes; returns everything read.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.read_some(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Splits one complete Content-Length response off the front of `pending`.
pub fn take_response(pending: &mut Vec<u8>) -> Option<Response> {
    let end = pending.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&pending[..end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if pending.len() < end + len {
        return None;
    }
    let body = pending[end..end + len].to_vec();
    pending.drain(..end + len);
    Some(Response { status, head, body })
}

/// One request on a new connection.
pub fn request(addr: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut c = RawSocket::open(addr);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.send(&req);
    c.response(&mut Vec::new())
        .unwrap_or_else(|| panic!("no answer from {addr} to {method} {path}"))
}

pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, "", b"")
}

pub fn post_json(addr: &str, path: &str, body: &str) -> Response {
    request(
        addr,
        "POST",
        path,
        "Content-Type: application/json\r\n",
        body.as_bytes(),
    )
}

pub fn admin(addr: &str, method: &str, path: &str, body: &str) -> Response {
    request(
        addr,
        method,
        path,
        &format!("X-Rinha-Token: {TOKEN}\r\n"),
        body.as_bytes(),
    )
}

pub fn set_delay(sim: &Proc, ms: u64) {
    let r = admin(
        &sim.addr,
        "PUT",
        "/admin/configurations/delay",
        &format!("{{\"delay\":{ms}}}"),
    );
    assert_eq!(r.status, 200);
}

pub fn set_failure(sim: &Proc, on: bool) {
    let r = admin(
        &sim.addr,
        "PUT",
        "/admin/configurations/failure",
        &format!("{{\"failure\":{on}}}"),
    );
    assert_eq!(r.status, 200);
}

pub fn payment_body(id: &str, amount: &str) -> String {
    format!("{{\"correlationId\":\"{id}\",\"amount\":{amount}}}")
}

/// A deterministic, distinct UUID for test payment `n` of test `tag`.
pub fn uuid(tag: u16, n: u32) -> String {
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        n,
        tag,
        u64::from(n) * 7919 + 1
    )
}

/// (count, cents) of one processor in a `GET /payments-summary` answer.
pub fn totals(v: &serde_json::Value, processor: &str) -> (u64, i64) {
    let t = &v[processor];
    (
        t["totalRequests"].as_u64().unwrap(),
        cents(&t["totalAmount"]),
    )
}

/// Exact cents from a JSON number with up to two decimals.
pub fn cents(v: &serde_json::Value) -> i64 {
    let s = v.to_string();
    let (int, frac) = s.split_once('.').unwrap_or((&s, "0"));
    let frac = format!("{frac:0<2}");
    assert!(frac.len() == 2, "more than two decimals: {s}");
    let neg = int.starts_with('-');
    let c =
        int.trim_start_matches('-').parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
    if neg {
        -c
    } else {
        c
    }
}

/// (count, cents) in a simulator's admin summary over [from, to].
pub fn sim_totals(sim: &Proc, query: &str) -> (u64, i64) {
    let r = admin(
        &sim.addr,
        "GET",
        &format!("/admin/payments-summary{query}"),
        "",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (
        v["totalRequests"].as_u64().unwrap(),
        cents(&v["totalAmount"]),
    )
}

/// The sum of the samples of metric `name` in `addr`'s `GET /metrics` whose labels
/// include every one of `labels` (such as `outcome="charged"`); 0 when none.
pub fn metric(addr: &str, name: &str, labels: &[&str]) -> f64 {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (family, tags) = match series.split_once('{') {
                Some((f, t)) => (f, t.trim_end_matches('}')),
                None => (series, ""),
            };
            let mine = family == name && labels.iter().all(|x| tags.split(',').any(|t| t == *x));
            mine.then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Polls `f` until it returns Some, failing the test after [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > PATIENCE {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// An ISO-8601 UTC timestamp with microseconds for `t` (microseconds since the epoch).
pub fn iso(t: i64) -> String {
    let mut out = Vec::new();
    domain::time::write_iso(&mut out, t);
    String::from_utf8(out).unwrap()
}

pub fn now_micros() -> i64 {
    domain::time::now_micros()
}

pub fn path_of(addr: &str) -> &Path {
    Path::new(addr.strip_prefix("unix:").unwrap())
}

/// A TCP relay in front of a processor that holds every connection, unread, until
/// [`Gate::open`]; from then on it pipes bytes both ways. While it is shut nothing sent
/// through it can finish, so a test can fill the gateway's in-flight slots and know they
/// stay full.
pub struct Gate {
    pub addr: String,
    state: Arc<Mutex<GateState>>,
}

struct GateState {
    open: bool,
    held: Vec<std::net::TcpStream>,
    target: String,
}

impl Gate {
    pub fn shut_before(target: &str) -> Gate {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(GateState {
            open: false,
            held: Vec::new(),
            target: target.to_string(),
        }));
        let s = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let mut st = s.lock().unwrap();
                if st.open {
                    pipe(conn, &st.target);
                } else {
                    st.held.push(conn);
                }
            }
        });
        Gate { addr, state }
    }

    pub fn open(&self) {
        let mut st = self.state.lock().unwrap();
        st.open = true;
        for conn in std::mem::take(&mut st.held) {
            pipe(conn, &st.target);
        }
    }
}

/// Copies `conn` to a new connection to `target` and back until either side closes.
fn pipe(conn: std::net::TcpStream, target: &str) {
    let Ok(up) = std::net::TcpStream::connect(target) else {
        return;
    };
    let (mut a, mut b) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
    let (mut c, mut d) = (conn, up);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut d, &mut c);
        let _ = c.shutdown(std::net::Shutdown::Write);
    });
}

/// A processor that turns every `POST /payments` away with a 4XX (429: its queue is
/// full; or, say, 404 at a wrong URL) and answers any other request with a healthy
/// service-health body; it keeps the correlationIds of the payments it was sent.
pub struct Busy {
    pub addr: String,
    posts: Arc<Mutex<Vec<String>>>,
}

impl Busy {
    /// `status` is the status line's code and reason, such as `429 Too Many Requests`.
    pub fn start(status: &str) -> Busy {
        let answer: &'static [u8] =
            format!("HTTP/1.1 {status}\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n")
                .leak()
                .as_bytes();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::clone(&posts);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sent = Arc::clone(&sent);
                std::thread::spawn(move || busy_conn(conn, &sent, answer));
            }
        });
        Busy { addr, posts }
    }

    /// The correlationIds of the `POST /payments` requests answered so far, in order.
    pub fn posts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

fn busy_conn(mut conn: std::net::TcpStream, posts: &Mutex<Vec<String>>, turned_away: &[u8]) {
    use http1::request::{parse, Method, Status};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let (len, answer): (usize, &[u8]) = match parse(&buf) {
            Ok(Status::Complete(req)) if req.method == Method::Post => {
                let id = serde_json::from_slice::<serde_json::Value>(req.body)
                    .ok()
                    .and_then(|v| v["correlationId"].as_str().map(str::to_string))
                    .unwrap_or_default();
                posts.lock().unwrap().push(id);
                (req.len(), turned_away)
            }
            Ok(Status::Complete(req)) => (
                req.len(),
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{\"failing\":false,\"minResponseTime\":0}",
            ),
            Ok(Status::Partial) => match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            },
            Err(_) => return,
        };
        buf.drain(..len);
        if conn.write_all(answer).is_err() {
            return;
        }
    }
}
