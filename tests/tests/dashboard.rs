//! `sliq dashboard` as Grafana and Prometheus read it: the JSON validates against the fields of
//! Grafana's dashboard schema it uses (`tests/fixtures/grafana-dashboard.schema.json`, checked by
//! Python's `jsonschema`), rows and panels are laid out on Grafana's 24-column grid, every query
//! parses in `promtool`, and every series a panel reads is one the rules of `sliq rules` record.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sliq_tests::promtool::promtool;
use sliq_tests::python::json_schema_errors;

const SPEC: &str = "\
source:
  kafka: { brokers: 127.0.0.1:9092, topics: [ai], dead_letter_topic: ai-dlq }
drift:
  dimensions: [service]
  reference: { first_events: 1000 }
  features:
    - { name: latency_ms, pointer: /latency_ms, type: numeric }
slos:
  - name: chat-availability
    objective: 0.999
    sla: 0.995
    owner: team-chat
    runbook: https://runbooks.example.com/chat-availability
    escalation: [chat on-call, chat lead]
    dimensions: [service, model]
    sli: { availability: {} }
  - name: answer-latency
    dimensions: [service, labels.customer-tier]
    sli: { latency: { threshold: 2s } }
    objective: 0.95
    tiers:
      label: customer-tier
      objectives: { gold: 0.99, silver: 0.97 }
  - name: no-drift
    objective: 0.9
    dimensions: [service]
    sli: { drift: {} }
";

#[test]
fn the_dashboard_has_one_row_per_slo_in_grafanas_schema_and_reads_what_the_rules_record() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    for (command, out) in [("dashboard", "dashboard.json"), ("rules", "rules.yml")] {
        sliq_tests::run::sliq_ok([
            command.as_ref(),
            "--config".as_ref(),
            spec.as_os_str(),
            "--out".as_ref(),
            dir.path().join(out).as_os_str(),
        ]);
    }
    // Five core SLOs recording under the same names: still no duplicate rule to promtool's lint.
    let (ok, checked) = promtool(dir.path(), &["check", "rules", "rules.yml"]);
    assert!(
        ok && checked.contains("SUCCESS: 130 rules found") && !checked.contains("FAILED"),
        "{checked}"
    );
    let text = std::fs::read_to_string(dir.path().join("dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();

    // Grafana's schema, by an independent validator.
    let schema = sliq_tests::repo_root().join("tests/fixtures/grafana-dashboard.schema.json");
    let errors =
        json_schema_errors(&schema, std::slice::from_ref(&dashboard)).expect("python jsonschema");
    assert_eq!(errors, vec![Vec::<String>::new()], "schema errors");

    // One row per core SLO: chat-availability, answer-latency's gold, silver and the rest of the
    // tiers (the SLO's own objective), no-drift = 5; five panels each (SLI, budget, burn rates,
    // policy state, drift, since the spec watches drift).
    let panels = dashboard["panels"].as_array().unwrap();
    let rows: Vec<&serde_json::Value> = panels.iter().filter(|p| p["type"] == "row").collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(panels.len(), 5 * 6);
    assert_eq!(
        rows[0]["title"],
        "chat-availability — objective 99.9%, SLA 99.5% — team-chat"
    );
    // The grid: every row's panels side by side, filling 24 columns, under their row.
    let mut row_y = None;
    let mut used = 0;
    for p in panels {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        if p["type"] == "row" {
            assert!(
                row_y.is_none() || used == 24,
                "a row was not filled: {used}"
            );
            assert_eq!((x, w, h), (0, 24, 1));
            row_y = Some(y);
            used = 0;
        } else {
            assert_eq!(y, row_y.unwrap() + 1, "{p}");
            assert_eq!(x, used, "{p}");
            used += w;
        }
    }
    assert_eq!(used, 24);
    // Panel ids are unique.
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());

    // Every query parses: each wrapped as a recording rule next to the rules they read.
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        exprs.len(),
        5 * (2 + 1 + 7 + 1 + 1),
        "SLI 2, budget 1, burn rates 7, policy 1, drift 1"
    );
    let mut wrapped = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        writeln!(
            wrapped,
            "      - record: dashboard:query:{i}\n        expr: {}",
            serde_json::to_string(expr).unwrap()
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("queries.yml"), wrapped).unwrap();
    let (ok, checked) = promtool(dir.path(), &["check", "rules", "queries.yml"]);
    assert!(
        ok && checked.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{checked}"
    );

    // The same queries as the rules: every recorded series a panel reads is recorded there, and
    // the only other series read is sliq's drift gauge.
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.path().join("rules.yml")).unwrap())
            .unwrap();
    let recorded: BTreeSet<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();
    // Recorded series have a `:` in their names; exported metrics end in `_total` or `_ratio`
    // (no label does).
    let identifiers: BTreeSet<&str> = exprs
        .iter()
        .flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')))
        .collect();
    let read_recorded: Vec<&str> = identifiers
        .iter()
        .copied()
        .filter(|w| w.contains(':'))
        .collect();
    for name in &read_recorded {
        assert!(
            recorded.contains(*name),
            "{name} is read by a panel but recorded by no rule"
        );
    }
    assert!(
        read_recorded.contains(&"sliq_slo:budget_remaining"),
        "{read_recorded:?}"
    );
    let read_exported: Vec<&str> = identifiers
        .iter()
        .copied()
        .filter(|w| w.ends_with("_total") || w.ends_with("_ratio"))
        .collect();
    assert_eq!(read_exported, ["sliq_drift_detected_ratio"]);
}
