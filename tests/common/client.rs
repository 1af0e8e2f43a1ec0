//! The tests' blocking HTTP client: raw sockets to `host:port` or `unix:/path`, one
//! request per connection or pipelined, and readers of the answers our servers give
//! (summaries, simulator totals, `/metrics` samples).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use super::*;

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

/// A peer request: `method path` on `addr` carrying [`super::PEER_TOKEN`].
pub fn peer(addr: &str, method: &str, path: &str, body: &str) -> Response {
    let headers = format!(
        "X-Peer-Token: {}\r\nContent-Type: application/json\r\n",
        super::PEER_TOKEN
    );
    request(addr, method, path, &headers, body.as_bytes())
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

/// The sum of the samples of metric `name` in gateway `gw`'s `GET /metrics` (on its
/// internal plane) whose labels include every one of `labels` (such as
/// `outcome="charged"`); 0 when none.
pub fn metric(gw: &super::Proc, name: &str, labels: &[&str]) -> f64 {
    metric_at(gw.internal(), name, labels)
}

/// [`metric`] read from a gateway's internal address.
pub fn metric_at(internal: &str, name: &str, labels: &[&str]) -> f64 {
    let r = get(internal, "/metrics");
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
