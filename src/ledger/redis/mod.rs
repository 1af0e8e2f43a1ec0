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
//! - `record` runs [`RECORD_SCRIPT`]: `HSETNX`, then `ZADD` only if the id was new;
//!   the payment's journal entry is acknowledged in the same script.
//! - `summary` runs [`SUMMARY_SCRIPT`]: for each processor, `ZRANGEBYSCORE` over the
//!   inclusive window (`-inf`/`+inf` for open bounds) and a sum of the members' cents
//!   prefixes, server side. Lua numbers are doubles, so the sums are exact below 2^53
//!   cents (about 90 trillion in currency units). Only four integers come back, whatever
//!   the window holds.
//! - `purge` deletes the three keys.
//! - `claim` runs [`CLAIM_SCRIPT`] on `rinha:claims`, a hash from correlationId to the
//!   journal consumer whose entry claimed it first (`HSETNX`, then `HGET`): the payment
//!   is that entry's to charge ([`stream`]). Purges keep the claims, as they keep
//!   acceptances.
//!
//! Redis is the whole cluster's ledger, so `summary` is `local_summary` and `purge` is
//! `local_purge`.
//!
//! [`stream`] is the journal that makes this ledger durable: a Redis Stream of accepted
//! payments, read by one consumer group, from which a survivor takes a dead gateway's
//! unsettled payments over. The record script acknowledges the payment's entry in the
//! same call.
//!
//! A [`RedisLedger`] is one core's handle with two connections ([`channel::Channel`]):
//! one for the acceptances' commits, so that 202s never wait behind the payment path,
//! and one for everything else. Nothing is retried here (the caller retries records).

pub mod channel;
pub mod stream;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ::redis::Value;

use super::{Claim, Inherited, Ledger, LedgerError, Liveness, Origin, Permit, Record, Summary};
use super::{Totals, Window};
use crate::processor::Processor;
use channel::Channel;
use domain::money::Cents;
use domain::time::Micros;
use redis_wire::RedisTarget;
use stream::{ack_lua, entry_field, Staged, Step};
use stream::{ENTRIES_KEY, GROUP, INTENTS_KEY, STREAM_KEY, TAKEN_KEY};

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

/// Records a payment once and closes its journal entry.
/// KEYS: the ledger hash, the processor's sorted set, the stream, the entries hash, the
/// intents hash.
/// ARGV: id hex, `"<processor>:<micros>:<cents>"`, micros, `"<cents>:<id hex>"`, the
/// group, the entry's field.
/// Returns 1 if the id was new, 0 if it was already recorded (the record stands).
pub const RECORD_SCRIPT: &str = concat!(
    ack_lua!(),
    r"
ack(KEYS[3], KEYS[4], ARGV[5], ARGV[6])
redis.call('HDEL', KEYS[5], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"
);

/// The hash from correlationId to the journal entry's consumer that claimed it.
pub const CLAIMS_KEY: &str = "rinha:claims";

/// Claims a payment for a journal entry's consumer, once.
/// KEYS: the claims hash. ARGV: id hex, the consumer.
/// Returns the consumer whose claim stands.
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

/// Entries taken over per call: the survivor's core does not stop for long.
const TAKEOVER_BATCH: usize = 256;

/// One core's handle on the Redis ledger and its journal.
pub struct RedisLedger {
    /// Records, summaries, purges, claims, intents, leases.
    payments: Channel,
    /// Acceptance commits only.
    intake: Channel,
    /// The journal consumer of each [`Origin`] by its index: this process's own first,
    /// then those whose payments this handle took over.
    origins: RefCell<Vec<Rc<str>>>,
    /// How long a consumer's lease lasts without a heartbeat (`JOURNAL_LEASE_MS`).
    lease: Duration,
    staged: Staged,
}

impl RedisLedger {
    /// A handle that connects to `target` on first use, with `consumer` the journal
    /// consumer of this process (the same on every core, new at every start).
    pub fn new(target: RedisTarget, consumer: &str, lease: Duration) -> RedisLedger {
        RedisLedger {
            payments: Channel::new(target.clone()),
            intake: Channel::new(target),
            origins: RefCell::new(vec![Rc::from(consumer)]),
            lease,
            staged: Staged::default(),
        }
    }

    /// The consumer of `origin`'s journal entries.
    fn consumer(&self, origin: Origin) -> Rc<str> {
        let origins = self.origins.borrow();
        origins
            .get(usize::from(origin.0))
            .unwrap_or(&origins[0])
            .clone()
    }

    /// The [`Origin`] of entries accepted by `consumer`, registered on first sight.
    fn origin_of(&self, consumer: &str) -> Origin {
        let mut origins = self.origins.borrow_mut();
        if let Some(i) = origins.iter().position(|c| &**c == consumer) {
            return Origin(i as u16);
        }
        origins.push(Rc::from(consumer));
        Origin((origins.len() - 1) as u16)
    }

    /// Asks for up to [`TAKEOVER_BATCH`] entries of `dead`: `None` while it is alive.
    async fn take_from(&self, dead: &str) -> Result<Option<Vec<Inherited>>, LedgerError> {
        let me = self.consumer(Origin::OWN);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(stream::TAKEOVER_SCRIPT)
            .arg(4)
            .arg(STREAM_KEY)
            .arg(stream::alive_key(dead))
            .arg(TAKEN_KEY)
            .arg(INTENTS_KEY)
            .arg(GROUP)
            .arg(dead)
            .arg(&*me)
            .arg(TAKEOVER_BATCH);
        let reply = self.payments.query(&cmd).await?;
        let rows = match &reply {
            Value::Nil => return Ok(None),
            Value::Array(rows) => rows,
            _ => return Err(self.payments.unexpected("takeover", &reply)),
        };
        let mut taken = Vec::with_capacity(rows.len());
        for row in rows {
            match parse_taken(row) {
                Some((by, t)) => taken.push(Inherited {
                    origin: self.origin_of(&by),
                    ..t
                }),
                None => return Err(self.payments.unexpected("takeover", row)),
            }
        }
        Ok(Some(taken))
    }

    /// The consumers of the group other than this one.
    async fn other_consumers(&self) -> Result<Vec<String>, LedgerError> {
        let mut cmd = ::redis::cmd("XINFO");
        cmd.arg("CONSUMERS").arg(STREAM_KEY).arg(GROUP);
        let reply = match self.payments.query(&cmd).await {
            Ok(r) => r,
            // No stream or no group yet: no consumer either.
            Err(LedgerError::Redis(e)) if e.contains("no such key") || e.contains("NOGROUP") => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let me = self.consumer(Origin::OWN);
        let Value::Array(consumers) = &reply else {
            return Err(self.payments.unexpected("XINFO CONSUMERS", &reply));
        };
        let mut names = Vec::new();
        for c in consumers {
            match consumer_name(c) {
                Some(name) if *name != *me => names.push(name),
                Some(_) => {}
                None => return Err(self.payments.unexpected("XINFO CONSUMERS", c)),
            }
        }
        Ok(names)
    }
}

/// A row of the takeover script: the accepting consumer, and the payment (its origin
/// still to be set from that consumer).
fn parse_taken(row: &Value) -> Option<(String, Inherited)> {
    let Value::Array(f) = row else { return None };
    let [Value::BulkString(by), Value::BulkString(id), Value::BulkString(cents), Value::BulkString(intent)] =
        f.as_slice()
    else {
        return None;
    };
    let by = String::from_utf8(by.clone()).ok()?;
    let id = u128::from_str_radix(std::str::from_utf8(id).ok()?, 16).ok()?;
    let cents = std::str::from_utf8(cents).ok()?.parse().ok()?;
    let intent = if intent.is_empty() {
        None
    } else {
        let (p, at) = std::str::from_utf8(intent).ok()?.split_once(':')?;
        Some((Processor::from_name(p)?, at.parse().ok()?))
    };
    let origin = Origin::OWN;
    Some((
        by,
        Inherited {
            origin,
            id,
            cents,
            intent,
        },
    ))
}

/// The name in one consumer's `XINFO CONSUMERS` entry (a flat list of fields and
/// values, or a map).
fn consumer_name(c: &Value) -> Option<String> {
    let name = match c {
        Value::Array(kv) => kv
            .chunks(2)
            .find(|p| matches!(&p[0], Value::BulkString(k) if k == b"name"))
            .and_then(|p| p.get(1)),
        Value::Map(kv) => kv
            .iter()
            .find(|(k, _)| matches!(k, Value::BulkString(k) if k == b"name"))
            .map(|(_, v)| v),
        _ => None,
    }?;
    match name {
        Value::BulkString(n) => String::from_utf8(n.clone()).ok(),
        _ => None,
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
        self.settle(rec, Origin::OWN).await
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
        let reply = self.payments.query(&cmd).await?;
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
            None => Err(self.payments.unexpected("summary", &reply)),
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
        match self.payments.query(&cmd).await? {
            Value::Int(_) => Ok(()),
            other => Err(self.payments.unexpected("purge", &other)),
        }
    }

    async fn claim(&self, id: u128, origin: Origin) -> Result<Claim, LedgerError> {
        let claimant = self.consumer(origin);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(CLAIM_SCRIPT)
            .arg(1)
            .arg(CLAIMS_KEY)
            .arg(format!("{id:032x}"))
            .arg(&*claimant);
        match self.payments.query(&cmd).await? {
            Value::BulkString(who) if who == claimant.as_bytes() => {
                Ok(Claim::Mine { kept_here: false })
            }
            Value::BulkString(_) => Ok(Claim::Theirs),
            other => Err(self.payments.unexpected("claim", &other)),
        }
    }

    fn stage(&self, id: u128, cents: Cents) {
        self.staged.add(id, cents);
    }

    async fn commit(&self) -> Result<(), LedgerError> {
        let target = self.staged.target();
        loop {
            let flush = match self.staged.next(target).await {
                Step::Done => return Ok(()),
                Step::Flush(f) => f,
            };
            if flush.batch().is_empty() {
                self.staged.flushed(flush, true);
                continue;
            }
            let me = self.consumer(Origin::OWN);
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(stream::ACCEPT_SCRIPT)
                .arg(2)
                .arg(STREAM_KEY)
                .arg(ENTRIES_KEY)
                .arg(GROUP)
                .arg(&*me);
            for &(id, cents) in flush.batch() {
                cmd.arg(format!("{id:032x}")).arg(cents);
            }
            let result = match self.intake.query(&cmd).await {
                Ok(Value::Int(n)) if n as usize == flush.batch().len() => Ok(()),
                Ok(other) => Err(self.intake.unexpected("accept", &other)),
                Err(e) => Err(e),
            };
            self.staged.flushed(flush, result.is_ok());
            return result;
        }
    }

    async fn intent(
        &self,
        id: u128,
        origin: Origin,
        processor: Processor,
        requested_at: Micros,
    ) -> Result<Permit, LedgerError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(stream::INTENT_SCRIPT)
            .arg(5)
            .arg(CLAIMS_KEY)
            .arg(ENTRIES_KEY)
            .arg(STREAM_KEY)
            .arg(TAKEN_KEY)
            .arg(INTENTS_KEY)
            .arg(format!("{id:032x}"))
            .arg(&*self.consumer(origin))
            .arg(&*self.consumer(Origin::OWN))
            .arg(GROUP)
            .arg(format!("{}:{requested_at}", processor.name()));
        match self.payments.query(&cmd).await? {
            Value::Int(1) => Ok(Permit::Go),
            Value::Int(0) => Ok(Permit::Theirs),
            Value::Int(-1) => Ok(Permit::TakenOver),
            other => Err(self.payments.unexpected("intent", &other)),
        }
    }

    async fn settle(&self, rec: Record, origin: Origin) -> Result<bool, LedgerError> {
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
            .arg(5)
            .arg(LEDGER_KEY)
            .arg(processor_key(rec.processor))
            .arg(STREAM_KEY)
            .arg(ENTRIES_KEY)
            .arg(INTENTS_KEY)
            .arg(&id)
            .arg(format!("{name}:{}:{}", rec.requested_at, rec.cents))
            .arg(rec.requested_at)
            .arg(format!("{}:{id}", rec.cents))
            .arg(GROUP)
            .arg(entry_field(&self.consumer(origin), rec.id));
        match self.payments.query(&cmd).await? {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            other => Err(self.payments.unexpected("record", &other)),
        }
    }

    async fn release(&self, id: u128, origin: Origin) -> Result<(), LedgerError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(stream::RELEASE_SCRIPT)
            .arg(2)
            .arg(STREAM_KEY)
            .arg(ENTRIES_KEY)
            .arg(GROUP)
            .arg(entry_field(&self.consumer(origin), id));
        match self.payments.query(&cmd).await? {
            Value::Int(1) => Ok(()),
            other => Err(self.payments.unexpected("release", &other)),
        }
    }

    async fn heartbeat(&self) -> Result<Liveness, LedgerError> {
        let me = self.consumer(Origin::OWN);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(stream::HEARTBEAT_SCRIPT)
            .arg(2)
            .arg(stream::alive_key(&me))
            .arg(TAKEN_KEY)
            .arg(&*me)
            .arg(self.lease.as_millis() as u64);
        match self.payments.query(&cmd).await? {
            Value::Nil => Ok(Liveness::Alive),
            Value::BulkString(by) => Ok(Liveness::TakenOver {
                by: String::from_utf8_lossy(&by).into_owned(),
            }),
            other => Err(self.payments.unexpected("heartbeat", &other)),
        }
    }

    async fn take_over(&self) -> Result<Vec<Inherited>, LedgerError> {
        for dead in self.other_consumers().await? {
            if let Some(taken) = self.take_from(&dead).await? {
                if !taken.is_empty() {
                    return Ok(taken);
                }
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests;
