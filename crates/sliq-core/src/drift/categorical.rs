//! The categorical sketch: exact counts for up to `capacity` categories, then a Misra-Gries
//! heavy-hitter summary.
//!
//! While at most `capacity` distinct values were seen, every count is exact. Beyond that the sketch
//! keeps `capacity` counters with the mergeable Misra-Gries rule (Agarwal et al., "Mergeable
//! Summaries", 2012): when a new value finds no free counter, the (capacity+1)-th largest count is
//! subtracted from every counter and the non-positive ones are dropped. Each kept count then
//! undercounts its category by at most `(total − kept) / (capacity + 1)`, and the mass no counter
//! holds is compared as one extra category ([`CategoricalSketch::unheld`]), so proportions still
//! sum to one.
//!
//! No maintained crate offers a Misra-Gries summary with merging and serde, so it lives here; the
//! rule is the one from the paper above.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Categories counted exactly before the sketch becomes a heavy-hitter summary.
pub const DEFAULT_CAPACITY: usize = 256;

/// The name under which mass not held by any counter is shown in a baseline's summary.
pub const OTHER_CATEGORY: &str = "__other__";

/// A mergeable summary of a categorical feature's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSketch {
    capacity: usize,
    counts: HashMap<Box<str>, u64>,
    /// Every value recorded, held by a counter or not.
    total: u64,
}

impl Default for CategoricalSketch {
    fn default() -> Self {
        CategoricalSketch::new(DEFAULT_CAPACITY)
    }
}

impl CategoricalSketch {
    pub fn new(capacity: usize) -> Self {
        CategoricalSketch {
            capacity: capacity.max(1),
            counts: HashMap::new(),
            total: 0,
        }
    }

    /// Whether this sketch could have been made by recording and merging: no more counters than
    /// its capacity, none empty, and no more counted than recorded (see
    /// [`NumericSketch::is_consistent`](super::NumericSketch::is_consistent)).
    pub fn is_consistent(&self) -> bool {
        let held = self
            .counts
            .values()
            .try_fold(0u64, |sum, n| sum.checked_add(*n));
        self.capacity >= 1
            && self.counts.len() <= self.capacity
            && self.counts.values().all(|n| *n > 0)
            && held.is_some_and(|h| h <= self.total)
    }

    pub fn record(&mut self, category: &str) {
        self.add(category, 1);
    }

    fn add(&mut self, category: &str, n: u64) {
        self.total += n;
        if let Some(c) = self.counts.get_mut(category) {
            *c += n;
            return;
        }
        self.counts.insert(category.into(), n);
        if self.counts.len() > self.capacity {
            self.shrink();
        }
    }

    /// The Misra-Gries step: subtract the (capacity+1)-th largest count from all, drop the rest.
    fn shrink(&mut self) {
        let mut sorted: Vec<u64> = self.counts.values().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let cut = sorted[self.capacity];
        self.counts.retain(|_, c| {
            *c = c.saturating_sub(cut);
            *c > 0
        });
    }

    /// Adds another sketch (its counters, then one shrink if over capacity).
    pub fn merge(&mut self, other: &CategoricalSketch) {
        self.total += other.total;
        for (k, n) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += n;
        }
        self.capacity = self.capacity.min(other.capacity);
        if self.counts.len() > self.capacity {
            self.shrink();
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Whether every count is exact (no category was ever dropped or decremented).
    pub fn is_exact(&self) -> bool {
        self.unheld() == 0
    }

    /// Counts by category, sorted by name; the mass no counter holds is [`unheld`](Self::unheld).
    pub fn counts(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = self.counts.iter().map(|(k, n)| (&**k, *n)).collect();
        out.sort_unstable();
        out
    }

    /// Values recorded that no counter holds (0 while exact): compared as one more category,
    /// kept apart from the named ones so no real category can merge with it.
    pub fn unheld(&self) -> u64 {
        self.total - self.counts.values().sum::<u64>()
    }

    /// Bytes held by this sketch, approximately (map slots and category names).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.counts.capacity() * (std::mem::size_of::<(Box<str>, u64)>() + 1)
            + self.counts.keys().map(|k| k.len()).sum::<usize>()
    }
}
