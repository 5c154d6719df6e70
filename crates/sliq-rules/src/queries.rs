//! The PromQL of one SLO, shared by the rule file and the dashboard: which series are its, what
//! the rules record for it under which names, and how a panel or an alert reads them back.
//!
//! Every recorded series is summed over instances (`sum by` the SLO's name and dimensions), and
//! every ratio is a ratio of sums over its window, as sliq's own ledger computes it.

use std::collections::{BTreeMap, BTreeSet};

use sliq_core::{Outcome, Slo};
use sliq_otlp::names;
use sliq_otlp::window_label;

use crate::prometheus_names::{MetricKind, label_name, metric_name};

/// Recorded: bad ÷ all events over a window (`:rate<window>`).
const ERROR_RATIO: &str = "sliq_slo:error_ratio:rate";
/// Recorded: error ratio ÷ error budget over a window (`:<window>`).
const BURN_RATE: &str = "sliq_slo:burn_rate:";
/// Recorded: events over an alert's long window, for the low-traffic guard.
const EVENTS: &str = "sliq_slo:events:increase";
/// Recorded: share of the error budget left over the period.
pub const BUDGET_REMAINING: &str = "sliq_slo:budget_remaining";
/// Recorded: index of the error-budget policy state in force (0 = least severe).
pub const POLICY_STATE: &str = "sliq_slo:policy_state";

/// One core SLO (a spec SLO, one of its thresholds, or one of its tiers) in PromQL.
#[derive(Debug, Clone)]
pub struct SloQueries<'a> {
    pub slo: &'a Slo,
    /// Label matchers picking this SLO's series: its name and, for a tier, the tier's values.
    matchers: String,
    /// The labels every recorded series keeps: the SLO's name and its dimensions.
    grouping: Vec<String>,
}

impl<'a> SloQueries<'a> {
    pub fn new(slo: &'a Slo) -> Self {
        let mut matchers = format!(
            "{}=\"{}\"",
            label_name(names::SLO_NAME),
            promql_string(&slo.name)
        );
        if let Some(filter) = &slo.filter {
            let label = label_name(filter.dimension.attribute());
            let (op, value) = match (filter.values.as_slice(), filter.negate) {
                ([one], false) => ("=", one.clone()),
                ([one], true) => ("!=", one.clone()),
                (many, negate) => (
                    if negate { "!~" } else { "=~" },
                    many.iter()
                        .map(|v| regex::escape(v))
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
            };
            matchers.push_str(&format!(",{label}{op}\"{}\"", promql_string(&value)));
        }
        let grouping = std::iter::once(label_name(names::SLO_NAME))
            .chain(slo.dimensions.iter().map(|d| label_name(d.attribute())))
            .collect();
        SloQueries {
            slo,
            matchers,
            grouping,
        }
    }

    /// Names this SLO apart from the other core SLOs of the same spec SLO: the name, and for a
    /// tier its matcher.
    pub fn title(&self) -> String {
        match &self.slo.filter {
            None => self.slo.name.clone(),
            Some(f) => format!(
                "{} ({}{}{})",
                self.slo.name,
                f.dimension.attribute(),
                if f.negate { " not " } else { "=" },
                f.values.join(", ")
            ),
        }
    }

    /// The labels every rule of this SLO sets on what it writes: the values its series carry
    /// anyway (the name, a single tier's value), so that the rules of two SLOs that record under
    /// one name differ to Prometheus's duplicate-rule check.
    pub fn rule_labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(label_name(names::SLO_NAME), self.slo.name.clone())]);
        if let Some(filter) = &self.slo.filter
            && let ([value], false) = (filter.values.as_slice(), filter.negate)
        {
            labels.insert(label_name(filter.dimension.attribute()), value.clone());
        }
        labels
    }

    /// Every window something is recorded over: the reported burn-rate windows, both windows of
    /// every alert, and the period (as its nominal length), shortest first.
    pub fn windows(&self) -> Vec<i64> {
        let budget = &self.slo.budget;
        let windows: BTreeSet<i64> = budget
            .burn_windows_ms
            .iter()
            .copied()
            .chain(budget.alerts.iter().flat_map(|a| [a.long_ms, a.short_ms]))
            .chain([self.period_ms()])
            .collect();
        windows.into_iter().collect()
    }

    /// The period's length as the rules assume it.
    pub fn period_ms(&self) -> i64 {
        self.slo.budget.period.nominal_ms()
    }

    /// The error budget `1 − objective`, written as that subtraction so PromQL computes the same
    /// double as sliq does.
    pub fn error_budget(&self) -> String {
        format!("(1 - {})", number(self.slo.objective))
    }

    /// The exported counter, with this SLO's matchers and more.
    fn events(&self, extra: &str) -> String {
        format!(
            "{}{{{}{extra}}}",
            metric_name(
                names::SLO_EVENTS,
                names::SLO_EVENTS_UNIT,
                MetricKind::Counter
            ),
            self.matchers
        )
    }

    fn sum_by(&self) -> String {
        format!("sum by ({})", self.grouping.join(", "))
    }

    /// How the rules compute the error ratio over a window.
    pub fn error_ratio_expr(&self, window_ms: i64) -> String {
        let w = window_label(window_ms);
        let bad = format!(
            ",{}=\"{}\"",
            label_name(names::SLO_OUTCOME),
            Outcome::Bad.as_str()
        );
        format!(
            "{sum} (rate({bad_events}[{w}]))\n/\n{sum} (rate({all_events}[{w}]))",
            sum = self.sum_by(),
            bad_events = self.events(&bad),
            all_events = self.events(""),
        )
    }

    /// How the rules compute the events over a window.
    pub fn events_expr(&self, window_ms: i64) -> String {
        format!(
            "{} (increase({}[{}]))",
            self.sum_by(),
            self.events(""),
            window_label(window_ms)
        )
    }

    /// How the rules compute the burn rate over a window.
    pub fn burn_rate_expr(&self, window_ms: i64) -> String {
        format!(
            "{} / {}",
            self.read(&error_ratio_record(window_ms)),
            self.error_budget()
        )
    }

    /// How the rules compute the budget left over the period.
    pub fn budget_remaining_expr(&self) -> String {
        format!(
            "1 - {} / {}",
            self.read(&error_ratio_record(self.period_ms())),
            self.error_budget()
        )
    }

    /// How the rules compute the policy state: the most severe state whose bound the remaining
    /// budget is below, else the first (as sliq's ledger picks it).
    pub fn policy_state_expr(&self) -> String {
        let remaining = self.read(BUDGET_REMAINING);
        let mut clauses: Vec<String> = self
            .slo
            .budget
            .policy
            .iter()
            .enumerate()
            .skip(1)
            .rev()
            .map(|(i, state)| format!("({remaining} < {}) * 0 + {i}", number(state.below)))
            .collect();
        clauses.push(format!("{remaining} * 0"));
        clauses.join("\nor\n")
    }

    /// A recorded series of this SLO, as alerts and panels read it.
    pub fn read(&self, record: &str) -> String {
        format!("{record}{{{}}}", self.matchers)
    }
}

/// The name of the recorded error ratio over a window.
pub fn error_ratio_record(window_ms: i64) -> String {
    format!("{ERROR_RATIO}{}", window_label(window_ms))
}

/// The name of the recorded burn rate over a window.
pub fn burn_rate_record(window_ms: i64) -> String {
    format!("{BURN_RATE}{}", window_label(window_ms))
}

/// The name of the recorded event count over a window.
pub fn events_record(window_ms: i64) -> String {
    format!("{EVENTS}{}", window_label(window_ms))
}

/// A number as PromQL and people read it: at most nine decimals, no float noise
/// (`0.02 × 720 h ÷ 1 h` is `14.4`, not `14.400000000000002`).
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let rounded = (x * 1e9).round() / 1e9;
    if rounded == 0.0 && x != 0.0 {
        // Below the rounding (f64::MIN_POSITIVE, "at 0 or less"): keep the exact value.
        return format!("{x:e}");
    }
    format!("{rounded}")
}

/// Text inside a PromQL double-quoted string.
fn promql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sliq_core::{Dimension, Filter, Sli};

    fn slo(name: &str, objective: f64) -> Slo {
        Slo::new(
            name,
            Sli::Availability {
                exclude_error_types: vec![],
            },
            objective,
            vec![Dimension::Service, Dimension::Label("customer-tier".into())],
        )
    }

    #[test]
    fn the_error_ratio_is_a_ratio_of_sums_over_instances() {
        let s = slo("chat", 0.999);
        let q = SloQueries::new(&s);
        assert_eq!(
            q.error_ratio_expr(300_000),
            "sum by (sliq_slo_name, service, customer_tier) \
             (rate(sliq_slo_events_total{sliq_slo_name=\"chat\",sliq_slo_outcome=\"bad\"}[5m]))\n/\n\
             sum by (sliq_slo_name, service, customer_tier) \
             (rate(sliq_slo_events_total{sliq_slo_name=\"chat\"}[5m]))"
        );
        assert_eq!(
            q.burn_rate_expr(3_600_000),
            "sliq_slo:error_ratio:rate1h{sliq_slo_name=\"chat\"} / (1 - 0.999)"
        );
        // The workbook's windows, and the 30-day period.
        assert_eq!(
            q.windows()
                .into_iter()
                .map(window_label)
                .collect::<Vec<_>>(),
            ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
        );
    }

    #[test]
    fn tiers_and_odd_names_become_exact_matchers() {
        let mut s = slo("a \"quoted\" \\ name", 0.99);
        s.filter = Some(Filter {
            dimension: Dimension::Label("customer-tier".into()),
            values: vec!["gold".into(), "plat.inum".into()],
            negate: true,
        });
        let q = SloQueries::new(&s);
        assert_eq!(
            q.read(BUDGET_REMAINING),
            "sliq_slo:budget_remaining{sliq_slo_name=\"a \\\"quoted\\\" \\\\ name\",\
             customer_tier!~\"gold|plat\\\\.inum\"}"
        );
        assert_eq!(
            q.title(),
            "a \"quoted\" \\ name (customer-tier not gold, plat.inum)"
        );
    }

    #[test]
    fn policy_states_are_tried_from_the_most_severe() {
        let s = slo("chat", 0.99);
        let q = SloQueries::new(&s);
        let r = "sliq_slo:budget_remaining{sliq_slo_name=\"chat\"}";
        assert_eq!(
            q.policy_state_expr(),
            format!(
                "({r} < 2.2250738585072014e-308) * 0 + 3\nor\n({r} < 0.2) * 0 + 2\nor\n\
                 ({r} < 0.5) * 0 + 1\nor\n{r} * 0"
            )
        );
    }

    #[test]
    fn numbers_drop_float_noise_only() {
        assert_eq!(number(0.02 * 720.0), "14.4");
        assert_eq!(number(0.999), "0.999");
        assert_eq!(number(6.0), "6");
        assert_eq!(number(1.0 / 3.0), "0.333333333");
    }
}
