//! Judging closed windows: cascades resolved, drift judged, budgets moved. The same steps for a
//! `--role all` process (its own windows) and for the ledger (windows merged from every reader's
//! partials), so both judge alike.

use std::collections::BTreeSet;

use sliq_core::drift::{DriftMonitor, DriftPoint};
use sliq_core::{BudgetStatus, Evaluator, SeriesId, WindowCounts, Windows};
use tracing::{info, warn};

use crate::budgets::Budgets;

/// What one round of judging yields for the export.
#[derive(Debug)]
pub(crate) struct Judged {
    /// The windows closed (or drained) this round, their deferred verdicts resolved.
    pub(crate) windows: Vec<WindowCounts>,
    pub(crate) drift_points: Vec<DriftPoint>,
    pub(crate) budgets: Vec<(SeriesId, BudgetStatus)>,
    pub(crate) budget_time_ms: i64,
    /// Per SLO: events folded into `other` so far.
    pub(crate) folded: Vec<u64>,
}

/// The stages' state judging reads and moves (borrowed from the reader or the ledger).
pub(crate) struct Judge<'a> {
    pub(crate) evaluator: &'a mut Evaluator,
    pub(crate) drift: Option<&'a mut DriftMonitor>,
    pub(crate) budgets: &'a mut Budgets,
    /// Per SLO: [good, bad] counted so far, for the live table (drift verdicts join it here).
    pub(crate) slo_totals: &'a mut [[u64; 2]],
    /// SLOs whose folding into `other` was already warned about.
    pub(crate) folded_warned: &'a mut BTreeSet<usize>,
}

impl Judge<'_> {
    /// Judges `windows`, just taken out of `open` (whose frontier says which bad requests no
    /// window can still need).
    pub(crate) fn judge(self, mut windows: Vec<WindowCounts>, open: &Windows) -> Judged {
        for w in &mut windows {
            self.evaluator.resolve(w);
        }
        let config = open.config();
        self.evaluator.forget_requests_before(
            open.closed_before()
                .saturating_sub(config.size_ms + config.allowed_lateness_ms),
        );
        let mut drift_points = Vec::new();
        if let Some(monitor) = self.drift {
            for w in windows.iter_mut().filter(|w| w.closed) {
                let before = w.counts.len();
                drift_points.extend(monitor.judge(w, self.evaluator));
                // The drift SLO's window verdicts, for the live table.
                for c in &w.counts[before..] {
                    let slo = self.evaluator.series(c.series).slo;
                    self.slo_totals[slo][0] += c.good;
                    self.slo_totals[slo][1] += c.bad;
                }
            }
        }
        let drifted = drift_points.iter().filter(|p| p.detected).count();
        if drifted > 0 {
            info!(
                drifted,
                judged = drift_points.len(),
                "features drifted in closed windows"
            );
        }
        let (budgets, budget_time_ms) = self.budgets.update(&windows, self.evaluator);
        let folded: Vec<u64> = (0..self.evaluator.slos().len())
            .map(|i| self.evaluator.folded_events(i))
            .collect();
        for (i, n) in folded.iter().enumerate() {
            if *n > 0 && self.folded_warned.insert(i) {
                let slo = &self.evaluator.slos()[i];
                warn!(
                    slo = %slo.name,
                    max_series = slo.max_series,
                    "series beyond max_series now fold into `other`; raise max_series or drop a dimension"
                );
            }
        }
        Judged {
            windows,
            drift_points,
            budgets,
            budget_time_ms,
            folded,
        }
    }
}
