//! Attainment per SLO over a replay, and the what-if table comparing two specs.

use std::fmt::Write as _;

use sliq_core::{BudgetStatus, Evaluator, Slo};

use crate::engine::Closed;

/// One SLO's result over everything replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct SloAttainment {
    /// The SLO's name, with its tier when the spec gives tiers (`chat (tier=gold)`).
    pub label: String,
    pub objective: f64,
    pub good: u64,
    pub bad: u64,
    /// Over the SLO's period at the end of the replay, every series together.
    pub budget_remaining: f64,
}

impl SloAttainment {
    /// good ÷ (good + bad); `None` without events.
    pub fn ratio(&self) -> Option<f64> {
        let total = self.good + self.bad;
        (total > 0).then(|| self.good as f64 / total as f64)
    }
}

/// Totals per SLO, added up from every close of a replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attainment {
    pub slos: Vec<SloAttainment>,
}

/// The name people know an SLO by: tiered SLOs share the spec's name, so their tier is added.
pub fn slo_label(slo: &Slo) -> String {
    match &slo.filter {
        None => slo.name.clone(),
        Some(f) => format!(
            "{} ({}{}{})",
            slo.name,
            f.dimension.attribute(),
            if f.negate { " not " } else { "=" },
            f.values.join("|")
        ),
    }
}

impl Attainment {
    pub fn new(evaluator: &Evaluator) -> Attainment {
        Attainment {
            slos: evaluator
                .slos()
                .iter()
                .map(|slo| SloAttainment {
                    label: slo_label(slo),
                    objective: slo.objective,
                    good: 0,
                    bad: 0,
                    budget_remaining: 1.0,
                })
                .collect(),
        }
    }

    /// Adds one close's windows and takes its budget states.
    pub fn add(&mut self, evaluator: &Evaluator, closed: &Closed) {
        for c in closed.windows.iter().flat_map(|w| &w.counts) {
            let slo = &mut self.slos[evaluator.series(c.series).slo];
            slo.good += c.good;
            slo.bad += c.bad;
        }
        for (slo, status) in self.slos.iter_mut().zip(&closed.slo_budgets) {
            let BudgetStatus {
                budget_remaining, ..
            } = status;
            slo.budget_remaining = *budget_remaining;
        }
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.3}%", r * 100.0))
}

/// The what-if table: per SLO (matched by label), objective, events, attainment and budget left
/// under the old spec and the new one, as plain text.
pub fn compare_table(old: &Attainment, new: &Attainment) -> String {
    let mut labels: Vec<&str> = old.slos.iter().map(|s| s.label.as_str()).collect();
    for s in &new.slos {
        if !labels.contains(&s.label.as_str()) {
            labels.push(&s.label);
        }
    }
    let width = labels.iter().map(|l| l.len()).max().unwrap_or(3).max(3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>9} {:>9}  {:>9} {:>9}  {:>10} {:>10}  {:>9} {:>9}",
        "SLO", "objective", "(new)", "events", "(new)", "attained", "(new)", "budget", "(new)",
    );
    let find = |a: &'_ Attainment, label: &str| a.slos.iter().find(|s| s.label == label).cloned();
    for label in labels {
        let (o, n) = (find(old, label), find(new, label));
        let cell = |s: &Option<SloAttainment>, f: &dyn Fn(&SloAttainment) -> String| {
            s.as_ref().map_or_else(|| "-".to_owned(), f)
        };
        let _ = writeln!(
            out,
            "{label:<width$}  {:>9} {:>9}  {:>9} {:>9}  {:>10} {:>10}  {:>9} {:>9}",
            cell(&o, &|s| format!("{:.2}%", s.objective * 100.0)),
            cell(&n, &|s| format!("{:.2}%", s.objective * 100.0)),
            cell(&o, &|s| (s.good + s.bad).to_string()),
            cell(&n, &|s| (s.good + s.bad).to_string()),
            cell(&o, &|s| percent(s.ratio())),
            cell(&n, &|s| percent(s.ratio())),
            cell(&o, &|s| format!("{:.1}%", s.budget_remaining * 100.0)),
            cell(&n, &|s| format!("{:.1}%", s.budget_remaining * 100.0)),
        );
    }
    out
}
