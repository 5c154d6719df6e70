//! Prometheus rules and, from the same queries, a Grafana dashboard for the SLOs of a spec.
//!
//! sliq computes budgets, burn rates and alerts itself, per instance; these rules compute the
//! same from the exported `sliq.slo.events` counters summed over every instance, with the windows,
//! factors, low-traffic guard and policy of each SLO's `BudgetConfig` (never restated here).
//! Pure: the SLOs come in, text goes out.

mod dashboard;
mod prometheus_names;
mod queries;
mod rule_file;

pub use dashboard::{DashboardOptions, dashboard};
pub use prometheus_names::{MetricKind, label_name, metric_name};
pub use queries::{
    BUDGET_REMAINING, POLICY_STATE, SloQueries, burn_rate_record, error_ratio_record, events_record,
};
pub use rule_file::{ALERT_NAME, Rule, RuleFile, RuleGroup};
