//! The Redis ledger's journal: every accepted payment is an entry of one Redis Stream,
//! pending in one consumer group until it is settled, so that a gateway that dies
//! loses nothing: a survivor takes its pending entries over and settles them.
//!
//! Keys (beside the ledger's own, [`super`]):
//! - [`STREAM_KEY`], read by the consumer group [`GROUP`]: one entry per accepted
//!   payment, with its correlationId (`id`, 32 hex digits), its amount (`cents`) and the
//!   consumer that accepted it (`by`).
//! - [`ENTRIES_KEY`]: a hash from `"<consumer>:<id hex>"` to that payment's entry id, so
//!   that the settling script finds the entry to acknowledge.
//! - [`INTENTS_KEY`]: a hash from correlationId to the last attempt's
//!   `"<processor>:<requestedAt µs>"`, written before the attempt is sent.
//! - [`TAKEN_KEY`]: a hash from a consumer to the consumer that took its journal over.
//! - [`alive_key`]: one key per live consumer, set with a lease of `JOURNAL_LEASE_MS`
//!   and refreshed three times per lease.
//!
//! A consumer is one run of a gateway: `"<INSTANCE_ID>:<random>"`, new at every start.
//! It is also what a payment's claim says (`rinha:claims`), so the claim of a payment
//! names the journal entry that may charge it, wherever that entry is taken.
//!
//! The life of an entry:
//! - **Accepted**: [`ACCEPT_SCRIPT`] adds one entry per payment of a batch of requests
//!   read together and delivers them to the accepting consumer (`XREADGROUP`), in one
//!   call before the batch's 202s leave (group commit).
//! - **Intent**: [`INTENT_SCRIPT`], before each attempt: the attempt goes out only if
//!   the claim is the entry's and the entry is still pending at this consumer.
//! - **Settled**: the ledger's record script, or [`RELEASE_SCRIPT`] when another entry
//!   holds the claim, acknowledges and deletes the entry (`XACK`, `XDEL`) in the same
//!   script, so the stream holds only what is unsettled.
//! - **Taken over**: a consumer whose lease ran out is taken over by the first live one
//!   that looks ([`TAKEOVER_SCRIPT`]): its pending entries move to the taker
//!   (`XCLAIM`), each with its last intent, and the taker settles them as a restarted
//!   gateway settles its own journal: pinned to the processor of the last intent and
//!   looked up first, with the `requestedAt` that was sent. `XAUTOCLAIM` would take
//!   any entry idle that long, including a live gateway's payments that wait while both
//!   processors fail; taking by consumer, once its lease is gone, takes only the dead
//!   one's. A gateway that finds its own journal taken (it stalled past its lease) stops
//!   sending and exits, since its payments are the taker's now.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

use domain::money::Cents;

/// The stream of accepted payments.
pub const STREAM_KEY: &str = "rinha:journal";
/// The consumer group every gateway of the cluster reads [`STREAM_KEY`] in.
pub const GROUP: &str = "gateways";
/// `"<consumer>:<id hex>"` to the entry id of that consumer's acceptance of that id.
pub const ENTRIES_KEY: &str = "rinha:journal:entries";
/// correlationId to the last attempt's `"<processor>:<requestedAt µs>"`.
pub const INTENTS_KEY: &str = "rinha:journal:intents";
/// Consumer to the consumer that took its pending entries over.
pub const TAKEN_KEY: &str = "rinha:journal:taken";

/// The lease key of `consumer`: present while it is alive.
pub fn alive_key(consumer: &str) -> String {
    format!("rinha:journal:alive:{consumer}")
}

/// The [`ENTRIES_KEY`] field of `consumer`'s acceptance of `id`.
pub fn entry_field(consumer: &str, id: u128) -> String {
    format!("{consumer}:{id:032x}")
}

/// Lua: acknowledges and deletes the entry `key` names in the entries hash, if any.
/// Shared by the scripts that settle a payment.
macro_rules! ack_lua {
    () => {
        r"
local function ack(stream, entries, group, key)
  local e = redis.call('HGET', entries, key)
  if e then
    redis.call('XACK', stream, group, e)
    redis.call('XDEL', stream, e)
    redis.call('HDEL', entries, key)
  end
end
"
    };
}
pub(crate) use ack_lua;

/// Journals a batch of acceptances.
/// KEYS: the stream, the entries hash. ARGV: the group, the consumer, then for each
/// payment its id hex and cents.
/// Adds one entry per payment and delivers exactly those to the consumer: every entry
/// is added by this script, which delivers what it added before anything else runs.
pub const ACCEPT_SCRIPT: &str = r"
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM')
local n = 0
for i = 3, #ARGV, 2 do
  local e = redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'cents', ARGV[i + 1], 'by', ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2] .. ':' .. ARGV[i], e)
  n = n + 1
end
redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', n, 'STREAMS', KEYS[1], '>')
return n
";

/// Allows one attempt and journals its intent.
/// KEYS: the claims hash, the entries hash, the stream, the taken hash, the intents hash.
/// ARGV: id hex, the entry's consumer (the claimant), this consumer, the group,
/// `"<processor>:<requestedAt>"`.
/// Returns 1 (go), 0 (another entry holds the claim) or -1 (this consumer no longer
/// holds the entry: taken over).
pub const INTENT_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local e = redis.call('HGET', KEYS[2], ARGV[2] .. ':' .. ARGV[1])
if e then
  local p = redis.call('XPENDING', KEYS[3], ARGV[4], e, e, 1)
  if not p[1] or p[1][2] ~= ARGV[3] then return -1 end
elseif ARGV[2] ~= ARGV[3] or redis.call('HEXISTS', KEYS[4], ARGV[3]) == 1 then
  return -1
end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
return 1
";

/// Settles an entry without a charge (another entry holds the claim).
/// KEYS: the stream, the entries hash. ARGV: the group, the entry's field.
pub const RELEASE_SCRIPT: &str = concat!(
    ack_lua!(),
    r"
ack(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
"
);

/// Renews this consumer's lease, unless its journal was taken over.
/// KEYS: its alive key, the taken hash. ARGV: the consumer, the lease in ms.
/// Returns nil, or the consumer that took it over.
pub const HEARTBEAT_SCRIPT: &str = r"
local by = redis.call('HGET', KEYS[2], ARGV[1])
if by then return by end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return false
";

/// Takes up to `ARGV[4]` pending entries of a consumer whose lease ran out.
/// KEYS: the stream, the dead consumer's alive key, the taken hash, the intents hash.
/// ARGV: the group, the dead consumer, this consumer, the count.
/// Returns nil while the consumer is alive; else, for each entry taken,
/// `{accepting consumer, id hex, cents, last intent or ''}`; an empty list once none is
/// left (the consumer is then deleted from the group).
pub const TAKEOVER_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
if #pending == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return {}
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local out = {}
for _, p in ipairs(pending) do
  local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, p[1])
  local e = got[1]
  if e then
    local f = {}
    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
    out[#out + 1] = {f['by'], f['id'], f['cents'], redis.call('HGET', KEYS[4], f['id']) or ''}
  else
    redis.call('XACK', KEYS[1], ARGV[1], p[1])
  end
end
return out
";

/// Acceptances waiting for their batch's commit, and the commits under way: one core's
/// group commit. A connection's commit covers every acceptance staged before it, so it
/// is done when a flush that began after them has succeeded.
#[derive(Default)]
pub struct Staged {
    batch: RefCell<Vec<(u128, Cents)>>,
    /// Acceptances staged so far, ever: the sequence number of the last one.
    staged: Cell<u64>,
    /// Every acceptance up to this sequence number is journaled.
    durable: Cell<u64>,
    /// Whether a flush is under way.
    flushing: Cell<bool>,
    /// Bumped when a flush ends.
    flushes: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

/// What [`Staged::next`] says a commit must do.
pub enum Step<'a> {
    /// Everything the commit covers is journaled.
    Done,
    /// Flush this batch, then call [`Staged::flushed`].
    Flush(Flush<'a>),
}

/// A batch being flushed. Dropped without [`Staged::flushed`] (the commit was
/// cancelled), it goes back to the stage.
pub struct Flush<'a> {
    staged: &'a Staged,
    batch: Vec<(u128, Cents)>,
    upto: u64,
    ended: bool,
}

impl Flush<'_> {
    pub fn batch(&self) -> &[(u128, Cents)] {
        &self.batch
    }
}

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.staged
                .end(std::mem::take(&mut self.batch), false, self.upto);
        }
    }
}

impl Staged {
    /// Stages one acceptance for the next commit.
    pub fn add(&self, id: u128, cents: Cents) {
        self.batch.borrow_mut().push((id, cents));
        self.staged.set(self.staged.get() + 1);
    }

    /// The sequence number a commit made now must reach.
    pub fn target(&self) -> u64 {
        self.staged.get()
    }

    /// Waits until the commit that must reach `target` is done or must flush.
    pub async fn next(&self, target: u64) -> Step<'_> {
        loop {
            if self.durable.get() >= target {
                return Step::Done;
            }
            if !self.flushing.get() {
                self.flushing.set(true);
                return Step::Flush(Flush {
                    staged: self,
                    batch: std::mem::take(&mut *self.batch.borrow_mut()),
                    upto: self.staged.get(),
                    ended: false,
                });
            }
            let seen = self.flushes.get();
            poll_fn(|cx| {
                if self.flushes.get() != seen {
                    Poll::Ready(())
                } else {
                    self.waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
    }

    /// Ends `flush`: journaled, or put back to be flushed again by the next commit.
    pub fn flushed(&self, mut flush: Flush<'_>, ok: bool) {
        flush.ended = true;
        self.end(std::mem::take(&mut flush.batch), ok, flush.upto);
    }

    fn end(&self, batch: Vec<(u128, Cents)>, ok: bool, upto: u64) {
        if ok {
            self.durable.set(self.durable.get().max(upto));
        } else {
            // Back in front of whatever was staged meanwhile.
            let mut staged = self.batch.borrow_mut();
            let later = std::mem::replace(&mut *staged, batch);
            staged.extend(later);
        }
        self.flushing.set(false);
        self.flushes.set(self.flushes.get() + 1);
        for w in std::mem::take(&mut *self.waiters.borrow_mut()) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(step: &Step<'_>) -> Vec<u128> {
        match step {
            Step::Flush(f) => f.batch().iter().map(|&(id, _)| id).collect(),
            Step::Done => panic!("expected a flush"),
        }
    }

    #[monoio::test_all]
    async fn a_commit_waits_for_a_flush_that_covers_it() {
        let s = Staged::default();
        // Nothing staged: nothing to do.
        assert!(matches!(s.next(s.target()).await, Step::Done));
        s.add(1, 10);
        s.add(2, 20);
        let first = s.next(s.target()).await;
        assert_eq!(batch_of(&first), [1, 2]);
        // Staged while that flush is under way: the next flush takes it.
        s.add(3, 30);
        let target = s.target();
        let Step::Flush(f) = first else {
            unreachable!()
        };
        s.flushed(f, true);
        let second = s.next(target).await;
        assert_eq!(batch_of(&second), [3]);
        let Step::Flush(f) = second else {
            unreachable!()
        };
        s.flushed(f, true);
        assert!(matches!(s.next(target).await, Step::Done));
    }

    #[monoio::test_all]
    async fn a_failed_or_cancelled_flush_is_flushed_again() {
        let s = Staged::default();
        s.add(1, 10);
        let target = s.target();
        let Step::Flush(f) = s.next(target).await else {
            panic!()
        };
        s.add(2, 20);
        s.flushed(f, false);
        // What failed goes first, then what came meanwhile.
        let again = s.next(target).await;
        assert_eq!(batch_of(&again), [1, 2]);
        drop(again);
        let last = s.next(s.target()).await;
        assert_eq!(batch_of(&last), [1, 2]);
        let Step::Flush(f) = last else { unreachable!() };
        s.flushed(f, true);
        assert!(matches!(s.next(target).await, Step::Done));
    }
}
