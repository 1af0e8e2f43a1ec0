//! End to end through the lb: two gateways and two processor simulators as real
//! processes, and the lb in front of them in hand-off mode (client fds passed over the
//! gateways' HANDOFF sockets) and in proxy mode (bytes copied to their LISTEN
//! addresses), under both I/O drivers.
//!
//! The lb binary belongs to the `lb` package of this workspace; [`common::lb_bin`] builds
//! it with the same cargo, profile and target directory as this test.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::*;

/// Waits until `p` has logged a line containing `text` (its log is read by another
/// thread, a moment after the process writes it).
fn wait_for_log(p: &Proc, text: &str) {
    wait_for(&format!("{} to log {text:?}", p.name), || {
        p.log().contains(text).then_some(())
    });
}

/// How the lb reaches the gateways.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Handoff,
    Proxy,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Handoff => "handoff",
            Mode::Proxy => "proxy",
        }
    }
}

/// The lb on an ephemeral port in front of `upstreams`.
fn lb_spec(mode: Mode, upstreams: Vec<String>) -> LbSpec {
    LbSpec {
        name: "lb".to_string(),
        listen: "127.0.0.1:0".to_string(),
        mode: mode.name().to_string(),
        upstreams,
        cores: None,
    }
}

/// How the gateways listen on `LISTEN`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GwListen {
    /// Unix sockets in the test directory; the gateways are each other's PEERS.
    Unix,
    /// Ephemeral TCP ports (no PEERS: the ports are only known once started).
    Tcp,
}

/// Two gateways and their processor simulators.
struct Gateways {
    /// `None` once killed.
    gw: Vec<Option<Proc>>,
    gw_driver: &'static str,
    listen: GwListen,
    default: Proc,
    fallback: Proc,
    dir: RunDir,
}

/// The lb in front of two gateways (dropped, so killed, first).
struct Stack {
    lb: Proc,
    gws: Gateways,
}

impl Stack {
    fn new(mode: Mode, lb_driver: &str, gw_driver: &'static str, listen: GwListen) -> Stack {
        let gws = Gateways::new(gw_driver, listen);
        let upstreams: Vec<String> = (0..2)
            .map(|i| match mode {
                Mode::Handoff => gws.handoff_sock(i),
                Mode::Proxy => gws.gw[i].as_ref().unwrap().addr.clone(),
            })
            .collect();
        let lb = lb(
            &lb_spec(mode, upstreams),
            &[("IO_DRIVER", lb_driver.to_string())],
        );
        Stack { lb, gws }
    }

    /// The instance that answers `GET /health` on a new connection through the lb.
    fn instance(&self) -> String {
        let r = get(&self.lb.addr, "/health");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["instance"].as_str().unwrap().to_string()
    }

    /// Instances that answered `n` new connections, in order.
    fn instances(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.instance()).collect()
    }
}

impl Gateways {
    fn new(gw_driver: &'static str, listen: GwListen) -> Gateways {
        let dir = temp_dir("lb");
        let default = sim("sim-default", "0.05", &[]);
        let fallback = sim("sim-fallback", "0.15", &[]);
        let mut gws = Gateways {
            gw: vec![None, None],
            gw_driver,
            listen,
            default,
            fallback,
            dir,
        };
        for i in 0..2 {
            gws.start_gateway(i);
        }
        gws
    }

    fn handoff_sock(&self, i: usize) -> String {
        self.dir.sock(&format!("gw{}.handoff", i + 1))
    }

    fn listen_addr(&self, i: usize) -> String {
        match self.listen {
            GwListen::Unix => self.dir.sock(&format!("gw{}.sock", i + 1)),
            GwListen::Tcp => "127.0.0.1:0".to_string(),
        }
    }

    /// Starts (or restarts) gateway `i` on its sockets.
    fn start_gateway(&mut self, i: usize) {
        let spec = GatewaySpec {
            handoff: Some(self.handoff_sock(i)),
            ledger: GatewayLedger::Peers(match self.listen {
                GwListen::Unix => vec![internal_of(&self.listen_addr(1 - i))],
                GwListen::Tcp => Vec::new(),
            }),
            ..gateway_spec(
                &format!("gw{}", i + 1),
                &self.listen_addr(i),
                [self.default.url(), self.fallback.url()],
            )
        };
        let gw = gateway(
            &spec,
            &[
                ("IO_DRIVER", self.gw_driver.to_string()),
                ("CORES", "2".to_string()),
            ],
        );
        assert_eq!(
            gw.ready_value("handoff"),
            Some(self.handoff_sock(i).as_str()),
            "ready with its hand-off socket bound"
        );
        self.gw[i] = Some(gw);
    }

    /// Kills gateway `i` and waits until its sockets refuse connections: an io_uring
    /// process's sockets are released by the kernel a little after the process is
    /// reaped, and until then connections are queued to a listener nobody accepts on.
    fn kill_gateway(&mut self, i: usize) {
        let Some(mut gw) = self.gw[i].take() else {
            return;
        };
        gw.kill();
        for addr in [gw.addr.clone(), self.handoff_sock(i)] {
            wait_for(&format!("{addr} to refuse connections"), || {
                let refused = match addr.strip_prefix("unix:") {
                    Some(path) => std::os::unix::net::UnixStream::connect(path).is_err(),
                    None => std::net::TcpStream::connect(&addr).is_err(),
                };
                refused.then_some(())
            });
        }
    }
}

/// Connections spread over both gateways, round-robin.
fn assert_spread(stack: &Stack) {
    let seen = stack.instances(10);
    for name in ["gw1", "gw2"] {
        let n = seen.iter().filter(|s| *s == name).count();
        assert_eq!(n, 5, "round-robin over two gateways: {seen:?}");
    }
}

/// Kills gw1: new connections all reach gw2, and the lb logs the change.
fn assert_failover(stack: &mut Stack) {
    stack.gws.kill_gateway(0);
    let seen = stack.instances(10);
    assert!(seen.iter().all(|s| s == "gw2"), "after gw1 died: {seen:?}");
    wait_for_log(&stack.lb, "is down");
}

/// Restarts gw1 on the same sockets: the lb takes it back after its retry pause.
fn assert_rejoin(stack: &mut Stack) {
    stack.gws.start_gateway(0);
    wait_for("gw1 to get connections again", || {
        (stack.instance() == "gw1").then_some(())
    });
    wait_for_log(&stack.lb, "is up");
}

/// Pipelined payments on one kept-alive connection through the lb: every one answered
/// 202 in order, the connection still usable, and all of them in the summary.
fn assert_pipelined_payments(stack: &Stack, tag: u16) {
    const N: u32 = 20;
    const AMOUNT: &str = "19.90";
    const AMOUNT_CENTS: i64 = 1990;
    let mut c = RawSocket::open(&stack.lb.addr);
    let mut batch = Vec::new();
    for n in 0..N {
        let body = payment_body(&uuid(tag, n), AMOUNT);
        batch.extend_from_slice(
            format!(
                "POST /payments HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    // A health check last: its answer must come after the 202s, proving the order.
    batch.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
    c.send(&batch);
    let mut pending = Vec::new();
    for n in 0..N {
        let r = c.response(&mut pending).expect("an answer per payment");
        assert_eq!(
            r.status,
            202,
            "payment {n}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = c.response(&mut pending).expect("the health answer");
    assert_eq!(r.status, 200);
    // Keep-alive: the same connection takes one more request afterwards.
    c.send(b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
    assert_eq!(c.response(&mut pending).expect("keep-alive").status, 200);
    assert!(pending.is_empty(), "no stray bytes");
    wait_for("the pipelined payments in the summary", || {
        let r = get(&stack.lb.addr, "/payments-summary");
        assert_eq!(r.status, 200);
        let v = r.json();
        let (dc, da) = totals(&v, "default");
        let (fc, fa) = totals(&v, "fallback");
        (dc + fc == u64::from(N)).then_some(da + fa)
    });
    let v = get(&stack.lb.addr, "/payments-summary").json();
    let cents = totals(&v, "default").1 + totals(&v, "fallback").1;
    assert_eq!(cents, i64::from(N) * AMOUNT_CENTS);
}

/// Pipelined requests followed by a half-close still get every answer, then the close.
fn assert_half_close(stack: &Stack) {
    let mut s = std::net::TcpStream::connect(&stack.lb.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(&b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n".repeat(3))
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let mut n = 0;
    while let Some(r) = take_response(&mut all) {
        assert_eq!(r.status, 200);
        n += 1;
    }
    assert_eq!(n, 3, "every pipelined request answered before the close");
}

#[test]
fn handoff_spreads_fails_over_and_rejoins() {
    let mut stack = Stack::new(Mode::Handoff, "uring", "epoll", GwListen::Unix);
    assert_spread(&stack);
    assert_failover(&mut stack);
    assert_rejoin(&mut stack);
}

#[test]
fn handoff_passes_pipelined_keepalive_traffic_intact() {
    let stack = Stack::new(Mode::Handoff, "uring", "epoll", GwListen::Unix);
    assert_pipelined_payments(&stack, 0x1b01);
    assert_half_close(&stack);
}

#[test]
fn handoff_passes_pipelined_keepalive_traffic_intact_uring_gateways() {
    let stack = Stack::new(Mode::Handoff, "epoll", "uring", GwListen::Unix);
    assert_pipelined_payments(&stack, 0x1b03);
    assert_half_close(&stack);
}

#[test]
fn proxy_spreads_and_fails_over_tcp_upstreams() {
    let mut stack = Stack::new(Mode::Proxy, "epoll", "uring", GwListen::Tcp);
    assert_spread(&stack);
    assert_failover(&mut stack);
}

#[test]
fn proxy_fails_over_and_rejoins_unix_upstreams() {
    let mut stack = Stack::new(Mode::Proxy, "uring", "uring", GwListen::Unix);
    assert_spread(&stack);
    assert_failover(&mut stack);
    assert_rejoin(&mut stack);
}

#[test]
fn proxy_passes_pipelined_keepalive_traffic_intact() {
    let stack = Stack::new(Mode::Proxy, "uring", "epoll", GwListen::Unix);
    assert_spread(&stack);
    assert_pipelined_payments(&stack, 0x1b02);
    assert_half_close(&stack);
}

#[test]
fn no_live_upstream_closes_the_client() {
    let dir = temp_dir("lb-none");
    for mode in [Mode::Handoff, Mode::Proxy] {
        let lb = lb(
            &lb_spec(mode, vec![dir.sock("nobody.sock")]),
            &[("IO_DRIVER", "epoll".to_string())],
        );
        let mut c = RawSocket::open(&lb.addr);
        c.send(b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
        assert!(c.read_to_close().is_empty(), "{mode:?}: closed unanswered");
        wait_for_log(&lb, "is down");
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "UPSTREAMS"),
        (&[("UPSTREAMS", "127.0.0.1:8080")], "UPSTREAMS"),
        (
            &[("UPSTREAMS", "unix:/x.sock"), ("LB_MODE", "dsr")],
            "LB_MODE",
        ),
        (&[("UPSTREAMS", "unix:/x.sock"), ("CORES", "0")], "CORES"),
        (
            &[("UPSTREAMS", "unix:/x.sock"), ("LISTEN", "9999")],
            "LISTEN",
        ),
    ];
    for (env, var) in cases {
        let out = Command::new(lb_bin())
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{env:?} names {var}: {err}");
    }
}
