//! The numeric sketch: a base-2 exponential histogram over both signs, plus exact moments.
//!
//! Bucket `i` at scale `s` holds the values `v` with `b^i < |v| <= b^(i+1)`, `b = 2^(2^-s)`, so a
//! bucket's width is at most `b − 1` of its values (1.09% at the default scale 6). Counts per bucket
//! are exact; only the position of a value inside its bucket is forgotten. Two consequences the
//! drift methods rely on:
//!
//! - sketches of the same scale merge by adding counts, exactly, in any order or grouping;
//! - the empirical CDF is exact at every bucket boundary, so a KS statistic read at the boundaries
//!   of two sketches on one grid can only be *lower* than the exact one: sketching never invents
//!   drift.

use serde::{Deserialize, Serialize};

use crate::histogram::ExpBuckets;

/// The scale new sketches start at: buckets 1.09% wide.
pub const DEFAULT_SCALE: i32 = 6;
/// The coarsest scale a sketch can reach: at scale −1, 2048 buckets cover every finite f64.
const MIN_SCALE: i32 = -1;
/// Buckets per sign before the sketch halves its resolution (one scale down): bounds memory at
/// ~2 × 8 × 2048 bytes whatever the input's range. At scale 6, 2048 buckets cover 32 octaves
/// (a range of 4 × 10^9), so real features rarely get there.
pub const MAX_BUCKETS: usize = 2048;

/// A mergeable summary of a numeric feature's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSketch {
    scale: i32,
    positive: ExpBuckets,
    negative: ExpBuckets,
    zero: u64,
    count: u64,
    mean: f64,
    /// Sum of squared deviations from the mean (Welford), for the standard deviation.
    m2: f64,
}

impl Default for NumericSketch {
    fn default() -> Self {
        NumericSketch::new(DEFAULT_SCALE)
    }
}

/// One bucket of a sketch as a value interval `[lo, hi]` (a point for zero) and its count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cell {
    /// Orders cells by value: negative buckets (largest magnitude first), zero, positive buckets.
    pub(crate) key: (i8, i32),
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) count: u64,
}

impl NumericSketch {
    pub fn new(scale: i32) -> Self {
        NumericSketch {
            scale,
            positive: ExpBuckets::default(),
            negative: ExpBuckets::default(),
            zero: 0,
            count: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// Adds one value; NaN and infinities are ignored (they have no place on the axis).
    pub fn record(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        if v == 0.0 {
            self.zero += 1;
            return;
        }
        let index = crate::histogram::ExpHistogram::bucket_index(v.abs(), self.scale);
        let store = if v > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        store.add(index, 1);
        self.fit();
    }

    /// Halves resolution until both signs fit in [`MAX_BUCKETS`].
    fn fit(&mut self) {
        while self.positive.span() > MAX_BUCKETS || self.negative.span() > MAX_BUCKETS {
            self.downscale(1);
        }
    }

    /// Adds another sketch: the coarser scale wins; moments combine exactly (Chan et al.).
    pub fn merge(&mut self, other: &NumericSketch) {
        if other.count == 0 {
            return;
        }
        if other.scale < self.scale {
            self.downscale((self.scale - other.scale) as u32);
        }
        let other = other.at_scale(self.scale);
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
        self.zero += other.zero;
        let n = self.count + other.count;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * (self.count as f64 * other.count as f64) / n as f64;
        self.mean += delta * other.count as f64 / n as f64;
        self.count = n;
        self.fit();
    }

    fn downscale(&mut self, by: u32) {
        self.positive.downscale(by);
        self.negative.downscale(by);
        self.scale -= by as i32;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn scale(&self) -> i32 {
        self.scale
    }

    /// Population standard deviation (ddof 0, as numpy's default); NaN when the values overflow
    /// the moments (near ±f64::MAX), so nothing is normalized by an infinite spread.
    pub fn std_dev(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else if !(self.m2.is_finite() && self.mean.is_finite()) {
            f64::NAN
        } else {
            (self.m2 / self.count as f64).max(0.0).sqrt()
        }
    }

    /// Whether this sketch could have been made by [`record`](Self::record) and
    /// [`merge`](Self::merge): a scale this build produces, buckets within budget, counts that
    /// add up. Sketches read from files (baselines, saved references) are checked, so a hand edit
    /// cannot make the sketch allocate without bound or misreport.
    pub fn is_consistent(&self) -> bool {
        let store_ok = |b: &ExpBuckets| {
            b.counts.len() <= MAX_BUCKETS
                && i32::try_from(b.counts.len())
                    .ok()
                    .and_then(|n| b.offset.checked_add(n))
                    .is_some()
        };
        let held = self
            .positive
            .counts
            .iter()
            .chain(&self.negative.counts)
            .try_fold(self.zero, |sum, n| sum.checked_add(*n));
        (MIN_SCALE..=DEFAULT_SCALE).contains(&self.scale)
            && store_ok(&self.positive)
            && store_ok(&self.negative)
            && held == Some(self.count)
    }

    /// The `q`-quantile, as the upper bound of the bucket holding it (within one bucket's width).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let cells = self.cells();
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        cells.iter().find_map(|c| {
            seen += c.count;
            (seen >= target).then_some(c.hi)
        })
    }

    /// Bytes held by this sketch (its struct and bucket arrays), for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 8 * (self.positive.counts.capacity() + self.negative.counts.capacity())
    }

    /// The non-empty buckets in value order.
    pub(crate) fn cells(&self) -> Vec<Cell> {
        let base = |i: i32| (f64::from(i) * (-f64::from(self.scale)).exp2()).exp2();
        let mut cells: Vec<Cell> = self
            .negative
            .nonzero()
            .map(|(i, count)| Cell {
                key: (0, -i),
                lo: -base(i + 1),
                hi: -base(i),
                count,
            })
            .collect();
        cells.reverse();
        if self.zero > 0 {
            cells.push(Cell {
                key: (1, 0),
                lo: 0.0,
                hi: 0.0,
                count: self.zero,
            });
        }
        cells.extend(self.positive.nonzero().map(|(i, count)| Cell {
            key: (2, i),
            lo: base(i),
            hi: base(i + 1),
            count,
        }));
        cells
    }

    /// This sketch at a coarser scale (a copy), so two sketches can share one grid.
    pub(crate) fn at_scale(&self, scale: i32) -> std::borrow::Cow<'_, NumericSketch> {
        if scale >= self.scale {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut copy = self.clone();
        copy.downscale((self.scale - scale) as u32);
        std::borrow::Cow::Owned(copy)
    }
}
