//! The report's numbers: per SLO the attainment, the budget left and its path over the replayed
//! period (the burn-down), the worst dimension values, policy state changes, and per drift series
//! what the windows said; computed from the closes of a [`Replay`], rendered by [`html`].

mod html;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sliq_core::{Evaluator, Period, SeriesId};

use crate::attainment::slo_label;
use crate::engine::{Closed, Replay};

pub use html::render;

/// At most this many points of a burn-down are kept: a 30-day period closes 43,200 one-minute
/// windows, and a chart 640 pixels wide shows no more.
const BURN_DOWN_POINTS: usize = 720;

/// Everything the report shows; serialized into the page too, for machines.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// What was replayed (the spec, the archive and the range), in words.
    pub subject: String,
    /// Event time of the first window's start and the last window's end.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub records: RecordSummary,
    pub slos: Vec<SloReport>,
    pub drift: Vec<DriftSummary>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RecordSummary {
    pub accepted: u64,
    /// Refused as late by the run (its windows had closed).
    pub late: u64,
    /// Refused by this spec's decoder.
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloReport {
    /// The name, with the tier for tiered SLOs.
    pub name: String,
    /// The spec's name (shared by tiers), as `sliq.slo.name` carries it.
    pub slo: String,
    pub objective: f64,
    /// Over the SLO's period (`30d`, `calendar_month`, …).
    pub period: String,
    /// Every event judged over the replay (all series).
    pub good: u64,
    pub bad: u64,
    /// good ÷ (good + bad); `None` without events.
    pub attainment: Option<f64>,
    /// Over the period at the end of the replay, every series together.
    pub budget_remaining: f64,
    pub policy_state: String,
    /// The policy's states, least severe first: each applies below its share of budget left.
    pub policy: Vec<PolicyLevel>,
    /// Budget left after each close (thinned to [`BURN_DOWN_POINTS`]).
    pub burn_down: Vec<BudgetPoint>,
    /// Every series, worst attainment first.
    pub series: Vec<SeriesSummary>,
    /// The contract objective (SLA, looser than `objective`), and who answers for the SLO.
    pub sla: Option<f64>,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    pub escalation: Vec<String>,
    /// Policy state changes of the SLO as a whole (no dimensions) and of each series.
    pub policy_changes: Vec<PolicyChange>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyLevel {
    pub name: String,
    pub below: f64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct BudgetPoint {
    pub at_ms: i64,
    pub remaining: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesSummary {
    pub dimensions: BTreeMap<String, String>,
    pub good: u64,
    pub bad: u64,
    pub attainment: Option<f64>,
    pub budget_remaining: f64,
    pub policy_state: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyChange {
    pub at_ms: i64,
    /// Empty for the SLO as a whole.
    pub dimensions: BTreeMap<String, String>,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriftSummary {
    pub feature: String,
    pub dimensions: BTreeMap<String, String>,
    pub method: String,
    /// Windows in which the feature was judged, and in how many it drifted.
    pub windows: u64,
    pub drifted: u64,
    pub max_value: f64,
    pub first_drift_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct SeriesState {
    good: u64,
    bad: u64,
    budget_remaining: f64,
    policy_state: usize,
}

/// Collects a report from the closes of one replay.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    slos: Vec<SloReport>,
    slo_states: Vec<usize>,
    series: HashMap<SeriesId, SeriesState>,
    drift: BTreeMap<u32, DriftSummary>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

fn ratio(good: u64, bad: u64) -> Option<f64> {
    let total = good + bad;
    (total > 0).then(|| good as f64 / total as f64)
}

fn period_label(period: Period) -> String {
    match period {
        Period::Rolling(ms) => sliq_otlp::window_label(ms),
        Period::CalendarMonth => "calendar month".into(),
        Period::CalendarWeek => "calendar week".into(),
    }
}

fn dimensions(evaluator: &Evaluator, series: SeriesId) -> BTreeMap<String, String> {
    let slo = evaluator.slo_of(series);
    slo.dimensions
        .iter()
        .zip(evaluator.series(series).values.iter())
        .map(|(d, v)| (d.attribute().to_owned(), v.to_string()))
        .collect()
}

fn state_name(evaluator: &Evaluator, slo: usize, state: usize) -> String {
    evaluator.slos()[slo]
        .budget
        .policy
        .get(state)
        .map_or_else(|| state.to_string(), |s| s.name.clone())
}

impl ReportBuilder {
    /// Adds one close of `replay`.
    pub fn add(&mut self, replay: &Replay, closed: &Closed) {
        let evaluator = replay.evaluator();
        if self.slos.is_empty() {
            self.slos = evaluator
                .slos()
                .iter()
                .enumerate()
                .map(|(i, slo)| SloReport {
                    name: slo_label(slo),
                    slo: slo.name.clone(),
                    objective: slo.objective,
                    period: period_label(slo.budget.period),
                    good: 0,
                    bad: 0,
                    attainment: None,
                    budget_remaining: 1.0,
                    policy_state: state_name(evaluator, i, 0),
                    policy: slo
                        .budget
                        .policy
                        .iter()
                        .map(|p| PolicyLevel {
                            name: p.name.clone(),
                            below: p.below,
                        })
                        .collect(),
                    burn_down: Vec::new(),
                    series: Vec::new(),
                    sla: slo.contract.sla,
                    owner: slo.contract.owner.clone(),
                    runbook: slo.contract.runbook.clone(),
                    escalation: slo.contract.escalation.clone(),
                    policy_changes: Vec::new(),
                })
                .collect();
            self.slo_states = vec![0; self.slos.len()];
        }
        for w in &closed.windows {
            self.from_ms = Some(self.from_ms.map_or(w.start_ms, |f| f.min(w.start_ms)));
            self.to_ms = Some(self.to_ms.map_or(w.end_ms, |t| t.max(w.end_ms)));
            for c in &w.counts {
                let slo = &mut self.slos[evaluator.series(c.series).slo];
                slo.good += c.good;
                slo.bad += c.bad;
                let s = self.series.entry(c.series).or_default();
                s.good += c.good;
                s.bad += c.bad;
            }
        }
        let at_ms = closed.budget_time_ms;
        for (i, status) in closed.slo_budgets.iter().enumerate() {
            let slo = &mut self.slos[i];
            if slo.good + slo.bad == 0 {
                continue;
            }
            slo.budget_remaining = status.budget_remaining;
            slo.burn_down.push(BudgetPoint {
                at_ms,
                remaining: status.budget_remaining,
            });
            if status.policy_state != self.slo_states[i] {
                slo.policy_changes.push(PolicyChange {
                    at_ms,
                    dimensions: BTreeMap::new(),
                    from: state_name(evaluator, i, self.slo_states[i]),
                    to: state_name(evaluator, i, status.policy_state),
                });
                self.slo_states[i] = status.policy_state;
            }
            slo.policy_state = state_name(evaluator, i, status.policy_state);
        }
        for (series, status) in &closed.budgets {
            let slo = evaluator.series(*series).slo;
            let s = self.series.entry(*series).or_default();
            s.budget_remaining = status.budget_remaining;
            if status.policy_state != s.policy_state {
                self.slos[slo].policy_changes.push(PolicyChange {
                    at_ms,
                    dimensions: dimensions(evaluator, *series),
                    from: state_name(evaluator, slo, s.policy_state),
                    to: state_name(evaluator, slo, status.policy_state),
                });
                s.policy_state = status.policy_state;
            }
        }
        if let Some(features) = replay.drift_features() {
            for p in &closed.drift {
                let key = features.key(p.series);
                let entry = self.drift.entry(p.series).or_insert_with(|| DriftSummary {
                    feature: features.features()[key.feature].name.clone(),
                    dimensions: features
                        .dimensions()
                        .iter()
                        .zip(&key.values)
                        .map(|(d, v)| (d.attribute().to_owned(), v.to_string()))
                        .collect(),
                    method: p.method.as_str().to_owned(),
                    windows: 0,
                    drifted: 0,
                    max_value: f64::NEG_INFINITY,
                    first_drift_ms: None,
                });
                entry.windows += 1;
                entry.max_value = entry.max_value.max(p.value);
                if p.detected {
                    entry.drifted += 1;
                    entry.first_drift_ms.get_or_insert(p.end_ms);
                }
            }
        }
    }

    /// The report of everything added; `subject` says what was replayed.
    pub fn finish(mut self, replay: &Replay, subject: String) -> Report {
        let evaluator = replay.evaluator();
        if self.slos.is_empty() {
            // Nothing closed: no window, but the SLOs are still named.
            self.add(replay, &Closed::default());
        }
        let mut by_slo: Vec<Vec<SeriesSummary>> = vec![Vec::new(); self.slos.len()];
        for (series, s) in &self.series {
            let slo = evaluator.series(*series).slo;
            by_slo[slo].push(SeriesSummary {
                dimensions: dimensions(evaluator, *series),
                good: s.good,
                bad: s.bad,
                attainment: ratio(s.good, s.bad),
                budget_remaining: s.budget_remaining,
                policy_state: state_name(evaluator, slo, s.policy_state),
            });
        }
        for (slo, mut series) in self.slos.iter_mut().zip(by_slo) {
            slo.attainment = ratio(slo.good, slo.bad);
            series.sort_by(|a, b| {
                a.attainment
                    .unwrap_or(1.0)
                    .total_cmp(&b.attainment.unwrap_or(1.0))
                    .then_with(|| a.dimensions.cmp(&b.dimensions))
            });
            slo.series = series;
            slo.burn_down = thin(std::mem::take(&mut slo.burn_down));
        }
        let r = replay.counts().records;
        Report {
            subject,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            records: RecordSummary {
                accepted: r.accepted,
                late: r.late,
                refused: r.dead_lettered,
            },
            slos: self.slos,
            drift: self.drift.into_values().collect(),
        }
    }
}

/// Keeps at most [`BURN_DOWN_POINTS`] evenly spaced points, the last always.
fn thin(points: Vec<BudgetPoint>) -> Vec<BudgetPoint> {
    if points.len() <= BURN_DOWN_POINTS {
        return points;
    }
    let step = points.len().div_ceil(BURN_DOWN_POINTS);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == last)
        .map(|(_, p)| p)
        .collect()
}
