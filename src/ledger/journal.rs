//! The memory ledger's journal: every payment's life, appended to one file in
//! `JOURNAL_DIR`, so that a restarted instance loses nothing it answered 202 for and
//! charges nothing twice.
//!
//! What is written, and when:
//! - **accepted** (correlationId, cents), before the 202 leaves: the records of the
//!   requests read together on one connection go out in one `write` (group commit,
//!   [`CoreJournal::commit`]);
//! - **intent** (processor, `requestedAt`), before an attempt is sent;
//! - **recorded** (the ledger record), when a payment is settled by a charge;
//! - **done**, when a payment is settled without one (charged by someone else);
//! - **purged**, when `POST /purge-payments` cleared the ledger;
//! - **claimed** (correlationId, claimant's ring position), when this instance granted
//!   a claim on an id it owns ([`super::claims`]), before the grant is answered or
//!   acted on.
//!
//! Each record is `len u16 | kind u8 | payload | crc32 u32` (little-endian; the CRC covers
//! kind and payload). Every core buffers its own records and appends them with one
//! `write` to the shared file opened with `O_APPEND`, so records never interleave.
//!
//! [`open`] replays the journal: the valid prefix is used and whatever follows the first
//! torn or corrupt record is reported and dropped. Recorded payments go back into the
//! ledger; accepted and unsettled ones go back into the backlog, pinned to the processor
//! of their last intent (it may have stored them: a lookup settles them, with the
//! recorded `requestedAt`). Then the journal is compacted: a snapshot of that state is
//! written to a new file, synced, and renamed over the old one, so its size follows the
//! ledger's, not the history's. It is compacted again while the gateway runs, each time
//! it has doubled (and is at least [`COMPACT_MIN_BYTES`]); see [`Journal`]. A compaction
//! holds the replayed state in memory for a moment, about the ledger's own size again.
//!
//! A `write` reaches the page cache, which survives a crash of the process. A crash of
//! the machine loses what the kernel had not written back yet (up to ~30 s by default);
//! `JOURNAL_SYNC=1` adds an `fdatasync` after every append, which survives that too at a
//! cost measured in BENCHMARKS.md.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::Record;
use crate::processor::Processor;
use domain::money::Cents;
use domain::time::Micros;

/// The journal's file in `JOURNAL_DIR`.
pub const FILE_NAME: &str = "payments.journal";
/// The snapshot being written during compaction, renamed over [`FILE_NAME`] when done.
const COMPACTING_NAME: &str = "payments.journal.new";

const ACCEPTED: u8 = 1;
const INTENT: u8 = 2;
const RECORDED: u8 = 3;
const DONE: u8 = 4;
const PURGED: u8 = 5;
const CLAIMED: u8 = 6;
/// Bytes around a payload: its length, its kind, its CRC.
const FRAMING: usize = 2 + 1 + 4;

/// The IEEE CRC-32 table, computed at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE) of `parts` taken together.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for part in parts {
        for &b in *part {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
    }
    !c
}

/// One entry of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Accepted {
        id: u128,
        cents: Cents,
    },
    Intent {
        id: u128,
        processor: Processor,
        requested_at: Micros,
    },
    Recorded(Record),
    Done {
        id: u128,
    },
    Purged,
    Claimed {
        id: u128,
        claimant: u8,
    },
}

fn processor_byte(p: Processor) -> u8 {
    p.index() as u8
}

fn processor_of(b: u8) -> Option<Processor> {
    Processor::ALL
        .into_iter()
        .find(|p| p.index() == usize::from(b))
}

impl Entry {
    /// Appends this entry, framed, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut payload = [0u8; 40];
        let (kind, len) = match *self {
            Entry::Accepted { id, cents } => {
                payload[..16].copy_from_slice(&id.to_le_bytes());
                payload[16..24].copy_from_slice(&cents.to_le_bytes());
                (ACCEPTED, 24)
            }
            Entry::Intent {
                id,
                processor,
                requested_at,
            } => {
                payload[..16].copy_from_slice(&id.to_le_bytes());
                payload[16] = processor_byte(processor);
                payload[17..25].copy_from_slice(&requested_at.to_le_bytes());
                (INTENT, 25)
            }
            Entry::Recorded(r) => {
                payload[..16].copy_from_slice(&r.id.to_le_bytes());
                payload[16] = processor_byte(r.processor);
                payload[17..25].copy_from_slice(&r.requested_at.to_le_bytes());
                payload[25..33].copy_from_slice(&r.cents.to_le_bytes());
                (RECORDED, 33)
            }
            Entry::Done { id } => {
                payload[..16].copy_from_slice(&id.to_le_bytes());
                (DONE, 16)
            }
            Entry::Purged => (PURGED, 0),
            Entry::Claimed { id, claimant } => {
                payload[..16].copy_from_slice(&id.to_le_bytes());
                payload[16] = claimant;
                (CLAIMED, 17)
            }
        };
        let payload = &payload[..len];
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(payload);
        out.extend_from_slice(&crc32(&[&[kind], payload]).to_le_bytes());
    }

    /// Reads the entry at the start of `buf`: the entry and its length in bytes, or
    /// `None` if the bytes there are not a whole, intact entry.
    pub fn decode(buf: &[u8]) -> Option<(Entry, usize)> {
        let len = usize::from(u16::from_le_bytes(buf.get(..2)?.try_into().ok()?));
        let total = FRAMING + len;
        let frame = buf.get(..total)?;
        let kind = frame[2];
        let p = &frame[3..3 + len];
        let crc = u32::from_le_bytes(frame[3 + len..].try_into().ok()?);
        if crc != crc32(&[&[kind], p]) {
            return None;
        }
        let u128_at = |i: usize| u128::from_le_bytes(p[i..i + 16].try_into().unwrap());
        let i64_at = |i: usize| i64::from_le_bytes(p[i..i + 8].try_into().unwrap());
        let entry = match (kind, len) {
            (ACCEPTED, 24) => Entry::Accepted {
                id: u128_at(0),
                cents: i64_at(16),
            },
            (INTENT, 25) => Entry::Intent {
                id: u128_at(0),
                processor: processor_of(p[16])?,
                requested_at: i64_at(17),
            },
            (RECORDED, 33) => Entry::Recorded(Record {
                id: u128_at(0),
                processor: processor_of(p[16])?,
                requested_at: i64_at(17),
                cents: i64_at(25),
            }),
            (DONE, 16) => Entry::Done { id: u128_at(0) },
            (PURGED, 0) => Entry::Purged,
            (CLAIMED, 17) => Entry::Claimed {
                id: u128_at(0),
                claimant: p[16],
            },
            _ => return None,
        };
        Some((entry, total))
    }
}

/// A payment accepted and not settled when the journal was replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsettled {
    pub id: u128,
    pub cents: Cents,
    /// The `requestedAt` each processor was sent, by `Processor::index`.
    pub requested_at: [Option<Micros>; 2],
    /// The processor of the last intent: its attempt may have been stored there.
    pub pinned: Option<Processor>,
}

/// What a journal says, replayed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The ledger's records (since the last purge), in journal order.
    pub records: Vec<Record>,
    /// Accepted and not settled, in acceptance order.
    pub unsettled: Vec<Unsettled>,
    /// Every correlationId accepted, settled or not, purged or not.
    pub accepted: Vec<u128>,
    /// The claims granted on ids this instance owns, (id, claimant), in the order
    /// granted; the first claim of an id stands.
    pub claims: Vec<(u128, u8)>,
}

/// Replays `bytes`: the state of its valid prefix, and the prefix's length.
pub fn replay(bytes: &[u8]) -> (State, usize) {
    let mut order: Vec<u128> = Vec::new();
    let mut open: HashMap<u128, Unsettled> = HashMap::new();
    let mut records: Vec<Record> = Vec::new();
    let mut recorded: HashMap<u128, usize> = HashMap::new();
    let mut accepted: Vec<u128> = Vec::new();
    let mut claims: Vec<(u128, u8)> = Vec::new();
    let mut claimed: std::collections::HashSet<u128> = Default::default();
    let mut seen: std::collections::HashSet<u128> = Default::default();
    // True the first time an id is seen.
    let mut note = |id: u128, accepted: &mut Vec<u128>| {
        let first = seen.insert(id);
        if first {
            accepted.push(id);
        }
        first
    };
    let mut at = 0;
    while let Some((entry, len)) = Entry::decode(&bytes[at..]) {
        at += len;
        match entry {
            // An id is accepted once: a second acceptance (the gateway refuses
            // duplicates, so only a damaged journal has one) changes nothing.
            Entry::Accepted { id, cents } => {
                if note(id, &mut accepted) {
                    order.push(id);
                    open.insert(
                        id,
                        Unsettled {
                            id,
                            cents,
                            requested_at: [None, None],
                            pinned: None,
                        },
                    );
                }
            }
            Entry::Intent {
                id,
                processor,
                requested_at,
            } => {
                if let Some(u) = open.get_mut(&id) {
                    u.requested_at[processor.index()] = Some(requested_at);
                    u.pinned = Some(processor);
                }
            }
            Entry::Recorded(r) => {
                note(r.id, &mut accepted);
                open.remove(&r.id);
                // The first record of an id stands, as in the ledger.
                recorded.entry(r.id).or_insert_with(|| {
                    records.push(r);
                    records.len() - 1
                });
            }
            Entry::Done { id } => {
                note(id, &mut accepted);
                open.remove(&id);
            }
            Entry::Purged => {
                records.clear();
                recorded.clear();
            }
            Entry::Claimed { id, claimant } => {
                if claimed.insert(id) {
                    claims.push((id, claimant));
                }
            }
        }
    }
    let unsettled = order
        .iter()
        .filter_map(|id| open.get(id).copied())
        .collect();
    (
        State {
            records,
            unsettled,
            accepted,
            claims,
        },
        at,
    )
}

/// The entries that say `state` again, in a form [`replay`] gives back unchanged.
pub fn snapshot(state: &State, out: &mut Vec<u8>) {
    let recorded: std::collections::HashSet<u128> = state.records.iter().map(|r| r.id).collect();
    let open: std::collections::HashSet<u128> = state.unsettled.iter().map(|u| u.id).collect();
    for &id in &state.accepted {
        if !recorded.contains(&id) && !open.contains(&id) {
            Entry::Done { id }.encode(out);
        }
    }
    for r in &state.records {
        Entry::Recorded(*r).encode(out);
    }
    for &(id, claimant) in &state.claims {
        Entry::Claimed { id, claimant }.encode(out);
    }
    for u in &state.unsettled {
        Entry::Accepted {
            id: u.id,
            cents: u.cents,
        }
        .encode(out);
        // The pinned processor's intent last, so that it stays the pinned one.
        let mut order: Vec<Processor> = Processor::ALL
            .into_iter()
            .filter(|p| Some(*p) != u.pinned)
            .collect();
        order.extend(u.pinned);
        for p in order {
            if let Some(requested_at) = u.requested_at[p.index()] {
                Entry::Intent {
                    id: u.id,
                    processor: p,
                    requested_at,
                }
                .encode(out);
            }
        }
    }
}

/// What [`open`] found.
#[derive(Debug)]
pub struct Opened {
    pub journal: Arc<Journal>,
    pub state: State,
    /// Bytes after the valid prefix (a torn or corrupt tail), dropped.
    pub dropped_tail: usize,
}

/// Smallest journal that is compacted while the gateway runs: below it, a restart's
/// replay is quick anyway.
pub const COMPACT_MIN_BYTES: u64 = 64 << 20;

/// Replays the journal in `dir` (created if missing), compacts it to a snapshot of what
/// it says, and opens it for appending; it is compacted again whenever it has grown to
/// twice its last compacted size and at least `COMPACT_MIN_BYTES`.
pub fn open(dir: &Path, sync: bool) -> io::Result<Opened> {
    open_compacting_at(dir, sync, COMPACT_MIN_BYTES)
}

/// [`open`], compacting at `compact_min` bytes at the least.
pub fn open_compacting_at(dir: &Path, sync: bool, compact_min: u64) -> io::Result<Opened> {
    fs::create_dir_all(dir)?;
    let path = dir.join(FILE_NAME);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let (state, valid) = replay(&bytes);
    let mut snap = Vec::new();
    snapshot(&state, &mut snap);
    let tmp = dir.join(COMPACTING_NAME);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&snap)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    let file = OpenOptions::new().append(true).open(&path)?;
    let size = snap.len() as u64;
    Ok(Opened {
        journal: Arc::new(Journal {
            file: Mutex::new(file),
            sync,
            dir: dir.to_path_buf(),
            path,
            size: AtomicU64::new(size),
            compact_min,
            compact_at: AtomicU64::new(next_compaction(size, compact_min)),
            compacting: AtomicBool::new(false),
            compactions: AtomicU64::new(0),
        }),
        state,
        dropped_tail: bytes.len() - valid,
    })
}

/// The size at which a journal compacted to `size` bytes is compacted again.
fn next_compaction(size: u64, compact_min: u64) -> u64 {
    size.saturating_mul(2).max(compact_min)
}

/// The open journal, shared by the cores.
///
/// Appends take the file's lock for one `write` (and an `fdatasync` with
/// `JOURNAL_SYNC`). Compaction runs on a thread of its own: it replays the file as it
/// was when it started and writes that snapshot to a new file without the lock, then,
/// under the lock, copies what was appended meanwhile after the snapshot and renames
/// the new file into place. Appends wait only for that last step. A crash at any point
/// leaves the old file or the new one whole.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<File>,
    sync: bool,
    dir: PathBuf,
    path: PathBuf,
    /// Bytes in the file.
    size: AtomicU64,
    compact_min: u64,
    /// The size at which the next compaction starts.
    compact_at: AtomicU64,
    compacting: AtomicBool,
    /// Compactions done while running (for tests and the log).
    compactions: AtomicU64,
}

impl Journal {
    /// Appends `bytes` (whole entries) in one `write`, and syncs them with
    /// `JOURNAL_SYNC`. A failed append is cut off again, so that what follows it stays
    /// readable. Starts a compaction when the journal has grown enough.
    pub fn append(self: &Arc<Self>, bytes: &[u8]) -> io::Result<()> {
        {
            let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            let before = self.size.load(Relaxed);
            let written = (&*file).write_all(bytes).and_then(|()| {
                if self.sync {
                    file.sync_data()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                let _ = file.set_len(before);
                return Err(e);
            }
            self.size.store(before + bytes.len() as u64, Relaxed);
        }
        if self.size.load(Relaxed) >= self.compact_at.load(Relaxed)
            && !self.compacting.swap(true, Relaxed)
        {
            let journal = self.clone();
            let spawned = std::thread::Builder::new()
                .name("journal-compaction".to_string())
                .spawn(move || {
                    match journal.compact() {
                        Ok((from, to)) => net::log!(
                            "journal {}: compacted from {from} to {to} bytes",
                            journal.path.display()
                        ),
                        Err(e) => net::log!(
                            "journal {}: compaction failed, the journal keeps growing: {e}",
                            journal.path.display()
                        ),
                    }
                    journal.compacting.store(false, Relaxed);
                });
            if spawned.is_err() {
                self.compacting.store(false, Relaxed);
            }
        }
        Ok(())
    }

    /// Compacts the journal (see [`Journal`]): its size before and after.
    fn compact(&self) -> io::Result<(u64, u64)> {
        let start = {
            let _file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            self.size.load(Relaxed)
        };
        let mut bytes = Vec::new();
        File::open(&self.path)?
            .take(start)
            .read_to_end(&mut bytes)?;
        let (state, _) = replay(&bytes);
        drop(bytes);
        let mut snap = Vec::new();
        snapshot(&state, &mut snap);
        drop(state);
        let tmp = self.dir.join(COMPACTING_NAME);
        // Opened for appending: after the rename it is the journal's file, so that
        // nothing can fail between the rename and the appends going there.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut new = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&tmp)?;
        new.write_all(&snap)?;
        new.sync_data()?;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let end = self.size.load(Relaxed);
        let mut tail = Vec::with_capacity((end - start) as usize);
        let mut old = File::open(&self.path)?;
        old.seek(SeekFrom::Start(start))?;
        old.take(end - start).read_to_end(&mut tail)?;
        new.write_all(&tail)?;
        if self.sync {
            new.sync_data()?;
        }
        fs::rename(&tmp, &self.path)?;
        *file = new;
        if self.sync {
            File::open(&self.dir)?.sync_all()?;
        }
        let size = (snap.len() + tail.len()) as u64;
        self.size.store(size, Relaxed);
        self.compact_at
            .store(next_compaction(size, self.compact_min), Relaxed);
        self.compactions.fetch_add(1, Relaxed);
        Ok((end, size))
    }

    /// Compactions done since the journal was opened.
    pub fn compactions(&self) -> u64 {
        self.compactions.load(Relaxed)
    }

    /// Bytes in the journal's file.
    pub fn size(&self) -> u64 {
        self.size.load(Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One core's handle on the journal: entries are buffered, then appended together by
/// [`CoreJournal::commit`].
#[derive(Debug)]
pub struct CoreJournal {
    journal: Arc<Journal>,
    buf: RefCell<Vec<u8>>,
}

impl CoreJournal {
    pub fn new(journal: Arc<Journal>) -> CoreJournal {
        CoreJournal {
            journal,
            buf: RefCell::new(Vec::with_capacity(4096)),
        }
    }

    /// Buffers `entry` until the next commit.
    pub fn add(&self, entry: Entry) {
        entry.encode(&mut self.buf.borrow_mut());
    }

    /// Appends every buffered entry. An error is logged; the entries are dropped, and
    /// the caller must not promise what they said.
    pub fn commit(&self) -> bool {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return true;
        }
        let result = self.journal.append(&buf);
        buf.clear();
        match result {
            Ok(()) => true,
            Err(e) => {
                net::log!(
                    "journal {}: append failed: {e}",
                    self.journal.path.display()
                );
                false
            }
        }
    }

    /// Buffers `entry` and appends it at once.
    pub fn write(&self, entry: Entry) -> bool {
        self.add(entry);
        self.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u128, processor: Processor, requested_at: Micros, cents: i64) -> Record {
        Record {
            id,
            processor,
            requested_at,
            cents,
        }
    }

    fn bytes(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            e.encode(&mut out);
        }
        out
    }

    const D: Processor = Processor::Default;
    const F: Processor = Processor::Fallback;

    #[test]
    fn crc_is_ieee() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
    }

    #[test]
    fn entries_round_trip() {
        let all = [
            Entry::Accepted {
                id: u128::MAX - 7,
                cents: 1990,
            },
            Entry::Intent {
                id: 3,
                processor: F,
                requested_at: -5,
            },
            Entry::Recorded(rec(9, D, 1_752_150_896_000_000, i64::MAX)),
            Entry::Done { id: 1 << 100 },
            Entry::Purged,
            Entry::Claimed {
                id: u128::MAX,
                claimant: 255,
            },
        ];
        let b = bytes(&all);
        let mut at = 0;
        for want in all {
            let (got, len) = Entry::decode(&b[at..]).unwrap();
            assert_eq!(got, want);
            at += len;
        }
        assert_eq!(at, b.len());
    }

    #[test]
    fn the_life_of_payments_replays() {
        let b = bytes(&[
            // Settled by a charge.
            Entry::Accepted { id: 1, cents: 100 },
            Entry::Intent {
                id: 1,
                processor: D,
                requested_at: 10,
            },
            Entry::Recorded(rec(1, D, 10, 100)),
            // In flight to the fallback after the default was given up on.
            Entry::Accepted { id: 2, cents: 200 },
            Entry::Intent {
                id: 2,
                processor: D,
                requested_at: 20,
            },
            Entry::Intent {
                id: 2,
                processor: F,
                requested_at: 21,
            },
            // Still queued.
            Entry::Accepted { id: 3, cents: 300 },
            // Charged by someone else.
            Entry::Accepted { id: 4, cents: 400 },
            Entry::Done { id: 4 },
            // Recorded twice (a late answer): the first record stands.
            Entry::Accepted { id: 5, cents: 500 },
            Entry::Recorded(rec(5, F, 50, 500)),
            Entry::Recorded(rec(5, D, 51, 500)),
        ]);
        let (state, valid) = replay(&b);
        assert_eq!(valid, b.len());
        assert_eq!(state.records, vec![rec(1, D, 10, 100), rec(5, F, 50, 500)]);
        assert_eq!(
            state.unsettled,
            vec![
                Unsettled {
                    id: 2,
                    cents: 200,
                    requested_at: [Some(20), Some(21)],
                    pinned: Some(F)
                },
                Unsettled {
                    id: 3,
                    cents: 300,
                    requested_at: [None, None],
                    pinned: None
                },
            ]
        );
        assert_eq!(state.accepted, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_second_acceptance_of_an_id_changes_nothing() {
        let b = bytes(&[
            Entry::Accepted { id: 1, cents: 100 },
            Entry::Done { id: 1 },
            Entry::Accepted { id: 1, cents: 900 },
            Entry::Accepted { id: 2, cents: 200 },
            Entry::Accepted { id: 2, cents: 800 },
        ]);
        let (state, _) = replay(&b);
        assert_eq!(state.accepted, vec![1, 2]);
        assert_eq!(
            state.unsettled,
            vec![Unsettled {
                id: 2,
                cents: 200,
                requested_at: [None, None],
                pinned: None
            }]
        );
    }

    #[test]
    fn a_purge_forgets_records_but_not_acceptances_or_the_backlog() {
        let b = bytes(&[
            Entry::Accepted { id: 1, cents: 100 },
            Entry::Recorded(rec(1, D, 10, 100)),
            Entry::Accepted { id: 2, cents: 200 },
            Entry::Purged,
            Entry::Recorded(rec(2, F, 20, 200)),
        ]);
        let (state, _) = replay(&b);
        assert_eq!(state.records, vec![rec(2, F, 20, 200)]);
        assert!(state.unsettled.is_empty());
        assert_eq!(state.accepted, vec![1, 2]);
    }

    #[test]
    fn a_snapshot_replays_to_the_same_state() {
        let b = bytes(&[
            Entry::Accepted { id: 1, cents: 100 },
            Entry::Recorded(rec(1, D, 10, 100)),
            Entry::Accepted { id: 2, cents: 200 },
            Entry::Intent {
                id: 2,
                processor: F,
                requested_at: 21,
            },
            Entry::Intent {
                id: 2,
                processor: D,
                requested_at: 20,
            },
            Entry::Accepted { id: 3, cents: 300 },
            Entry::Accepted { id: 4, cents: 400 },
            Entry::Done { id: 4 },
            Entry::Purged,
            Entry::Accepted { id: 6, cents: 600 },
            Entry::Recorded(rec(6, F, 60, 600)),
            Entry::Claimed { id: 7, claimant: 1 },
            Entry::Claimed { id: 7, claimant: 0 },
            Entry::Claimed { id: 6, claimant: 0 },
        ]);
        let (state, _) = replay(&b);
        assert_eq!(state.claims, vec![(7, 1), (6, 0)]);
        let mut snap = Vec::new();
        snapshot(&state, &mut snap);
        let (again, valid) = replay(&snap);
        assert_eq!(valid, snap.len());
        assert_eq!(again.records, state.records);
        assert_eq!(again.unsettled, state.unsettled);
        assert_eq!(again.claims, state.claims);
        let mut a = again.accepted.clone();
        let mut s = state.accepted.clone();
        a.sort_unstable();
        s.sort_unstable();
        assert_eq!(a, s);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_at_the_last_whole_entry() {
        let good = bytes(&[
            Entry::Accepted { id: 1, cents: 100 },
            Entry::Recorded(rec(1, D, 10, 100)),
            Entry::Accepted { id: 2, cents: 200 },
        ]);
        let last = bytes(&[Entry::Intent {
            id: 2,
            processor: D,
            requested_at: 20,
        }]);
        let (want, _) = replay(&good);
        // Torn anywhere inside the last entry.
        for cut in 0..last.len() {
            let mut b = good.clone();
            b.extend_from_slice(&last[..cut]);
            let (state, valid) = replay(&b);
            assert_eq!(valid, good.len(), "cut at {cut}");
            assert_eq!(state, want);
        }
        // Any one byte of the last entry flipped.
        for i in 0..last.len() {
            let mut b = good.clone();
            b.extend_from_slice(&last);
            b[good.len() + i] ^= 0x40;
            let (state, valid) = replay(&b);
            assert_eq!(valid, good.len(), "flipped byte {i}");
            assert_eq!(state, want);
        }
    }

    /// A scratch directory for one test, removed first if a run before left it.
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn compaction_while_cores_append_keeps_every_entry() {
        let dir = scratch("compact");
        let opened = open_compacting_at(&dir, false, 4096).unwrap();
        let journal = opened.journal.clone();
        // Two cores settle payments of their own while the journal compacts under them.
        const EACH: u128 = 3000;
        let cores: Vec<_> = (0..2u128)
            .map(|c| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    let core = CoreJournal::new(journal);
                    for n in 0..EACH {
                        let id = c * EACH + n;
                        core.add(Entry::Accepted { id, cents: 7 });
                        assert!(core.commit());
                        assert!(core.write(Entry::Intent {
                            id,
                            processor: D,
                            requested_at: 1,
                        }));
                        if n % 3 != 0 {
                            assert!(core.write(Entry::Recorded(rec(id, D, 1, 7))));
                        }
                    }
                })
            })
            .collect();
        for c in cores {
            c.join().unwrap();
        }
        // A compaction started by the last appends may still run: its end is observable.
        while journal.compacting.load(Relaxed) {
            std::thread::yield_now();
        }
        assert!(journal.compactions() >= 1);
        let appended = 2 * EACH as u64 * (31 + 32) + 2 * (EACH as u64 * 2 / 3) * 40;
        assert!(journal.size() < appended, "{} < {appended}", journal.size());
        assert_eq!(
            fs::metadata(dir.join(FILE_NAME)).unwrap().len(),
            journal.size()
        );
        drop((journal, opened));
        let again = open(&dir, false).unwrap();
        assert_eq!(again.dropped_tail, 0);
        assert_eq!(again.state.accepted.len(), 2 * EACH as usize);
        let recorded = 2 * (EACH - EACH.div_ceil(3)) as usize;
        assert_eq!(again.state.records.len(), recorded);
        assert_eq!(again.state.unsettled.len(), 2 * EACH as usize - recorded);
        assert!(again
            .state
            .unsettled
            .iter()
            .all(|u| (u.id % EACH).is_multiple_of(3)
                && u.pinned == Some(D)
                && u.requested_at == [Some(1), None]));
        assert!(!dir.join(COMPACTING_NAME).exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_compacts_and_reports_the_dropped_tail() {
        let dir = scratch("open");
        let mut b = bytes(&[
            Entry::Accepted { id: 1, cents: 100 },
            Entry::Intent {
                id: 1,
                processor: D,
                requested_at: 10,
            },
            Entry::Recorded(rec(1, D, 10, 100)),
            Entry::Accepted { id: 2, cents: 200 },
        ]);
        b.extend_from_slice(&[7, 0, 1, 2]);
        fs::write(dir.join(FILE_NAME), &b).unwrap();
        let opened = open(&dir, false).unwrap();
        assert_eq!(opened.dropped_tail, 4);
        assert_eq!(opened.state.records, vec![rec(1, D, 10, 100)]);
        assert_eq!(opened.state.unsettled.len(), 1);
        // Appends go after the snapshot, and a second open sees them.
        let core = CoreJournal::new(opened.journal.clone());
        core.add(Entry::Intent {
            id: 2,
            processor: F,
            requested_at: 20,
        });
        assert!(core.write(Entry::Recorded(rec(2, F, 20, 200))));
        drop((core, opened));
        let again = open(&dir, false).unwrap();
        assert_eq!(again.dropped_tail, 0);
        assert_eq!(
            again.state.records,
            vec![rec(1, D, 10, 100), rec(2, F, 20, 200)]
        );
        assert!(again.state.unsettled.is_empty());
        assert!(!dir.join(COMPACTING_NAME).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
