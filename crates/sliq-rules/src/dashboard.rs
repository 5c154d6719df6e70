//! The Grafana dashboard: one row per SLO with its SLI, budget remaining, burn rates, policy state
//! and drift, every panel reading the series the rule file records (so a panel and an alert never
//! disagree about a number), on a Prometheus data source picked when the dashboard is imported.

use serde_json::{Value, json};
use sliq_core::Slo;
use sliq_otlp::{names, window_label};

use crate::prometheus_names::{MetricKind, label_name, metric_name};
use crate::queries::{
    BUDGET_REMAINING, POLICY_STATE, SloQueries, burn_rate_record, error_ratio_record, number,
};

/// The dashboard JSON model version written (Grafana 10.4 / 11).
const SCHEMA_VERSION: u32 = 39;
/// Grafana lays panels on a grid 24 columns wide.
const GRID_COLUMNS: u32 = 24;
const PANEL_HEIGHT: u32 = 8;
/// The data source variable every panel reads through.
const DATASOURCE: &str = "${datasource}";

/// What the dashboard shows besides the SLOs.
#[derive(Debug, Clone, Copy)]
pub struct DashboardOptions<'a> {
    /// Names the dashboard (its title and uid): the spec's file name, e.g. `chatbot`.
    pub name: &'a str,
    /// Whether the spec watches drift (then each row shows which features drifted).
    pub drift: bool,
}

/// The dashboard of `slos` as Grafana imports it.
pub fn dashboard(slos: &[Slo], options: DashboardOptions<'_>) -> Value {
    let mut panels = Vec::new();
    let mut next_id = 1;
    let mut y = 0;
    for slo in slos {
        let q = SloQueries::new(slo);
        panels.push(json!({
            "type": "row",
            "id": next_id,
            "title": row_title(&q),
            "collapsed": false,
            "gridPos": { "h": 1, "w": GRID_COLUMNS, "x": 0, "y": y },
            "panels": [],
        }));
        next_id += 1;
        y += 1;
        let mut row = vec![
            (7, sli_panel(&q)),
            (4, budget_panel(&q)),
            (6, burn_panel(&q)),
            (4, policy_panel(&q)),
        ];
        if options.drift {
            row.push((3, drift_panel()));
        }
        let mut x = 0;
        let total: u32 = row.iter().map(|(w, _)| w).sum();
        let last = row.len() - 1;
        for (i, (width, mut panel)) in row.into_iter().enumerate() {
            // The last panel takes what is left of the row.
            let w = if i == last {
                width + GRID_COLUMNS - total
            } else {
                width
            };
            panel["id"] = json!(next_id);
            panel["gridPos"] = json!({ "h": PANEL_HEIGHT, "w": w, "x": x, "y": y });
            panels.push(panel);
            next_id += 1;
            x += w;
        }
        y += PANEL_HEIGHT;
    }
    json!({
        "title": format!("sliq SLOs: {}", options.name),
        "uid": uid(options.name),
        "description": "SLOs of a sliq spec, from the series `sliq rules` records: regenerate with `sliq dashboard`.",
        "tags": ["sliq", "slo"],
        "timezone": "utc",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "time": { "from": "now-7d", "to": "now" },
        "refresh": "1m",
        "templating": { "list": [{
            "type": "datasource",
            "name": "datasource",
            "label": "Prometheus",
            "query": "prometheus",
            "hide": 0,
        }]},
        "annotations": { "list": [] },
        "panels": panels,
    })
}

/// A dashboard uid (8–40 characters of `[a-zA-Z0-9-_]`), the same for the same spec so a
/// re-import replaces the dashboard instead of adding a second.
fn uid(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut uid = format!("sliq-slos-{cleaned}");
    uid.truncate(40);
    uid
}

fn row_title(q: &SloQueries<'_>) -> String {
    let mut title = format!("{} — objective {}", q.title(), percent(q.slo.objective));
    if let Some(sla) = q.slo.contract.sla {
        title.push_str(&format!(", SLA {}", percent(sla)));
    }
    if let Some(owner) = &q.slo.contract.owner {
        title.push_str(&format!(" — {owner}"));
    }
    title
}

fn percent(ratio: f64) -> String {
    format!("{}%", number(ratio * 100.0))
}

/// The SLO's dimensions as a Grafana legend, e.g. `{{service}} {{model}}`.
fn legend(q: &SloQueries<'_>, suffix: &str) -> String {
    let dims: Vec<String> = q
        .slo
        .dimensions
        .iter()
        .map(|d| format!("{{{{{}}}}}", label_name(d.attribute())))
        .collect();
    if dims.is_empty() {
        suffix.to_owned()
    } else {
        format!("{} {suffix}", dims.join(" "))
    }
}

fn target(ref_id: usize, expr: String, legend: String) -> Value {
    json!({
        "refId": ref_letter(ref_id),
        "datasource": { "type": "prometheus", "uid": DATASOURCE },
        "expr": expr,
        "legendFormat": legend,
    })
}

fn ref_letter(i: usize) -> String {
    char::from(b'A' + u8::try_from(i % 26).unwrap_or(0)).to_string()
}

/// Runbook, escalation and SLA as the panel's description, for whoever opens it.
fn description(q: &SloQueries<'_>, what: &str) -> String {
    let c = &q.slo.contract;
    let mut parts = vec![what.to_owned()];
    if let Some(sla) = c.sla {
        parts.push(format!("SLA (contract): {}.", percent(sla)));
    }
    if let Some(owner) = &c.owner {
        parts.push(format!("Owner: {owner}."));
    }
    if let Some(runbook) = &c.runbook {
        parts.push(format!("Runbook: {runbook}"));
    }
    if !c.escalation.is_empty() {
        parts.push(format!("Escalation: {}.", c.escalation.join(" → ")));
    }
    parts.join("\n\n")
}

fn timeseries(title: &str, description: String, targets: Vec<Value>, defaults: Value) -> Value {
    json!({
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": { "type": "prometheus", "uid": DATASOURCE },
        "targets": targets,
        "fieldConfig": { "defaults": defaults, "overrides": [] },
        "options": {
            "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
            "tooltip": { "mode": "multi", "sort": "none" },
        },
        "transformations": [],
        "transparent": false,
    })
}

/// Threshold steps drawn as lines: red below the first value, then each (value, colour).
fn threshold_lines(steps: &[(f64, &str)]) -> Value {
    let mut list = vec![json!({ "color": "red", "value": null })];
    list.extend(
        steps
            .iter()
            .map(|(value, color)| json!({ "color": color, "value": value })),
    );
    json!({ "mode": "absolute", "steps": list })
}

fn sli_panel(q: &SloQueries<'_>) -> Value {
    let short = q
        .slo
        .budget
        .alerts
        .iter()
        .map(|a| a.long_ms)
        .min()
        .unwrap_or_else(|| q.period_ms());
    let period = q.period_ms();
    let targets = [short, period]
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            target(
                i,
                format!("1 - {}", q.read(&error_ratio_record(w))),
                legend(q, &window_label(w)),
            )
        })
        .collect();
    let mut steps = Vec::new();
    if let Some(sla) = q.slo.contract.sla {
        steps.push((sla, "orange"));
    }
    steps.push((q.slo.objective, "green"));
    timeseries(
        "SLI (good ÷ all)",
        description(
            q,
            &format!(
                "Good events ÷ all events over {} and over the {} period, summed over instances; \
                 lines at the objective{}.",
                window_label(short),
                window_label(period),
                if q.slo.contract.sla.is_some() {
                    " and the SLA"
                } else {
                    ""
                }
            ),
        ),
        targets,
        json!({
            "unit": "percentunit",
            "max": 1,
            "thresholds": threshold_lines(&steps),
            "custom": { "thresholdsStyle": { "mode": "line" } },
        }),
    )
}

fn budget_panel(q: &SloQueries<'_>) -> Value {
    let steps: Vec<(f64, &str)> = q
        .slo
        .budget
        .policy
        .iter()
        .skip(1)
        .rev()
        .zip(
            ["orange", "yellow", "green"]
                .into_iter()
                .chain(std::iter::repeat("green")),
        )
        .map(|(state, color)| (state.below, color))
        .collect();
    timeseries(
        "Error budget remaining",
        description(
            q,
            &format!(
                "Share of the {} error budget left: 1 untouched, 0 spent, below 0 overspent.",
                window_label(q.period_ms())
            ),
        ),
        vec![target(0, q.read(BUDGET_REMAINING), legend(q, "remaining"))],
        json!({
            "unit": "percentunit",
            "thresholds": threshold_lines(&steps),
            "custom": { "thresholdsStyle": { "mode": "line" } },
        }),
    )
}

fn burn_panel(q: &SloQueries<'_>) -> Value {
    let targets = q
        .slo
        .budget
        .burn_windows_ms
        .iter()
        .enumerate()
        .map(|(i, &w)| target(i, q.read(&burn_rate_record(w)), legend(q, &window_label(w))))
        .collect();
    let alerts: Vec<String> = q
        .slo
        .budget
        .alerts
        .iter()
        .map(|a| {
            format!(
                "{} above {} over {} and {}",
                a.severity.as_str(),
                number(a.factor(q.period_ms())),
                window_label(a.long_ms),
                window_label(a.short_ms)
            )
        })
        .collect();
    timeseries(
        "Burn rate",
        description(
            q,
            &format!(
                "Error ratio ÷ error budget per window: 1 spends the budget exactly over the \
                 period. Alerts: {}.",
                alerts.join("; ")
            ),
        ),
        targets,
        json!({ "unit": "x", "min": 0 }),
    )
}

fn policy_panel(q: &SloQueries<'_>) -> Value {
    let colors = ["green", "yellow", "orange", "red", "dark-red"];
    let states = q.slo.budget.policy.iter().enumerate().map(|(i, state)| {
        (
            i.to_string(),
            json!({ "text": state.name, "color": colors[i.min(colors.len() - 1)], "index": i }),
        )
    });
    state_timeline(
        "Policy state",
        description(
            q,
            "The error-budget policy state in force, from the budget remaining.",
        ),
        target(0, q.read(POLICY_STATE), legend(q, "state")),
        states.collect(),
    )
}

/// Which features drifted, in any series and instance, at each window's end.
fn drift_panel() -> Value {
    let detected = metric_name(names::DRIFT_DETECTED, names::RATIO_UNIT, MetricKind::Gauge);
    let feature = label_name(names::FEATURE);
    state_timeline(
        "Drift",
        "1 when a watched feature drifted against its reference in any series (the drift: \
         section's features)."
            .to_owned(),
        target(
            0,
            format!("max by ({feature}) ({detected})"),
            format!("{{{{{feature}}}}}"),
        ),
        [
            (
                "0",
                json!({ "text": "steady", "color": "green", "index": 0 }),
            ),
            (
                "1",
                json!({ "text": "drifted", "color": "red", "index": 1 }),
            ),
        ]
        .into_iter()
        .map(|(value, text)| (value.to_owned(), text))
        .collect(),
    )
}

/// A state timeline of one query whose values name states (`states`: value → text and colour).
fn state_timeline(
    title: &str,
    description: String,
    target: Value,
    states: serde_json::Map<String, Value>,
) -> Value {
    json!({
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": { "type": "prometheus", "uid": DATASOURCE },
        "targets": [target],
        "fieldConfig": {
            "defaults": { "mappings": [{ "type": "value", "options": states }] },
            "overrides": [],
        },
        "options": { "showValue": "auto", "legend": { "showLegend": false } },
        "transformations": [],
        "transparent": false,
    })
}
