//! Durability: a gateway killed with SIGKILL, with a backlog and attempts in flight,
//! restarted on its journal (`JOURNAL_DIR`), loses nothing it answered 202 for, charges
//! nothing twice, and its summary equals the processors' to the cent, even when the
//! crash tore the journal's last write; and a redis-server killed mid-load and restarted
//! on its append-only file loses no record of the Redis ledger. Real binaries, a real
//! redis-server and the simulator.

mod common;

use std::io::Write;

use common::*;

/// Both simulators' (count, cents), summed.
fn charged(sims: [&Proc; 2]) -> (u64, i64) {
    let (a, b) = (sim_totals(sims[0], ""), sim_totals(sims[1], ""));
    (a.0 + b.0, a.1 + b.1)
}

#[test]
fn a_killed_gateway_restarted_on_its_journal_loses_and_doubles_nothing() {
    let dir = temp_dir("journal");
    let journal = dir.path().join("gw.journal");
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    // Slow, and few requests at once: when the gateway dies, payments are queued and
    // attempts are inside the processors, some of them to be stored after the crash.
    set_delay(&default, 400);
    set_delay(&fallback, 400);
    let spec = gateway_spec("gw", "127.0.0.1:0", [default.url(), fallback.url()]);
    let vars = [
        ("IO_DRIVER", "epoll".to_string()),
        ("CORES", "2".to_string()),
        ("MAX_IN_FLIGHT", "2".to_string()),
        ("JOURNAL_DIR", journal.display().to_string()),
    ];
    let mut gw = gateway(&spec, &vars);
    const N: u32 = 30;
    let ids: Vec<String> = (0..N).map(|n| uuid(80, n)).collect();
    for id in &ids {
        let r = post_json(&gw.addr, "/payments", &payment_body(id, "19.90"));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    wait_for("attempts in flight and a backlog", || {
        let in_flight = metric(&gw, "gateway_in_flight", &[]);
        let unsettled = metric(&gw, "gateway_unsettled", &[]);
        (in_flight > 0.0 && unsettled > in_flight).then_some(())
    });
    gw.kill();
    // The crash tore the last write: a few bytes of an entry that never completed.
    std::fs::OpenOptions::new()
        .append(true)
        .open(journal.join("payments.journal"))
        .unwrap()
        .write_all(&[33, 0, 1, 0xAB, 0xCD])
        .unwrap();

    set_delay(&default, 0);
    set_delay(&fallback, 0);
    let gw = gateway(&spec, &vars);
    // The report is on stderr, which reaches the log apart from the ready line.
    wait_for("the torn tail reported", || {
        gw.log()
            .contains("dropped a torn or corrupt tail of 5 bytes")
            .then_some(())
    });
    wait_for("every payment settled", || {
        (metric(&gw, "gateway_unsettled", &[]) == 0.0
            && metric(&gw, "gateway_accepted_total", &[]) == 0.0
            && charged([&default, &fallback]).0 >= u64::from(N))
        .then_some(())
    });
    // Charged once each, and the summary says exactly what the processors hold.
    assert_eq!(
        charged([&default, &fallback]),
        (u64::from(N), i64::from(N) * 1990)
    );
    let summary = get(&gw.addr, "/payments-summary").json();
    assert_eq!(totals(&summary, "default"), sim_totals(&default, ""));
    assert_eq!(totals(&summary, "fallback"), sim_totals(&fallback, ""));

    // The restarted instance still knows every correlationId it accepted.
    let r = post_json(&gw.addr, "/payments", &payment_body(&ids[0], "19.90"));
    assert_eq!(r.status, 202);
    wait_for("the retry answered as a duplicate", || {
        (metric(&gw, "gateway_duplicates_total", &[]) == 1.0).then_some(())
    });
    assert_eq!(charged([&default, &fallback]).0, u64::from(N));
}

/// Gateways `gw1` and `gw2` on sockets in `dir`, sharing the Redis ledger at `redis`.
fn redis_gateways(
    dir: &RunDir,
    redis: &str,
    sims: [&Proc; 2],
    vars: &[(&str, String)],
) -> Vec<Proc> {
    ["gw1", "gw2"]
        .iter()
        .map(|name| {
            let spec = GatewaySpec {
                ledger: GatewayLedger::Redis(redis.to_string()),
                ..gateway_spec(
                    name,
                    &dir.sock(&format!("{name}.sock")),
                    [sims[0].url(), sims[1].url()],
                )
            };
            gateway(&spec, vars)
        })
        .collect()
}

/// The count in gateway `gw`'s summary over both processors, if it answers.
fn summary_count(gw: &Proc) -> Option<u64> {
    let r = get(&gw.addr, "/payments-summary");
    (r.status == 200).then(|| {
        let s = r.json();
        totals(&s, "default").0 + totals(&s, "fallback").0
    })
}

#[test]
fn a_killed_redis_server_restarted_on_its_aof_loses_and_doubles_nothing() {
    let dir = temp_dir("aof");
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    set_delay(&default, 60);
    set_delay(&fallback, 60);
    let mut redis = Redis::start_keeping(
        dir.path(),
        stack::redis::Listen::Unix,
        stack::redis::Persistence::AofEverySec,
        stack::child::Output::Captured,
    )
    .unwrap();
    let vars = [
        ("IO_DRIVER", "epoll".to_string()),
        ("CORES", "1".to_string()),
        ("MAX_IN_FLIGHT", "2".to_string()),
    ];
    let gws = redis_gateways(&dir, &redis.url(), [&default, &fallback], &vars);
    const N: u32 = 60;
    for n in 0..N {
        let gw = &gws[n as usize % 2];
        let r = post_json(&gw.addr, "/payments", &payment_body(&uuid(81, n), "19.90"));
        assert_eq!(r.status, 202);
    }
    wait_for("some payments recorded, others still to go", || {
        summary_count(&gws[0]).filter(|&n| n >= 5).map(|n| {
            assert!(n < u64::from(N), "the load ended before the crash");
        })
    });
    redis.restart().unwrap();
    set_delay(&default, 0);
    set_delay(&fallback, 0);
    wait_for("every payment settled", || {
        gws.iter()
            .all(|g| metric(g, "gateway_unsettled", &[]) == 0.0)
            .then_some(())
    });
    assert_eq!(
        charged([&default, &fallback]),
        (u64::from(N), i64::from(N) * 1990),
        "each payment charged once"
    );
    for gw in &gws {
        let summary = get(&gw.addr, "/payments-summary").json();
        assert_eq!(totals(&summary, "default"), sim_totals(&default, ""));
        assert_eq!(totals(&summary, "fallback"), sim_totals(&fallback, ""));
    }
}

#[test]
fn a_killed_gateway_of_the_redis_ledger_is_finished_by_the_survivor() {
    let dir = temp_dir("takeover");
    let redis = redis(&dir);
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    // Slow, and few requests at once: when the gateway dies, payments are queued and
    // attempts are inside the processors, some of them to be stored after the crash.
    set_delay(&default, 400);
    set_delay(&fallback, 400);
    let vars = [
        ("IO_DRIVER", "epoll".to_string()),
        ("CORES", "1".to_string()),
        ("MAX_IN_FLIGHT", "2".to_string()),
        ("JOURNAL_LEASE_MS", "600".to_string()),
        ("PROCESSOR_TIMEOUT_MS", "1000".to_string()),
        ("UNCERTAIN_SETTLE_MS", "1500".to_string()),
    ];
    let mut gws = redis_gateways(&dir, &redis.url(), [&default, &fallback], &vars);
    const N: u32 = 30;
    let ids: Vec<String> = (0..N).map(|n| uuid(82, n)).collect();
    for id in &ids {
        let r = post_json(&gws[0].addr, "/payments", &payment_body(id, "19.90"));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    wait_for("attempts in flight and a backlog", || {
        let in_flight = metric(&gws[0], "gateway_in_flight", &[]);
        let unsettled = metric(&gws[0], "gateway_unsettled", &[]);
        (in_flight > 0.0 && unsettled > in_flight).then_some(())
    });
    gws[0].kill();
    set_delay(&default, 0);
    set_delay(&fallback, 0);

    let survivor = &gws[1];
    wait_for(
        "the survivor took the dead gateway's payments and settled them",
        || {
            (metric(survivor, "gateway_inherited_total", &[]) > 0.0
                && metric(survivor, "gateway_unsettled", &[]) == 0.0
                && charged([&default, &fallback]).0 >= u64::from(N))
            .then_some(())
        },
    );
    assert!(survivor.log().contains("took over"), "{}", survivor.log());
    // Charged once each, and the summary says exactly what the processors hold.
    assert_eq!(
        charged([&default, &fallback]),
        (u64::from(N), i64::from(N) * 1990)
    );
    let summary = get(&survivor.addr, "/payments-summary").json();
    assert_eq!(totals(&summary, "default"), sim_totals(&default, ""));
    assert_eq!(totals(&summary, "fallback"), sim_totals(&fallback, ""));

    // A client's retry through the survivor is not charged again.
    let r = post_json(&survivor.addr, "/payments", &payment_body(&ids[0], "19.90"));
    assert_eq!(r.status, 202);
    wait_for("the retry settled", || {
        (metric(survivor, "gateway_unsettled", &[]) == 0.0).then_some(())
    });
    assert_eq!(charged([&default, &fallback]).0, u64::from(N));
}
