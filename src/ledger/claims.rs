//! Claims: which instance of the cluster may charge a correlationId. A client may send
//! the same correlationId to two instances (a retry on a new connection lands on the
//! other gateway); each accepts it, and without a claim each could charge it, one on
//! the default and the other on the fallback. So before a payment's first attempt its
//! instance claims it, and the first claim stands: an instance whose claim is refused
//! settles the payment without sending it, because the claimant charges it.
//!
//! Claims are asked for by the dispatcher, never on the request path: the 202 stays
//! immediate.
//!
//! With the memory ledger every correlationId has an owner, one of the instances: the
//! [`Ring`] is the sorted list of every instance's `INTERNAL_LISTEN` (this one's plus
//! `PEERS`), and the owner is a hash of the id over it. The owner keeps the claims on
//! its ids in its [`ClaimTable`] and its journal. An instance claims an id it owns in
//! its own table; any other id it claims from the owner with `POST /internal/claims`,
//! batched: the claims a core makes while one request is out go together in the next.
//! Every request carries the ring's fingerprint, and an owner whose ring differs
//! refuses it (409): two instances that disagree on owners could both grant a claim.
//!
//! With the Redis ledger the claims are a hash in Redis (see
//! [`crate::ledger::redis`]), set once per id by `HSETNX`.
//!
//! Claims outlive purges, like acceptances: an id seen before stays claimed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::RandomState;
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Duration;

use super::LedgerError;
use http1::client::Client;
use net::addr::Addr;

/// Path of the internal endpoint where an owner grants or refuses claims.
pub const INTERNAL_CLAIMS_PATH: &str = "/internal/claims";
/// Header carrying the claimant's [`Ring::fingerprint`].
pub const RING_HEADER: &str = "x-claim-ring";
/// Most ids in one claims request: 33 bytes each, so that a batch fits the 4 KiB a
/// request body may have ([`http1::request::MAX_BODY_BYTES`]).
pub const MAX_BATCH: usize = 120;
/// How long an owner gets to answer a batch of claims.
const CLAIM_TIMEOUT: Duration = Duration::from_millis(1_000);

/// How a claim came out, as `/metrics` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimVerdict {
    /// Granted: this instance charges the payment.
    Mine,
    /// Another instance claimed it first: settled here without a charge.
    Theirs,
    /// The owner or Redis could not be asked: the payment waits and claims again.
    Failed,
}

impl ClaimVerdict {
    pub const ALL: [ClaimVerdict; 3] = [
        ClaimVerdict::Mine,
        ClaimVerdict::Theirs,
        ClaimVerdict::Failed,
    ];

    /// Position in [`ClaimVerdict::ALL`].
    pub fn index(self) -> usize {
        match self {
            ClaimVerdict::Mine => 0,
            ClaimVerdict::Theirs => 1,
            ClaimVerdict::Failed => 2,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            ClaimVerdict::Mine => "mine",
            ClaimVerdict::Theirs => "theirs",
            ClaimVerdict::Failed => "failed",
        }
    }
}

/// Every instance of a memory-ledger cluster, in one order that every instance computes
/// alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// Every instance's internal address, as `Addr`'s display writes it, sorted.
    members: Vec<String>,
    /// This instance's position in `members`.
    me: usize,
    fingerprint: String,
}

impl Ring {
    /// The ring of this instance (internal address `me`) and its `peers`.
    pub fn new(me: &Addr, peers: &[Addr]) -> Ring {
        let me = me.to_string();
        let mut members: Vec<String> = peers.iter().map(Addr::to_string).collect();
        members.push(me.clone());
        members.sort();
        members.dedup();
        let at = members.iter().position(|m| *m == me).unwrap_or(0);
        // FNV-1a over the members, each followed by a newline.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for m in &members {
            for &b in m.as_bytes().iter().chain(b"\n") {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        Ring {
            members,
            me: at,
            fingerprint: format!("{h:016x}"),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// This instance's position.
    pub fn me(&self) -> usize {
        self.me
    }

    /// The member at `index`.
    pub fn member(&self, index: usize) -> &str {
        &self.members[index]
    }

    /// The position of the instance that owns `id`. The hash is not seeded (every
    /// instance must compute the same owner); a client that picks ids all owned by one
    /// instance only moves the claims, not the charges, onto it.
    pub fn owner(&self, id: u128) -> usize {
        let folded = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
        let mixed = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (mixed % self.members.len() as u64) as usize
    }

    /// What every instance with the same members computes alike.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The claims on the ids an instance owns: the claimant of each, by ring position.
/// Shared by the cores; correlationIds are chosen by clients, so the map is seeded.
#[derive(Debug, Default)]
pub struct ClaimTable {
    claims: Mutex<HashMap<u128, u8, RandomState>>,
}

impl ClaimTable {
    /// Claims `id` for `claimant`: true when it is the claimant's (now, or since an
    /// earlier claim of its own), false when another claimed it first.
    pub fn claim(&self, id: u128, claimant: u8) -> bool {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        *claims.entry(id).or_insert(claimant) == claimant
    }

    /// Number of ids claimed.
    pub fn len(&self) -> usize {
        self.claims.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends a claims request body: the claimant's ring position, then one id per line
/// (32 lowercase hex digits).
pub fn write_claims(out: &mut Vec<u8>, claimant: u8, ids: &[u128]) {
    out.extend_from_slice(itoa::Buffer::new().format(claimant).as_bytes());
    out.push(b'\n');
    for id in ids {
        out.extend_from_slice(format!("{id:032x}\n").as_bytes());
    }
}

/// Reads a claims request body, as [`write_claims`] writes it.
pub fn parse_claims(body: &[u8]) -> Result<(u8, Vec<u128>), String> {
    let text = std::str::from_utf8(body).map_err(|_| "claims: not UTF-8".to_string())?;
    let text = text
        .strip_suffix('\n')
        .ok_or_else(|| "claims: the body must end with a newline".to_string())?;
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let claimant = first
        .parse::<u8>()
        .ok()
        .filter(|_| first.bytes().all(|b| b.is_ascii_digit()))
        .filter(|_| first == "0" || !first.starts_with('0'))
        .ok_or_else(|| format!("claims: bad claimant {first:?}"))?;
    let mut ids = Vec::new();
    for line in lines {
        if line.len() != 32 || !line.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("claims: bad id {line:?}"));
        }
        if ids.len() == MAX_BATCH {
            return Err(format!("claims: more than {MAX_BATCH} ids"));
        }
        ids.push(u128::from_str_radix(line, 16).map_err(|e| e.to_string())?);
    }
    Ok((claimant, ids))
}

/// The answer to a claims request: one byte per id, in order, `1` granted, `0` refused.
pub fn write_verdicts(out: &mut Vec<u8>, granted: impl IntoIterator<Item = bool>) {
    out.extend(granted.into_iter().map(|g| if g { b'1' } else { b'0' }));
}

/// Reads the answer to a claims request of `n` ids.
pub fn parse_verdicts(body: &[u8], n: usize) -> Result<Vec<bool>, String> {
    if body.len() != n {
        return Err(format!(
            "claims: {} verdicts for {n} claims",
            body.len().min(1 << 20)
        ));
    }
    body.iter()
        .map(|b| match b {
            b'1' => Ok(true),
            b'0' => Ok(false),
            _ => Err(format!("claims: bad verdict byte {b:#04x}")),
        })
        .collect()
}

/// One core's claims to one owner, batched: a claim made while a request is out waits
/// for the next, which takes every claim made meanwhile.
pub struct ClaimBatcher {
    owner: Client,
    /// The request's header lines: the peer token and the ring's fingerprint.
    headers: String,
    claimant: u8,
    /// Claims waiting for the next request.
    pending: RefCell<Vec<u128>>,
    /// Verdicts not yet taken by their claimant.
    verdicts: RefCell<HashMap<u128, Result<bool, String>>>,
    waiting: RefCell<Vec<Waker>>,
    sending: Cell<bool>,
}

impl ClaimBatcher {
    /// A batcher for claims of `claimant` to `owner`; `headers` are complete lines.
    pub fn new(owner: Client, claimant: u8, headers: String) -> ClaimBatcher {
        ClaimBatcher {
            owner,
            headers,
            claimant,
            pending: RefCell::default(),
            verdicts: RefCell::default(),
            waiting: RefCell::default(),
            sending: Cell::new(false),
        }
    }

    pub fn owner(&self) -> &Addr {
        self.owner.target()
    }

    /// Claims `id` from the owner: true when granted.
    pub async fn claim(&self, id: u128) -> Result<bool, LedgerError> {
        self.pending.borrow_mut().push(id);
        loop {
            // The verdict, or the turn to send the next request.
            let verdict = poll_fn(|cx| {
                if let Some(v) = self.verdicts.borrow_mut().remove(&id) {
                    return Poll::Ready(Some(v));
                }
                if !self.sending.get() {
                    return Poll::Ready(None);
                }
                self.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            })
            .await;
            match verdict {
                Some(v) => {
                    return v.map_err(|reason| LedgerError::Peer {
                        peer: self.owner().to_string(),
                        reason,
                    })
                }
                None => self.send_pending().await,
            }
        }
    }

    /// Sends every pending claim (up to [`MAX_BATCH`]) in one request and files the
    /// verdicts; whatever happens, even if this future is dropped midway, every claim
    /// taken gets a verdict and the waiting claimants are woken.
    async fn send_pending(&self) {
        let batch: Vec<u128> = {
            let mut pending = self.pending.borrow_mut();
            let n = pending.len().min(MAX_BATCH);
            pending.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let turn = Turn::take(self, &batch);
        let mut body = Vec::with_capacity(4 + 33 * batch.len());
        write_claims(&mut body, self.claimant, &batch);
        let result = match self
            .owner
            .request(
                "POST",
                INTERNAL_CLAIMS_PATH,
                &self.headers,
                &body,
                CLAIM_TIMEOUT,
            )
            .await
        {
            Ok(r) if r.status == 200 => parse_verdicts(&r.body, batch.len()),
            Ok(r) => Err(format!(
                "answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            )),
            Err(e) => Err(e.to_string()),
        };
        turn.file(result);
    }
}

/// The turn of one claims request: files a verdict for each of its claims when done,
/// or an error for each if dropped before.
struct Turn<'a> {
    batcher: &'a ClaimBatcher,
    batch: &'a [u128],
    filed: bool,
}

impl<'a> Turn<'a> {
    fn take(batcher: &'a ClaimBatcher, batch: &'a [u128]) -> Turn<'a> {
        batcher.sending.set(true);
        Turn {
            batcher,
            batch,
            filed: false,
        }
    }

    fn file(mut self, result: Result<Vec<bool>, String>) {
        let mut verdicts = self.batcher.verdicts.borrow_mut();
        match result {
            Ok(granted) => {
                for (id, g) in self.batch.iter().zip(granted) {
                    verdicts.insert(*id, Ok(g));
                }
            }
            Err(e) => {
                for id in self.batch {
                    verdicts.insert(*id, Err(e.clone()));
                }
            }
        }
        self.filed = true;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.filed {
            let mut verdicts = self.batcher.verdicts.borrow_mut();
            for id in self.batch {
                verdicts.insert(*id, Err("claims request abandoned".to_string()));
            }
        }
        self.batcher.sending.set(false);
        for w in self.batcher.waiting.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(p: &str) -> Addr {
        Addr::parse(p).unwrap()
    }

    #[test]
    fn a_full_batch_fits_a_request_body() {
        let mut body = Vec::new();
        write_claims(&mut body, u8::MAX, &[u128::MAX; MAX_BATCH]);
        assert!(body.len() <= http1::request::MAX_BODY_BYTES);
    }

    #[test]
    fn every_instance_computes_the_same_ring_and_owners() {
        let a = unix("unix:/s/gateway-1.internal");
        let b = unix("unix:/s/gateway-2.internal");
        let c = unix("10.0.0.3:9000");
        let ra = Ring::new(&a, &[b.clone(), c.clone()]);
        let rb = Ring::new(&b, &[c.clone(), a.clone()]);
        let rc = Ring::new(&c, &[a.clone(), b.clone()]);
        assert_eq!(ra.fingerprint(), rb.fingerprint());
        assert_eq!(ra.fingerprint(), rc.fingerprint());
        assert_eq!(ra.len(), 3);
        let mut positions = [ra.me(), rb.me(), rc.me()];
        positions.sort_unstable();
        assert_eq!(positions, [0, 1, 2]);
        let mut owned = [0u32; 3];
        for n in 0..3000u128 {
            let id = n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            let o = ra.owner(id);
            assert_eq!(o, rb.owner(id));
            assert_eq!(o, rc.owner(id));
            owned[o] += 1;
        }
        // Spread over every member (uniform ids: about 1000 each).
        assert!(owned.iter().all(|&n| n > 800), "{owned:?}");
        // Another membership is another fingerprint.
        assert_ne!(Ring::new(&a, &[b]).fingerprint(), ra.fingerprint());
    }

    #[test]
    fn verdict_labels_follow_their_table() {
        crate::label_table::assert_consistent(
            &ClaimVerdict::ALL,
            ClaimVerdict::index,
            ClaimVerdict::name,
        );
    }

    #[test]
    fn the_first_claim_stands() {
        let t = ClaimTable::default();
        assert!(t.claim(7, 1));
        assert!(t.claim(7, 1), "a claimant's own claim again");
        assert!(!t.claim(7, 0));
        assert!(t.claim(8, 0));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn claims_bodies_round_trip_and_bad_ones_are_refused() {
        let ids = [0u128, u128::MAX, 0x4a79_01b8_7d26_4d9d_aa19_4dc1_c7cf_60b3];
        let mut body = Vec::new();
        write_claims(&mut body, 3, &ids);
        assert_eq!(parse_claims(&body), Ok((3, ids.to_vec())));
        assert_eq!(parse_claims(b"0\n"), Ok((0, vec![])));
        for bad in [
            &b""[..],
            b"0",
            b"x\n",
            b"+1\n",
            b"01\n",
            b"256\n",
            b"1\n00000000000000000000000000000000",
            b"1\n0000000000000000000000000000000G\n",
            b"1\n0000000000000000000000000000000A\n",
            b"1\n000\n",
            b"1\n\n",
        ] {
            assert!(
                parse_claims(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut verdicts = Vec::new();
        write_verdicts(&mut verdicts, [true, false, true]);
        assert_eq!(verdicts, b"101");
        assert_eq!(parse_verdicts(b"101", 3), Ok(vec![true, false, true]));
        assert!(parse_verdicts(b"10", 3).is_err());
        assert!(parse_verdicts(b"1x1", 3).is_err());
    }
}
