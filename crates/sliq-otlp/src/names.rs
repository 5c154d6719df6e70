//! The names of what sliq exports, written once: the builder stamps them on points, and
//! `sliq-rules` translates them into the Prometheus names its rules and dashboard query.

/// Events judged by each SLO, by outcome: a monotonic sum.
pub const SLO_EVENTS: &str = "sliq.slo.events";
/// The unit of [`SLO_EVENTS`]: an annotation, so no unit suffix in Prometheus.
pub const SLO_EVENTS_UNIT: &str = "{event}";
/// The SLO's target good ratio (gauge, unit `1`).
pub const SLO_OBJECTIVE: &str = "sliq.slo.objective";
/// The SLO's contract objective, for SLOs with an SLA (gauge, unit `1`).
pub const SLO_SLA: &str = "sliq.slo.sla";
/// Whether a feature drifted in a window, 1/0 (gauge, unit `1`).
pub const DRIFT_DETECTED: &str = "sliq.drift.detected";
/// The unit of ratios and flags.
pub const RATIO_UNIT: &str = "1";

/// Attribute: the SLO a point belongs to.
pub const SLO_NAME: &str = "sliq.slo.name";
/// Attribute of the budget gauges: the team or rota that answers for the SLO.
pub const SLO_OWNER: &str = "sliq.slo.owner";
/// Attribute of the budget gauges: the SLO's runbook URL.
pub const SLO_RUNBOOK: &str = "sliq.slo.runbook";
/// Attribute: `good` or `bad` on [`SLO_EVENTS`].
pub const SLO_OUTCOME: &str = "sliq.slo.outcome";
/// Attribute: a burn-rate window (`5m`) or an alert's long and short windows (`1h/5m`).
pub const WINDOW: &str = "sliq.window";
/// Attribute: the drift feature of a drift point.
pub const FEATURE: &str = "sliq.feature";
