//! Connections that cannot exhaust the gateway, over real sockets and processes: silent
//! clients get a 408 once the request timeout has passed since the accept, beyond
//! `MAX_CONNECTIONS` a client is refused at once while the others are served, and a
//! gateway out of file descriptors (started under a low `RLIMIT_NOFILE`) keeps running,
//! serves again once fds free up, and through the lb a client it could not take is
//! served by the other gateway.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::*;
use stack::child::Output;
use stack::servers::{Env, Server};

/// Processor URLs nobody listens on: these tests send no payment.
fn no_processors(dir: &RunDir) -> [String; 2] {
    ["default", "fallback"].map(|p| format!("unix:{}/{p}-absent.sock", dir.path().display()))
}

/// The lb's links to each gateway (`lb::handoff::LINKS_PER_UPSTREAM`).
const LB_LINKS_PER_UPSTREAM: usize = 4;

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends `GET /health` on `c` and reads the answer.
fn health_on(c: &mut RawSocket) -> Response {
    c.send(HEALTH);
    c.response(&mut Vec::new())
        .expect("an answer to GET /health")
}

/// Reads from `c` until it ends: true for a clean end of stream or a reset (the
/// connection was closed), false for the read timeout (it was left open).
fn ends(c: &mut RawSocket) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match c.read_some(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn silent_connections_get_408(driver: &str) {
    let dir = temp_dir("silent");
    let spec = gateway_spec("gw", "127.0.0.1:0", no_processors(&dir));
    let gw = gateway(
        &spec,
        &[
            ("IO_DRIVER", driver.to_string()),
            ("CORES", "2".to_string()),
            ("REQUEST_TIMEOUT_MS", "200".to_string()),
        ],
    );
    // A keep-alive client that has finished a request is idle, not receiving.
    let mut kept = RawSocket::open(&gw.addr);
    assert_eq!(health_on(&mut kept).status, 200);
    let mut silent: Vec<RawSocket> = (0..40).map(|_| RawSocket::open(&gw.addr)).collect();
    for c in &mut silent {
        let r = c
            .response(&mut Vec::new())
            .expect("a 408 on a silent connection");
        assert_eq!(r.status, 408, "{}", r.head);
        assert_eq!(r.json()["error"], "request not completed in time");
        assert!(r.head.contains("Connection: close"), "{}", r.head);
        assert!(ends(c), "the silent connection was left open after its 408");
    }
    // The silent connections were opened after `kept` went idle, so its request timeout
    // has passed as well: it is still served.
    assert_eq!(health_on(&mut kept).status, 200);
}

#[test]
fn silent_connections_get_408_epoll() {
    silent_connections_get_408("epoll");
}

#[test]
fn silent_connections_get_408_uring() {
    silent_connections_get_408("uring");
}

#[test]
fn the_connection_cap_refuses_cleanly_while_others_are_served() {
    const CAP: usize = 4;
    let dir = temp_dir("cap");
    let spec = gateway_spec("gw", "127.0.0.1:0", no_processors(&dir));
    let gw = gateway(
        &spec,
        &[
            ("IO_DRIVER", "epoll".to_string()),
            // Counted across cores.
            ("CORES", "2".to_string()),
            ("MAX_CONNECTIONS", CAP.to_string()),
        ],
    );
    let mut held: Vec<RawSocket> = (0..CAP)
        .map(|_| {
            let mut c = RawSocket::open(&gw.addr);
            assert_eq!(health_on(&mut c).status, 200);
            c
        })
        .collect();
    // One more is refused at once with a 503 and closed, unread.
    let mut extra = RawSocket::open(&gw.addr);
    let r = extra
        .response(&mut Vec::new())
        .expect("a 503 beyond the cap");
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(r.json()["error"], "too many connections");
    assert!(ends(&mut extra), "the refused connection was left open");
    // A kept connection keeps working.
    assert_eq!(health_on(&mut held[0]).status, 200);
    // Released slots serve new clients (once the gateway has seen the closes).
    held.truncate(CAP - 2);
    wait_for("a new client to be served after two left", || {
        let mut c = RawSocket::open(&gw.addr);
        c.send(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let r = c.response(&mut Vec::new())?;
        (r.status == 200).then_some(())
    });
    let refused = metric(
        &gw,
        "gateway_connections_refused_total",
        &["reason=\"limit\""],
    );
    assert!(refused >= 1.0, "refusals counted: {refused}");
    // Two held, and at most the last client still closing (`/metrics` is read on the
    // internal listener, which the cap does not count).
    let open = metric(&gw, "gateway_connections_open", &[]);
    assert!((2.0..=3.0).contains(&open), "open: {open}");
    assert_eq!(metric(&gw, "gateway_connections_limit", &[]), CAP as f64);
    assert_eq!(health_on(&mut held[1]).status, 200);
}

/// A gateway started with at most `nofile` file descriptors.
struct Limited {
    name: String,
    server: Server,
}

impl Limited {
    fn start(spec: &GatewaySpec, vars: &[(&str, &str)], nofile: u64) -> Limited {
        let env = Env::Only(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let mut cmd = spec.command(Path::new(gateway_bin()), &env);
        stack::procctl::limit_open_files(&mut cmd, nofile);
        let server = Server::start(&spec.name, cmd, Output::Captured, PATIENCE)
            .unwrap_or_else(|e| panic!("{} did not start: {e}", spec.name));
        Limited {
            name: spec.name.clone(),
            server,
        }
    }

    fn addr(&self) -> String {
        self.server.listen().to_string()
    }

    fn internal(&self) -> String {
        self.server.ready.get("internal").unwrap().to_string()
    }

    fn handoff(&self) -> String {
        self.server.ready.get("handoff").unwrap().to_string()
    }

    fn wait_for_log(&self, text: &str) {
        wait_for(&format!("{} to log {text:?}", self.name), || {
            self.server.child.log().contains(text).then_some(())
        });
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        self.server.child.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} ----\n{}",
                self.name,
                self.server.child.log()
            );
        }
    }
}

/// The instance that answered `GET /health` through `addr`.
fn instance_behind(addr: &str) -> String {
    let r = get(addr, "/health");
    assert_eq!(r.status, 200, "{}", r.head);
    r.json()["instance"].as_str().unwrap().to_string()
}

/// What a direct connection to the starved gateway became.
enum Direct {
    Served,
    Exhausted,
}

#[test]
fn out_of_fds_the_gateway_survives_and_the_lb_uses_the_other() {
    let dir = temp_dir("nofile");
    let processors = no_processors(&dir);
    let spec = |name: &str| {
        let mut s = gateway_spec(
            name,
            &format!("unix:{}/{name}.sock", dir.path().display()),
            processors.clone(),
        );
        s.handoff = Some(format!("unix:{}/{name}.handoff", dir.path().display()));
        s
    };
    let vars = [("IO_DRIVER", "epoll"), ("CORES", "1")];
    let a = Limited::start(&spec("gw-a"), &vars, 48);
    let b = Limited::start(&spec("gw-b"), &vars, 4096);
    let lb = lb(
        &LbSpec {
            name: "lb".to_string(),
            listen: "127.0.0.1:0".to_string(),
            mode: "handoff".to_string(),
            upstreams: vec![a.handoff(), b.handoff()],
            cores: None,
        },
        &[("IO_DRIVER", "epoll".to_string())],
    );
    // Every link of the lb to gw-a is opened while gw-a still has fds to accept it.
    let mut served_by_a = 0;
    while served_by_a < LB_LINKS_PER_UPSTREAM {
        if instance_behind(&lb.addr) == "gw-a" {
            served_by_a += 1;
        }
    }
    // Use up gw-a's fds with connections of our own, until its accept fails.
    let path = a.addr().strip_prefix("unix:").unwrap().to_string();
    let mut held = Vec::new();
    loop {
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(HEALTH).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let outcome = wait_for("a direct answer or gw-a out of fds", || {
            let mut buf = [0u8; 1024];
            match c.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                Ok(_) => panic!("gw-a closed a direct connection"),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("reading a direct connection: {e}"),
            }
            if take_response(&mut got).is_some() {
                return Some(Direct::Served);
            }
            a.server
                .child
                .log()
                .contains("out of file descriptors")
                .then_some(Direct::Exhausted)
        });
        held.push(c);
        if let Direct::Exhausted = outcome {
            break;
        }
        assert!(held.len() < 100, "gw-a never ran out of fds");
    }
    // A few more wait in the backlog, to take any fd gw-a frees meanwhile.
    for _ in 0..3 {
        held.push(UnixStream::connect(&path).unwrap());
    }
    // Round robin sends one of two clients to gw-a first: it cannot take it, says so,
    // and the lb hands it to gw-b. Both are served by gw-b.
    for _ in 0..2 {
        assert_eq!(instance_behind(&lb.addr), "gw-b");
    }
    a.wait_for_log("control data truncated: out of file descriptors");
    // Once fds free up, gw-a serves again: directly, then through the lb.
    drop(held);
    a.wait_for_log("accepting again after");
    let mut c = RawSocket::open(&a.addr());
    assert_eq!(health_on(&mut c).status, 200);
    drop(c);
    assert!(metric_at(&a.internal(), "gateway_accept_errors_total", &[]) >= 1.0);
    let refused = metric_at(
        &a.internal(),
        "gateway_connections_refused_total",
        &["reason=\"fds\""],
    );
    assert!(
        refused >= 1.0,
        "hand-offs refused for want of fds: {refused}"
    );
    wait_for("gw-a to be handed clients again", || {
        (instance_behind(&lb.addr) == "gw-a").then_some(())
    });
    drop(b);
}
