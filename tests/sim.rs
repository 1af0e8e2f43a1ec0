//! The processor simulator against `docs/challenge.md` ("The processors"), over real sockets.

mod common;

use common::*;
use std::time::Duration;

fn pay(sim: &Proc, id: &str, amount: &str, at: &str) -> Response {
    post_json(
        &sim.addr,
        "/payments",
        &format!("{{\"correlationId\":\"{id}\",\"amount\":{amount},\"requestedAt\":\"{at}\"}}"),
    )
}

#[test]
fn stores_once_rounds_half_even_and_summarises_with_fee() {
    let s = sim("sim", "0.05", &[]);
    let id = uuid(20, 1);
    let r = pay(&s, &id, "19.905", "2025-07-10T12:34:56.123456Z");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["message"], "payment processed successfully");
    let r = pay(&s, &id, "19.90", "2025-07-10T12:35:00Z");
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains(&id));
    assert_eq!(
        pay(&s, &uuid(20, 2), "0.015", "2025-07-10T12:34:57.000Z").status,
        200
    );
    assert_eq!(
        pay(&s, &uuid(20, 3), "x", "2025-07-10T12:34:57.000Z").status,
        400
    );
    assert_eq!(pay(&s, "nope", "1", "2025-07-10T12:34:57.000Z").status, 400);

    let r = get(&s.addr, &format!("/payments/{id}"));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v["requestedAt"], "2025-07-10T12:34:56.123456Z",
        "the first requestedAt, to the microsecond"
    );
    assert_eq!(
        cents(&v["amount"]),
        1990,
        "19.905 is stored as 19.90 (half to even)"
    );
    assert_eq!(
        get(&s.addr, &format!("/payments/{}", uuid(20, 9))).status,
        404
    );

    let r = admin(&s.addr, "GET", "/admin/payments-summary", "");
    let v = r.json();
    assert_eq!(v["totalRequests"], 2);
    assert_eq!(cents(&v["totalAmount"]), 1992);
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("\"totalFee\":0.9960,\"feePerTransaction\":0.05}"),
        "{text}"
    );
    // Inclusive window at exact microsecond bounds.
    let w = |q: &str| sim_totals(&s, q);
    assert_eq!(
        w("?from=2025-07-10T12:34:56.123456Z&to=2025-07-10T12:34:56.123456Z"),
        (1, 1990)
    );
    assert_eq!(
        w("?from=2025-07-10T12:34:56.123457Z&to=2025-07-10T12:40:00Z"),
        (1, 2)
    );
    // A missing bound means everything, as the real processor does.
    assert_eq!(w("?from=2030-01-01T00:00:00Z"), (2, 1992));

    assert_eq!(
        admin(&s.addr, "POST", "/admin/purge-payments", "").status,
        200
    );
    assert_eq!(w(""), (0, 0));
}

#[test]
fn admin_needs_the_token_and_switches_delay_failure_and_token() {
    let s = sim("sim", "0.15", &[]);
    assert_eq!(get(&s.addr, "/admin/payments-summary").status, 401);
    assert_eq!(
        request(
            &s.addr,
            "POST",
            "/admin/purge-payments",
            "X-Rinha-Token: 124\r\n",
            b""
        )
        .status,
        401
    );

    let r = admin(
        &s.addr,
        "PUT",
        "/admin/configurations/delay",
        r#"{"delay":30}"#,
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"config":"delay","was":0,"is":30})
    );
    let r = admin(
        &s.addr,
        "PUT",
        "/admin/configurations/failure",
        r#"{"failure":true}"#,
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"config":"failure","was":false,"is":true})
    );
    let h = get(&s.addr, "/payments/service-health").json();
    assert_eq!(h, serde_json::json!({"failing":true,"minResponseTime":30}));
    // Failure: 500 with an empty body, nothing stored.
    let r = pay(&s, &uuid(21, 1), "10", "2025-07-10T12:00:00Z");
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty());
    assert_eq!(sim_totals(&s, ""), (0, 0));
    set_failure(&s, false);
    assert_eq!(
        pay(&s, &uuid(21, 1), "10", "2025-07-10T12:00:00Z").status,
        200
    );

    let r = admin(
        &s.addr,
        "PUT",
        "/admin/configurations/token",
        r#"{"token":"abc"}"#,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        admin(&s.addr, "GET", "/admin/payments-summary", "").status,
        401
    );
    let r = request(
        &s.addr,
        "GET",
        "/admin/payments-summary",
        "X-Rinha-Token: abc\r\n",
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn health_is_one_call_per_window_with_a_queue_of_two() {
    let s = sim("sim", "0.05", &[("RATE_LIMIT_SECONDS", "2".to_string())]);
    // Four callers at once: one answered in this window, two queued for the next
    // windows, one refused with 429 and Retry-After.
    let addr = s.addr.clone();
    let callers: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(i * 50));
                get(&addr, "/payments/service-health")
            })
        })
        .collect();
    let answers: Vec<Response> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        (ok, limited.len()),
        (3, 1),
        "statuses: {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(limited[0].head.contains("Retry-After: 5"));
}

#[test]
fn concurrency_limiter_answers_429_beyond_800_inside_and_500_queued() {
    let s = sim("sim", "0.05", &[]);
    set_delay(&s, 3000);
    // 1,300 requests fit (800 inside, 500 queued); the 1,301st is refused at once.
    let mut conns = Vec::new();
    for n in 0..1300u32 {
        let mut c = RawSocket::open(&s.addr);
        let body = format!(
            "{{\"correlationId\":\"{}\",\"amount\":1,\"requestedAt\":\"2025-07-10T12:00:00Z\"}}",
            uuid(22, n)
        );
        c.send(
            format!(
                "POST /payments HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        conns.push(c);
    }
    // Wait until the simulator has taken all of them in (the refused one is answered
    // at once, so a later probe tells us the queue is full).
    let r = wait_for("a 429", || {
        let r = pay(&s, &uuid(22, 5000), "1", "2025-07-10T12:00:00Z");
        (r.status == 429).then_some(r)
    });
    assert!(r.head.contains("Retry-After: 5"));
    set_delay(&s, 0);
    for mut c in conns {
        assert_eq!(c.response(&mut Vec::new()).unwrap().status, 200);
    }
    assert_eq!(sim_totals(&s, ""), (1300, 130_000));
}

#[test]
fn bad_configuration_names_the_variable() {
    for (var, value) in [
        ("TRANSACTION_FEE", "five"),
        ("RATE_LIMIT_SECONDS", "0"),
        ("BASE_LATENCY_MS", "-1"),
    ] {
        let out = std::process::Command::new(sim_bin())
            .env_clear()
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(var));
    }
}
