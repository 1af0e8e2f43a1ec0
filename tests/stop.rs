//! Graceful stop: on SIGTERM a gateway stops taking connections, the lb gives new
//! clients to the other gateway, every payment the stopping gateway accepted is settled
//! and recorded, and it exits 0; the lb stops the same way. Real binaries, real
//! `redis-server`, the simulator.

mod common;

use std::net::TcpStream;

use common::*;

/// Connections to `addr` (a TCP address) are refused: its listeners are closed.
fn refuses_connections(addr: &str) -> Option<()> {
    TcpStream::connect(addr).err().map(|_| ())
}

/// Both simulators' (count, cents), summed.
fn charged(sims: [&Proc; 2]) -> (u64, i64) {
    let (a, b) = (sim_totals(sims[0], ""), sim_totals(sims[1], ""));
    (a.0 + b.0, a.1 + b.1)
}

fn sigterm_settles_and_exits_0(driver: &str) {
    let dir = temp_dir("stop");
    let redis = redis(&dir);
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    // Both slow, few requests at once: a backlog is waiting when the signal comes.
    // (A backlog the default alone settles in about 3 s, well within the grace.)
    set_delay(&default, 150);
    set_delay(&fallback, 150);
    let spec = |name: &str| GatewaySpec {
        ledger: GatewayLedger::Redis(redis.url()),
        ..gateway_spec(name, "127.0.0.1:0", [default.url(), fallback.url()])
    };
    let vars = [
        ("IO_DRIVER", driver.to_string()),
        ("CORES", "2".to_string()),
        ("MAX_IN_FLIGHT", "2".to_string()),
    ];
    let mut gw = gateway(&spec("gw1"), &vars);
    const N: u32 = 40;
    for n in 0..N {
        let r = post_json(&gw.addr, "/payments", &payment_body(&uuid(60, n), "19.90"));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    wait_for("a backlog", || {
        (metric(&gw, "gateway_unsettled", &[]) > 0.0).then_some(())
    });

    gw.terminate();
    wait_for("the listeners to close", || refuses_connections(&gw.addr));
    let status = gw.wait_exit();
    assert!(status.success(), "{status:?}\n{}", gw.log());
    assert!(
        gw.log()
            .contains("stopped: every payment accepted was settled"),
        "{}",
        gw.log()
    );

    // Charged once each, and every one recorded: a new gateway on the same Redis says
    // what the processors hold.
    assert_eq!(
        charged([&default, &fallback]),
        (u64::from(N), i64::from(N) * 1990)
    );
    let after = gateway(&spec("gw2"), &vars);
    let summary = get(&after.addr, "/payments-summary").json();
    assert_eq!(totals(&summary, "default"), sim_totals(&default, ""));
    assert_eq!(totals(&summary, "fallback"), sim_totals(&fallback, ""));
}

#[test]
fn sigterm_settles_and_exits_0_epoll() {
    sigterm_settles_and_exits_0("epoll");
}

#[test]
fn sigterm_settles_and_exits_0_auto() {
    sigterm_settles_and_exits_0("auto");
}

#[test]
fn a_stopping_gateway_gives_new_clients_to_the_other_and_the_lb_stops_too() {
    let dir = temp_dir("stop-lb");
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    // Nothing can be settled until the processors come back: the stopping gateway is
    // held in its drain for as long as the test needs.
    set_failure(&default, true);
    set_failure(&fallback, true);
    let spec = |name: &str| {
        let mut s = gateway_spec(name, "127.0.0.1:0", [default.url(), fallback.url()]);
        s.handoff = Some(format!("unix:{}/{name}.handoff", dir.path().display()));
        s
    };
    let vars = [
        ("IO_DRIVER", "epoll".to_string()),
        ("CORES", "1".to_string()),
        ("SHUTDOWN_GRACE_MS", "120000".to_string()),
    ];
    let mut a = gateway(&spec("gw-a"), &vars);
    let b = gateway(&spec("gw-b"), &vars);
    let mut lb = lb(
        &LbSpec {
            name: "lb".to_string(),
            listen: "127.0.0.1:0".to_string(),
            mode: "handoff".to_string(),
            upstreams: [&a, &b]
                .iter()
                .map(|g| g.ready_value("handoff").unwrap().to_string())
                .collect(),
            cores: None,
        },
        &[("IO_DRIVER", "epoll".to_string())],
    );
    for n in 0..5 {
        assert_eq!(
            post_json(&a.addr, "/payments", &payment_body(&uuid(61, n), "1")).status,
            202
        );
    }
    wait_for("gw-a's backlog", || {
        (metric(&a, "gateway_unsettled", &[]) == 5.0).then_some(())
    });

    a.terminate();
    wait_for("gw-a's listener to close", || refuses_connections(&a.addr));
    // Every new client of the lb is served, by gw-b.
    for n in 0..20 {
        let r = post_json(&lb.addr, "/payments", &payment_body(&uuid(62, n), "1"));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(metric(&b, "gateway_accepted_total", &[]), 20.0);
    assert_eq!(metric(&a, "gateway_accepted_total", &[]), 5.0);
    assert!(
        a.exited().is_none(),
        "gw-a exited before its payments were settled"
    );

    set_failure(&default, false);
    set_failure(&fallback, false);
    let status = a.wait_exit();
    assert!(status.success(), "{status:?}\n{}", a.log());
    wait_for("every payment charged", || {
        (charged([&default, &fallback]).0 == 25).then_some(())
    });
    assert_eq!(charged([&default, &fallback]), (25, 25 * 100));

    lb.terminate();
    let status = lb.wait_exit();
    assert!(status.success(), "{status:?}\n{}", lb.log());
    assert!(lb.log().contains("SIGTERM: stopping"), "{}", lb.log());
}
