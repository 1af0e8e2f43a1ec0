//! End to end: two gateways and two processor simulators as real processes, in memory
//! mode (peers merged) and in Redis mode (a real redis-server), under both I/O
//! drivers. Every summary must equal what the simulators recorded, to the cent.

mod common;

use common::*;
use stack::LedgerKind;

struct Cluster {
    gw: Vec<Proc>,
    default: Proc,
    fallback: Proc,
    _redis: Option<Redis>,
    _dir: RunDir,
}

fn cluster(ledger: LedgerKind, driver: &str, extra: &[(&str, String)]) -> Cluster {
    let dir = temp_dir("cluster");
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let redis = (ledger == LedgerKind::Redis).then(|| redis(&dir));
    let socks = [dir.sock("gw1.sock"), dir.sock("gw2.sock")];
    let gw = (0..2)
        .map(|i| {
            let spec = GatewaySpec {
                ledger: match &redis {
                    Some(r) => GatewayLedger::Redis(r.url()),
                    None => GatewayLedger::Peers(vec![internal_of(&socks[1 - i])]),
                },
                ..gateway_spec(
                    &format!("gw{}", i + 1),
                    &socks[i],
                    [default.url(), fallback.url()],
                )
            };
            let mut env = vec![
                ("IO_DRIVER", driver.to_string()),
                ("CORES", "2".to_string()),
            ];
            env.extend(extra.iter().cloned());
            gateway(&spec, &env)
        })
        .collect();
    Cluster {
        gw,
        default,
        fallback,
        _redis: redis,
        _dir: dir,
    }
}

impl Cluster {
    fn summary(&self, i: usize, query: &str) -> serde_json::Value {
        let r = get(&self.gw[i].addr, &format!("/payments-summary{query}"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// Metric `name` with `labels`, summed over both instances.
    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        self.gw.iter().map(|g| metric(g, name, labels)).sum()
    }

    fn total_count(&self, i: usize) -> u64 {
        let s = self.summary(i, "");
        totals(&s, "default").0 + totals(&s, "fallback").0
    }

    /// Every instance's summary over `query` equals the simulators' admin summaries.
    fn assert_matches_processors(&self, query: &str) {
        let want_default = sim_totals(&self.default, query);
        let want_fallback = sim_totals(&self.fallback, query);
        for i in 0..self.gw.len() {
            let s = self.summary(i, query);
            assert_eq!(
                totals(&s, "default"),
                want_default,
                "default, gw{} {query}",
                i + 1
            );
            assert_eq!(
                totals(&s, "fallback"),
                want_fallback,
                "fallback, gw{} {query}",
                i + 1
            );
        }
    }
}

/// Amounts that exercise half-to-even rounding to cents.
const AMOUNTS: [&str; 6] = ["19.90", "0.01", "1234.565", "0.015", "20.05", "7"];

fn run_mixed_load(c: &Cluster) {
    let mut conns = [
        RawSocket::open(&c.gw[0].addr),
        RawSocket::open(&c.gw[1].addr),
    ];
    let mut pending = [Vec::new(), Vec::new()];
    let mut send = |n: u32| {
        let i = (n % 2) as usize;
        let body = payment_body(&uuid(1, n), AMOUNTS[n as usize % AMOUNTS.len()]);
        let req = format!(
            "POST /payments HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conns[i].send(req.as_bytes());
        let r = conns[i].response(&mut pending[i]).expect("answer");
        assert_eq!(r.status, 202);
    };
    let marks: Vec<i64> = {
        let mut marks = vec![now_micros()];
        for n in 0..120 {
            send(n);
        }
        wait_for("the first phase on default", || {
            (c.total_count(0) == 120).then_some(())
        });
        marks.push(now_micros());
        set_failure(&c.default, true);
        for n in 120..240 {
            send(n);
        }
        wait_for("the failing phase on fallback", || {
            (c.total_count(1) == 240).then_some(())
        });
        marks.push(now_micros());
        set_failure(&c.default, false);
        for n in 240..360 {
            send(n);
        }
        wait_for("all payments", || (c.total_count(0) == 360).then_some(()));
        marks.push(now_micros());
        marks
    };

    let all = c.summary(0, "");
    assert!(
        totals(&all, "default").0 >= 240,
        "healthy phases go to default: {all}"
    );
    assert!(
        totals(&all, "fallback").0 >= 1,
        "the failing phase goes to fallback: {all}"
    );
    assert_eq!(totals(&all, "default").0 + totals(&all, "fallback").0, 360);
    c.assert_matches_processors("");
    for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 3), (1, 3)] {
        c.assert_matches_processors(&format!("?from={}&to={}", iso(marks[a]), iso(marks[b])));
    }
    // Windows whose bounds fall exactly on stored requestedAt values: inclusive.
    for n in [0u32, 130, 359] {
        let r = get(&c.default.addr, &format!("/payments/{}", uuid(1, n)));
        let r = if r.status == 200 {
            r
        } else {
            get(&c.fallback.addr, &format!("/payments/{}", uuid(1, n)))
        };
        assert_eq!(r.status, 200);
        let at = r.json()["requestedAt"].as_str().unwrap().to_string();
        c.assert_matches_processors(&format!("?from={at}&to={at}"));
        // At least this payment (another may share its microsecond).
        let s = c.summary(0, &format!("?from={at}&to={at}"));
        assert!(
            totals(&s, "default").0 + totals(&s, "fallback").0 >= 1,
            "payment {n} at {at}"
        );
        // Millisecond bounds as the official test sends them, with an offset form too.
        let ms = &at[..23];
        c.assert_matches_processors(&format!("?from={ms}Z&to={}", iso(marks[3])));
        c.assert_matches_processors(&format!("?from={}&to={ms}%2B00:00", iso(marks[0])));
    }
}

#[test]
fn memory_cluster_matches_processors_uring() {
    run_mixed_load(&cluster(LedgerKind::Memory, "uring", &[]));
}

#[test]
fn memory_cluster_matches_processors_epoll() {
    run_mixed_load(&cluster(LedgerKind::Memory, "epoll", &[]));
}

#[test]
fn redis_cluster_matches_processors_uring() {
    run_mixed_load(&cluster(LedgerKind::Redis, "uring", &[]));
}

#[test]
fn redis_cluster_matches_processors_epoll() {
    run_mixed_load(&cluster(LedgerKind::Redis, "epoll", &[]));
}

fn duplicates_counted_once(ledger: LedgerKind) {
    let c = cluster(ledger, "auto", &[]);
    let id = uuid(2, 1);
    for i in [0, 0, 1, 1, 0] {
        let r = post_json(&c.gw[i].addr, "/payments", &payment_body(&id, "19.90"));
        assert!(
            (200..300).contains(&r.status),
            "a duplicate is still answered 2XX"
        );
    }
    // Each instance queued its first copy and answered the others from its acceptances.
    for (i, dups) in [(0, 2.0), (1, 1.0)] {
        assert_eq!(
            metric(&c.gw[i], "gateway_accepted_total", &[]),
            1.0,
            "gw{}",
            i + 1
        );
        assert_eq!(
            metric(&c.gw[i], "gateway_duplicates_total", &[]),
            dups,
            "gw{}",
            i + 1
        );
    }
    // Both instances claim the id before their first attempt; the first claim stands,
    // the other instance settles its copy without sending it.
    wait_for("one copy charged, the other claimed by the first", || {
        let charged = c.metric("gateway_attempts_total", &["outcome=\"charged\""]);
        let theirs = c.metric("gateway_claims_total", &["verdict=\"theirs\""]);
        (charged >= 1.0 && theirs >= 1.0).then_some(())
    });
    assert_eq!(
        c.metric("gateway_attempts_total", &[]),
        1.0,
        "no other attempt"
    );
    assert_eq!(c.metric("gateway_claims_total", &["verdict=\"mine\""]), 1.0);
    wait_for("the charged copy recorded", || {
        (c.total_count(0) >= 1).then_some(())
    });
    assert_eq!(c.total_count(0), 1);
    assert_eq!(c.total_count(1), 1);
    c.assert_matches_processors("");
    assert_eq!(sim_totals(&c.default, ""), (1, 1990));
}

#[test]
fn duplicate_correlation_id_counted_once_memory() {
    duplicates_counted_once(LedgerKind::Memory);
}

#[test]
fn duplicate_correlation_id_counted_once_redis() {
    duplicates_counted_once(LedgerKind::Redis);
}

/// A client sends payments to one gateway, which charges them on the default; the
/// default then fails past the patience, and the client sends the same payments again
/// through the other gateway, which would pay the fallback for them. Its claims are
/// refused, so it sends none of them: each is charged once.
fn same_ids_through_both_gateways(ledger: LedgerKind) {
    // A one-second horizon makes the patience about 105 ms.
    let c = cluster(ledger, "auto", &[("ROUTE_HORIZON_S", "1".to_string())]);
    const N: u32 = 20;
    let ids: Vec<String> = (0..N).map(|n| uuid(3, n)).collect();
    for id in &ids {
        let r = post_json(&c.gw[0].addr, "/payments", &payment_body(id, "19.90"));
        assert_eq!(r.status, 202);
    }
    wait_for("the first copies charged on the default", || {
        (sim_totals(&c.default, "").0 == u64::from(N)).then_some(())
    });
    set_failure(&c.default, true);
    // The second gateway pays the fallback once the default has failed for longer
    // than the patience: shown by a payment of its own charged there.
    let probe = uuid(3, 1000);
    let r = post_json(&c.gw[1].addr, "/payments", &payment_body(&probe, "1.00"));
    assert_eq!(r.status, 202);
    wait_for("the second gateway paying the fallback", || {
        (sim_totals(&c.fallback, "").0 == 1).then_some(())
    });
    for id in &ids {
        let r = post_json(&c.gw[1].addr, "/payments", &payment_body(id, "19.90"));
        assert_eq!(r.status, 202);
    }
    wait_for("every second copy claimed by the first gateway", || {
        (metric(&c.gw[1], "gateway_claims_total", &["verdict=\"theirs\""]) == f64::from(N))
            .then_some(())
    });
    wait_for("the second gateway settled everything", || {
        (metric(&c.gw[1], "gateway_unsettled", &[]) == 0.0).then_some(())
    });
    assert_eq!(
        sim_totals(&c.default, ""),
        (u64::from(N), i64::from(N) * 1990)
    );
    assert_eq!(sim_totals(&c.fallback, ""), (1, 100));
    assert_eq!(
        metric(
            &c.gw[1],
            "gateway_attempts_total",
            &["processor=\"fallback\"", "outcome=\"charged\""]
        ),
        1.0
    );
    set_failure(&c.default, false);
    c.assert_matches_processors("");
}

#[test]
fn same_ids_through_both_gateways_charged_once_memory() {
    same_ids_through_both_gateways(LedgerKind::Memory);
}

#[test]
fn same_ids_through_both_gateways_charged_once_redis() {
    same_ids_through_both_gateways(LedgerKind::Redis);
}

fn bad_inputs_change_nothing(ledger: LedgerKind, driver: &str) {
    let c = cluster(ledger, driver, &[]);
    let addr = &c.gw[0].addr;
    let id = uuid(3, 1);
    let cases: Vec<(String, u16)> = vec![
        ("".into(), 400),
        ("not json".into(), 400),
        ("{}".into(), 400),
        (format!("{{\"correlationId\":\"{id}\"}}"), 400),
        ("{\"amount\":10}".into(), 400),
        (
            format!("{{\"correlationId\":\"{id}\",\"amount\":10,\"amount\":11}}"),
            400,
        ),
        (
            "{\"correlationId\":\"not-a-uuid\",\"amount\":10}".into(),
            422,
        ),
        (
            format!("{{\"correlationId\":\"{id}\",\"amount\":\"10\"}}"),
            422,
        ),
        (format!("{{\"correlationId\":\"{id}\",\"amount\":-1}}"), 422),
        (format!("{{\"correlationId\":\"{id}\",\"amount\":0}}"), 422),
        (
            format!("{{\"correlationId\":\"{id}\",\"amount\":0.004}}"),
            422,
        ),
        (
            format!("{{\"correlationId\":\"{id}\",\"amount\":1e20}}"),
            422,
        ),
    ];
    for (body, status) in &cases {
        let r = post_json(addr, "/payments", body);
        assert_eq!(r.status, *status, "body {body:?}");
        let v = r.json();
        assert!(
            v["error"].as_str().is_some_and(|s| !s.is_empty()),
            "a reason for {body:?}"
        );
    }
    // Protocol-level errors, each on its own connection.
    let raw: Vec<(Vec<u8>, u16)> = vec![
        (
            b"POST /payments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            411,
        ),
        (
            format!(
                "POST /payments HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                1 << 20
            )
            .into_bytes(),
            413,
        ),
        (
            [
                b"GET / HTTP/1.1\r\nX: ".to_vec(),
                vec![b'a'; 9000],
                b"\r\n\r\n".to_vec(),
            ]
            .concat(),
            431,
        ),
        (
            b"GET /health HTTP/1.1\r\nBad Header: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
        ),
        (b"G@T /health HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET /payments HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"GET /nowhere HTTP/1.1\r\n\r\n".to_vec(), 404),
        (
            b"GET /payments-summary?from=yesterday HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /payments-summary?to=2025-02-30T00:00:00Z HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /payments-summary?from=%zz HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (bytes, status) in &raw {
        let mut conn = RawSocket::open(addr);
        conn.send(bytes);
        let r = conn.response(&mut Vec::new()).expect("an answer");
        assert_eq!(
            r.status,
            *status,
            "request {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
        );
        assert!(r.json()["error"].is_string());
    }
    // Then one good payment: only it is counted.
    assert_eq!(
        post_json(addr, "/payments", &payment_body(&id, "10")).status,
        202
    );
    // Accepting is done before the 202 leaves: none of the refused bodies was.
    assert_eq!(metric(&c.gw[0], "gateway_accepted_total", &[]), 1.0);
    wait_for("the good payment", || (c.total_count(1) == 1).then_some(()));
    c.assert_matches_processors("");
    assert_eq!(sim_totals(&c.default, ""), (1, 1000));
}

#[test]
fn bad_inputs_get_4xx_and_change_nothing_memory_uring() {
    bad_inputs_change_nothing(LedgerKind::Memory, "uring");
}

#[test]
fn bad_inputs_get_4xx_and_change_nothing_redis_epoll() {
    bad_inputs_change_nothing(LedgerKind::Redis, "epoll");
}

fn purge_clears_cluster(ledger: LedgerKind) {
    let c = cluster(ledger, "auto", &[]);
    for n in 0..10 {
        let r = post_json(
            &c.gw[n % 2].addr,
            "/payments",
            &payment_body(&uuid(4, n as u32), "5"),
        );
        assert_eq!(r.status, 202);
    }
    wait_for("ten payments", || (c.total_count(0) == 10).then_some(()));
    let r = request(&c.gw[1].addr, "POST", "/purge-payments", "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(c.total_count(0), 0);
    assert_eq!(c.total_count(1), 0);
    // Acceptances outlive a purge: the same correlationId is still a duplicate, while
    // a new payment is counted from zero.
    assert_eq!(
        admin(&c.default.addr, "POST", "/admin/purge-payments", "").status,
        200
    );
    assert_eq!(
        post_json(&c.gw[0].addr, "/payments", &payment_body(&uuid(4, 0), "5")).status,
        202
    );
    assert_eq!(
        metric(&c.gw[0], "gateway_duplicates_total", &[]),
        1.0,
        "answered as a duplicate, not queued"
    );
    assert_eq!(
        post_json(&c.gw[0].addr, "/payments", &payment_body(&uuid(4, 99), "5")).status,
        202
    );
    wait_for("the payment after purge", || {
        (c.total_count(1) == 1).then_some(())
    });
    c.assert_matches_processors("");
}

#[test]
fn purge_clears_every_instance_memory() {
    purge_clears_cluster(LedgerKind::Memory);
}

#[test]
fn purge_clears_every_instance_redis() {
    purge_clears_cluster(LedgerKind::Redis);
}

/// The first attempt times out (the processor is slower than the gateway's timeout) but
/// is stored later; the uncertain payment stays on that processor, is settled once the
/// processor shows it (lookup or 422), recorded once with the first attempt's
/// requestedAt, and never sent to the fallback.
fn late_outcome_recorded_once(ledger: LedgerKind) {
    let c = cluster(
        ledger,
        "auto",
        &[("PROCESSOR_TIMEOUT_MS", "150".to_string())],
    );
    set_delay(&c.default, 500);
    let id = uuid(5, 1);
    assert_eq!(
        post_json(&c.gw[0].addr, "/payments", &payment_body(&id, "19.90")).status,
        202
    );
    let stored = wait_for("the slow processor to store it", || {
        let r = get(&c.default.addr, &format!("/payments/{id}"));
        (r.status == 200).then(|| r.json())
    });
    let at = stored["requestedAt"].as_str().unwrap().to_string();
    set_delay(&c.default, 0);
    wait_for("the late outcome to settle it", || {
        (c.total_count(0) == 1).then_some(())
    });
    let s = c.summary(1, &format!("?from={at}&to={at}"));
    assert_eq!(
        totals(&s, "default"),
        (1, 1990),
        "recorded at the stored requestedAt {at}"
    );
    assert_eq!(
        sim_totals(&c.fallback, ""),
        (0, 0),
        "never sent to the fallback"
    );
    c.assert_matches_processors("");
}

/// Both instances accepted the same payment while both processors were failing. Both
/// claim it; only the winner tries the processors, and when the default recovers it
/// charges the payment once. The other instance never sends it.
fn racing_instances_counted_once(ledger: LedgerKind) {
    let c = cluster(ledger, "auto", &[]);
    set_failure(&c.default, true);
    set_failure(&c.fallback, true);
    let id = uuid(7, 1);
    for i in [0, 1] {
        assert_eq!(
            post_json(&c.gw[i].addr, "/payments", &payment_body(&id, "4.20")).status,
            202
        );
    }
    wait_for("both claims decided", || {
        let mine = c.metric("gateway_claims_total", &["verdict=\"mine\""]);
        let theirs = c.metric("gateway_claims_total", &["verdict=\"theirs\""]);
        (mine == 1.0 && theirs == 1.0).then_some(())
    });
    let winner = (0..2)
        .find(|&i| metric(&c.gw[i], "gateway_claims_total", &["verdict=\"mine\""]) == 1.0)
        .unwrap();
    wait_for("the winner to try the failing default", || {
        let failed = metric(
            &c.gw[winner],
            "gateway_attempts_total",
            &["processor=\"default\"", "outcome=\"not_charged\""],
        );
        (failed >= 1.0).then_some(())
    });
    set_failure(&c.default, false);
    wait_for("one charge", || {
        (sim_totals(&c.default, "") == (1, 420)).then_some(())
    });
    wait_for("one record", || (c.total_count(0) >= 1).then_some(()));
    assert_eq!(c.total_count(0), 1);
    assert_eq!(c.total_count(1), 1);
    assert_eq!(
        metric(&c.gw[1 - winner], "gateway_attempts_total", &[]),
        0.0,
        "the other instance sent nothing"
    );
    set_failure(&c.fallback, false);
    assert_eq!(sim_totals(&c.fallback, ""), (0, 0));
    c.assert_matches_processors("");
}

#[test]
fn racing_instances_counted_once_memory() {
    racing_instances_counted_once(LedgerKind::Memory);
}

#[test]
fn racing_instances_counted_once_redis() {
    racing_instances_counted_once(LedgerKind::Redis);
}

#[test]
fn late_outcome_after_timeout_recorded_once_memory() {
    late_outcome_recorded_once(LedgerKind::Memory);
}

#[test]
fn late_outcome_after_timeout_recorded_once_redis() {
    late_outcome_recorded_once(LedgerKind::Redis);
}

#[test]
fn summary_is_503_when_a_peer_cannot_be_asked() {
    let mut c = cluster(LedgerKind::Memory, "auto", &[]);
    assert_eq!(
        post_json(&c.gw[0].addr, "/payments", &payment_body(&uuid(6, 1), "3")).status,
        202
    );
    wait_for("the payment", || (c.total_count(0) == 1).then_some(()));
    c.gw[1].kill();
    let r = get(&c.gw[0].addr, "/payments-summary");
    assert_eq!(r.status, 503, "never a partial number");
    assert!(r.json()["error"].as_str().unwrap().contains("peer"));
}
