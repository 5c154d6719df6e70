//! The report as one self-contained HTML page: inline CSS, charts as inline SVG drawn here, no
//! script to run and nothing fetched when it is opened. The numbers are also in `data-`
//! attributes and in a JSON block (`#sliq-report-data`) for machines.

use std::fmt::Write as _;

use super::{BudgetPoint, PolicyLevel, Report, SloReport};

/// The burn-down chart's geometry, in CSS pixels: the plot area sits inside the margins.
const CHART_WIDTH: f64 = 640.0;
const CHART_HEIGHT: f64 = 220.0;
const PLOT_LEFT: f64 = 56.0;
const PLOT_RIGHT: f64 = 624.0;
const PLOT_TOP: f64 = 14.0;
const PLOT_BOTTOM: f64 = 190.0;
/// Budgets overspent beyond this are drawn at this level (the numbers say how far).
const LOWEST_SHOWN: f64 = -1.0;

/// Colours the report test looks for in a screenshot: the plot area and the budget line are
/// drawn in colours used nowhere else on the page.
pub const PLOT_BACKGROUND: &str = "#eef4fc";
pub const BUDGET_LINE: &str = "#1a66d9";

const STYLE: &str = "body{font-family:'DejaVu Sans',sans-serif;color:#1d2330;margin:0;\
background:#fff}main{max-width:760px;margin:0 auto;padding:24px}h1{font-size:26px;margin:0 0 4px}\
h2{font-size:20px;margin:32px 0 6px;border-bottom:1px solid #d8dde6;padding-bottom:4px}\
h3{font-size:15px;margin:18px 0 6px;color:#3b4456}p{margin:4px 0;line-height:1.45}\
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{padding:3px 10px 3px 0;\
text-align:left;vertical-align:top}th{color:#5a6375;font-weight:normal}td.n{text-align:right;\
font-variant-numeric:tabular-nums}.muted{color:#6b7385}.ok{color:#1c7c3c}.bad{color:#b3261e}\
svg{display:block}svg text{font-family:'DejaVu Sans',sans-serif;font-size:11px;fill:#5a6375}";

/// Escapes text for HTML content and quoted attribute values.
fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

fn pct(ratio: Option<f64>, decimals: usize) -> String {
    ratio.map_or_else(|| "–".to_owned(), |r| format!("{:.decimals$}%", r * 100.0))
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn dims(dimensions: &std::collections::BTreeMap<String, String>) -> String {
    if dimensions.is_empty() {
        return "all".to_owned();
    }
    dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Service level report</title><style>{STYLE}</style></head><body><main>\n\
         <h1>Service level report</h1>\n<p class=\"muted\">{}</p>\n",
        esc(&report.subject)
    );
    let span = match (report.from_ms, report.to_ms) {
        (Some(from), Some(to)) => format!("from {} to {}", time(from), time(to)),
        _ => "no closed window".to_owned(),
    };
    let r = report.records;
    let _ = writeln!(
        out,
        "<p>Requests {span} (when they happened). {} counted; {} arrived too late for their \
         window and were not counted; {} could not be read with this spec.</p>",
        r.accepted, r.late, r.refused
    );
    overview(&mut out, report);
    for slo in &report.slos {
        slo_section(&mut out, slo);
    }
    drift_section(&mut out, report);
    let data = serde_json::to_string(report)
        .unwrap_or_else(|_| "null".to_owned())
        // `<` cannot end the script block when written as an escape.
        .replace('<', "\\u003c");
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"sliq-report-data\">{data}</script>\n\
         </main></body></html>\n"
    );
    out
}

fn overview(out: &mut String, report: &Report) {
    out.push_str(
        "<h2>At a glance</h2>\n<table class=\"overview\"><tr><th>Objective</th><th>Target</th>\
         <th>Achieved</th><th>Error budget left</th><th>Policy</th></tr>\n",
    );
    for slo in &report.slos {
        let met = slo.attainment.is_none_or(|a| a >= slo.objective);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n {}\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&slo.name),
            pct(Some(slo.objective), 2),
            if met { "ok" } else { "bad" },
            pct(slo.attainment, 3),
            pct(Some(slo.budget_remaining), 1),
            esc(&slo.policy_state)
        );
    }
    out.push_str("</table>\n");
}

/// The contract beside the objective, and who answers for it: what the spec says, in words.
fn contract(out: &mut String, slo: &SloReport) {
    if let Some(sla) = slo.sla {
        let kept = match slo.attainment {
            None => "no request was judged",
            Some(a) if a >= sla => "kept",
            Some(_) => "broken",
        };
        let _ = writeln!(
            out,
            "<p class=\"sla\" data-sla=\"{sla}\">The contract (SLA) promises {}: {kept}.</p>",
            pct(Some(sla), 2)
        );
    }
    let mut who = Vec::new();
    if let Some(owner) = &slo.owner {
        who.push(format!("Owner: {}.", esc(owner)));
    }
    if let Some(runbook) = &slo.runbook {
        who.push(format!("Runbook: <a href=\"{0}\">{0}</a>.", esc(runbook)));
    }
    if !slo.escalation.is_empty() {
        let steps: Vec<String> = slo.escalation.iter().map(|s| esc(s).into_owned()).collect();
        who.push(format!("Escalation: {}.", steps.join(", then ")));
    }
    if !who.is_empty() {
        let _ = writeln!(out, "<p class=\"owner\">{}</p>", who.join(" "));
    }
}

fn slo_section(out: &mut String, slo: &SloReport) {
    let _ = writeln!(
        out,
        "<section class=\"slo\" data-slo=\"{}\" data-good=\"{}\" data-bad=\"{}\" \
         data-attainment=\"{}\" data-budget-remaining=\"{}\" data-policy-state=\"{}\">\n\
         <h2>{}</h2>",
        esc(&slo.name),
        slo.good,
        slo.bad,
        slo.attainment.map_or_else(String::new, |a| a.to_string()),
        slo.budget_remaining,
        esc(&slo.policy_state),
        esc(&slo.name)
    );
    let total = slo.good + slo.bad;
    let verdict = match slo.attainment {
        None => "No request was judged by this objective in the period.".to_owned(),
        Some(a) => format!(
            "The target is {} of requests good over a {} period. {} of {total} were good: {}, \
             {} the target.",
            pct(Some(slo.objective), 2),
            esc(&slo.period),
            slo.good,
            pct(Some(a), 3),
            if a >= slo.objective {
                "meeting"
            } else {
                "missing"
            }
        ),
    };
    let _ = writeln!(
        out,
        "<p>{verdict}</p>\n<p>Error budget left at the end: <b>{}</b> (policy state: {}).</p>",
        pct(Some(slo.budget_remaining), 1),
        esc(&slo.policy_state)
    );
    contract(out, slo);
    out.push_str("<h3>How the error budget burned down</h3>\n");
    if slo.burn_down.is_empty() {
        out.push_str("<p class=\"muted\">No window closed with events of this objective.</p>\n");
    } else {
        burn_down_chart(out, &slo.burn_down, &slo.policy);
    }
    out.push_str("<h3>Where it is worst</h3>\n");
    let judged: Vec<_> = slo
        .series
        .iter()
        .filter(|s| s.attainment.is_some())
        .take(5)
        .collect();
    if judged.is_empty() {
        out.push_str("<p class=\"muted\">No series.</p>\n");
    } else {
        out.push_str(
            "<table class=\"worst\"><tr><th>Where</th><th>Good</th><th>Bad</th><th>Achieved</th>\
             <th>Budget left</th><th>Policy</th></tr>\n",
        );
        for s in judged {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&dims(&s.dimensions)),
                s.good,
                s.bad,
                pct(s.attainment, 3),
                pct(Some(s.budget_remaining), 1),
                esc(&s.policy_state)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h3>When the policy state changed</h3>\n");
    if slo.policy_changes.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">No change: {} throughout.</p>",
            esc(&slo.policy_state)
        );
    } else {
        out.push_str(
            "<table class=\"policy\"><tr><th>When</th><th>Where</th><th>From</th><th>To</th></tr>\n",
        );
        for c in &slo.policy_changes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(c.at_ms),
                esc(&dims(&c.dimensions)),
                esc(&c.from),
                esc(&c.to)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

/// Budget left over time as a line over the plot area, with the zero line and the policy's
/// thresholds; the y axis runs from 100% down to the lowest value shown (0% at least, −100% at
/// most).
fn burn_down_chart(out: &mut String, points: &[BudgetPoint], policy: &[PolicyLevel]) {
    let lowest = points
        .iter()
        .map(|p| p.remaining)
        .fold(0.0_f64, f64::min)
        .max(LOWEST_SHOWN);
    let (first, last) = (points[0].at_ms, points[points.len() - 1].at_ms);
    let x = |at: i64| {
        if last == first {
            (PLOT_LEFT + PLOT_RIGHT) / 2.0
        } else {
            PLOT_LEFT + (at - first) as f64 / (last - first) as f64 * (PLOT_RIGHT - PLOT_LEFT)
        }
    };
    // A margin above 100% and below the lowest value keeps the line off the plot's edges.
    let margin = (1.0 - lowest) * 0.05;
    let (top, bottom) = (1.0 + margin, lowest - margin);
    let y = |v: f64| {
        let v = v.clamp(lowest, 1.0);
        PLOT_TOP + (top - v) / (top - bottom) * (PLOT_BOTTOM - PLOT_TOP)
    };
    let _ = write!(
        out,
        "<svg class=\"burn-down\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" \
         viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" role=\"img\" \
         aria-label=\"Error budget left over time\">\
         <rect class=\"plot\" x=\"{PLOT_LEFT}\" y=\"{PLOT_TOP}\" width=\"{}\" height=\"{}\" \
         fill=\"{PLOT_BACKGROUND}\"/>",
        PLOT_RIGHT - PLOT_LEFT,
        PLOT_BOTTOM - PLOT_TOP
    );
    for level in policy
        .iter()
        .filter(|l| l.below <= 1.0 && l.below >= lowest)
    {
        let ly = y(level.below);
        let _ = write!(
            out,
            "<line x1=\"{PLOT_LEFT}\" x2=\"{PLOT_RIGHT}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" \
             stroke=\"#9aa3b5\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">{} below {}</text>",
            PLOT_RIGHT - 4.0,
            ly - 3.0,
            esc(&level.name),
            pct(Some(level.below), 0)
        );
    }
    for (label, v) in [("100%", 1.0), ("0%", 0.0)]
        .into_iter()
        .chain((lowest < 0.0).then_some(("", lowest)))
    {
        let text = if label.is_empty() {
            pct(Some(v), 0)
        } else {
            label.to_owned()
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{text}</text>",
            PLOT_LEFT - 6.0,
            y(v) + 4.0
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{PLOT_LEFT}\" x2=\"{PLOT_RIGHT}\" y1=\"{0:.1}\" y2=\"{0:.1}\" \
         stroke=\"#5a6375\"/>",
        y(0.0)
    );
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at_ms), y(p.remaining)))
        .collect();
    let end = points[points.len() - 1];
    let _ = writeln!(
        out,
        "<polyline class=\"budget\" points=\"{}\" fill=\"none\" stroke=\"{BUDGET_LINE}\" \
         stroke-width=\"2.5\" stroke-linejoin=\"round\"/><circle cx=\"{:.1}\" cy=\"{:.1}\" \
         r=\"4\" fill=\"{BUDGET_LINE}\"/>\
         <text x=\"{PLOT_LEFT}\" y=\"{:.1}\">{}</text>\
         <text x=\"{PLOT_RIGHT}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
        line.join(" "),
        x(end.at_ms),
        y(end.remaining),
        PLOT_BOTTOM + 16.0,
        time(first),
        PLOT_BOTTOM + 16.0,
        time(last)
    );
}

fn drift_section(out: &mut String, report: &Report) {
    out.push_str("<h2>Did the inputs drift?</h2>\n");
    if report.drift.is_empty() {
        out.push_str(
            "<p class=\"muted\">No drift was judged: the spec watches no features, or no window \
             had enough values and a reference.</p>\n",
        );
        return;
    }
    out.push_str(
        "<p>Each closed window's distribution of a watched feature, compared with its reference.</p>\n\
         <table class=\"drift\"><tr><th>Feature</th><th>Where</th><th>Method</th>\
         <th>Windows judged</th><th>Drifted in</th><th>Largest value</th><th>First drift</th></tr>\n",
    );
    for d in &report.drift {
        let _ = writeln!(
            out,
            "<tr data-feature=\"{}\" data-windows=\"{}\" data-drifted=\"{}\"><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.4}</td>\
             <td>{}</td></tr>",
            esc(&d.feature),
            d.windows,
            d.drifted,
            esc(&d.feature),
            esc(&dims(&d.dimensions)),
            esc(&d.method),
            d.windows,
            d.drifted,
            d.max_value,
            d.first_drift_ms.map_or_else(|| "never".to_owned(), time)
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DriftSummary, RecordSummary};

    #[test]
    fn names_are_escaped_and_the_data_block_reads_back() {
        let hostile = "</script><img src=x onerror=alert(1)>";
        let report = Report {
            subject: hostile.to_owned(),
            from_ms: Some(0),
            to_ms: Some(60_000),
            records: RecordSummary {
                accepted: 3,
                late: 1,
                refused: 0,
            },
            slos: vec![SloReport {
                name: hostile.to_owned(),
                slo: hostile.to_owned(),
                objective: 0.9,
                period: "30d".into(),
                good: 2,
                bad: 1,
                attainment: Some(2.0 / 3.0),
                budget_remaining: -2.333,
                policy_state: "exhausted".into(),
                policy: vec![PolicyLevel {
                    name: "warn".into(),
                    below: 0.5,
                }],
                burn_down: vec![BudgetPoint {
                    at_ms: 60_000,
                    remaining: -2.333,
                }],
                series: Vec::new(),
                sla: Some(0.6),
                owner: Some(hostile.to_owned()),
                runbook: Some("https://wiki/runbook?slo=a&tier=b".into()),
                escalation: vec!["on-call".into(), "team lead".into()],
                policy_changes: Vec::new(),
            }],
            drift: vec![DriftSummary {
                feature: "latency_ms".into(),
                dimensions: Default::default(),
                method: "wasserstein".into(),
                windows: 4,
                drifted: 1,
                max_value: 0.31,
                first_drift_ms: Some(120_000),
            }],
        };
        let page = render(&report);
        assert!(
            !page.contains("<img"),
            "markup in a name must not reach the page"
        );
        let start = page.find(r#"id="sliq-report-data">"#).unwrap() + 22;
        let end = start + page[start..].find("</script>").unwrap();
        let back: serde_json::Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(back["slos"][0]["name"], hostile);
        assert_eq!(back["slos"][0]["budget_remaining"], -2.333);
        // 2 of 3 good against a 60% contract: kept (and the 90% objective missed).
        assert!(page.contains("The contract (SLA) promises 60.00%: kept."));
        assert!(page.contains("missing the target"));
        assert!(page.contains("Escalation: on-call, then team lead."));
        assert!(page.contains("runbook?slo=a&amp;tier=b"));
        assert_eq!(back["slos"][0]["sla"], 0.6);
        assert!(page.contains(r#"data-feature="latency_ms" data-windows="4" data-drifted="1""#));
        // One point: drawn in the middle of the plot, clamped at −100%.
        assert!(page.contains(r#"points="340.0,"#), "{page}");
    }
}
