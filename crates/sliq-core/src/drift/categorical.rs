//! The categorical sketch: exact counts for up to [`DEFAULT_CAPACITY`] categories, then the
//! coarsest hash-prefix cells that fit, so that memory stays bounded and divergences are never
//! invented.
//!
//! A category is counted under its 64-bit xxHash64 (seed 0: the same on every machine and in
//! every build, so sketches from other partitions, instances and files line up). A cell is the
//! top `bits` bits of that hash. At 64 bits every cell is one category (two categories share a
//! 64-bit hash with probability about n²/2⁶⁵, 10⁻¹² at 7,168 categories). When a new cell would
//! exceed the capacity, `bits` drops to the largest value at which the cells fit, merging the
//! categories that share a shorter prefix; resolution only ever goes down.
//!
//! Why this and not a heavy-hitter summary (Misra-Gries, Space-Saving, DataSketches'
//! frequent items): those keep the frequent categories and lump the rest into one remainder
//! whose size differs between sketches, so two sketches of the same distribution look different
//! (false drift), and a shift inside the remainder disappears. Here two sketches are compared on
//! their common cells (the coarser prefix length): every cell's count is exact on both sides,
//! cells are unions of whole categories, and a coarsening can only lower Jensen-Shannon and the
//! χ² statistic (data-processing inequality), never raise them. Which categories share a cell
//! depends on the hash alone, never on arrival order or on which partition saw what, so merging
//! sketches of parts gives exactly the sketch of the whole.
//!
//! Memory: at most `capacity` cells of two `u64` each in a hash map of at most 8,192 slots, plus
//! [`DISPLAY_NAMES`] display names of at most [`DISPLAY_NAME_BYTES`] bytes:
//! [`MAX_HEAP_BYTES`] in all, however many categories arrive and however long they are.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use twox_hash::XxHash64;

/// Cells held before the sketch coarsens: 7/8 of 8,192, the most a hash map of 8,192 slots holds,
/// so a full sketch stays within [`MAX_HEAP_BYTES`].
pub const DEFAULT_CAPACITY: usize = 7_168;

/// Categories whose names are kept for people to read (baseline summaries); counting and
/// comparison use the hashes alone.
pub const DISPLAY_NAMES: usize = 32;

/// A display name longer than this is cut (at a character boundary) and ends in `…`.
pub const DISPLAY_NAME_BYTES: usize = 64;

/// The most heap one categorical sketch holds: the cell map at [`DEFAULT_CAPACITY`] (8,192 slots
/// of 16 bytes and a control byte), the name map at its largest (64 slots), and the names' text:
/// 143,064 bytes on 64-bit targets, however many categories arrive and however long they are.
pub const MAX_HEAP_BYTES: usize = std::mem::size_of::<CategoricalSketch>()
    + map_bytes(DEFAULT_CAPACITY, std::mem::size_of::<(u64, u64)>())
    + map_bytes(NAME_MAP_CAPACITY, std::mem::size_of::<(u64, Box<str>)>())
    + DISPLAY_NAMES * DISPLAY_NAME_BYTES;

/// What the name map can hold once it has grown to [`DISPLAY_NAMES`] (64 slots).
const NAME_MAP_CAPACITY: usize = 56;

/// Heap bytes of a std `HashMap` able to hold `capacity` entries of `slot` bytes: its table keeps
/// 7/8 of a power-of-two number of slots (all but one below eight), each with a control byte, and
/// one group (16) of extra control bytes.
const fn map_bytes(capacity: usize, slot: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let slots = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    slots * (slot + 1) + 16
}

/// The label a summary gives to the cells whose categories have no display name.
pub const OTHER_CATEGORY: &str = "__other__";

/// A mergeable summary of a categorical feature's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredCategorical", from = "StoredCategorical")]
pub struct CategoricalSketch {
    capacity: usize,
    /// Prefix length of the cells: 64 while exact.
    bits: u32,
    /// Count per cell (the top `bits` bits of the category's hash); never zero.
    cells: HashMap<u64, u64>,
    total: u64,
    /// Display names by full hash: the first categories seen, for summaries only.
    names: HashMap<u64, Box<str>>,
}

impl Default for CategoricalSketch {
    fn default() -> Self {
        CategoricalSketch::new(DEFAULT_CAPACITY)
    }
}

/// The serialized form: cells and names sorted, so one sketch always writes the same text.
#[derive(Serialize, Deserialize)]
struct StoredCategorical {
    capacity: usize,
    bits: u32,
    total: u64,
    cells: Vec<(u64, u64)>,
    names: Vec<(u64, Box<str>)>,
}

impl From<CategoricalSketch> for StoredCategorical {
    fn from(s: CategoricalSketch) -> Self {
        let mut cells: Vec<(u64, u64)> = s.cells.into_iter().collect();
        cells.sort_unstable();
        let mut names: Vec<(u64, Box<str>)> = s.names.into_iter().collect();
        names.sort_unstable();
        StoredCategorical {
            capacity: s.capacity,
            bits: s.bits,
            total: s.total,
            cells,
            names,
        }
    }
}

impl From<StoredCategorical> for CategoricalSketch {
    /// Repeated cells or names are summed or dropped here and then fail
    /// [`CategoricalSketch::is_consistent`], which every sketch read from a file must pass.
    fn from(s: StoredCategorical) -> Self {
        let mut cells = HashMap::with_capacity(s.cells.len().min(DEFAULT_CAPACITY));
        for (cell, n) in s.cells {
            let c: &mut u64 = cells.entry(cell).or_default();
            *c = c.saturating_add(n);
        }
        CategoricalSketch {
            capacity: s.capacity,
            bits: s.bits,
            cells,
            total: s.total,
            names: s.names.into_iter().collect(),
        }
    }
}

/// The category's 64-bit hash.
fn hash(category: &str) -> u64 {
    XxHash64::oneshot(0, category.as_bytes())
}

/// The top `bits` bits of a 64-bit hash (or of a cell at a finer prefix length `from`). Callers
/// pass `bits <= from`; a sketch that breaks this (a hand edit) fails `is_consistent`, and even
/// then this returns a value rather than overflowing.
fn prefix(key: u64, from: u32, bits: u32) -> u64 {
    key.checked_shr(from.saturating_sub(bits)).unwrap_or(0)
}

/// A name cut to [`DISPLAY_NAME_BYTES`] at a character boundary.
fn display_name(category: &str) -> Box<str> {
    if category.len() <= DISPLAY_NAME_BYTES {
        return category.into();
    }
    let mut end = DISPLAY_NAME_BYTES - '…'.len_utf8();
    while !category.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &category[..end]).into()
}

/// The longest prefix, at most `from`, at which `keys` (cells at prefix length `from`) fall into
/// at most `capacity` cells.
fn fitting_bits(mut keys: Vec<u64>, from: u32, capacity: usize) -> u32 {
    keys.sort_unstable();
    keys.dedup();
    let mut bits = from;
    // Sorted keys share a prefix only with their neighbours, so dropping repeats of the shorter
    // prefix leaves one key per cell.
    while bits > 0 && keys.len() > capacity {
        bits -= 1;
        keys.dedup_by_key(|k| prefix(*k, from, bits));
    }
    bits
}

impl CategoricalSketch {
    /// A sketch holding at most `capacity` cells (clamped to `1..=DEFAULT_CAPACITY`).
    pub fn new(capacity: usize) -> Self {
        CategoricalSketch {
            capacity: capacity.clamp(1, DEFAULT_CAPACITY),
            bits: 64,
            cells: HashMap::new(),
            total: 0,
            names: HashMap::new(),
        }
    }

    /// Whether this sketch could have been made by recording and merging: within capacity and the
    /// memory bound, cells within their prefix length, none empty, and counts that add up to the
    /// total. A sketch read from a file must pass this before it is used.
    pub fn is_consistent(&self) -> bool {
        let held = self
            .cells
            .values()
            .try_fold(0u64, |sum, n| sum.checked_add(*n));
        (1..=DEFAULT_CAPACITY).contains(&self.capacity)
            && self.bits <= 64
            && self.cells.len() <= self.capacity
            && self
                .cells
                .iter()
                .all(|(cell, n)| *n > 0 && prefix(*cell, 64, 64 - self.bits) == 0)
            && held == Some(self.total)
            && self.names.len() <= DISPLAY_NAMES
            && self.names.values().all(|n| n.len() <= DISPLAY_NAME_BYTES)
    }

    pub fn record(&mut self, category: &str) {
        let full = hash(category);
        self.total += 1;
        if let Some(n) = self.cells.get_mut(&prefix(full, 64, self.bits)) {
            *n += 1;
            return;
        }
        if self.cells.len() >= self.capacity {
            // Coarsen before inserting, so the map never grows past its bound even for a moment.
            let mut keys: Vec<u64> = self.cells.keys().copied().collect();
            keys.push(prefix(full, 64, self.bits));
            self.coarsen(fitting_bits(keys, self.bits, self.capacity));
        }
        *self.cells.entry(prefix(full, 64, self.bits)).or_insert(0) += 1;
        if self.bits == 64 && self.names.len() < DISPLAY_NAMES {
            self.names.insert(full, display_name(category));
        }
    }

    /// Adds another sketch: both brought to the coarser prefix length, and coarser still if
    /// their cells together do not fit, then cells added. Which categories share a cell depends
    /// only on their hashes, so the result is the sketch of all values recorded into either.
    pub fn merge(&mut self, other: &CategoricalSketch) {
        self.capacity = self.capacity.min(other.capacity);
        let common = self.bits.min(other.bits);
        let keys: Vec<u64> = self
            .cells
            .keys()
            .map(|c| prefix(*c, self.bits, common))
            .chain(other.cells.keys().map(|c| prefix(*c, other.bits, common)))
            .collect();
        self.coarsen(fitting_bits(keys, common, self.capacity));
        for (cell, n) in &other.cells {
            *self
                .cells
                .entry(prefix(*cell, other.bits, self.bits))
                .or_insert(0) += n;
        }
        self.total += other.total;
        self.names
            .extend(other.names.iter().map(|(h, n)| (*h, n.clone())));
        if self.names.len() > DISPLAY_NAMES {
            // Keep the names of the largest cells (ties by hash, so the choice is repeatable).
            let weight = |h: &u64| self.cells.get(&prefix(*h, 64, self.bits)).copied();
            let mut ranked: Vec<(Option<u64>, u64)> =
                self.names.keys().map(|h| (weight(h), *h)).collect();
            ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for (_, h) in ranked.split_off(DISPLAY_NAMES) {
                self.names.remove(&h);
            }
            self.names.shrink_to(DISPLAY_NAMES);
        }
    }

    fn coarsen(&mut self, bits: u32) {
        if bits >= self.bits {
            return;
        }
        let mut cells = HashMap::with_capacity(self.cells.len().min(self.capacity));
        for (cell, n) in self.cells.drain() {
            *cells.entry(prefix(cell, self.bits, bits)).or_insert(0) += n;
        }
        self.cells = cells;
        self.bits = bits;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Whether every cell is one category (no coarsening happened).
    pub fn is_exact(&self) -> bool {
        self.bits == 64
    }

    /// The cells' prefix length: 64 while exact, lower once coarsened.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Counts for people to read, largest first: each named cell under its category's name
    /// (once coarsened, a cell's count includes the unnamed categories that share it), and the
    /// rest under [`OTHER_CATEGORY`].
    pub fn named_counts(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = Vec::with_capacity(self.names.len() + 1);
        let mut named: HashMap<u64, &str> = HashMap::with_capacity(self.names.len());
        for (full, name) in &self.names {
            // Two names in one coarse cell: the cell is shown once, under the smaller name.
            let at = named.entry(prefix(*full, 64, self.bits)).or_insert(name);
            if **name < **at {
                *at = name;
            }
        }
        let mut other = 0;
        for (cell, n) in &self.cells {
            match named.get(cell) {
                Some(name) => out.push((name, *n)),
                None => other += n,
            }
        }
        if other > 0 {
            out.push((OTHER_CATEGORY, other));
        }
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }

    /// Bytes held by this sketch: map tables and display names (at most [`MAX_HEAP_BYTES`]).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + map_bytes(self.cells.capacity(), std::mem::size_of::<(u64, u64)>())
            + map_bytes(
                self.names.capacity(),
                std::mem::size_of::<(u64, Box<str>)>(),
            )
            + self.names.values().map(|n| n.len()).sum::<usize>()
    }
}

/// Both sketches' counts over their common cells (the coarser prefix length), in one order; a
/// cell empty on one side counts 0 there. Each count is exact, and each cell is a union of whole
/// categories, so a divergence over these cells is one of the exact distributions, coarsened.
pub(super) fn common_cells(a: &CategoricalSketch, b: &CategoricalSketch) -> (Vec<u64>, Vec<u64>) {
    let bits = a.bits.min(b.bits);
    let mut joint: HashMap<u64, (u64, u64)> = HashMap::with_capacity(a.cells.len() + b.cells.len());
    for (cell, n) in &a.cells {
        joint.entry(prefix(*cell, a.bits, bits)).or_default().0 += n;
    }
    for (cell, n) in &b.cells {
        joint.entry(prefix(*cell, b.bits, bits)).or_default().1 += n;
    }
    let mut cells: Vec<(u64, (u64, u64))> = joint.into_iter().collect();
    // One order for both sides and every run, so sums come out bit-identical.
    cells.sort_unstable_by_key(|c| c.0);
    cells.into_iter().map(|(_, counts)| counts).unzip()
}
