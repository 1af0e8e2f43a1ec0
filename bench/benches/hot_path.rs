//! Criterion benches of the request path: parsing a request, validating its body,
//! queueing the payment, answering, and the summary and timestamp encoders around them.
//! The crate doc (`src/lib.rs`) lists what each bench measures.

use std::hint::black_box;

use bench::ids::Ids;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use domain::money::parse_amount;
use domain::time::{parse_iso, write_iso, Round};
use gateway::app::config::GatewayConfig;
use gateway::app::state::Instance;
use gateway::engine::payment::Payment;
use gateway::engine::queue::Backlog;
use gateway::intake::body::parse_body;
use gateway::intake::routes::write_summary;
use gateway::ledger::{Summary, Totals};
use http1::request::{self, Method, Request, Status};
use http1::response::{Reply, ACCEPTED};
use net::env::Vars;

/// Requests in the pipelined bench: a deep but plausible pipeline from one keep-alive
/// connection under load.
const PIPELINE_DEPTH: usize = 16;

/// Slots of the benched backlog: the size of a core's ring in production.
const BACKLOG_CAPACITY: usize = 65_536;

/// Payments queued before draining in the fill-then-drain bench: a burst well inside the
/// ring, large enough that the ring's growth and wrap-around show.
const BURST: usize = 1_024;

/// correlationIds already accepted when the accepted-set benches run: about one load
/// test's worth on one instance.
const ACCEPTED_BEFORE: usize = 100_000;

/// The host k6 targets in the load test.
const HOST: &str = "localhost:9999";

/// The User-Agent k6 sends by default.
const USER_AGENT: &str = "k6/0.57.0 (https://k6.io/)";

/// A timestamp as the load test writes `from`/`to` bounds.
const ISO_BOUND: &[u8] = b"2025-07-15T12:34:56.000Z";

/// A typical payment body: a random UUID and an amount with two decimals.
fn payment_body(n: usize) -> String {
    format!(r#"{{"correlationId":"4a7901b8-7d26-4d9d-aa19-{n:012x}","amount":19.90}}"#)
}

/// `POST /payments` with the headers k6 sends.
fn post_payments(n: usize) -> String {
    let body = payment_body(n);
    format!(
        "POST /payments HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {USER_AGENT}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `GET /payments-summary` with a one-minute window.
fn get_summary() -> String {
    format!(
        "GET /payments-summary?from=2025-07-15T12:34:56.000Z&to=2025-07-15T12:35:56.000Z \
         HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
    )
}

/// Parses one request that must be complete and valid.
fn parse_complete(buf: &[u8]) -> Request<'_> {
    match request::parse(buf) {
        Ok(Status::Complete(req)) => req,
        other => panic!("benched request does not parse: {other:?}"),
    }
}

/// Parses every pipelined request in `buf`, as the connection loop does; returns how many.
fn parse_pipeline(buf: &[u8]) -> usize {
    let mut at = 0;
    let mut count = 0;
    while at < buf.len() {
        let req = parse_complete(&buf[at..]);
        at += req.len();
        count += 1;
        black_box(req.body);
    }
    count
}

fn bench_request_parse(c: &mut Criterion) {
    let post = post_payments(0);
    let summary = get_summary();
    let pipeline: String = (0..PIPELINE_DEPTH).map(post_payments).collect();

    // The inputs are what they claim to be.
    let req = parse_complete(post.as_bytes());
    assert_eq!(
        (req.method, req.path, req.len()),
        (Method::Post, &b"/payments"[..], post.len())
    );
    let req = parse_complete(summary.as_bytes());
    assert_eq!(
        (req.method, req.path),
        (Method::Get, &b"/payments-summary"[..])
    );
    assert!(req.query.is_some());
    assert_eq!(parse_pipeline(pipeline.as_bytes()), PIPELINE_DEPTH);

    let mut group = c.benchmark_group("http/request/parse");
    group.throughput(Throughput::Bytes(post.len() as u64));
    group.bench_function("post_payments", |b| {
        b.iter(|| request::parse(black_box(post.as_bytes())))
    });
    group.throughput(Throughput::Bytes(summary.len() as u64));
    group.bench_function("get_summary", |b| {
        b.iter(|| request::parse(black_box(summary.as_bytes())))
    });
    group.throughput(Throughput::Bytes(pipeline.len() as u64));
    group.bench_function("pipelined_16", |b| {
        b.iter(|| parse_pipeline(black_box(pipeline.as_bytes())))
    });
    group.finish();
}

fn bench_parse_body(c: &mut Criterion) {
    let body = payment_body(0);
    assert_eq!(
        parse_body(body.as_bytes()).map(|(_, cents)| cents),
        Ok(1990)
    );

    let mut group = c.benchmark_group("payment");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_body", |b| {
        b.iter(|| parse_body(black_box(body.as_bytes())))
    });
    group.finish();
}

fn bench_write_summary(c: &mut Criterion) {
    // About a load test's worth of payments of 19.90, mostly on the default processor.
    let summary = Summary {
        default: Totals {
            count: 16_843,
            cents: 33_517_570,
        },
        fallback: Totals {
            count: 1_204,
            cents: 2_395_960,
        },
    };
    let mut out = Vec::new();
    write_summary(&mut out, &summary);

    let mut group = c.benchmark_group("api");
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("write_summary", |b| {
        b.iter(|| {
            out.clear();
            write_summary(&mut out, black_box(&summary));
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_backlog(c: &mut Criterion) {
    let backlog = Backlog::new(BACKLOG_CAPACITY);
    let payment = Payment::new(0x4a79_01b8_7d26_4d9d_aa19_4dc1_c7cf_60b3, 1990);

    let mut group = c.benchmark_group("queue/backlog");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push_pop_one", |b| {
        b.iter(|| {
            let pushed = backlog.push(black_box(payment.clone()));
            assert!(pushed.is_ok());
            black_box(backlog.try_pop())
        })
    });
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("fill_drain_1024", |b| {
        b.iter(|| {
            for i in 0..BURST {
                let pushed = backlog.push(Payment::new(black_box(i as u128), 1990));
                assert!(pushed.is_ok());
            }
            let mut drained = 0;
            while let Some(p) = backlog.try_pop() {
                black_box(p);
                drained += 1;
            }
            drained
        })
    });
    group.finish();
    assert!(backlog.is_empty());
}

fn bench_accepted(c: &mut Criterion) {
    let config = GatewayConfig::from_vars(&Vars::from_pairs(&[])).expect("default config");
    let instance = Instance::new(config);
    let mut ids = Ids::new(3);
    let known: Vec<u128> = (0..ACCEPTED_BEFORE).map(|_| ids.random()).collect();
    for &id in &known {
        assert!(instance.accept(id));
    }
    assert!(!instance.accept(known[0]), "a second acceptance is refused");

    let mut group = c.benchmark_group("intake/accepted");
    group.throughput(Throughput::Elements(1));
    // A fresh id accepted then forgotten, so that the set keeps its size.
    group.bench_function("accept_unaccept_fresh", |b| {
        b.iter(|| {
            let id = ids.random();
            let fresh = instance.accept(black_box(id));
            instance.unaccept(id);
            fresh
        })
    });
    let mut at = 0;
    group.bench_function("accept_duplicate", |b| {
        b.iter(|| {
            at = (at + 1) % known.len();
            instance.accept(black_box(known[at]))
        })
    });
    group.finish();
}

fn bench_money(c: &mut Criterion) {
    let cases: [(&str, &[u8], i64); 2] = [
        ("two_decimals", b"19.90", 1990),
        ("rounded", b"1234.565", 123456),
    ];

    let mut group = c.benchmark_group("money/parse_amount");
    for (name, token, cents) in cases {
        assert_eq!(parse_amount(token), Ok(cents));
        group.throughput(Throughput::Bytes(token.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_amount(black_box(token))));
    }
    group.finish();
}

fn bench_time(c: &mut Criterion) {
    let t = parse_iso(ISO_BOUND, Round::Up).expect("benched timestamp parses");
    let mut out = Vec::new();
    write_iso(&mut out, t);
    assert_eq!(out, b"2025-07-15T12:34:56.000000Z");

    let mut group = c.benchmark_group("time");
    group.throughput(Throughput::Bytes(ISO_BOUND.len() as u64));
    group.bench_function("parse_iso", |b| {
        b.iter(|| parse_iso(black_box(ISO_BOUND), Round::Up))
    });
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("write_iso", |b| {
        b.iter(|| {
            out.clear();
            write_iso(&mut out, black_box(t));
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_reply(c: &mut Criterion) {
    let mut out = Vec::with_capacity(ACCEPTED.len());

    let mut group = c.benchmark_group("http/response");
    group.throughput(Throughput::Bytes(ACCEPTED.len() as u64));
    group.bench_function("preserialized_accepted", |b| {
        b.iter(|| {
            out.clear();
            Reply::new(&mut out, black_box(false)).preserialized(ACCEPTED);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_request_parse,
    bench_parse_body,
    bench_write_summary,
    bench_backlog,
    bench_accepted,
    bench_money,
    bench_time,
    bench_reply
);
criterion_main!(benches);
