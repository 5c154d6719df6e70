//! What a person watching a run sees: per-SLO counts so far, shared with the terminal table.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// One SLO's running figures for the live table.
#[derive(Debug, Clone, PartialEq)]
pub struct SloProgress {
    pub name: String,
    pub objective: f64,
    pub good: u64,
    pub bad: u64,
}

impl SloProgress {
    pub fn events(&self) -> u64 {
        self.good + self.bad
    }

    /// Good ratio so far; `None` before the first judged event.
    pub fn good_ratio(&self) -> Option<f64> {
        (self.events() > 0).then(|| self.good as f64 / self.events() as f64)
    }

    /// Share of the error budget left: 1 − bad ratio ÷ (1 − objective). Negative when overspent.
    pub fn budget_left(&self) -> Option<f64> {
        self.good_ratio()
            .map(|r| 1.0 - (1.0 - r) / (1.0 - self.objective))
    }
}

/// Live counters, written by the pipeline thread and read by whoever draws the table.
#[derive(Debug, Default)]
pub struct Progress {
    inner: Mutex<ProgressInner>,
    /// Records read so far, updated with every record (the table's figures move per checkpoint).
    records_read: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct ProgressInner {
    slos: Vec<SloProgress>,
    records: u64,
    dead_lettered: u64,
    late: u64,
}

impl Progress {
    pub(crate) fn update(&self, slos: &[SloProgress], records: u64, dead_lettered: u64, late: u64) {
        let mut p = self.inner.lock();
        p.slos.clear();
        p.slos.extend_from_slice(slos);
        p.records = records;
        p.dead_lettered = dead_lettered;
        p.late = late;
    }

    pub(crate) fn record_read(&self) {
        self.records_read.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the pipeline has read, up to this moment.
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    /// Per-SLO figures and (records read, dead-lettered, late).
    pub fn snapshot(&self) -> (Vec<SloProgress>, u64, u64, u64) {
        let p = self.inner.lock();
        (p.slos.clone(), p.records, p.dead_lettered, p.late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_left_follows_the_definition() {
        // 990 good of 1000 at 99.5%: bad ratio 1% is twice the 0.5% budget → −100%.
        let p = SloProgress {
            name: "a".into(),
            objective: 0.995,
            good: 990,
            bad: 10,
        };
        assert!((p.budget_left().unwrap() - -1.0).abs() < 1e-9);
        // 998 of 1000: 0.2% of 0.5% spent → 60% left.
        let p = SloProgress {
            good: 998,
            bad: 2,
            ..p
        };
        assert!((p.budget_left().unwrap() - 0.6).abs() < 1e-9);
        let p = SloProgress {
            good: 0,
            bad: 0,
            ..p
        };
        assert_eq!(p.budget_left(), None);
    }
}
