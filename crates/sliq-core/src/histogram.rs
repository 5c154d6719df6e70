//! Latency distributions as OTLP base-2 exponential histograms, per window and per
//! (service, operation, model, error type): the `gen_ai.client.operation.duration` metric.
//!
//! A fixed scale keeps histograms of different windows, partitions and instances mergeable by plain
//! bucket addition. Scale 3 gives buckets `(2^(i/8), 2^((i+1)/8)]`: at most 4.4% relative error, and
//! 1 ms to 100 s fits in 133 buckets.

use crate::event::{Event, Status};
use crate::intern::{KeyTable, write_key};

/// The scale of every latency histogram.
pub const LATENCY_SCALE: i32 = 3;

/// Dense bucket counts of a base-2 exponential histogram: bucket `offset + i` holds `counts[i]`.
/// Shared by the latency histograms and the drift sketches, so both merge the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpBuckets {
    /// Index of the first bucket in `counts`.
    pub offset: i32,
    pub counts: Vec<u64>,
}

impl ExpBuckets {
    /// Adds `n` to bucket `index`, growing the dense range as needed.
    pub fn add(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = index;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        }
        let i = (index - self.offset) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
    }

    /// Adds every bucket of `other` (same scale).
    pub fn merge(&mut self, other: &ExpBuckets) {
        for (index, n) in other.nonzero() {
            self.add(index, n);
        }
    }

    /// The non-empty buckets as (index, count), lowest index first.
    pub fn nonzero(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (self.offset + i as i32, *n))
    }

    /// Re-buckets at a scale `by` steps coarser: bucket `i` becomes `i >> by` (floor), which is
    /// exact because every coarse bucket is the union of `2^by` fine ones.
    pub fn downscale(&mut self, by: u32) {
        if by == 0 || self.counts.is_empty() {
            return;
        }
        let old = std::mem::take(self);
        // Past 31 every index is already 0 or -1 (floor division), and `>>` would overflow.
        for (index, n) in old.nonzero() {
            self.add(index >> by.min(31), n);
        }
    }

    /// How many buckets the dense range spans.
    pub fn span(&self) -> usize {
        self.counts.len()
    }
}

/// A base-2 exponential histogram of positive values (zero and negative values count as zero).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpHistogram {
    pub scale: i32,
    pub zero_count: u64,
    pub positive: ExpBuckets,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl ExpHistogram {
    pub fn new(scale: i32) -> Self {
        ExpHistogram {
            scale,
            zero_count: 0,
            positive: ExpBuckets::default(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// The bucket holding `v > 0`: the `i` with `base^i < v <= base^(i+1)`, `base = 2^(2^-scale)`.
    pub fn bucket_index(v: f64, scale: i32) -> i32 {
        let exact = v.log2() * 2f64.powi(scale);
        // ceil(x) − 1 puts exact powers of the base at the top of the bucket below.
        (exact.ceil() as i32) - 1
    }

    pub fn record(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v <= 0.0 {
            self.zero_count += 1;
            return;
        }
        self.positive.add(Self::bucket_index(v, self.scale), 1);
    }

    /// Adds another histogram of the same scale.
    pub fn merge(&mut self, other: &ExpHistogram) {
        debug_assert_eq!(self.scale, other.scale);
        self.count += other.count;
        self.sum += other.sum;
        self.zero_count += other.zero_count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.positive.merge(&other.positive);
    }
}

/// Identity of one latency series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LatencyKey {
    pub service: Box<str>,
    pub operation: Box<str>,
    pub model: Box<str>,
    /// The error type of failed requests (`_OTHER` when they carry none), as the GenAI
    /// conventions' `error.type`.
    pub error_type: Option<Box<str>>,
}

/// Interns latency series.
#[derive(Debug, Default)]
pub struct LatencySeries {
    ids: KeyTable<u32>,
    keys: Vec<LatencyKey>,
    scratch: Vec<u8>,
}

impl LatencySeries {
    /// The series of an event and its duration in seconds, if it has one.
    pub fn observe(&mut self, event: &Event<'_>) -> Option<(u32, f64)> {
        let seconds = event.latency_ms.filter(|l| l.is_finite() && *l >= 0.0)? / 1000.0;
        let error_type =
            (event.status == Status::Error).then(|| event.error_type.unwrap_or("_OTHER"));
        let model = event.model.unwrap_or(crate::slo::UNKNOWN);
        let id = self.id_of(event.service, event.operation, model, error_type);
        Some((id, seconds))
    }

    /// The id of a series as a checkpoint stored it, interned when new.
    pub fn intern(&mut self, key: &LatencyKey) -> u32 {
        self.id_of(
            &key.service,
            &key.operation,
            &key.model,
            key.error_type.as_deref(),
        )
    }

    fn id_of(
        &mut self,
        service: &str,
        operation: &str,
        model: &str,
        error_type: Option<&str>,
    ) -> u32 {
        // The tag tells a failed request's series from a successful one's.
        write_key(
            &mut self.scratch,
            usize::from(error_type.is_some()),
            [service, operation, model, error_type.unwrap_or("")].into_iter(),
        );
        if let Some(id) = self.ids.get(self.scratch.as_slice()) {
            return *id;
        }
        let key = LatencyKey {
            service: service.into(),
            operation: operation.into(),
            model: model.into(),
            error_type: error_type.map(Into::into),
        };
        let id = self.keys.len() as u32;
        self.ids.insert(Box::from(self.scratch.as_slice()), id);
        self.keys.push(key);
        id
    }

    pub fn key(&self, id: u32) -> &LatencyKey {
        &self.keys[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_boundaries_are_upper_inclusive() {
        // Scale 0: buckets (1,2], (2,4], ...; 2 belongs to bucket 0, 2.0001 to bucket 1.
        assert_eq!(ExpHistogram::bucket_index(2.0, 0), 0);
        assert_eq!(ExpHistogram::bucket_index(2.0001, 0), 1);
        assert_eq!(ExpHistogram::bucket_index(1.0, 0), -1);
        assert_eq!(ExpHistogram::bucket_index(0.75, 0), -1);
        // Scale 3: base 2^(1/8); 1 s sits at the top of bucket −1, 1.5 s in bucket 4
        // (log2 1.5 × 8 = 4.68 → ceil 5 − 1).
        assert_eq!(ExpHistogram::bucket_index(1.0, 3), -1);
        assert_eq!(ExpHistogram::bucket_index(1.5, 3), 4);
    }

    #[test]
    fn record_and_merge_agree() {
        let values = [0.0, 0.003, 0.5, 0.5, 1.2, 7.0, 30.0];
        let mut whole = ExpHistogram::new(LATENCY_SCALE);
        values.iter().for_each(|v| whole.record(*v));
        let (mut a, mut b) = (
            ExpHistogram::new(LATENCY_SCALE),
            ExpHistogram::new(LATENCY_SCALE),
        );
        values[..3].iter().for_each(|v| a.record(*v));
        values[3..].iter().for_each(|v| b.record(*v));
        b.merge(&a);
        assert_eq!(b.positive, whole.positive);
        assert_eq!((b.count, b.zero_count, b.min, b.max), (7, 1, 0.0, 30.0));
        assert!((b.sum - values.iter().sum::<f64>()).abs() < 1e-12);
        // Every bucket's bounds hold its values: 0.5 → (2^(k/8), 2^((k+1)/8)].
        let k = ExpHistogram::bucket_index(0.5, 3);
        let base = 2f64.powf(1.0 / 8.0);
        assert!(base.powi(k) < 0.5 && 0.5 <= base.powi(k + 1) * (1.0 + 1e-12));
        assert_eq!(
            whole.positive.counts[(k - whole.positive.offset) as usize],
            2
        );
        assert_eq!(
            whole.positive.counts.iter().sum::<u64>() + whole.zero_count,
            7
        );
    }
}
