//! What a person watching a run sees: per-SLO counts so far, shared with the terminal table.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use sliq_core::drift::{DriftPoint, Features, Method};
use sliq_core::{BudgetStatus, Evaluator, SeriesId, Severity, Slo};

/// One SLO's running figures for the live table.
#[derive(Debug, Clone, PartialEq)]
pub struct SloProgress {
    pub name: String,
    pub objective: f64,
    pub good: u64,
    pub bad: u64,
    /// The budget state of the SLO's series with the least budget left, as of the newest closed
    /// window; `None` before one closed.
    pub worst: Option<SeriesBudget>,
}

/// One series' budget state, in the words of the live table.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesBudget {
    /// `service=chat, model=gpt-4o`; empty for an SLO without dimensions.
    pub dimensions: String,
    pub budget_remaining: f64,
    /// The burn rate over the shortest configured window of at least an hour (`None` without
    /// events in it), and that window.
    pub burn_rate: Option<f64>,
    pub burn_window_ms: i64,
    /// The most severe alert that fires: `page` or `ticket`.
    pub alert: Option<&'static str>,
    /// The error-budget policy state in force.
    pub policy: String,
}

/// The latest drift verdict on one feature, in the words of the live table.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftProgress {
    pub feature: String,
    pub method: Method,
    /// The distance, or for a test its p-value.
    pub value: f64,
    pub threshold: f64,
    pub detected: bool,
    /// Windows judged on this feature so far, and how many of them drifted.
    pub windows: u64,
    pub drifted_windows: u64,
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
    /// Per SLO, by index: its worst series as of the newest closed window.
    worst: Vec<Option<SeriesBudget>>,
    drift: Vec<DriftProgress>,
}

impl Progress {
    pub(crate) fn update(&self, slos: &[SloProgress], records: u64, dead_lettered: u64, late: u64) {
        let mut guard = self.inner.lock();
        let p = &mut *guard;
        p.slos.clear();
        p.slos.extend_from_slice(slos);
        for (slo, worst) in p.slos.iter_mut().zip(&p.worst) {
            slo.worst.clone_from(worst);
        }
        p.records = records;
        p.dead_lettered = dead_lettered;
        p.late = late;
    }

    /// Keeps, per SLO, the series with the least budget left among `statuses` (every series'
    /// state at the newest closed window).
    pub(crate) fn observe_budgets(
        &self,
        statuses: &[(SeriesId, BudgetStatus)],
        evaluator: &Evaluator,
    ) {
        if statuses.is_empty() {
            return;
        }
        let slos = evaluator.slos();
        let mut worst: Vec<Option<(SeriesId, &BudgetStatus)>> = vec![None; slos.len()];
        for (series, status) in statuses {
            let slot = &mut worst[evaluator.series(*series).slo];
            if slot.is_none_or(|(_, w)| status.budget_remaining < w.budget_remaining) {
                *slot = Some((*series, status));
            }
        }
        let described = worst
            .into_iter()
            .map(|w| {
                w.map(|(series, status)| {
                    let key = evaluator.series(series);
                    let slo = &slos[key.slo];
                    describe(status, slo, &key.values)
                })
            })
            .collect();
        self.inner.lock().worst = described;
    }

    /// Keeps the newest verdict per feature, counting each window once per feature (a window
    /// has one point per feature and dimension values: the most drifted one speaks for it).
    pub(crate) fn observe_drift(&self, points: &[DriftPoint], features: &Features) {
        let mut most: BTreeMap<(i64, usize), &DriftPoint> = BTreeMap::new();
        for point in points {
            let slot = most
                .entry((point.end_ms, features.key(point.series).feature))
                .or_insert(point);
            if drift_rank(point) > drift_rank(slot) {
                *slot = point;
            }
        }
        if most.is_empty() {
            return;
        }
        let mut p = self.inner.lock();
        for ((_, feature), point) in most {
            let name = &features.features()[feature].name;
            let at = p.drift.iter().position(|d| &d.feature == name);
            let at = at.unwrap_or_else(|| {
                p.drift.push(DriftProgress {
                    feature: name.clone(),
                    method: point.method,
                    value: 0.0,
                    threshold: 0.0,
                    detected: false,
                    windows: 0,
                    drifted_windows: 0,
                });
                p.drift.len() - 1
            });
            let d = &mut p.drift[at];
            d.method = point.method;
            d.value = point.p_value.unwrap_or(point.value);
            d.threshold = point.threshold;
            d.detected = point.detected;
            d.windows += 1;
            d.drifted_windows += u64::from(point.detected);
        }
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

    /// The newest drift verdict per feature, in the order features were first judged.
    pub fn drift(&self) -> Vec<DriftProgress> {
        self.inner.lock().drift.clone()
    }
}

/// Orders a window's points of one feature: drifted before steady, then further from the
/// reference (a smaller p-value for tests).
fn drift_rank(point: &DriftPoint) -> (bool, f64) {
    (
        point.detected,
        point.p_value.map_or(point.value, |p| 1.0 - p),
    )
}

/// A series' status as the table shows it.
fn describe(status: &BudgetStatus, slo: &Slo, values: &[Box<str>]) -> SeriesBudget {
    const HOUR_MS: i64 = 3_600_000;
    let dimensions = slo
        .dimensions
        .iter()
        .zip(values)
        .map(|(d, v)| format!("{}={v}", d.attribute()))
        .collect::<Vec<_>>()
        .join(", ");
    let (burn_window_ms, burn_rate) = status
        .burn_rates
        .iter()
        .filter(|(w, _)| *w >= HOUR_MS)
        .min_by_key(|(w, _)| *w)
        .or_else(|| status.burn_rates.last())
        .copied()
        .unwrap_or((HOUR_MS, None));
    let alert = status
        .alerts
        .iter()
        .filter(|(_, fires)| *fires)
        .map(|(rule, _)| rule.severity)
        .min_by_key(|severity| *severity != Severity::Page)
        .map(Severity::as_str);
    SeriesBudget {
        dimensions,
        budget_remaining: status.budget_remaining,
        burn_rate,
        burn_window_ms,
        alert,
        policy: slo
            .budget
            .policy
            .get(status.policy_state)
            .map_or_else(String::new, |s| s.name.clone()),
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
            worst: None,
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
