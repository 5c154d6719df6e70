//! `sliq demo` as a user runs it: bounded, with its files checked by independent readers.

use sliq_gen::{GenConfig, Generator, RecordKind};
use sliq_tests::otlp::{last_values, read_otlp_json_lines, sum_points};
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
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sliq demo runs");
    let status = tokio::time::timeout(std::time::Duration::from_secs(300), demo.wait())
        .await
        .expect("the bounded demo ends by itself")
        .expect("wait for sliq demo");
    assert!(status.success());

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
