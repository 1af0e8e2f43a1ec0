//! A compact set of correlationIds under a per-process random seed (leaf module).
//!
//! correlationIds are chosen by clients, so a hash they can predict lets them send ids
//! that all land in one place of a table, and make every insert cost as much as the
//! whole table. [`IdSet`] hashes each id with keys drawn from std's
//! [`RandomState`] when the set is created ([`Seed::random`]): a client cannot learn
//! them, so any ids it picks spread like random ones.
//!
//! The set is [`SHARDS`] tables, the hash's top bits choosing one. Each is open
//! addressing over a `Vec<u128>`: 16 bytes per slot and nothing else, with linear
//! probing and backward-shift deletion (no tombstones, so removals leave no garbage to
//! sweep). The value 0 marks an empty slot; the id 0 itself (the nil UUID) is kept in a
//! flag beside the tables. A table doubles when an insert would pass
//! [`MAX_LOAD_NUM`]/[`MAX_LOAD_DEN`] (3/4): linear probing's expected probes for an absent
//! id are ½(1 + 1/(1−α)²), 8.5 slots (3 cache lines, read in order) at α = 3/4 and 1.8
//! right after a doubling (α = 3/8). A higher bound saves little memory for many more
//! probes (32.5 slots at 7/8). So an id costs between 21 and 43 bytes (16/α). The shards
//! keep a doubling small: it holds one table's old and new slots at once, 3/[`SHARDS`]
//! of the set's memory, where a single table would need three times its size for a
//! moment.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// The load bound, as the fraction `MAX_LOAD_NUM / MAX_LOAD_DEN` of the slots.
pub const MAX_LOAD_NUM: usize = 3;
/// See [`MAX_LOAD_NUM`].
pub const MAX_LOAD_DEN: usize = 4;
/// Slots of the first table (allocated on the first insert).
const MIN_SLOTS: usize = 16;
/// An odd constant with well-spread bits (2^64 / φ), for the final multiply.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// The keys of the hash: two sets with different seeds place ids independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    k0: u64,
    k1: u64,
    k2: u64,
}

/// The 128-bit product of `a` and `b`, its halves folded by XOR.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Seed {
    /// Keys no client can predict: std's `RandomState` is seeded from the operating
    /// system once per thread and differs on every call.
    pub fn random() -> Seed {
        let state = RandomState::new();
        Seed {
            k0: state.hash_one(0u8),
            k1: state.hash_one(1u8),
            k2: state.hash_one(2u8),
        }
    }

    /// Fixed keys, for tests and reproducible benches.
    pub fn from_keys(k0: u64, k1: u64, k2: u64) -> Seed {
        Seed { k0, k1, k2 }
    }

    /// The id's hash: a keyed folded multiply of its two halves, then a second one so
    /// that every output bit depends on every input bit and key.
    pub fn hash(&self, id: u128) -> u64 {
        let h = fold_mul((id as u64) ^ self.k0, ((id >> 64) as u64) ^ self.k1);
        fold_mul(h ^ self.k2, SPREAD)
    }
}

/// Tables of an [`IdSet`], chosen by the hash's top bits.
pub const SHARDS: usize = 64;
/// Bits of the hash that choose the shard.
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// One open-addressing table of non-zero ids.
#[derive(Default)]
struct Table {
    /// Power-of-two many slots (or none before the first insert); 0 is empty.
    slots: Vec<u128>,
    len: usize,
}

impl Table {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `id`, or the empty slot where it would go (the table has slots).
    fn find(&self, id: u128, home: usize) -> (usize, bool) {
        let mask = self.mask();
        let mut i = home & mask;
        loop {
            match self.slots[i] {
                0 => return (i, false),
                s if s == id => return (i, true),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn contains(&self, id: u128, hash: u64) -> bool {
        !self.slots.is_empty() && self.find(id, hash as usize).1
    }

    fn insert(&mut self, seed: &Seed, id: u128, hash: u64) -> bool {
        if (self.len + 1) * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            if self.contains(id, hash) {
                return false;
            }
            self.grow(seed);
        }
        match self.find(id, hash as usize) {
            (_, true) => false,
            (i, false) => {
                self.slots[i] = id;
                self.len += 1;
                true
            }
        }
    }

    /// Doubles the table (or allocates the first one) and places every id again.
    fn grow(&mut self, seed: &Seed) {
        let slots = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        let mask = self.mask();
        for id in old.into_iter().filter(|&id| id != 0) {
            let mut i = seed.hash(id) as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = id;
        }
    }

    /// Removes `id`. The ids after it in its run move back when that shortens their
    /// probe, so no slot is left marked deleted.
    fn remove(&mut self, seed: &Seed, id: u128, hash: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let (mut hole, found) = self.find(id, hash as usize);
        if !found {
            return false;
        }
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            // `s` may fill the hole when the hole lies on its probe path, between its
            // home and where it sits.
            let from_home = j.wrapping_sub(seed.hash(s) as usize) & mask;
            let from_hole = j.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        true
    }

    /// How far `id` sits from its home slot, when present.
    fn displacement(&self, id: u128, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        match self.find(id, hash as usize) {
            (i, true) => Some(i.wrapping_sub(hash as usize) & self.mask()),
            (_, false) => None,
        }
    }
}

/// A set of 128-bit ids (see the module documentation).
pub struct IdSet {
    seed: Seed,
    tables: Box<[Table]>,
    /// Whether the id 0 is in the set.
    zero: bool,
}

impl Default for IdSet {
    fn default() -> IdSet {
        IdSet::new()
    }
}

impl IdSet {
    /// An empty set with a fresh random seed; allocates its tables' slots on the first
    /// inserts.
    pub fn new() -> IdSet {
        IdSet::with_seed(Seed::random())
    }

    pub fn with_seed(seed: Seed) -> IdSet {
        IdSet {
            seed,
            tables: (0..SHARDS).map(|_| Table::default()).collect(),
            zero: false,
        }
    }

    pub fn seed(&self) -> Seed {
        self.seed
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.len).sum::<usize>() + usize::from(self.zero)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots of all tables (16 bytes each): the set's memory.
    pub fn slots(&self) -> usize {
        self.tables.iter().map(|t| t.slots.len()).sum()
    }

    /// The id's hash and the table it belongs to.
    fn locate(&self, id: u128) -> (u64, usize) {
        let hash = self.seed.hash(id);
        (hash, (hash >> (64 - SHARD_BITS)) as usize)
    }

    pub fn contains(&self, id: u128) -> bool {
        if id == 0 {
            return self.zero;
        }
        let (hash, t) = self.locate(id);
        self.tables[t].contains(id, hash)
    }

    /// Adds `id`; false when it was already there.
    pub fn insert(&mut self, id: u128) -> bool {
        if id == 0 {
            return !std::mem::replace(&mut self.zero, true);
        }
        let (hash, t) = self.locate(id);
        self.tables[t].insert(&self.seed, id, hash)
    }

    /// Removes `id`; false when it was not there.
    pub fn remove(&mut self, id: u128) -> bool {
        if id == 0 {
            return std::mem::replace(&mut self.zero, false);
        }
        let (hash, t) = self.locate(id);
        self.tables[t].remove(&self.seed, id, hash)
    }

    /// How far `id` (present, non-zero) sits from its home slot: how many other ids a
    /// lookup of it reads first. For tests and benches of the spread.
    pub fn displacement(&self, id: u128) -> Option<usize> {
        let (hash, t) = self.locate(id);
        (id != 0).then(|| self.tables[t].displacement(id, hash))?
    }

    /// Forgets every id and frees the tables; the seed stays.
    pub fn clear(&mut self) {
        self.tables.iter_mut().for_each(|t| *t = Table::default());
        self.zero = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A splitmix64 stream of distinct values.
    fn stream(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    fn random_ids(n: usize, seed: u64) -> Vec<u128> {
        let mut next = stream(seed);
        (0..n)
            .map(|_| (u128::from(next()) << 64) | u128::from(next()))
            .collect()
    }

    const SEED: Seed = Seed {
        k0: 0x0123_4567_89ab_cdef,
        k1: 0xfedc_ba98_7654_3210,
        k2: 0x0f1e_2d3c_4b5a_6978,
    };

    #[test]
    fn seeds_differ_and_change_the_hash() {
        let a = IdSet::new();
        let b = IdSet::new();
        assert_ne!(a.seed(), b.seed(), "every set draws its own keys");
        let other = Seed::from_keys(SEED.k0 ^ 1, SEED.k1, SEED.k2);
        // The same ids hash differently under different keys (one key bit suffices),
        // and under the two random seeds.
        for id in random_ids(64, 1) {
            assert_ne!(SEED.hash(id), other.hash(id));
            assert_ne!(a.seed().hash(id), b.seed().hash(id));
        }
        assert_eq!(
            SEED.hash(42),
            Seed::from_keys(SEED.k0, SEED.k1, SEED.k2).hash(42)
        );
    }

    #[test]
    fn inserts_once_removes_and_reinserts() {
        let mut s = IdSet::with_seed(SEED);
        assert!(s.is_empty() && !s.contains(7) && !s.remove(7));
        assert!(s.insert(7));
        assert!(!s.insert(7), "a second insert is refused");
        assert!(s.insert(0), "the nil id is an id like any other");
        assert!(!s.insert(0));
        assert_eq!(s.len(), 2);
        assert!(s.remove(7) && !s.remove(7) && !s.contains(7));
        assert!(s.remove(0) && !s.contains(0));
        assert!(s.insert(7), "a removed id can come back");
        assert_eq!(s.len(), 1);
        s.clear();
        assert!(s.is_empty() && s.slots() == 0 && !s.contains(7));
        assert!(s.insert(7) && s.contains(7), "usable after a clear");
        assert_eq!(s.seed(), SEED);
    }

    #[test]
    fn grows_by_doubling_within_the_load_bound() {
        let mut s = IdSet::with_seed(SEED);
        let ids = random_ids(100_000, 2);
        let mut slots = vec![0; SHARDS];
        for &id in &ids {
            assert!(s.insert(id));
            for (t, seen) in s.tables.iter().zip(&mut slots) {
                assert!(t.len * MAX_LOAD_DEN <= t.slots.len() * MAX_LOAD_NUM);
                if t.slots.len() != *seen {
                    assert!(*seen == 0 || t.slots.len() == 2 * *seen, "doubles");
                    // Just after a doubling the table is more than half the bound full.
                    assert!(*seen == 0 || t.len * 2 * MAX_LOAD_DEN > t.slots.len() * MAX_LOAD_NUM);
                    *seen = t.slots.len();
                }
            }
        }
        assert_eq!(s.len(), ids.len());
        // 16/α bytes per id, α between 3/8 and 3/4.
        assert!(s.slots() * 3 >= ids.len() * 4 && s.slots() * 3 <= ids.len() * 8);
        assert!(ids.iter().all(|&id| s.contains(id)));
        assert!(random_ids(1_000, 3).iter().all(|&id| !s.contains(id)));
    }

    /// Removals in every order keep every other id findable (the backward shift never
    /// breaks a probe run), including runs that wrap around the table's end.
    #[test]
    fn removals_keep_the_rest_findable() {
        // One small table, nearly full: eight ids at home in its last two slots (so
        // their run wraps around the end) and four anywhere.
        let hash = |id| SEED.hash(id);
        let pool = random_ids(1_000, 4);
        let last = |id: &&u128| hash(**id) as usize % MIN_SLOTS >= MIN_SLOTS - 2;
        let mut ids: Vec<u128> = pool.iter().filter(last).take(8).copied().collect();
        ids.extend(pool.iter().filter(|id| !last(id)).take(4));
        assert_eq!(ids.len(), 12);
        for start in 0..ids.len() {
            let mut t = Table::default();
            for &id in &ids {
                assert!(t.insert(&SEED, id, hash(id)));
            }
            assert_eq!(t.slots.len(), MIN_SLOTS);
            assert!(t.slots[0] != 0 && t.slots[1] != 0, "the run wraps around");
            let order: Vec<u128> = ids[start..].iter().chain(&ids[..start]).copied().collect();
            for (k, &gone) in order.iter().enumerate() {
                assert!(t.remove(&SEED, gone, hash(gone)));
                assert!(!t.contains(gone, hash(gone)));
                assert!(!t.remove(&SEED, gone, hash(gone)));
                for &kept in &order[k + 1..] {
                    assert!(
                        t.contains(kept, hash(kept)),
                        "{kept:x} lost after removing {gone:x}"
                    );
                }
                assert_eq!(t.len, order.len() - k - 1);
            }
            assert!(t.slots.iter().all(|&x| x == 0));
        }
        // And at scale: remove half, check, reinsert.
        let mut s = IdSet::with_seed(SEED);
        let many = random_ids(50_000, 5);
        for &id in &many {
            s.insert(id);
        }
        for &id in many.iter().step_by(2) {
            assert!(s.remove(id));
        }
        for (k, &id) in many.iter().enumerate() {
            assert_eq!(s.contains(id), k % 2 == 1);
        }
        for &id in many.iter().step_by(2) {
            assert!(s.insert(id));
        }
        assert!(many.iter().all(|&id| s.contains(id)) && s.len() == many.len());
    }

    /// ids built to collide under an unkeyed fold of the halves (equal halves, and ids
    /// differing only in bits a mask would drop) spread like random ones.
    #[test]
    fn adversarial_ids_spread() {
        let mut next = stream(6);
        let equal_halves: Vec<u128> = (0..50_000)
            .map(|_| {
                let h = next();
                (u128::from(h) << 64) | u128::from(h)
            })
            .collect();
        let high_bits_only: Vec<u128> = (1..=50_000u128).map(|k| k << 100).collect();
        let low_step: Vec<u128> = (1..=50_000u128).map(|k| k << 20).collect();
        for ids in [equal_halves, high_bits_only, low_step] {
            let mut s = IdSet::with_seed(SEED);
            for &id in &ids {
                assert!(s.insert(id));
            }
            let worst = ids
                .iter()
                .map(|&id| s.displacement(id).unwrap())
                .max()
                .unwrap();
            let total: usize = ids.iter().map(|&id| s.displacement(id).unwrap()).sum();
            // Random ids at this load have a mean displacement near 1 and a worst of a
            // few dozen; ids in one bucket would average 25,000.
            assert!(worst < 200, "worst displacement {worst}");
            assert!(
                total < 4 * ids.len(),
                "mean displacement {}",
                total / ids.len()
            );
        }
    }
}
