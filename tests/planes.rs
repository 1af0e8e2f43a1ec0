//! The two planes: the public routes on `LISTEN` and through the lb's hand-off, the
//! peer routes and `/metrics` on `INTERNAL_LISTEN` only, `PEER_TOKEN` on the peer
//! routes, `PURGE_TOKEN` on the public purge, and the configuration errors around them.

mod common;

use common::*;

/// The internal plane's routes, each with the method it takes and a body it accepts.
fn internal_routes() -> Vec<(&'static str, &'static str, String)> {
    let report = format!(
        r#"{{"processor":"default","report":"0:0:{}"}}"#,
        now_micros()
    );
    vec![
        ("GET", "/internal/summary", String::new()),
        ("POST", "/internal/purge", String::new()),
        ("POST", "/internal/health", report),
        ("GET", "/metrics", String::new()),
    ]
}

/// Two peered gateways on Unix sockets (hand-off and internal plane each) behind the
/// lb in hand-off mode.
struct Cluster {
    lb: Proc,
    gw: Vec<Proc>,
    _sims: [Proc; 2],
    _dir: RunDir,
}

fn cluster(extra: &[(&str, String)]) -> Cluster {
    let dir = temp_dir("planes");
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let socks = [dir.sock("gw1.sock"), dir.sock("gw2.sock")];
    let handoffs = [dir.sock("gw1.handoff"), dir.sock("gw2.handoff")];
    let gw: Vec<Proc> = (0..2)
        .map(|i| {
            let spec = GatewaySpec {
                handoff: Some(handoffs[i].clone()),
                ledger: GatewayLedger::Peers(vec![internal_of(&socks[1 - i])]),
                ..gateway_spec(
                    &format!("gw{}", i + 1),
                    &socks[i],
                    [default.url(), fallback.url()],
                )
            };
            let mut env = vec![
                ("IO_DRIVER", "epoll".to_string()),
                ("CORES", "1".to_string()),
            ];
            env.extend(extra.iter().cloned());
            gateway(&spec, &env)
        })
        .collect();
    let lb = lb(
        &LbSpec {
            name: "lb".to_string(),
            listen: "127.0.0.1:0".to_string(),
            mode: "handoff".to_string(),
            upstreams: handoffs.to_vec(),
            cores: None,
        },
        &[("IO_DRIVER", "epoll".to_string())],
    );
    Cluster {
        lb,
        gw,
        _sims: [default, fallback],
        _dir: dir,
    }
}

/// The headers of a peer request carrying `token`.
fn token_header(token: &str) -> String {
    format!("X-Peer-Token: {token}\r\nContent-Type: application/json\r\n")
}

#[test]
fn internal_routes_answer_404_on_the_public_plane_and_through_the_lb() {
    let c = cluster(&[]);
    let gw = &c.gw[0];
    assert_eq!(
        gw.ready_value("internal"),
        Some(internal_of(&gw.addr).as_str())
    );
    let unknown = get(&gw.addr, "/no-such-path");
    assert_eq!(unknown.status, 404);
    for (method, path, body) in internal_routes() {
        // Even with the right token: the route does not exist on this plane. The lb
        // spreads new connections over both gateways; several cover both.
        for addr in [gw.addr.as_str(), gw.addr.as_str(), &c.lb.addr, &c.lb.addr] {
            let r = request(
                addr,
                method,
                path,
                &token_header(PEER_TOKEN),
                body.as_bytes(),
            );
            assert_eq!(r.status, 404, "{method} {path} on {addr}");
            assert_eq!(
                r.body, unknown.body,
                "{method} {path}: the same 404 as any path"
            );
        }
    }
    // And the public routes are not on the internal plane.
    for (method, path) in [
        ("POST", "/payments"),
        ("GET", "/payments-summary"),
        ("POST", "/purge-payments"),
    ] {
        let r = request(gw.internal(), method, path, "", b"");
        assert_eq!(r.status, 404, "{method} {path} on the internal plane");
    }
    // A known path with another method: 405 naming the one it takes, on both planes.
    for addr in [gw.addr.as_str(), gw.internal()] {
        let r = request(addr, "DELETE", "/health", "", b"");
        assert_eq!(r.status, 405, "{addr}");
        assert!(r.head.contains("Allow: GET\r\n"), "{}", r.head);
    }
    // The public plane still serves: a payment through the lb is summed cluster-wide,
    // which asks the peer over its internal plane, with the token.
    let id = uuid(0x91, 1);
    assert_eq!(
        post_json(&c.lb.addr, "/payments", &payment_body(&id, "12.34")).status,
        202
    );
    wait_for("the payment in the cluster's summary", || {
        let s = get(&c.lb.addr, "/payments-summary").json();
        let (dc, da) = totals(&s, "default");
        let (fc, fa) = totals(&s, "fallback");
        (dc + fc == 1).then(|| assert_eq!(da + fa, 1234))
    });
}

#[test]
fn peer_routes_need_the_peer_token() {
    let c = cluster(&[]);
    let gw = &c.gw[0];
    let internal = gw.internal();
    // Same length as the real token, one byte off; shorter; empty.
    let mut off_by_one = PEER_TOKEN.to_string().into_bytes();
    off_by_one[PEER_TOKEN.len() - 1] ^= 1;
    let off_by_one = String::from_utf8(off_by_one).unwrap();
    let wrong = [
        String::new(),
        token_header(&off_by_one),
        token_header(&PEER_TOKEN[..16]),
        token_header(""),
    ];
    for (method, path, body) in internal_routes() {
        if path == "/metrics" {
            continue;
        }
        for headers in &wrong {
            let r = request(internal, method, path, headers, body.as_bytes());
            assert_eq!(r.status, 401, "{method} {path} with {headers:?}");
            assert!(
                r.json()["error"].as_str().unwrap().contains("X-Peer-Token"),
                "{method} {path}: a reason"
            );
        }
        let r = request(
            internal,
            method,
            path,
            &token_header(PEER_TOKEN),
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{method} {path} with the token: {r:?}");
    }
    // The refusals are logged (at most a line a second, with a count).
    wait_for("the refusals to be logged", || {
        gw.log()
            .contains("with a missing or wrong token")
            .then_some(())
    });
    // The operator's scraper needs no token.
    let m = get(internal, "/metrics");
    assert_eq!(m.status, 200);
    assert!(String::from_utf8_lossy(&m.body).contains("gateway_accepted_total"));
    // The peers' own requests carry the token: a cluster summary and a cluster purge.
    assert_eq!(get(&c.lb.addr, "/payments-summary").status, 200);
    let r = request(&c.lb.addr, "POST", "/purge-payments", "", b"");
    assert_eq!(r.status, 200, "{r:?}");
}

/// A forged health push saying the default fails changes nothing without the token:
/// payments keep going to the default. With the token (the control), the same push
/// sends the next payment to the fallback, so the check can tell the two apart.
#[test]
fn a_forged_health_push_changes_nothing() {
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let spec = gateway_spec("gw", "127.0.0.1:0", [default.url(), fallback.url()]);
    let gw = gateway(
        &spec,
        &[
            ("CORES", "1".to_string()),
            ("IO_DRIVER", "epoll".to_string()),
            // A failing default is given up on after ~0.1 s (fees 5 % / 15 %), and not
            // probed again within the test.
            ("ROUTE_HORIZON_S", "1".to_string()),
            ("PROBE_INTERVAL_MS", "3600000".to_string()),
        ],
    );
    // Dated ahead (within the allowed skew) so that the gateway's own polls in the
    // meantime do not replace it.
    let forged = format!(
        r#"{{"processor":"default","report":"1:0:{}"}}"#,
        now_micros() + 4_000_000
    );
    for headers in [String::new(), token_header("not-the-peer-token-at-all")] {
        let r = request(
            gw.internal(),
            "POST",
            "/internal/health",
            &headers,
            forged.as_bytes(),
        );
        assert_eq!(r.status, 401, "{headers:?}");
    }
    let r = post_json(&gw.addr, "/internal/health", &forged);
    assert_eq!(r.status, 404, "not on the public plane");
    let first = uuid(0x92, 1);
    assert_eq!(
        post_json(&gw.addr, "/payments", &payment_body(&first, "1")).status,
        202
    );
    wait_for("the payment on the default", || {
        (sim_totals(&default, "").0 == 1).then_some(())
    });
    assert_eq!(sim_totals(&fallback, ""), (0, 0));
    assert_eq!(
        metric(&gw, "gateway_decisions_total", &["decision=\"fallback\""]),
        0.0
    );

    // The control: the same report with the token is believed.
    let r = peer(gw.internal(), "POST", "/internal/health", &forged);
    assert_eq!(r.status, 200, "{r:?}");
    let second = uuid(0x92, 2);
    assert_eq!(
        post_json(&gw.addr, "/payments", &payment_body(&second, "1")).status,
        202
    );
    wait_for("the second payment on the fallback", || {
        (sim_totals(&fallback, "").0 == 1).then_some(())
    });
    assert_eq!(sim_totals(&default, "").0, 1);
}

#[test]
fn purge_token_guards_the_public_purge() {
    const PURGE: &str = "purge-token-for-the-test-0001";
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let spec = gateway_spec("gw", "127.0.0.1:0", [default.url(), fallback.url()]);
    let gw = gateway(
        &spec,
        &[
            ("CORES", "1".to_string()),
            ("IO_DRIVER", "epoll".to_string()),
            ("PURGE_TOKEN", PURGE.to_string()),
        ],
    );
    let count = || {
        let s = get(&gw.addr, "/payments-summary").json();
        totals(&s, "default").0 + totals(&s, "fallback").0
    };
    let id = uuid(0x93, 1);
    assert_eq!(
        post_json(&gw.addr, "/payments", &payment_body(&id, "5")).status,
        202
    );
    wait_for("the payment recorded", || (count() == 1).then_some(()));
    for headers in [
        String::new(),
        "X-Purge-Token: purge-token-for-the-test-0002\r\n".to_string(),
        format!("X-Peer-Token: {PEER_TOKEN}\r\n"),
    ] {
        let r = request(&gw.addr, "POST", "/purge-payments", &headers, b"");
        assert_eq!(r.status, 401, "{headers:?}");
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("X-Purge-Token"));
        assert_eq!(count(), 1, "records kept after a refused purge");
    }
    wait_for("the refusal to be logged", || {
        gw.log()
            .contains("with a missing or wrong token")
            .then_some(())
    });
    let r = request(
        &gw.addr,
        "POST",
        "/purge-payments",
        &format!("X-Purge-Token: {PURGE}\r\n"),
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(count(), 0);
}

#[test]
fn planes_and_tokens_are_checked_at_startup() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PEERS", "unix:/tmp/peer.internal")], "INTERNAL_LISTEN"),
        (
            &[
                ("PEERS", "unix:/tmp/peer.internal"),
                ("INTERNAL_LISTEN", "127.0.0.1:9"),
            ],
            "PEER_TOKEN",
        ),
        (
            &[
                ("PEERS", "unix:/tmp/peer.internal"),
                ("INTERNAL_LISTEN", "127.0.0.1:0"),
            ],
            "INTERNAL_LISTEN",
        ),
        (&[("INTERNAL_LISTEN", "127.0.0.1:0")], "PEER_TOKEN"),
        (
            &[
                ("INTERNAL_LISTEN", "127.0.0.1:0"),
                ("PEER_TOKEN", "fifteen-bytes.."),
            ],
            "PEER_TOKEN",
        ),
        (&[("PURGE_TOKEN", "short")], "PURGE_TOKEN"),
        (&[("INTERNAL_LISTEN", "nowhere")], "INTERNAL_LISTEN"),
    ];
    for (vars, var) in cases {
        let out = std::process::Command::new(gateway_bin())
            .env_clear()
            .env("LISTEN", "127.0.0.1:0")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{vars:?} names {var}: {err}");
    }
}
