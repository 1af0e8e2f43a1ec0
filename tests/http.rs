//! The gateway's HTTP server as a client sees it, over real sockets, under both I/O
//! drivers: keep-alive, pipelining, requests split at every byte, slow clients, the
//! bounded queue, and startup errors.

mod common;

use common::*;
use std::time::Duration;

struct One {
    gw: Proc,
    default: Proc,
    /// Kept so that the simulator lives as long as the gateway that calls it.
    _fallback: Proc,
}

fn one(driver: &str, extra: &[(&str, String)]) -> One {
    one_named("gw", driver, extra)
}

fn one_named(name: &str, driver: &str, extra: &[(&str, String)]) -> One {
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let mut env = vec![
        ("IO_DRIVER", driver.to_string()),
        ("CORES", "2".to_string()),
    ];
    env.extend(extra.iter().cloned());
    let spec = gateway_spec(name, "127.0.0.1:0", [default.url(), fallback.url()]);
    let gw = gateway(&spec, &env);
    One {
        gw,
        default,
        _fallback: fallback,
    }
}

fn payment_request(n: u32) -> Vec<u8> {
    let body = payment_body(&uuid(10, n), "19.90");
    format!(
        "POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

fn pipelined_and_split(driver: &str) {
    let o = one(driver, &[]);
    // Pipelined: ten requests in one write, ten answers in order.
    let mut conn = RawSocket::open(&o.gw.addr);
    let mut all = Vec::new();
    for n in 0..10 {
        all.extend(payment_request(n));
    }
    all.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
    conn.send(&all);
    let mut pending = Vec::new();
    for _ in 0..10 {
        let r = conn.response(&mut pending).unwrap();
        assert_eq!(r.status, 202);
        assert_eq!(
            r.head.as_bytes(),
            ACCEPTED,
            "the pre-serialized answer, byte for byte"
        );
    }
    assert_eq!(conn.response(&mut pending).unwrap().status, 200);

    // Byte by byte: one request dribbled one byte per write, on the same connection.
    for b in payment_request(10) {
        conn.send(&[b]);
    }
    let r = conn.response(&mut pending).unwrap();
    assert_eq!(r.status, 202);

    // Split at every position: two writes each.
    let req = payment_request(11);
    for cut in 1..req.len() {
        let mut c = RawSocket::open(&o.gw.addr);
        c.send(&req[..cut]);
        std::thread::sleep(Duration::from_millis(1));
        c.send(&req[cut..]);
        let r = c.response(&mut Vec::new()).unwrap();
        assert_eq!(r.status, 202, "cut at {cut}");
    }
    // Every one of those was the same payment: accepted once.
    wait_for("12 payments", || {
        let s = get(&o.gw.addr, "/payments-summary").json();
        (totals(&s, "default").0 == 12).then_some(())
    });
    assert_eq!(sim_totals(&o.default, ""), (12, 12 * 1990));

    // Connection: close is honoured, and HTTP/1.0 closes by default.
    let mut c = RawSocket::open(&o.gw.addr);
    c.send(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n");
    let bytes = c.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(
        text.matches("HTTP/1.1 200").count(),
        1,
        "nothing after close: {text}"
    );
    assert!(text.contains("Connection: close"));
    let mut c = RawSocket::open(&o.gw.addr);
    c.send(b"GET /health HTTP/1.0\r\n\r\n");
    assert!(String::from_utf8_lossy(&c.read_to_close()).starts_with("HTTP/1.1 200"));
}

#[test]
fn pipelined_and_split_requests_uring() {
    pipelined_and_split("uring");
}

#[test]
fn pipelined_and_split_requests_epoll() {
    pipelined_and_split("epoll");
}

fn slow_client_is_closed(driver: &str) {
    let o = one(driver, &[("REQUEST_TIMEOUT_MS", "200".to_string())]);
    let mut c = RawSocket::open(&o.gw.addr);
    c.send(b"POST /payments HTTP/1.1\r\nContent-Le");
    let bytes = c.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("Connection: close"));
    // A body that never completes is a slow client too.
    let mut c = RawSocket::open(&o.gw.addr);
    c.send(b"POST /payments HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"corr");
    assert!(String::from_utf8_lossy(&c.read_to_close()).starts_with("HTTP/1.1 408 "));
    // Nothing was accepted (acceptance comes before any answer to a request).
    assert_eq!(metric(&o.gw, "gateway_accepted_total", &[]), 0.0);
}

/// The count of `gateway_request_duration_seconds` for `route`.
fn timed(gw: &Proc, route: &str) -> f64 {
    let label = format!("route=\"{route}\"");
    metric(gw, "gateway_request_duration_seconds_count", &[&label])
}

#[test]
fn the_latency_histograms_count_every_public_request() {
    let o = one("epoll", &[]);
    // Ten payments, a health check and an unknown path pipelined on one connection,
    // then a summary on another: two connections, thirteen requests.
    let mut conn = RawSocket::open(&o.gw.addr);
    let mut all = Vec::new();
    for n in 0..10 {
        all.extend(payment_request(100 + n));
    }
    all.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\n");
    conn.send(&all);
    let mut pending = Vec::new();
    for _ in 0..12 {
        conn.response(&mut pending).unwrap();
    }
    assert_eq!(get(&o.gw.addr, "/payments-summary").status, 200);
    // Counted once the answers are written, which the client may see first.
    wait_for("the summary counted", || {
        (timed(&o.gw, "summary") == 1.0).then_some(())
    });
    assert_eq!(timed(&o.gw, "payments"), 10.0);
    assert_eq!(timed(&o.gw, "health"), 1.0);
    assert_eq!(timed(&o.gw, "other"), 1.0);
    assert_eq!(timed(&o.gw, "purge"), 0.0);
    // The buckets are cumulative: the last holds them all. /metrics itself, on the
    // internal plane, is not counted.
    let payments = "route=\"payments\"";
    let bucket = |le: &str| {
        let le = format!("le=\"{le}\"");
        metric(
            &o.gw,
            "gateway_request_duration_seconds_bucket",
            &[payments, &le],
        )
    };
    assert_eq!(bucket("+Inf"), 10.0);
    assert!(bucket("0.001") <= bucket("0.01"));
    assert!(metric(&o.gw, "gateway_request_duration_seconds_sum", &[payments]) > 0.0);
    assert_eq!(metric(&o.gw, "gateway_first_byte_seconds_count", &[]), 2.0);
    drop(conn);
}

#[test]
fn slow_client_times_out_uring() {
    slow_client_is_closed("uring");
}

#[test]
fn slow_client_times_out_epoll() {
    slow_client_is_closed("epoll");
}

#[test]
fn full_queue_answers_503_and_loses_nothing() {
    // One core, one request in flight per processor, a queue of one, and both processors
    // behind gates that hold every connection: nothing can finish, so after at most
    // three acceptances (two in flight, one queued) the gateway must refuse with 503.
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let (dg, fg) = (
        Gate::shut_before(&default.addr),
        Gate::shut_before(&fallback.addr),
    );
    let spec = gateway_spec(
        "gw",
        "127.0.0.1:0",
        [format!("http://{}", dg.addr), format!("http://{}", fg.addr)],
    );
    let gw = gateway(
        &spec,
        &[
            ("CORES", "1".to_string()),
            ("MAX_IN_FLIGHT", "1".to_string()),
            ("QUEUE_CAPACITY", "1".to_string()),
            ("PROCESSOR_TIMEOUT_MS", "60000".to_string()),
            ("UNCERTAIN_SETTLE_MS", "70000".to_string()),
        ],
    );
    let post = |n| post_json(&gw.addr, "/payments", &payment_body(&uuid(11, n), "1"));
    let queued = || get(&gw.addr, "/health").json()["queued"].as_u64().unwrap();
    assert_eq!(post(1).status, 202);
    wait_for("the first payment to be in flight", || {
        (queued() == 0).then_some(())
    });
    let mut accepted = 1;
    let refused = loop {
        let r = post(accepted + 1);
        if r.status != 202 {
            break r;
        }
        accepted += 1;
        assert!(accepted <= 3, "{accepted} payments accepted with no room");
    };
    assert_eq!(refused.status, 503);
    assert!(refused.json()["error"].as_str().unwrap().contains("queue"));
    dg.open();
    fg.open();
    let count = || {
        let s = get(&gw.addr, "/payments-summary").json();
        totals(&s, "default").0 + totals(&s, "fallback").0
    };
    wait_for("the accepted payments", || {
        (count() == u64::from(accepted)).then_some(())
    });
    // The refused one was not remembered as accepted: sending it again queues it.
    assert_eq!(post(accepted + 1).status, 202);
    let all = u64::from(accepted) + 1;
    wait_for("the refused payment, sent again", || {
        (count() == all).then_some(())
    });
    let (d, f) = (sim_totals(&default, ""), sim_totals(&fallback, ""));
    assert_eq!((d.0 + f.0, d.1 + f.1), (all, 100 * all as i64));
    let m = get(gw.internal(), "/metrics");
    assert_eq!(m.status, 200);
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("gateway_refused_full_total 1\n"), "{text}");
    assert!(
        text.contains(&format!("gateway_accepted_total {all}\n")),
        "{text}"
    );
}

#[test]
fn a_payment_turned_away_waits_the_retry_delay() {
    for status in ["429 Too Many Requests", "404 Not Found"] {
        turned_away_waits(status);
    }
}

/// Both processors turn every payment away with `status`. The payment must wait the
/// retry delay (an hour here) before it is sent again: not loop at round-trip speed.
///
/// A second payment, accepted once the first was turned away, shows the moment has
/// passed: due retries are placed before fresh payments, so a first payment due again
/// at once (or after any wait shorter than the second one's) would be sent again before
/// the second is sent at all.
fn turned_away_waits(status: &str) {
    let (default, fallback) = (Busy::start(status), Busy::start(status));
    let spec = gateway_spec(
        "gw",
        "127.0.0.1:0",
        [
            format!("http://{}", default.addr),
            format!("http://{}", fallback.addr),
        ],
    );
    let gw = gateway(
        &spec,
        &[
            ("CORES", "1".to_string()),
            ("RETRY_DELAY_MS", "3600000".to_string()),
        ],
    );
    let turned_away = || metric(&gw, "gateway_attempts_total", &["outcome=\"turned_away\""]);
    let (first, second) = (uuid(12, 1), uuid(12, 2));
    assert_eq!(
        post_json(&gw.addr, "/payments", &payment_body(&first, "1")).status,
        202
    );
    wait_for("the first payment to be turned away", || {
        (turned_away() >= 1.0).then_some(())
    });
    assert_eq!(
        post_json(&gw.addr, "/payments", &payment_body(&second, "1")).status,
        202
    );
    wait_for("a second payment to be turned away", || {
        (turned_away() >= 2.0).then_some(())
    });
    let mut sent = default.posts();
    sent.extend(fallback.posts());
    sent.sort();
    assert_eq!(sent, [first, second], "{status}: each sent once");
    // Not lost: both wait in the queue for their next attempt.
    let health = get(&gw.addr, "/health").json();
    assert_eq!(health["queued"], 2, "{status}: {health}");
}

#[test]
fn internal_health_reports_are_checked() {
    let o = one("auto", &[]);
    let push = |body: &str| peer(o.gw.internal(), "POST", "/internal/health", body);
    assert_eq!(push("{").status, 400);
    assert_eq!(
        push(r#"{"processor":"other","report":"0:0:1"}"#).status,
        400
    );
    let ahead = now_micros() + 3_600_000_000;
    let r = push(&format!(
        r#"{{"processor":"default","report":"1:100:{ahead}"}}"#
    ));
    assert_eq!(r.status, 422);
    assert!(r.json()["error"].as_str().unwrap().contains("future"));
    let r = push(&format!(
        r#"{{"processor":"default","report":"1:100:{}"}}"#,
        now_micros()
    ));
    assert_eq!(r.status, 200);
}

#[test]
fn health_answers() {
    let o = one_named("gw-health", "auto", &[]);
    let r = get(&o.gw.addr, "/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["instance"], "gw-health");
}

#[test]
fn bad_configuration_names_the_variable() {
    let cases = [
        ("CORES", "zero"),
        ("IO_DRIVER", "kqueue"),
        ("LISTEN", "not an address"),
        ("PEERS", "unix:/a,nowhere"),
        ("PROCESSOR_DEFAULT_URL", "https://secure:443"),
        ("REDIS_URL", "http://redis"),
        ("QUEUE_CAPACITY", "-1"),
    ];
    for (var, value) in cases {
        let out = std::process::Command::new(gateway_bin())
            .env_clear()
            .env(var, value)
            .env(
                "LISTEN",
                if var == "LISTEN" {
                    value
                } else {
                    "127.0.0.1:0"
                },
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{var}={value}: {err}");
    }
    // A port that is taken fails at startup, naming LISTEN.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = std::process::Command::new(gateway_bin())
        .env_clear()
        .env("LISTEN", taken.local_addr().unwrap().to_string())
        .env("CORES", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LISTEN"));
}
