//! Drift on the real rig: `sliq baseline` from an undrifted sample, `sliq gen` with a drift injected
//! at a known event time, `sliq run` against the broker. The drifted features are flagged in every
//! window from the drift on and in none before; stable features are never flagged; the drift SLO
//! counts one good event per undrifted window and one bad per drifted one; and the Wasserstein
//! values sliq exports per window equal scipy's over the archived records of that window (±0.01).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write as _;

use sliq_gen::{GenConfig, Generator, RecordKind};
use sliq_tests::otlp::{OtlpReceiver, gauge_points};
use sliq_tests::python::duckdb_json;
use sliq_tests::run::{broker_with_topics, sliq_ok, start_sliq, wait_ok};

const MINUTE: i64 = 60_000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;
const DRIFT_AFTER_MINUTES: i64 = 12;
const RECORDS: u64 = 24_000;
const EVENTS_PER_SECOND: f64 = 20.0;

const DRIFTING: [&str; 4] = ["latency_ms", "prompt_chars", "model", "finish_reason"];
const STABLE: [&str; 2] = ["output_tokens", "temperature"];

/// The test spec; `reference` is the body of `drift.reference`.
fn spec(brokers: &str, otlp: &str, dir: &std::path::Path, reference: &str) -> String {
    format!(
        "source:
  kafka: {{ brokers: \"{brokers}\", topics: [logs], group_id: drift, dead_letter_topic: logs-dlq }}
windows: {{ size: 1m, allowed_lateness: 30s, max_out_of_orderness: 5s, idle_partition_after: 2s }}
slos:
  - {{ name: availability, objective: 0.99, sli: {{ availability: {{}} }} }}
  - {{ name: no-drift, objective: 0.9, sli: {{ drift: {{}} }} }}
drift:
  reference: {{ {reference} }}
  min_events: 200
  features:
    - {{ name: latency_ms, pointer: /latency_ms, type: numeric, method: wasserstein }}
    - {{ name: prompt_chars, pointer: /features/prompt_chars, type: numeric }}
    - {{ name: output_tokens, pointer: /features/output_tokens, type: numeric }}
    - {{ name: model, pointer: /model, type: categorical }}
    - {{ name: finish_reason, pointer: /response/finish_reason, type: categorical }}
    - {{ name: temperature, pointer: /features/temperature, type: categorical }}
export:
  otlp: {{ endpoint: \"{otlp}\", temporality: delta }}
archive: {{ dir: \"{archive}\", max_age: 5s }}
state: {{ dir: \"{state}\" }}
",
        archive = dir.join("archive").display(),
        state = dir.join("state").display(),
    )
}

/// A broker with the test topics, an OTLP receiver, and the spec written in a fresh folder.
struct Rig {
    broker: sliq_tests::broker::Broker,
    receiver: OtlpReceiver,
    dir: tempfile::TempDir,
    spec_path: std::path::PathBuf,
}

/// `reference` gives the body of `drift.reference` for the test's folder.
async fn rig(reference: impl FnOnce(&std::path::Path) -> String) -> Rig {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec_path = dir.path().join("spec.yaml");
    let text = spec(
        &broker.bootstrap(),
        &receiver.endpoint(),
        dir.path(),
        &reference(dir.path()),
    );
    std::fs::write(&spec_path, text).expect("spec");
    Rig {
        broker,
        receiver,
        dir,
        spec_path,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_flagged_from_its_start_and_not_before() {
    let Rig {
        broker,
        receiver,
        dir,
        spec_path,
    } = rig(|dir| format!("baseline: \"{}\"", dir.join("baseline.json").display())).await;

    // The baseline: 12,000 undrifted records of another seed, as JSON lines, through `sliq baseline`.
    let baseline_input = dir.path().join("baseline.jsonl");
    {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&baseline_input).expect("file"));
        let reference = Generator::new(GenConfig {
            seed: 77,
            events_per_second: EVENTS_PER_SECOND,
            ..GenConfig::default()
        });
        for r in reference
            .filter(|r| r.kind == RecordKind::Valid)
            .take(12_000)
        {
            file.write_all(&r.payload).expect("write");
            file.write_all(b"\n").expect("write");
        }
        file.flush().expect("flush");
    }
    sliq_ok([
        OsStr::new("baseline"),
        OsStr::new("--config"),
        spec_path.as_os_str(),
        OsStr::new("--input"),
        baseline_input.as_os_str(),
        OsStr::new("--out"),
        dir.path().join("baseline.json").as_os_str(),
    ]);
    let baseline: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("baseline.json")).expect("baseline written"),
    )
    .expect("baseline is JSON");
    assert_eq!(baseline["format"], "sliq-baseline/2");
    assert_eq!(baseline["features"][0]["summary"]["count"], 12_000);

    // The stream: `sliq gen` with a drift 12 minutes in, no late records.
    sliq_ok([
        "gen",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        "logs",
        "--count",
        &RECORDS.to_string(),
        "--seed",
        "31",
        "--events-per-second",
        &EVENTS_PER_SECOND.to_string(),
        "--start",
        "2026-01-01T00:00:00Z",
        "--late-ratio",
        "0",
        "--drift-at",
        &format!("+{DRIFT_AFTER_MINUTES}m"),
    ]);

    let child = start_sliq(&spec_path, "drift-1", &["--exit-on-idle", "4s"]).await;
    wait_ok(child, "sliq run").await;

    // detected per (feature, window end).
    let requests = receiver.requests();
    let mut detected: BTreeMap<(String, i64), bool> = BTreeMap::new();
    for p in gauge_points(&requests, "sliq.drift.detected") {
        let end = (p.time_unix_nano / 1_000_000) as i64;
        let previous = detected.insert((p.attributes["sliq.feature"].clone(), end), p.value == 1.0);
        assert!(previous.is_none(), "one verdict per feature and window");
    }
    for p in gauge_points(&requests, "sliq.drift.value") {
        let end = (p.time_unix_nano / 1_000_000) as i64;
        eprintln!(
            "window ending {:>2} min: {:<14} {:<15} {:.4}",
            (end - START_MS) / MINUTE,
            p.attributes["sliq.feature"],
            p.attributes["sliq.drift.method"],
            p.value
        );
    }
    let drift_at = START_MS + DRIFT_AFTER_MINUTES * MINUTE;
    let last_end = START_MS + (RECORDS as f64 / EVENTS_PER_SECOND) as i64 * 1000;
    // Every full window from the first to the last was judged on every feature.
    let windows: Vec<i64> = (1..=(last_end - START_MS) / MINUTE)
        .map(|i| START_MS + i * MINUTE)
        .collect();
    for feature in DRIFTING.iter().chain(&STABLE) {
        for end in &windows {
            let flagged = detected
                .get(&((*feature).to_owned(), *end))
                .unwrap_or_else(|| panic!("{feature}: no verdict for the window ending at {end}"));
            let expected = DRIFTING.contains(feature) && *end > drift_at;
            assert_eq!(
                *flagged,
                expected,
                "{feature}, window ending {} min in",
                (end - START_MS) / MINUTE
            );
        }
    }

    // The drift SLO: one event per judged window; bad exactly when something drifted.
    let mut slo: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for p in receiver.sum_points("sliq.slo.events") {
        if p.attributes["sliq.slo.name"] != "no-drift" {
            continue;
        }
        let end = (p.time_unix_nano / 1_000_000) as i64;
        let entry = slo.entry(end).or_default();
        if p.attributes["sliq.slo.outcome"] == "bad" {
            entry.1 += p.value as u64;
        } else {
            entry.0 += p.value as u64;
        }
    }
    for end in &windows {
        let want = if *end > drift_at { (0, 1) } else { (1, 0) };
        assert_eq!(slo.get(end), Some(&want), "no-drift at window end {end}");
    }

    // The exported Wasserstein values of latency against scipy over the archive's records.
    let values: BTreeMap<i64, f64> = gauge_points(&requests, "sliq.drift.value")
        .into_iter()
        .filter(|p| p.attributes["sliq.feature"] == "latency_ms")
        .map(|p| ((p.time_unix_nano / 1_000_000) as i64, p.value))
        .collect();
    let exact = duckdb_json(&format!(
        "import numpy as np\n\
         from scipy import stats\n\
         ref = np.array([json.loads(l)['latency_ms'] for l in open('{base}') if l.strip()])\n\
         rows = q(\"select (epoch_ms(ts) // 60000) * 60000 + 60000 as window_end, latency_ms \
                   from read_parquet('{archive}/**/*.parquet') where latency_ms is not null\")\n\
         by = {{}}\n\
         for r in rows: by.setdefault(r['window_end'], []).append(r['latency_ms'])\n\
         print(json.dumps({{str(k): stats.wasserstein_distance(ref, np.array(v)) / np.std(ref) \
                            for k, v in by.items() if len(v) >= 200}}))",
        base = baseline_input.display(),
        archive = dir.path().join("archive").display(),
    ))
    .expect("scipy over the archive");
    let exact = exact.as_object().expect("object");
    assert!(exact.len() >= windows.len());
    for (end, value) in exact {
        let end: i64 = end.parse().expect("window end");
        let value = value.as_f64().expect("number");
        let ours = values
            .get(&end)
            .unwrap_or_else(|| panic!("no sliq.drift.value for latency at {end}"));
        assert!(
            (ours - value).abs() < 0.01,
            "latency W/σ at window end {end}: sliq {ours}, scipy {value}"
        );
    }

    // `sliq baseline` from the archive over the undrifted range: every archived record in the range
    // (DuckDB's count) and none outside it.
    let archive_baseline = dir.path().join("from-archive.json");
    let archive = dir.path().join("archive");
    sliq_ok([
        OsStr::new("baseline"),
        OsStr::new("--config"),
        spec_path.as_os_str(),
        OsStr::new("--archive"),
        archive.as_os_str(),
        OsStr::new("--since"),
        OsStr::new("2026-01-01T00:02:00Z"),
        OsStr::new("--until"),
        OsStr::new("2026-01-01T00:12:00Z"),
        OsStr::new("--out"),
        archive_baseline.as_os_str(),
    ]);
    let from_archive: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&archive_baseline).expect("written")).expect("JSON");
    let in_range = duckdb_json(&format!(
        "print(json.dumps(q(\"select count(*) as n from read_parquet('{archive}/**/*.parquet') \
           where ts >= '2026-01-01T00:02:00Z' and ts < '2026-01-01T00:12:00Z'\")[0]['n']))",
        archive = dir.path().join("archive").display(),
    ))
    .expect("count in range");
    let counted = &from_archive["features"][0]["summary"]["count"];
    assert_eq!(counted, &in_range, "latency values in the archive baseline");
    assert!(in_range.as_u64().unwrap_or(0) > 10_000, "{in_range}");
}

/// Drift verdicts of one feature per window end, from the receiver.
fn detected_by_window(receiver: &OtlpReceiver, feature: &str) -> BTreeMap<i64, bool> {
    gauge_points(&receiver.requests(), "sliq.drift.detected")
        .into_iter()
        .filter(|p| p.attributes["sliq.feature"] == feature)
        .map(|p| ((p.time_unix_nano / 1_000_000) as i64, p.value == 1.0))
        .collect()
}

/// A first-N reference survives a restart: the first run reads the undrifted first 12 minutes
/// (its first 3,000 events become the reference), the second run reads the drifted rest and must
/// flag it. Had the reference been rebuilt, it would come from drifted events and flag nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_events_reference_survives_a_restart() {
    let Rig {
        broker,
        receiver,
        dir,
        spec_path,
    } = rig(|_| "first_events: 3000".to_owned()).await;
    let drift_at = START_MS + DRIFT_AFTER_MINUTES * MINUTE;
    let mut generator = Generator::new(GenConfig {
        seed: 8,
        events_per_second: EVENTS_PER_SECOND,
        late_ratio: 0.0,
        drift_at_ms: Some(drift_at),
        ..GenConfig::default()
    });
    let before_drift = (DRIFT_AFTER_MINUTES * 60) as u64 * EVENTS_PER_SECOND as u64;
    for (part, count) in [(1, before_drift), (2, RECORDS - before_drift)] {
        sliq_pipeline::produce_generated(&broker.bootstrap(), "logs", &mut generator, count, None)
            .await
            .expect("produce");
        let child = start_sliq(&spec_path, "restart-1", &["--exit-on-idle", "4s"]).await;
        wait_ok(child, &format!("run {part}")).await;
        if part == 1 {
            let state = dir.path().join("state/drift-reference-restart-1.json");
            assert!(state.exists(), "{} was not written", state.display());
            let first = detected_by_window(&receiver, "latency_ms");
            assert!(first.len() >= 10, "{first:?}");
            assert!(
                first.values().all(|d| !d),
                "undrifted minutes flagged: {first:?}"
            );
        }
    }
    let verdicts = detected_by_window(&receiver, "latency_ms");
    let after: Vec<(&i64, &bool)> = verdicts
        .iter()
        .filter(|(end, _)| **end > drift_at)
        .collect();
    assert!(after.len() >= 7, "{verdicts:?}");
    assert!(
        after.iter().all(|(_, d)| **d),
        "drifted minutes not flagged after the restart: {verdicts:?}"
    );
}
