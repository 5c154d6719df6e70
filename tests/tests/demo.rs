//! `sliq demo` as a user runs it: bounded, with its files checked by independent readers.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use sliq_gen::{GenConfig, Generator, RecordKind};
use sliq_tests::otlp::{gauge_points, last_values, read_otlp_json_lines, sum_points};
use sliq_tests::python::duckdb_json;

/// 60,000 records are ~70 MB: more than librdkafka's mock cluster keeps (about 5 MB per partition),
/// so this also pins that the demo's producer never runs so far ahead of the pipeline that the
/// cluster drops records before they are read.
#[tokio::test]
async fn bounded_demo_archives_every_valid_event_and_its_metrics_sum_to_them() {
    let sliq = sliq_tests::sliq_binary();
    let out = tempfile::tempdir().expect("tempdir");
    let n = 60_000;
    let mut demo = tokio::process::Command::new(&sliq)
        .args(["demo", "--events", &n.to_string(), "--out"])
        .arg(out.path())
        .env("SLIQ_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sliq demo runs");
    let stdout = demo.stdout.take().expect("piped stdout");
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stdout), &mut text)
            .await
            .map(|_| text)
    });
    let status = tokio::time::timeout(std::time::Duration::from_secs(300), demo.wait())
        .await
        .expect("the bounded demo ends by itself")
        .expect("wait for sliq demo");
    assert!(status.success());
    let table = reading.await.expect("reader").expect("demo output");

    // The demo's traffic is the generator's with seed 42, 50 records per second of event time,
    // drifting 60% of the way through: recount the valid records.
    let span_ms = n as i64 * 1000 / 50;
    let start_ms = GenConfig::default().start_ms;
    let valid = Generator::new(GenConfig {
        seed: 42,
        start_ms,
        events_per_second: 50.0,
        drift_at_ms: Some(start_ms + span_ms * 6 / 10),
        ..GenConfig::default()
    })
    .take(n)
    .filter(|r| r.kind == RecordKind::Valid)
    .count() as u64;

    let archive = out.path().join("archive");
    let rows = duckdb_json(&format!(
        "print(json.dumps(q(\"SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")[0]))",
        archive.display()
    ))
    .expect("duckdb");
    assert_eq!(
        (rows["n"].as_u64(), rows["ids"].as_u64()),
        (Some(valid), Some(valid))
    );

    let requests =
        read_otlp_json_lines(&out.path().join("metrics.otlp.jsonl")).expect("metrics file");
    check_table(&table, &requests, &archive);
    check_next_steps(&table, out.path());
    let records = last_values(&sum_points(&requests, "sliq.records"));
    let record = |outcome: &str| {
        records
            .iter()
            .find(|((_, a), _)| a["sliq.record.outcome"] == outcome)
            .map(|(_, v)| *v as u64)
            .expect("record outcome exported")
    };
    let accepted = record("accepted");
    assert_eq!(accepted + record("late"), valid);
    assert_eq!(record("dead_lettered"), n as u64 - valid);
    // Delta temporality: summing every availability point gives the events judged, which for an
    // availability SLO without exclusions is every accepted event.
    let availability: f64 = sum_points(&requests, "sliq.slo.events")
        .iter()
        .filter(|p| p.attributes["sliq.slo.name"] == "availability")
        .map(|p| p.value)
        .sum();
    assert_eq!(availability as u64, accepted);
    // The drift SLO: one event per judged minute; the minutes before the drift (12 of 20) are
    // good, the ones after it bad.
    let no_drift = |outcome: &str| -> u64 {
        sum_points(&requests, "sliq.slo.events")
            .iter()
            .filter(|p| {
                p.attributes["sliq.slo.name"] == "no-drift"
                    && p.attributes["sliq.slo.outcome"] == outcome
            })
            .map(|p| p.value as u64)
            .sum()
    };
    let (good, bad) = (no_drift("good"), no_drift("bad"));
    assert!(
        (9..=13).contains(&good) && (7..=9).contains(&bad),
        "{good} good, {bad} bad windows"
    );
}

/// The demo's table as a newcomer reads it: every SLO of its spec, quality ones included, with the
/// budget, burn rate, alert and policy state of its worst series, and a drift line per feature.
/// Its figures equal what the metrics file says, and a DuckDB recount of the archive up to the
/// records the table counts as late (the archive keeps late records too, unmarked).
fn check_table(table: &str, requests: &[ExportMetricsServiceRequest], archive: &std::path::Path) {
    let spec: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../pipelines/demo.yaml")).expect("demo spec");
    let slos = spec["slos"].as_sequence().expect("slos");
    for kind in ["score", "flag", "tests", "rule"] {
        assert!(
            slos.iter().any(|s| s["sli"].get(kind).is_some()),
            "the demo spec has no {kind} SLO"
        );
    }
    let row = |name: &str| -> Vec<&str> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
            .split_whitespace()
            .collect()
    };
    let events = sum_points(requests, "sliq.slo.events");
    let exported = |slo: &str, outcome: Option<&str>| -> u64 {
        events
            .iter()
            .filter(|p| {
                p.attributes["sliq.slo.name"] == slo
                    && outcome.is_none_or(|o| p.attributes["sliq.slo.outcome"] == o)
            })
            .map(|p| p.value as u64)
            .sum()
    };
    for slo in slos {
        let name = slo["name"].as_str().expect("name");
        let cells = row(name);
        // name, events, good, objective, budget left, │, worst: budget, burn, window, alert, policy
        assert_eq!(cells.len(), 11, "row of {name}: {cells:?}\n{table}");
        // Delta temporality: the metrics file's points add up to the events the table shows.
        let n = exported(name, None);
        assert!(n > 0, "{name} judged nothing");
        assert_eq!(cells[1].parse::<u64>().ok(), Some(n), "{name}\n{table}");
        let good = exported(name, Some("good"));
        assert_eq!(
            cells[2],
            format!("{:.2}%", good as f64 / n as f64 * 100.0),
            "{name}\n{table}"
        );
    }

    // Faithfulness against the archive: evaluated answers, good at a score of at least 0.7; the
    // archive also holds the records judged late, so the table may count up to `late` fewer.
    let late: u64 = table
        .lines()
        .find_map(|l| l.split("late: ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .expect("late count");
    let glob = format!("{}/**/*.parquet", archive.display());
    let counts = duckdb_json(&format!(
        "print(json.dumps(q(\"SELECT count(*) AS n, count(*) FILTER (WHERE evals['faithfulness'] >= 0.7) AS good FROM read_parquet('{glob}', hive_partitioning = true) WHERE evals['faithfulness'] IS NOT NULL\")[0]))"
    ))
    .expect("duckdb");
    let (archived, archived_good) = (
        counts["n"].as_u64().expect("n"),
        counts["good"].as_u64().expect("good"),
    );
    let (n, good) = (
        exported("faithfulness", None),
        exported("faithfulness", Some("good")),
    );
    assert!(
        n <= archived
            && archived <= n + late
            && good <= archived_good
            && archived_good <= good + late,
        "table {good} good of {n}, archive {archived_good} of {archived}, {late} late"
    );

    // The worst series: the one whose last exported budget gauge is lowest; the table shows its
    // budget, and its policy state follows the default policy (warn under 50% left, freeze
    // under 20%, exhausted at 0).
    let budgets = last_values(&gauge_points(requests, "sliq.slo.budget.remaining"));
    let ((_, attributes), left) = budgets
        .iter()
        .filter(|((_, a), _)| a["sliq.slo.name"] == "faithfulness")
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("faithfulness budgets exported");
    let faithful = row("faithfulness");
    assert_eq!(faithful[6], format!("{:.1}%", left * 100.0), "{table}");
    let named = format!(
        "faithfulness: service={}, model={}",
        attributes["service"], attributes["model"]
    );
    assert!(table.contains(&named), "{named} not in\n{table}");
    let policy = match *left {
        l if l <= 0.0 => "exhausted",
        l if l < 0.2 => "freeze",
        l if l < 0.5 => "warn",
        _ => "ok",
    };
    assert_eq!(faithful[10], policy, "{table}");

    // One drift line per feature, each judged on at most the windows the drift SLO judged (a
    // window too small for a feature is not judged on it), and the SLO's bad windows are those
    // where some feature drifted.
    let no_drift = row("no-drift");
    let windows: u64 = no_drift[1].parse().expect("windows");
    let bad_windows = exported("no-drift", Some("bad"));
    let mut most_drifted = 0;
    for feature in spec["drift"]["features"].as_sequence().expect("features") {
        let name = feature["name"].as_str().expect("feature name");
        let line = table
            .lines()
            .find(|l| l.starts_with("drift:") && l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no drift line for {name} in\n{table}"));
        let tail: Vec<u64> = line
            .rsplit("(drifted in ")
            .next()
            .expect("counts")
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let [drifted, judged] = tail[..] else {
            panic!("{line}")
        };
        assert!(
            judged <= windows && drifted <= bad_windows,
            "{line}\n{table}"
        );
        most_drifted = most_drifted.max(drifted);
    }
    assert!(
        most_drifted > 0,
        "the demo drifts 60% of the way through:\n{table}"
    );
}

/// The demo ends by pointing to what the same run can give: each command it prints runs as
/// printed and writes its file, the report naming every SLO of the demo's spec.
fn check_next_steps(output: &str, out: &std::path::Path) {
    let commands: Vec<&str> = output
        .lines()
        .skip_while(|l| !l.starts_with("next, from this run"))
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(commands.len(), 3, "{output}");
    for (command, file) in commands
        .iter()
        .zip(["report.html", "rules.yml", "dashboard.json"])
    {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("SLIQ_LOG", "error")
            .status()
            .expect("sh");
        assert!(status.success(), "{command}");
        let written = std::fs::read_to_string(out.join(file)).expect(file);
        assert!(!written.is_empty(), "{file}");
        if file == "report.html" {
            let spec: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(include_str!("../../pipelines/demo.yaml")).expect("spec");
            for slo in spec["slos"].as_sequence().expect("slos") {
                let name = slo["name"].as_str().expect("name");
                assert!(
                    written.contains(&format!(">{name}<")),
                    "{name} not in the report"
                );
            }
            // The faithfulness SLO's contract (95%) reaches the report, kept or broken as its
            // exported counts say.
            assert!(
                written.contains("The contract (SLA) promises 95.00%: "),
                "no SLA in the report"
            );
        }
    }
}
