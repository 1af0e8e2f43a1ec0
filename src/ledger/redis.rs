//! The ledger in Redis: one ledger shared by every gateway instance.
//!
//! Data model:
//! - `rinha:ledger` is a hash from the correlationId (32 lowercase hex digits) to
//!   `"<processor>:<micros>:<cents>"`. `HSETNX` on it is what makes a record happen once.
//! - `rinha:ledger:default` and `rinha:ledger:fallback` are sorted sets holding one member
//!   `"<cents>:<id hex>"` per record of that processor, scored by `requestedAt` in
//!   microseconds since the Unix epoch. A score is a double, which holds every integer
//!   below 2^53 exactly: microseconds fit until the year 2255, and [`RedisLedger::record`]
//!   refuses times beyond that rather than round them.
//!
//! Operations, each one command, so each is atomic in Redis:
//! - `record` runs [`RECORD_SCRIPT`]: `HSETNX`, then `ZADD` only if the id was new.
//! - `summary` runs [`SUMMARY_SCRIPT`]: for each processor, `ZRANGEBYSCORE` over the
//!   inclusive window (`-inf`/`+inf` for open bounds) and a sum of the members' cents
//!   prefixes, server side. Lua numbers are doubles, so the sums are exact below 2^53
//!   cents (about 90 trillion in currency units). Only four integers come back, whatever
//!   the window holds.
//! - `purge` deletes the three keys.
//! - `claim` runs [`CLAIM_SCRIPT`] on `rinha:claims`, a hash from correlationId to the
//!   `INSTANCE_ID` that claimed it first (`HSETNX`, then `HGET`): the payment is this
//!   instance's when the answer is its own id. Purges keep the claims, as they keep
//!   acceptances. `INSTANCE_ID` must therefore differ between instances and stay the
//!   same across a restart.
//!
//! Redis is the whole cluster's ledger, so `summary` is `local_summary` and `purge` is
//! `local_purge`.
//!
//! A [`RedisLedger`] is one core's handle with one connection, opened on first use. The
//! core's tasks take turns on it, one command at a time. Any failure becomes
//! [`LedgerError::Redis`] and drops the connection, so the next call connects afresh;
//! nothing is retried here (the caller retries records). A call whose future is dropped
//! midway drops the connection with it, so a late reply is never read as the answer to
//! the next command.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

use ::redis::Value;

use super::{Claim, Ledger, LedgerError, Record, Summary, Totals, Window};
use crate::processor::Processor;
use domain::time::Micros;
use redis_wire::{RedisConn, RedisTarget};

/// Longest a Redis call (connect included) may take. Redis answers in microseconds; a
/// stalled or unreachable server must not hold a core's workers, or an audit call past
/// the official test's 1.5 s client timeout.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1_000);

/// The hash from correlationId to record.
pub const LEDGER_KEY: &str = "rinha:ledger";

/// The sorted set of one processor's records, scored by `requestedAt`.
pub fn processor_key(p: Processor) -> &'static str {
    match p {
        Processor::Default => "rinha:ledger:default",
        Processor::Fallback => "rinha:ledger:fallback",
    }
}

/// Largest `|requestedAt|` a sorted-set score holds exactly: doubles have a 53-bit
/// significand. In microseconds that is about 285 years either side of 1970.
pub const MAX_EXACT_MICROS: Micros = 1 << 53;

/// Records a payment once.
/// KEYS: the ledger hash, the processor's sorted set.
/// ARGV: id hex, `"<processor>:<micros>:<cents>"`, micros, `"<cents>:<id hex>"`.
/// Returns 1 if the id was new, 0 if it was already recorded (nothing changes then).
pub const RECORD_SCRIPT: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
";

/// The hash from correlationId to the instance that claimed it.
pub const CLAIMS_KEY: &str = "rinha:claims";

/// Claims a payment for an instance, once.
/// KEYS: the claims hash. ARGV: id hex, the claiming instance's id.
/// Returns the instance whose claim stands.
pub const CLAIM_SCRIPT: &str = r"
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
";

/// Counts and sums the records of each processor in a window.
/// KEYS: the default's sorted set, the fallback's sorted set.
/// ARGV: the window's inclusive bounds as scores (`-inf`/`+inf` when open).
/// Returns `{count_default, cents_default, count_fallback, cents_fallback}`. A member
/// without a cents prefix fails the script rather than be skipped.
pub const SUMMARY_SCRIPT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local members = redis.call('ZRANGEBYSCORE', key, ARGV[1], ARGV[2])
  local cents = 0
  for _, m in ipairs(members) do
    cents = cents + tonumber(string.match(m, '^(%-?%d+):'))
  end
  out[2 * i - 1] = #members
  out[2 * i] = cents
end
return out
";

/// One core's handle on the Redis ledger.
pub struct RedisLedger {
    target: RedisTarget,
    /// This instance's `INSTANCE_ID`, what its claims say.
    claimant: String,
    /// The connection while no call holds it; `None` before the first call and after a
    /// failure.
    conn: Cell<Option<RedisConn>>,
    /// Whether a call holds the connection now.
    busy: Cell<bool>,
    /// Calls waiting for their turn; all are woken when the turn passes, and those that
    /// lose the race wait again.
    waiters: RefCell<Vec<Waker>>,
}

/// A call's turn on the connection; dropping it (on completion or cancellation) passes
/// the turn on.
struct Turn<'a> {
    ledger: &'a RedisLedger,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.ledger.busy.set(false);
        let waiters = std::mem::take(&mut *self.ledger.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

impl RedisLedger {
    /// A handle that connects to `target` on first use and claims payments for the
    /// instance `claimant`.
    pub fn new(target: RedisTarget, claimant: &str) -> RedisLedger {
        RedisLedger {
            target,
            claimant: claimant.to_string(),
            conn: Cell::new(None),
            busy: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Waits until no other call of this handle holds the connection.
    async fn turn(&self) -> Turn<'_> {
        poll_fn(|cx| {
            if self.busy.get() {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                self.busy.set(true);
                Poll::Ready(())
            }
        })
        .await;
        Turn { ledger: self }
    }

    /// Sends one command on the handle's connection (connecting first if needed). The
    /// connection is held by value for the call and put back only after a clean reply.
    async fn query(&self, cmd: &::redis::Cmd) -> Result<Value, LedgerError> {
        let _turn = self.turn().await;
        let call = async {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => RedisConn::connect(&self.target)
                    .await
                    .map_err(|e| LedgerError::Redis(format!("connect to {}: {e}", self.target)))?,
            };
            let reply = conn
                .query(cmd)
                .await
                .map_err(|e| LedgerError::Redis(format!("{}: {e}", self.target)))?;
            self.conn.set(Some(conn));
            Ok(reply)
        };
        // On timeout the call is dropped with the connection it holds, so a late reply
        // can never be read as the answer to a later command.
        match monoio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result,
            Err(_) => Err(LedgerError::Redis(format!(
                "{}: no answer within {CALL_TIMEOUT:?}",
                self.target
            ))),
        }
    }

    /// Drops the connection after a reply that makes no sense: whatever went wrong, the
    /// next call starts on a fresh one.
    fn unexpected(&self, what: &str, reply: &Value) -> LedgerError {
        self.conn.set(None);
        LedgerError::Redis(format!(
            "{}: unexpected reply to {what}: {reply:?}",
            self.target
        ))
    }
}

/// The score bound of a window side: the time itself (inclusive) or the open end.
fn score_bound(bound: Option<Micros>, open: &str) -> String {
    match bound {
        Some(t) => t.to_string(),
        None => open.to_owned(),
    }
}

impl Ledger for RedisLedger {
    async fn record(&self, rec: Record) -> Result<bool, LedgerError> {
        if rec.requested_at.unsigned_abs() > MAX_EXACT_MICROS.unsigned_abs() {
            return Err(LedgerError::Redis(format!(
                "requestedAt {} µs is beyond what a sorted-set score holds exactly",
                rec.requested_at
            )));
        }
        let id = format!("{:032x}", rec.id);
        let name = rec.processor.name();
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(RECORD_SCRIPT)
            .arg(2)
            .arg(LEDGER_KEY)
            .arg(processor_key(rec.processor))
            .arg(&id)
            .arg(format!("{name}:{}:{}", rec.requested_at, rec.cents))
            .arg(rec.requested_at)
            .arg(format!("{}:{id}", rec.cents));
        match self.query(&cmd).await? {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            other => Err(self.unexpected("record", &other)),
        }
    }

    async fn summary(&self, window: Window) -> Result<Summary, LedgerError> {
        self.local_summary(window).await
    }

    async fn local_summary(&self, window: Window) -> Result<Summary, LedgerError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(SUMMARY_SCRIPT).arg(Processor::ALL.len());
        for p in Processor::ALL {
            cmd.arg(processor_key(p));
        }
        cmd.arg(score_bound(window.from, "-inf"))
            .arg(score_bound(window.to, "+inf"));
        let reply = self.query(&cmd).await?;
        let totals = |count: &Value, cents: &Value| match (count, cents) {
            (&Value::Int(count), &Value::Int(cents)) => Some(Totals {
                count: u64::try_from(count).ok()?,
                cents,
            }),
            _ => None,
        };
        let summary = match &reply {
            Value::Array(v) => match v.as_slice() {
                [dc, ds, fc, fs] => totals(dc, ds).zip(totals(fc, fs)),
                _ => None,
            },
            _ => None,
        };
        match summary {
            Some((default, fallback)) => Ok(Summary { default, fallback }),
            None => Err(self.unexpected("summary", &reply)),
        }
    }

    async fn purge(&self) -> Result<(), LedgerError> {
        self.local_purge().await
    }

    async fn local_purge(&self) -> Result<(), LedgerError> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(LEDGER_KEY);
        for p in Processor::ALL {
            cmd.arg(processor_key(p));
        }
        match self.query(&cmd).await? {
            Value::Int(_) => Ok(()),
            other => Err(self.unexpected("purge", &other)),
        }
    }

    async fn claim(&self, id: u128) -> Result<Claim, LedgerError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(CLAIM_SCRIPT)
            .arg(1)
            .arg(CLAIMS_KEY)
            .arg(format!("{id:032x}"))
            .arg(&self.claimant);
        match self.query(&cmd).await? {
            Value::BulkString(who) if who == self.claimant.as_bytes() => {
                Ok(Claim::Mine { kept_here: false })
            }
            Value::BulkString(_) => Ok(Claim::Theirs),
            other => Err(self.unexpected("claim", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::rc::Rc;

    use super::*;
    use stack::child::Output;
    use stack::redis::{Listen, Redis};

    /// A real redis-server of this test's own, in a private directory.
    fn server(listen: Listen) -> Redis {
        Redis::start(listen, Output::Captured).expect("redis-server must be installed")
    }

    fn ledger(url: &str) -> RedisLedger {
        RedisLedger::new(RedisTarget::parse(url).unwrap(), "gw-a")
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
        let b = RedisLedger::new(RedisTarget::parse(&server.url()).unwrap(), "gw-b");
        let mine = Claim::Mine { kept_here: false };
        assert_eq!(a.claim(1).await.unwrap(), mine);
        assert_eq!(b.claim(1).await.unwrap(), Claim::Theirs);
        assert_eq!(a.claim(1).await.unwrap(), mine, "its own claim again");
        assert_eq!(b.claim(2).await.unwrap(), mine);
        assert_eq!(a.claim(2).await.unwrap(), Claim::Theirs);
        a.purge().await.unwrap();
        assert_eq!(b.claim(1).await.unwrap(), Claim::Theirs);
        // A restarted instance (a new handle, the same INSTANCE_ID) keeps its claims.
        assert_eq!(ledger(&server.url()).claim(1).await.unwrap(), mine);
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
}
