//! The memory ledger: this instance's records, shared by its cores, plus the peers'
//! partial sums for cluster-wide summaries.
//!
//! Records go into one [`MemoryStore`] behind a mutex: recording happens a few hundred
//! times a second and holds the lock for one hash insert and one append, so contention
//! between a handful of cores is negligible. The store keeps, per processor, the
//! records' `(requestedAt, cents)` in `requestedAt` order with running sums of the
//! cents, so a summary is two binary searches and a subtraction whatever the ledger's
//! size, and the recorded correlationIds in a seeded [`IdSet`] (so a record is taken once
//! per id, and no choice of ids slows it down). A record costs 16 bytes in its series
//! and 21–43 in the id set.
//!
//! Records arrive nearly in `requestedAt` order: one later than every other is
//! appended; an earlier one waits in a small buffer, merged into place (the series'
//! tail from its position on is rewritten) when the buffer fills or a summary comes.
//! Purging frees both.
//!
//! A summary asks every peer for its partial sums over the internal endpoint
//! (`GET /internal/summary`), and fails if any peer cannot answer: a partial number
//! would be an audit inconsistency, a 503 is not. Peer requests carry the headers of
//! [`MemoryLedger::with_peer_headers`] (the shared `PEER_TOKEN`).
//!
//! Claims ([`super::claims`]): an id this instance owns is claimed in the instance's
//! [`ClaimTable`]; any other from its owner, through that owner's [`ClaimBatcher`].

use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;

use super::claims::{ClaimBatcher, ClaimTable, Ring, RING_HEADER};
use super::idset::IdSet;
use super::{Claim, Ledger, LedgerError, Origin, Record, Summary, Totals, Window};
use crate::processor::Processor;
use domain::time::Micros;
use http1::client::Client;
use net::addr::Addr;

/// Path of the internal endpoint answering this instance's own partial sums, with
/// `from_us` / `to_us` bounds in microseconds.
pub const INTERNAL_SUMMARY_PATH: &str = "/internal/summary";
/// Path of the internal endpoint that purges this instance's own records.
pub const INTERNAL_PURGE_PATH: &str = "/internal/purge";
/// How long a peer gets to answer: the summary's caller (the audit) waits on it, and the
/// official test gives up after 1.5 s, so our 503 must come first.
const PEER_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Idle connections kept to each peer: summaries are rare and sequential.
const PEER_IDLE_CONNECTIONS: usize = 2;

/// Entries per chunk of a series: 64 KiB each, so that growing a series never copies
/// it (a `Vec` doubling would hold the old and the new buffer at once).
const CHUNK: usize = 4096;
/// Out-of-order records buffered before they are merged into their series.
const PENDING_MAX: usize = 1024;

/// A record in its series: its `requestedAt` and the running sum of the cents of every
/// entry up to and including it. The sum wraps on overflow, so that the difference of
/// two sums is the window's exact total whenever that total fits an `i64`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    at: Micros,
    sum: i64,
}

/// One processor's records in `requestedAt` order.
#[derive(Default)]
struct Series {
    /// Full chunks of `CHUNK` entries, and a last one being filled.
    chunks: Vec<Vec<Entry>>,
    len: usize,
    /// Records earlier than the last entry, as `(requestedAt, cents)`, not yet merged.
    pending: Vec<(Micros, i64)>,
}

impl Series {
    fn get(&self, i: usize) -> Entry {
        self.chunks[i / CHUNK][i % CHUNK]
    }

    /// The running sum of the entries before index `i`.
    fn sum_before(&self, i: usize) -> i64 {
        if i == 0 {
            0
        } else {
            self.get(i - 1).sum
        }
    }

    fn push_sorted(&mut self, at: Micros, cents: i64) {
        let sum = self.sum_before(self.len).wrapping_add(cents);
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(Entry { at, sum }),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(Entry { at, sum });
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    fn truncate(&mut self, len: usize) {
        self.chunks.truncate(len.div_ceil(CHUNK));
        if let Some(c) = self.chunks.last_mut() {
            c.truncate(len - (len - 1) / CHUNK * CHUNK);
        }
        self.len = len;
    }

    /// The first index whose entry is not `before` (which holds for a prefix).
    fn partition_point(&self, before: impl Fn(Micros) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(self.get(mid).at) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn record(&mut self, at: Micros, cents: i64) {
        let in_order = self.len == 0 || at >= self.get(self.len - 1).at;
        if in_order && self.pending.is_empty() {
            self.push_sorted(at, cents);
        } else {
            self.pending.push((at, cents));
            if self.pending.len() >= PENDING_MAX {
                self.merge();
            }
        }
    }

    /// Puts the pending records in place: the entries after the earliest of them are
    /// taken off, merged with them, and appended again.
    fn merge(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|&(at, _)| at);
        let from = self.partition_point(|at| at <= pending[0].0);
        let tail: Vec<(Micros, i64)> = (from..self.len)
            .map(|i| {
                (
                    self.get(i).at,
                    self.get(i).sum.wrapping_sub(self.sum_before(i)),
                )
            })
            .collect();
        self.truncate(from);
        let (mut a, mut b) = (tail.into_iter().peekable(), pending.drain(..).peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), None) => a.next(),
                (_, Some(_)) => b.next(),
                (None, None) => break,
            };
            let (at, cents) = next.expect("peeked");
            self.push_sorted(at, cents);
        }
        // Keep the buffer's allocation for the next out-of-order records.
        drop(b);
        self.pending = pending;
    }

    /// Count and sum of the entries in `w` (pending records merged first).
    fn totals(&mut self, w: Window) -> Totals {
        self.merge();
        let lo = w.from.map_or(0, |f| self.partition_point(|at| at < f));
        let hi =
            w.to.map_or(self.len, |t| self.partition_point(|at| at <= t));
        if hi <= lo {
            return Totals::default();
        }
        Totals {
            count: (hi - lo) as u64,
            cents: self.sum_before(hi).wrapping_sub(self.sum_before(lo)),
        }
    }
}

#[derive(Default)]
struct Records {
    /// correlationIds recorded, so that each is taken once.
    ids: IdSet,
    /// By `Processor::index`.
    series: [Series; 2],
}

/// The records of one instance, shared by its cores.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Records> {
        // A poisoned lock means a core panicked while holding it; nothing here panics
        // short of an allocation failure, which aborts, so the data is still sound.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a settled payment; false when its correlationId was already recorded
    /// (the first record stands).
    pub fn record(&self, r: Record) -> bool {
        let mut records = self.lock();
        if !records.ids.insert(r.id) {
            return false;
        }
        records.series[r.processor.index()].record(r.requested_at, r.cents);
        true
    }

    pub fn summary(&self, w: Window) -> Summary {
        let mut records = self.lock();
        Summary {
            default: records.series[Processor::Default.index()].totals(w),
            fallback: records.series[Processor::Fallback.index()].totals(w),
        }
    }

    /// Forgets every record and recorded id, and frees their memory.
    pub fn purge(&self) {
        let mut records = self.lock();
        records.ids.clear();
        records.series = Default::default();
    }
}

/// One core's handle on the memory ledger.
pub struct MemoryLedger {
    store: Arc<MemoryStore>,
    peers: Vec<Rc<Client>>,
    /// Header lines (CRLF-terminated) every peer request carries.
    peer_headers: String,
    /// With peers: who owns which claims, and how to reach each owner.
    claims: Option<Claims>,
}

/// The claims side of a memory ledger with peers.
struct Claims {
    ring: Arc<Ring>,
    table: Arc<ClaimTable>,
    /// By ring position; `None` at this instance's own.
    owners: Vec<Option<ClaimBatcher>>,
}

impl MemoryLedger {
    pub fn new(store: Arc<MemoryStore>, peers: &[Addr]) -> MemoryLedger {
        let peers = peers
            .iter()
            .map(|a| Rc::new(Client::new(a.clone(), PEER_IDLE_CONNECTIONS)))
            .collect();
        MemoryLedger {
            store,
            peers,
            peer_headers: String::new(),
            claims: None,
        }
    }

    /// Claims by `ring`, keeping those on this instance's ids in `table`. Call after
    /// [`MemoryLedger::with_peer_headers`]: claims requests carry those headers too.
    /// Every member but this instance must be one of the peers.
    pub fn with_claims(mut self, ring: Arc<Ring>, table: Arc<ClaimTable>) -> MemoryLedger {
        let headers = format!(
            "{}{RING_HEADER}: {}\r\n",
            self.peer_headers,
            ring.fingerprint()
        );
        let owners = (0..ring.len())
            .map(|i| {
                let member = ring.member(i);
                let addr = self
                    .peers
                    .iter()
                    .map(|p| p.target())
                    .find(|a| i != ring.me() && a.to_string() == member)?;
                Some(ClaimBatcher::new(
                    Client::new(addr.clone(), PEER_IDLE_CONNECTIONS),
                    ring.me() as u8,
                    headers.clone(),
                ))
            })
            .collect();
        self.claims = Some(Claims {
            ring,
            table,
            owners,
        });
        self
    }

    /// Sends `headers` (complete lines, each ending in CRLF; the peer token) with every
    /// peer request.
    pub fn with_peer_headers(mut self, headers: String) -> MemoryLedger {
        self.peer_headers = headers;
        self
    }

    async fn peer_summary(&self, peer: &Client, w: Window) -> Result<Summary, LedgerError> {
        let mut path = String::from(INTERNAL_SUMMARY_PATH);
        let mut sep = '?';
        for (name, bound) in [("from_us", w.from), ("to_us", w.to)] {
            if let Some(b) = bound {
                path.push(sep);
                path.push_str(name);
                path.push('=');
                path.push_str(itoa::Buffer::new().format(b));
                sep = '&';
            }
        }
        let err = |reason: String| LedgerError::Peer {
            peer: peer.target().to_string(),
            reason,
        };
        let resp = peer
            .request("GET", &path, &self.peer_headers, b"", PEER_TIMEOUT)
            .await
            .map_err(|e| err(e.to_string()))?;
        if resp.status != 200 {
            return Err(err(format!("answered {}", resp.status)));
        }
        parse_partial(&resp.body).map_err(err)
    }
}

/// The internal summary's body: integer cents, so that nothing is lost in transit.
#[derive(Deserialize)]
struct Partial {
    default: PartialTotals,
    fallback: PartialTotals,
}

#[derive(Deserialize)]
struct PartialTotals {
    count: u64,
    cents: i64,
}

/// Appends the internal summary body for `s`.
pub fn write_partial(out: &mut Vec<u8>, s: &Summary) {
    let mut num = itoa::Buffer::new();
    for (i, (name, t)) in [("default", s.default), ("fallback", s.fallback)]
        .into_iter()
        .enumerate()
    {
        out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":{\"count\":");
        out.extend_from_slice(num.format(t.count).as_bytes());
        out.extend_from_slice(b",\"cents\":");
        out.extend_from_slice(num.format(t.cents).as_bytes());
        out.push(b'}');
    }
    out.push(b'}');
}

/// Reads a peer's internal summary body (as [`write_partial`] writes it).
pub fn parse_partial(body: &[u8]) -> Result<Summary, String> {
    let p: Partial =
        serde_json::from_slice(body).map_err(|e| format!("bad partial summary: {e}"))?;
    Ok(Summary {
        default: Totals {
            count: p.default.count,
            cents: p.default.cents,
        },
        fallback: Totals {
            count: p.fallback.count,
            cents: p.fallback.cents,
        },
    })
}

impl Ledger for MemoryLedger {
    async fn record(&self, rec: Record) -> Result<bool, LedgerError> {
        Ok(self.store.record(rec))
    }

    async fn summary(&self, window: Window) -> Result<Summary, LedgerError> {
        let mut total = self.store.summary(window);
        for peer in &self.peers {
            total.add(self.peer_summary(peer, window).await?);
        }
        Ok(total)
    }

    async fn local_summary(&self, window: Window) -> Result<Summary, LedgerError> {
        Ok(self.store.summary(window))
    }

    async fn purge(&self) -> Result<(), LedgerError> {
        self.store.purge();
        for peer in &self.peers {
            let err = |reason: String| LedgerError::Peer {
                peer: peer.target().to_string(),
                reason,
            };
            let resp = peer
                .request(
                    "POST",
                    INTERNAL_PURGE_PATH,
                    &self.peer_headers,
                    b"",
                    PEER_TIMEOUT,
                )
                .await
                .map_err(|e| err(e.to_string()))?;
            if resp.status != 200 {
                return Err(err(format!("answered {}", resp.status)));
            }
        }
        Ok(())
    }

    async fn local_purge(&self) -> Result<(), LedgerError> {
        self.store.purge();
        Ok(())
    }

    /// The memory ledger takes no journal over, so every payment is its own instance's.
    async fn claim(&self, id: u128, _origin: Origin) -> Result<Claim, LedgerError> {
        // Alone, an instance's accepted set already keeps each id once.
        let Some(c) = &self.claims else {
            return Ok(Claim::Mine { kept_here: false });
        };
        let owner = c.ring.owner(id);
        if owner == c.ring.me() {
            return Ok(if c.table.claim(id, owner as u8) {
                Claim::Mine { kept_here: true }
            } else {
                Claim::Theirs
            });
        }
        let Some(batcher) = &c.owners[owner] else {
            return Err(LedgerError::Peer {
                peer: c.ring.member(owner).to_string(),
                reason: "no peer at this ring position".to_string(),
            });
        };
        let granted = batcher.claim(id).await?;
        Ok(if granted {
            Claim::Mine { kept_here: false }
        } else {
            Claim::Theirs
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u128, p: Processor, t: Micros, cents: i64) -> Record {
        Record {
            id,
            processor: p,
            requested_at: t,
            cents,
        }
    }

    #[test]
    fn records_once_and_sums_inclusive_windows() {
        let s = MemoryStore::default();
        assert!(s.record(rec(1, Processor::Default, 10, 1990)));
        assert!(
            !s.record(rec(1, Processor::Fallback, 11, 1990)),
            "a second record of an id is ignored"
        );
        assert!(s.record(rec(2, Processor::Default, 20, 10)));
        assert!(s.record(rec(3, Processor::Fallback, 30, 5)));
        let all = s.summary(Window::ALL);
        assert_eq!(
            all.default,
            Totals {
                count: 2,
                cents: 2000
            }
        );
        assert_eq!(all.fallback, Totals { count: 1, cents: 5 });
        let w = s.summary(Window {
            from: Some(10),
            to: Some(20),
        });
        assert_eq!(
            w.default,
            Totals {
                count: 2,
                cents: 2000
            }
        );
        assert_eq!(w.fallback, Totals::default());
        let w = s.summary(Window {
            from: Some(11),
            to: None,
        });
        assert_eq!((w.default.count, w.fallback.count), (1, 1));
        let w = s.summary(Window {
            from: None,
            to: Some(9),
        });
        assert_eq!(w, Summary::default());
        s.purge();
        assert_eq!(s.summary(Window::ALL), Summary::default());
    }

    /// A splitmix64 stream, for reproducible disorder.
    fn stream(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// The summary by a scan of every record: what the store must agree with.
    fn scan(recs: &[Record], w: Window) -> Summary {
        let mut s = Summary::default();
        for r in recs.iter().filter(|r| w.contains(r.requested_at)) {
            let t = s.totals_mut(r.processor);
            t.count += 1;
            t.cents += r.cents;
        }
        s
    }

    /// Records out of order (nearly sorted, with stragglers from far back and runs of
    /// equal timestamps), summaries between inserts, across chunk and buffer sizes: every
    /// window agrees with a scan, bounds included.
    #[test]
    fn out_of_order_records_sum_like_a_scan() {
        let mut next = stream(9);
        let s = MemoryStore::default();
        let mut recs = Vec::new();
        let n = 3 * CHUNK + PENDING_MAX / 2;
        for i in 0..n as i64 {
            let at = match next() % 10 {
                // A straggler, up to the whole history back.
                0 => (next() % (i as u64 * 10 + 1)) as i64,
                // The same instant as another record.
                1 => i / 2 * 10,
                // Jitter around its slot.
                _ => i * 10 + (next() % 50) as i64 - 25,
            };
            let p = if next().is_multiple_of(3) {
                Processor::Fallback
            } else {
                Processor::Default
            };
            let r = rec(
                u128::from(next()) << 64 | i as u128,
                p,
                at,
                (next() % 10_000) as i64 + 1,
            );
            assert!(s.record(r));
            recs.push(r);
            if i % 997 == 0 {
                assert_eq!(s.summary(Window::ALL), scan(&recs, Window::ALL));
            }
        }
        for _ in 0..300 {
            // Bounds on recorded instants (inclusive), between them, or unbounded.
            let pick = |next: &mut dyn FnMut() -> u64| match next() % 4 {
                0 => None,
                1 => Some(recs[(next() % n as u64) as usize].requested_at),
                _ => Some((next() % (n as u64 * 10)) as i64 - 30),
            };
            let (a, b) = (pick(&mut next), pick(&mut next));
            let w = Window { from: a, to: b };
            assert_eq!(s.summary(w), scan(&recs, w), "{w:?}");
            if let (Some(a), Some(b)) = (a, b) {
                let w = Window {
                    from: Some(a.min(b)),
                    to: Some(a.max(b)),
                };
                assert_eq!(s.summary(w), scan(&recs, w), "{w:?}");
                // A one-instant window holds exactly the records at that instant.
                let w = Window {
                    from: Some(a),
                    to: Some(a),
                };
                assert_eq!(s.summary(w), scan(&recs, w), "{w:?}");
            }
        }
        // Recorded ids stay taken whatever their processor, until a purge.
        let first = recs[0];
        assert!(!s.record(rec(first.id, Processor::Fallback, 0, 1)));
        s.purge();
        assert_eq!(s.summary(Window::ALL), Summary::default());
        assert!(s.record(first), "a purge forgets the recorded ids");
        assert_eq!(s.summary(Window::ALL), scan(&[first], Window::ALL));
    }

    #[test]
    fn a_record_before_everything_lands_first() {
        let s = MemoryStore::default();
        for i in 1..=2 * CHUNK as i64 {
            assert!(s.record(rec(i as u128, Processor::Default, 1_000 + i, 1)));
        }
        assert!(s.record(rec(0, Processor::Default, 5, 100)));
        let w = |from, to| Window {
            from: Some(from),
            to: Some(to),
        };
        assert_eq!(
            s.summary(w(5, 5)).default,
            Totals {
                count: 1,
                cents: 100
            }
        );
        assert_eq!(
            s.summary(w(0, 1_001)).default,
            Totals {
                count: 2,
                cents: 101
            }
        );
        assert_eq!(s.summary(w(6, 1_000)).default, Totals::default());
        let all = s.summary(Window::ALL).default;
        assert_eq!(
            all,
            Totals {
                count: 2 * CHUNK as u64 + 1,
                cents: 2 * CHUNK as i64 + 100
            }
        );
    }

    /// Running sums wrap, yet every window whose total fits an i64 is exact.
    #[test]
    fn window_totals_survive_wrapping_sums() {
        let s = MemoryStore::default();
        let big = i64::MAX / 2 + 1;
        for i in 0..4 {
            assert!(s.record(rec(i, Processor::Fallback, i as i64, big)));
        }
        let w = |from, to| Window {
            from: Some(from),
            to: Some(to),
        };
        assert_eq!(
            s.summary(w(2, 2)).fallback,
            Totals {
                count: 1,
                cents: big
            }
        );
        assert_eq!(
            s.summary(w(3, 3)).fallback,
            Totals {
                count: 1,
                cents: big
            }
        );
    }

    #[test]
    fn partial_round_trip() {
        let s = Summary {
            default: Totals {
                count: 3,
                cents: 5970,
            },
            fallback: Totals {
                count: 1,
                cents: -1,
            },
        };
        let mut out = Vec::new();
        write_partial(&mut out, &s);
        assert_eq!(
            out,
            br#"{"default":{"count":3,"cents":5970},"fallback":{"count":1,"cents":-1}}"#
        );
        assert_eq!(parse_partial(&out), Ok(s));
        assert!(parse_partial(b"{}").is_err());
    }
}
