use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;

use super::*;
use redis_wire::RedisConn;
use stack::child::Output;
use stack::redis::{Listen, Redis};

/// A real redis-server of this test's own, in a private directory.
fn server(listen: Listen) -> Redis {
    Redis::start(listen, Output::Captured).expect("redis-server must be installed")
}

/// A lease long enough that no test sees one run out unless it waits for it.
const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

fn ledger(url: &str) -> RedisLedger {
    RedisLedger::new(RedisTarget::parse(url).unwrap(), "gw-a", LEASE)
}

fn rec(id: u128, processor: Processor, requested_at: Micros, cents: i64) -> Record {
    Record {
        id,
        processor,
        requested_at,
        cents,
    }
}

fn totals(count: u64, cents: i64) -> Totals {
    Totals { count, cents }
}

/// A realistic `requestedAt`: 2025-07-01T00:00:00Z.
const T0: Micros = 1_751_328_000_000_000;

#[monoio::test_all(timer_enabled = true)]
async fn record_once() {
    let server = server(Listen::Unix);
    let l = ledger(&server.url());
    let id = u128::MAX - 7;
    assert!(l
        .record(rec(id, Processor::Default, T0, 1990))
        .await
        .unwrap());
    assert!(!l
        .record(rec(id, Processor::Default, T0, 1990))
        .await
        .unwrap());
    // The first record stands, even against another processor, time or amount.
    assert!(!l
        .record(rec(id, Processor::Fallback, T0 + 5, 7))
        .await
        .unwrap());
    assert!(l.record(rec(1, Processor::Fallback, T0, 7)).await.unwrap());
    let s = l.summary(Window::ALL).await.unwrap();
    assert_eq!(s.default, totals(1, 1990));
    assert_eq!(s.fallback, totals(1, 7));

    // The stored shape, as documented.
    let mut conn = RedisConn::connect(&RedisTarget::parse(&server.url()).unwrap())
        .await
        .unwrap();
    let hex = format!("{id:032x}");
    assert_eq!(hex.len(), 32);
    assert_eq!(
        conn.query(::redis::cmd("HGET").arg(LEDGER_KEY).arg(&hex))
            .await
            .unwrap(),
        Value::BulkString(format!("default:{T0}:1990").into_bytes())
    );
    assert_eq!(
        conn.query(
            ::redis::cmd("ZSCORE")
                .arg("rinha:ledger:default")
                .arg(format!("1990:{hex}"))
        )
        .await
        .unwrap(),
        Value::BulkString(T0.to_string().into_bytes())
    );
}

#[monoio::test_all(timer_enabled = true)]
async fn the_first_claim_stands_across_instances_and_purges() {
    let server = server(Listen::Unix);
    let a = ledger(&server.url());
    let b = RedisLedger::new(RedisTarget::parse(&server.url()).unwrap(), "gw-b", LEASE);
    let mine = Claim::Mine { kept_here: false };
    assert_eq!(a.claim(1, Origin::OWN).await.unwrap(), mine);
    assert_eq!(b.claim(1, Origin::OWN).await.unwrap(), Claim::Theirs);
    assert_eq!(
        a.claim(1, Origin::OWN).await.unwrap(),
        mine,
        "its own claim again"
    );
    assert_eq!(b.claim(2, Origin::OWN).await.unwrap(), mine);
    assert_eq!(a.claim(2, Origin::OWN).await.unwrap(), Claim::Theirs);
    a.purge().await.unwrap();
    assert_eq!(b.claim(1, Origin::OWN).await.unwrap(), Claim::Theirs);
    // Another handle of the same consumer (another core of that run) holds its claims.
    assert_eq!(
        ledger(&server.url()).claim(1, Origin::OWN).await.unwrap(),
        mine
    );
}

#[monoio::test_all(timer_enabled = true)]
async fn summary_windows() {
    let server = server(Listen::Unix);
    let l = ledger(&server.url());
    let d = Processor::Default;
    let f = Processor::Fallback;
    for (id, p, t, cents) in [
        (1, d, T0, 100),
        (2, d, T0 + 1, 200),
        (3, d, T0 + 2, 400),
        (4, f, T0 + 1, 1_000),
        (5, f, T0 + 3, 2_000),
        (6, d, MAX_EXACT_MICROS, 5),
        (7, f, -MAX_EXACT_MICROS, 9),
    ] {
        assert!(l.record(rec(id, p, t, cents)).await.unwrap());
    }
    let w = |from, to| Window { from, to };
    let cases = [
        (Window::ALL, totals(4, 705), totals(3, 3_009)),
        (w(Some(T0), Some(T0 + 3)), totals(3, 700), totals(2, 3_000)),
        (
            w(Some(T0 + 1), Some(T0 + 1)),
            totals(1, 200),
            totals(1, 1_000),
        ),
        (
            w(Some(T0 + 1), Some(T0 + 2)),
            totals(2, 600),
            totals(1, 1_000),
        ),
        (w(Some(T0 + 2), Some(T0 + 1)), totals(0, 0), totals(0, 0)),
        (w(Some(T0 + 4), None), totals(1, 5), totals(0, 0)),
        (w(None, Some(T0)), totals(1, 100), totals(1, 9)),
        (w(None, Some(T0 - 1)), totals(0, 0), totals(1, 9)),
        (w(Some(MAX_EXACT_MICROS), None), totals(1, 5), totals(0, 0)),
        (
            w(Some(MAX_EXACT_MICROS - 1), Some(MAX_EXACT_MICROS - 1)),
            totals(0, 0),
            totals(0, 0),
        ),
    ];
    for (window, default, fallback) in cases {
        let want = Summary { default, fallback };
        assert_eq!(l.summary(window).await.unwrap(), want, "{window:?}");
        assert_eq!(l.local_summary(window).await.unwrap(), want, "{window:?}");
    }
    // Times a score cannot hold exactly are refused, and nothing is recorded.
    assert!(l.record(rec(8, d, MAX_EXACT_MICROS + 1, 1)).await.is_err());
    assert!(l.record(rec(9, d, i64::MIN, 1)).await.is_err());
    assert_eq!(
        l.summary(Window::ALL).await.unwrap().default,
        totals(4, 705)
    );

    // A member the script cannot read fails the summary instead of being skipped.
    let mut conn = RedisConn::connect(&RedisTarget::parse(&server.url()).unwrap())
        .await
        .unwrap();
    conn.query(
        ::redis::cmd("ZADD")
            .arg(processor_key(f))
            .arg(T0)
            .arg("junk"),
    )
    .await
    .unwrap();
    match l.summary(Window::ALL).await {
        Err(LedgerError::Redis(e)) => assert!(e.contains("server error"), "{e}"),
        other => panic!("{other:?}"),
    }
    conn.query(::redis::cmd("ZREM").arg(processor_key(f)).arg("junk"))
        .await
        .unwrap();
    assert_eq!(
        l.summary(Window::ALL).await.unwrap().fallback,
        totals(3, 3_009)
    );
}

#[monoio::test_all(timer_enabled = true)]
async fn purge_forgets_everything() {
    let server = server(Listen::Unix);
    let l = ledger(&server.url());
    assert!(l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());
    assert!(l.record(rec(2, Processor::Fallback, T0, 20)).await.unwrap());
    l.purge().await.unwrap();
    assert_eq!(l.summary(Window::ALL).await.unwrap(), Summary::default());
    // A purged id can be recorded again.
    assert!(l.record(rec(1, Processor::Fallback, T0, 30)).await.unwrap());
    l.local_purge().await.unwrap();
    assert_eq!(l.summary(Window::ALL).await.unwrap(), Summary::default());
    // Purging an empty ledger is fine.
    l.purge().await.unwrap();
}

#[monoio::test_all(timer_enabled = true)]
async fn reconnects_after_failures() {
    let mut server = server(Listen::Unix);
    let l = ledger(&server.url());
    assert!(l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());
    server.stop();
    // The open connection fails, then so does connecting.
    assert!(matches!(
        l.summary(Window::ALL).await,
        Err(LedgerError::Redis(_))
    ));
    assert!(matches!(
        l.record(rec(2, Processor::Default, T0, 10)).await,
        Err(LedgerError::Redis(_))
    ));
    server.restart().unwrap();
    // A fresh server is empty.
    assert_eq!(l.summary(Window::ALL).await.unwrap(), Summary::default());
    assert!(l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());

    // A connection that died while idle fails one call, and the next reconnects.
    server.restart().unwrap();
    assert!(l.summary(Window::ALL).await.is_err());
    assert!(l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());
    assert_eq!(l.summary(Window::ALL).await.unwrap().default, totals(1, 10));
}

#[monoio::test_all(timer_enabled = true)]
async fn over_tcp() {
    let server = server(Listen::UnixAndTcp);
    let l = ledger(&server.tcp_url().unwrap());
    assert!(l.record(rec(1, Processor::Fallback, T0, 10)).await.unwrap());
    assert!(!l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());
    assert_eq!(
        l.summary(Window::ALL).await.unwrap().fallback,
        totals(1, 10)
    );
    // The Unix socket sees the same ledger.
    let u = ledger(&server.url());
    assert_eq!(
        u.summary(Window::ALL).await.unwrap().fallback,
        totals(1, 10)
    );
    u.purge().await.unwrap();
    assert_eq!(l.summary(Window::ALL).await.unwrap(), Summary::default());
}

#[monoio::test_all(timer_enabled = true)]
async fn concurrent_calls_share_one_connection() {
    const TASKS: u128 = 50;
    let server = server(Listen::Unix);
    let l = Rc::new(ledger(&server.url()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let l = l.clone();
            monoio::spawn(async move {
                let p = Processor::ALL[(i % 2) as usize];
                l.record(rec(i, p, T0 + i as i64, 100)).await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    let s = l.summary(Window::ALL).await.unwrap();
    assert_eq!(s.default, totals(25, 2_500));
    assert_eq!(s.fallback, totals(25, 2_500));
    // The handle's connection and this one.
    let mut conn = RedisConn::connect(&RedisTarget::parse(&server.url()).unwrap())
        .await
        .unwrap();
    match conn
        .query(::redis::cmd("CLIENT").arg("LIST"))
        .await
        .unwrap()
    {
        Value::BulkString(list) => {
            assert_eq!(
                list.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count(),
                2
            )
        }
        other => panic!("{other:?}"),
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn cancelled_call_does_not_desync() {
    let server = server(Listen::Unix);
    let l = ledger(&server.url());
    assert!(l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());
    // Start a record, leave it waiting for its reply, and drop it.
    {
        let mut fut = std::pin::pin!(l.record(rec(2, Processor::Default, T0, 20)));
        poll_fn(|cx| {
            let _ = fut.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
    }
    // The record may or may not have reached Redis, but its reply is never taken as
    // the answer to the next command.
    let s = l.summary(Window::ALL).await.unwrap();
    assert!(
        s.default == totals(1, 10) || s.default == totals(2, 30),
        "{s:?}"
    );
    assert!(!l.record(rec(1, Processor::Default, T0, 10)).await.unwrap());
}

/// Sends one command on a connection of the test's own.
async fn raw(url: &str, cmd: &::redis::Cmd) -> Value {
    let mut conn = RedisConn::connect(&RedisTarget::parse(url).unwrap())
        .await
        .unwrap();
    conn.query(cmd).await.unwrap()
}

/// How many entries `consumer` has pending.
async fn pending(url: &str, consumer: &str) -> i64 {
    let mut cmd = ::redis::cmd("XPENDING");
    cmd.arg(STREAM_KEY)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(1000)
        .arg(consumer);
    match raw(url, &cmd).await {
        Value::Array(v) => v.len() as i64,
        other => panic!("{other:?}"),
    }
}

async fn len(url: &str, cmd: &str, key: &str) -> i64 {
    match raw(url, ::redis::cmd(cmd).arg(key)).await {
        Value::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

/// Nothing is left of the journal: no entry pending at `consumer`, none in the stream,
/// the entries hash or the intents hash.
async fn assert_settled(url: &str, consumer: &str) {
    assert_eq!(pending(url, consumer).await, 0);
    assert_eq!(len(url, "XLEN", STREAM_KEY).await, 0);
    assert_eq!(len(url, "HLEN", ENTRIES_KEY).await, 0);
    assert_eq!(len(url, "HLEN", INTENTS_KEY).await, 0);
}

#[monoio::test_all(timer_enabled = true)]
async fn an_accepted_payment_is_pending_until_settled() {
    let server = server(Listen::Unix);
    let url = server.url();
    let a = ledger(&url);
    a.stage(1, 1990);
    a.stage(2, 1990);
    a.commit().await.unwrap();
    assert_eq!(pending(&url, "gw-a").await, 2);
    assert_eq!(len(&url, "XLEN", STREAM_KEY).await, 2);
    // Nothing staged: a commit costs nothing and succeeds.
    a.commit().await.unwrap();
    assert_eq!(len(&url, "XLEN", STREAM_KEY).await, 2);

    let own = Origin::OWN;
    assert_eq!(
        a.claim(1, own).await.unwrap(),
        Claim::Mine { kept_here: false }
    );
    assert_eq!(
        a.intent(1, own, Processor::Default, T0).await.unwrap(),
        Permit::Go
    );
    assert_eq!(len(&url, "HLEN", INTENTS_KEY).await, 1);
    assert!(a
        .settle(rec(1, Processor::Default, T0, 1990), own)
        .await
        .unwrap());
    assert_eq!(pending(&url, "gw-a").await, 1);
    // Payment 2 is claimed by another acceptance of it: released without a charge.
    let b = RedisLedger::new(RedisTarget::parse(&url).unwrap(), "gw-b", LEASE);
    assert_eq!(
        b.claim(2, own).await.unwrap(),
        Claim::Mine { kept_here: false }
    );
    assert_eq!(a.claim(2, own).await.unwrap(), Claim::Theirs);
    assert_eq!(
        a.intent(2, own, Processor::Default, T0).await.unwrap(),
        Permit::Theirs
    );
    a.release(2, own).await.unwrap();
    // Settled entries leave the stream, the entries hash and the intents hash.
    assert_settled(&url, "gw-a").await;
    assert_eq!(
        a.summary(Window::ALL).await.unwrap().default,
        totals(1, 1990)
    );
}

#[monoio::test_all(timer_enabled = true)]
async fn a_dead_consumers_payments_are_taken_over_once() {
    let server = server(Listen::Unix);
    let url = server.url();
    let own = Origin::OWN;
    let a = ledger(&url);
    let b = RedisLedger::new(RedisTarget::parse(&url).unwrap(), "gw-b", LEASE);
    assert_eq!(a.heartbeat().await.unwrap(), Liveness::Alive);
    assert_eq!(b.heartbeat().await.unwrap(), Liveness::Alive);
    // a accepts 1, 2 and 3 and sends 1 to the default; b accepts 3 too, and a's
    // acceptance of 3 holds the claim.
    for id in [1, 2, 3] {
        a.stage(id, 100 * id as i64);
    }
    a.commit().await.unwrap();
    b.stage(3, 300);
    b.commit().await.unwrap();
    assert_eq!(
        a.claim(1, own).await.unwrap(),
        Claim::Mine { kept_here: false }
    );
    assert_eq!(
        a.intent(1, own, Processor::Default, T0).await.unwrap(),
        Permit::Go
    );
    assert_eq!(
        a.claim(3, own).await.unwrap(),
        Claim::Mine { kept_here: false }
    );
    assert_eq!(b.claim(3, own).await.unwrap(), Claim::Theirs);
    b.release(3, own).await.unwrap();

    // While a's lease holds, nothing is taken.
    assert!(b.take_over().await.unwrap().is_empty());
    assert_eq!(pending(&url, "gw-a").await, 3);

    // a's lease runs out (its key expires; deleted here rather than waited for).
    raw(&url, ::redis::cmd("DEL").arg(stream::alive_key("gw-a"))).await;
    let mut taken = b.take_over().await.unwrap();
    taken.sort_by_key(|t| t.id);
    let origin = taken[0].origin;
    assert_ne!(origin, own);
    let want = |id: u128, intent| Inherited {
        origin,
        id,
        cents: 100 * id as i64,
        intent,
    };
    assert_eq!(
        taken,
        [
            want(1, Some((Processor::Default, T0))),
            want(2, None),
            want(3, None)
        ]
    );
    // Once: the next look finds nothing, and a is gone from the group.
    assert!(b.take_over().await.unwrap().is_empty());
    assert!(b.take_over().await.unwrap().is_empty());
    assert_eq!(pending(&url, "gw-b").await, 3);

    // a, stalled rather than dead, may send nothing more and learns it was taken over.
    assert_eq!(
        a.intent(1, own, Processor::Default, T0).await.unwrap(),
        Permit::TakenOver
    );
    assert_eq!(
        a.heartbeat().await.unwrap(),
        Liveness::TakenOver {
            by: "gw-b".to_string()
        }
    );
    // b charges them under a's claims: 1 and 3 were claimed by a's entries, 2 by none.
    for id in [1, 2, 3] {
        assert_eq!(
            b.claim(id, origin).await.unwrap(),
            Claim::Mine { kept_here: false }
        );
        assert_eq!(
            b.intent(id, origin, Processor::Fallback, T0).await.unwrap(),
            Permit::Go
        );
        let r = rec(id, Processor::Fallback, T0, 100 * id as i64);
        assert!(b.settle(r, origin).await.unwrap());
    }
    assert_settled(&url, "gw-b").await;
    assert_eq!(
        a.summary(Window::ALL).await.unwrap().fallback,
        totals(3, 600)
    );
}

#[monoio::test_all(timer_enabled = true)]
async fn a_failed_commit_is_retried_by_the_next() {
    let mut server = server(Listen::Unix);
    let url = server.url();
    let a = ledger(&url);
    server.stop();
    a.stage(1, 10);
    assert!(a.commit().await.is_err());
    server.restart().unwrap();
    a.stage(2, 20);
    a.commit().await.unwrap();
    assert_eq!(pending(&url, "gw-a").await, 2);
}
