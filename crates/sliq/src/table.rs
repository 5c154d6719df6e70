//! The live SLO table of `sliq demo`.

use std::fmt::Write as _;

use sliq_config::Span;
use sliq_core::drift::Method;
use sliq_pipeline::{DriftProgress, SloProgress};

/// Renders the table as text lines: per SLO its events, good ratio and budget; then for its
/// series with the least budget left, the burn rate, the alerts that fire and the policy state;
/// then one line per drift feature.
pub fn render(
    slos: &[SloProgress],
    drift: &[DriftProgress],
    records: u64,
    dead_lettered: u64,
    late: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>8} {:>9} {:>9} {:>7} │ {:>7} {:>8} {:<7} {:<9}",
        "SLO", "events", "good", "objective", "budget", "budget", "burn", "alert", "policy"
    );
    let _ = writeln!(
        out,
        "{:<20} {:>8} {:>9} {:>9} {:>7} │ {:<35}",
        "", "", "", "", "left", "of its worst series"
    );
    for s in slos {
        let ratio = s
            .good_ratio()
            .map_or_else(|| "-".to_owned(), |r| format!("{:.2}%", r * 100.0));
        let budget = s.budget_left().map_or_else(|| "-".to_owned(), percent);
        let _ = write!(
            out,
            "{:<20} {:>8} {:>9} {:>8.2}% {:>7} │ ",
            s.name,
            s.events(),
            ratio,
            s.objective * 100.0,
            budget
        );
        match &s.worst {
            Some(w) => {
                let burn = w
                    .burn_rate
                    .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}×"));
                let window = Span(std::time::Duration::from_millis(
                    u64::try_from(w.burn_window_ms).unwrap_or(0),
                ));
                let alert = w.alert.unwrap_or("-");
                let _ = writeln!(
                    out,
                    "{:>7} {:>8} {:<7} {:<9}",
                    percent(w.budget_remaining),
                    format!("{burn} {window}"),
                    alert,
                    w.policy
                );
            }
            None => {
                let _ = writeln!(out, "{:>7}", "-");
            }
        }
    }
    let worst: Vec<String> = slos
        .iter()
        .filter_map(|s| {
            let w = s.worst.as_ref()?;
            (!w.dimensions.is_empty()).then(|| format!("{}: {}", s.name, w.dimensions))
        })
        .collect();
    if !worst.is_empty() {
        let _ = writeln!(out, "worst series:");
        for line in worst {
            let _ = writeln!(out, "  {line}");
        }
    }
    for d in drift {
        let _ = writeln!(out, "{}", drift_line(d));
    }
    let _ = writeln!(
        out,
        "records read: {records}   dead-lettered: {dead_lettered}   late: {late}"
    );
    out
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// One feature's drift in words: how far from its reference, by which measure, and whether that
/// is past the threshold.
fn drift_line(d: &DriftProgress) -> String {
    let verdict = if d.detected { "DRIFTED" } else { "steady" };
    let how_far = match d.method {
        Method::Psi => format!("shifted {:.3} (PSI; drift above {})", d.value, d.threshold),
        Method::JensenShannon => format!(
            "is {:.3} from its reference (Jensen-Shannon distance; drift above {})",
            d.value, d.threshold
        ),
        Method::Wasserstein => format!(
            "moved {:.2} standard deviations (Wasserstein; drift above {})",
            d.value, d.threshold
        ),
        Method::Ks | Method::ChiSquare => format!(
            "matches its reference with p = {:.4} ({} test; drift below {})",
            d.value,
            if d.method == Method::Ks {
                "Kolmogorov-Smirnov"
            } else {
                "χ²"
            },
            d.threshold
        ),
    };
    format!(
        "drift: {:<14} {how_far}: {verdict} (drifted in {} of {} windows judged)",
        d.feature, d.drifted_windows, d.windows
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sliq_pipeline::SeriesBudget;

    #[test]
    fn the_table_names_the_worst_series_its_alerts_and_each_features_drift() {
        let slos = vec![
            SloProgress {
                name: "faithfulness".into(),
                objective: 0.97,
                good: 940,
                bad: 60,
                worst: Some(SeriesBudget {
                    dimensions: "service=chat, model=small".into(),
                    budget_remaining: -1.5,
                    burn_rate: Some(2.5),
                    burn_window_ms: 3_600_000,
                    alert: Some("page"),
                    policy: "exhausted".into(),
                }),
            },
            SloProgress {
                name: "availability".into(),
                objective: 0.99,
                good: 0,
                bad: 0,
                worst: None,
            },
        ];
        let drift = vec![DriftProgress {
            feature: "model".into(),
            method: Method::JensenShannon,
            value: 0.1234,
            threshold: 0.1,
            detected: true,
            windows: 20,
            drifted_windows: 8,
        }];
        let text = render(&slos, &drift, 1000, 10, 2);
        let lines: Vec<&str> = text.lines().collect();
        // 60 bad of 1000 against a 3% budget: 1 − 0.06 / 0.03 = −100% left over the whole SLO.
        let faithfulness: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            faithfulness,
            [
                "faithfulness",
                "1000",
                "94.00%",
                "97.00%",
                "-100.0%",
                "│",
                "-150.0%",
                "2.5×",
                "1h",
                "page",
                "exhausted"
            ]
        );
        assert!(lines[3].starts_with("availability") && lines[3].ends_with('-'));
        assert_eq!(lines[4], "worst series:");
        assert_eq!(lines[5], "  faithfulness: service=chat, model=small");
        assert!(
            lines[6].contains("model") && lines[6].contains("0.123"),
            "{text}"
        );
        assert!(
            lines[6].contains("DRIFTED (drifted in 8 of 20 windows judged)"),
            "{text}"
        );
        assert_eq!(lines[7], "records read: 1000   dead-lettered: 10   late: 2");
    }
}
