//! `sliq replay` against a real run: `sliq run` reads generated traffic from the broker (in two
//! runs, so that the second one finds records late for windows the first one closed) into an
//! archive and an OTLP receiver; replaying the run's own spec must give every counter the run
//! exported, and both must equal DuckDB's recount of the archive. A stricter spec replayed over
//! the same archive must give what DuckDB predicts for it, in OTLP/JSON lines and in the what-if
//! table.

use std::collections::BTreeMap;
use std::path::Path;

use sliq_gen::{GenConfig, Generator};
use sliq_tests::otlp::{
    OtlpReceiver, ReceivedPoint, last_values, read_otlp_json_lines, sum_points,
};
use sliq_tests::python::duckdb_json;
use sliq_tests::run::{broker_with_topics, gen_config, sliq_ok, start_sliq, wait_ok, write_spec};

const IDLE: &[&str] = &["--exit-on-idle", "6s"];

/// (slo, service, model or "") → [good, bad].
type Totals = BTreeMap<(String, String, String), [u64; 2]>;

/// The last cumulative value of every `sliq.slo.events` series of one instance.
fn totals_of(points: &[ReceivedPoint], instance: &str) -> Totals {
    let mut out = Totals::new();
    for ((resource, a), value) in last_values(points) {
        if resource["service.instance.id"] != instance {
            continue;
        }
        let key = (
            a["sliq.slo.name"].clone(),
            a["service"].clone(),
            a.get("model").cloned().unwrap_or_default(),
        );
        out.entry(key).or_default()[usize::from(a["sliq.slo.outcome"] == "bad")] += value as u64;
    }
    out
}

/// `sliq.records` of one instance: outcome → count.
fn records_of(points: &[ReceivedPoint], instance: &str) -> BTreeMap<String, u64> {
    last_values(points)
        .into_iter()
        .filter(|((resource, _), _)| resource["service.instance.id"] == instance)
        .map(|((_, a), v)| (a["sliq.record.outcome"].clone(), v as u64))
        .collect()
}

/// DuckDB's recount of the archive, rows the run found late left out, for the test spec's two
/// SLOs with the latency threshold `threshold_ms`; and the number of late rows.
fn duckdb_recount(archive: &Path, threshold_ms: f64) -> (Totals, u64) {
    let got = duckdb_json(&format!(
        "rows = q(\"SELECT service, coalesce(model, 'unknown') AS model, status, latency_ms, late \
         FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")\n\
         out = {{}}\n\
         def add(key, bad):\n    out.setdefault(key, [0, 0])[1 if bad else 0] += 1\n\
         for r in rows:\n\
         \x20   if r['late']:\n        continue\n\
         \x20   add('availability|' + r['service'] + '|', r['status'] != 'ok')\n\
         \x20   lat = r['latency_ms']\n\
         \x20   if r['status'] == 'ok' and lat is not None and lat >= 0:\n\
         \x20       add('latency|' + r['service'] + '|' + r['model'], lat > {threshold_ms})\n\
         print(json.dumps({{'totals': out, 'late': sum(1 for r in rows if r['late']), \
         'unknown': sum(1 for r in rows if r['late'] is None)}}))",
        archive.display()
    ))
    .expect("duckdb reads the archive");
    assert_eq!(got["unknown"], 0, "every row says whether it was late");
    let mut totals = Totals::new();
    for (key, counts) in got["totals"].as_object().expect("totals") {
        let parts: Vec<&str> = key.split('|').collect();
        let c = counts.as_array().expect("pair");
        totals.insert(
            (parts[0].into(), parts[1].into(), parts[2].into()),
            [c[0].as_u64().expect("good"), c[1].as_u64().expect("bad")],
        );
    }
    (totals, got["late"].as_u64().expect("late"))
}

/// good ÷ (good + bad) of one SLO over all its series, as the what-if table prints it.
fn attainment(totals: &Totals, slo: &str) -> String {
    let [good, bad] = totals
        .iter()
        .filter(|((s, _, _), _)| s == slo)
        .fold([0, 0], |a, (_, c)| [a[0] + c[0], a[1] + c[1]]);
    format!("{:.3}%", good as f64 / (good + bad) as f64 * 100.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_the_runs_spec_gives_its_counters_and_a_stricter_spec_what_duckdb_predicts() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    // 20 records a second of event time: 20,000 records span about 17 one-minute windows; 2% of
    // them are set back 10 minutes, into windows the first run closed when it stopped.
    let config = GenConfig {
        events_per_second: 20.0,
        late_ratio: 0.02,
        ..gen_config(21)
    };
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let (dir, spec_path, archive) = write_spec(&broker, "it-replay", &endpoint);
    let mut generator = Generator::new(config);
    for part in 0..2 {
        sliq_pipeline::produce_generated(&broker.bootstrap(), "logs", &mut generator, 10_000, None)
            .await
            .expect("produce");
        wait_ok(
            start_sliq(&spec_path, "it-r", IDLE).await,
            &format!("run {part}"),
        )
        .await;
    }
    let (want, late) = duckdb_recount(&archive, 4000.0);
    let run_events = receiver.sum_points("sliq.slo.events");
    let run_records = records_of(&receiver.sum_points("sliq.records"), "it-r");
    assert!(
        late > 0,
        "the second run found records late, or the test proves less"
    );
    assert_eq!(
        totals_of(&run_events, "it-r"),
        want,
        "the run against DuckDB"
    );
    assert_eq!(run_records["late"], late);

    // The run's own spec, to its own endpoint (as instance `replay`).
    sliq_ok([
        "replay".as_ref(),
        "--config".as_ref(),
        spec_path.as_os_str(),
        "--archive".as_ref(),
        archive.as_os_str(),
    ]);
    let events = receiver.sum_points("sliq.slo.events");
    assert_eq!(
        totals_of(&events, "replay"),
        want,
        "the replay against DuckDB"
    );
    let replay_records = records_of(&receiver.sum_points("sliq.records"), "replay");
    assert_eq!(
        (replay_records["accepted"], replay_records["late"]),
        (run_records["accepted"], run_records["late"])
    );
    // Every series, with all its attributes, holds the run's total.
    let by_attributes = |instance: &str| -> BTreeMap<BTreeMap<String, String>, f64> {
        last_values(&events)
            .into_iter()
            .filter(|((r, _), _)| r["service.instance.id"] == instance)
            .map(|((_, a), v)| (a, v))
            .collect()
    };
    assert_eq!(by_attributes("replay"), by_attributes("it-r"));

    // A stricter latency threshold: to a file, and as a what-if table against the run's spec.
    let strict = dir.path().join("strict.yaml");
    let spec_text = std::fs::read_to_string(&spec_path).expect("spec");
    assert!(spec_text.contains("threshold: 4s"));
    std::fs::write(&strict, spec_text.replace("threshold: 4s", "threshold: 2s")).expect("strict");
    let out = dir.path().join("strict.otlp.jsonl");
    sliq_ok([
        "replay".as_ref(),
        "--config".as_ref(),
        strict.as_os_str(),
        "--archive".as_ref(),
        archive.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let (want_strict, _) = duckdb_recount(&archive, 2000.0);
    let requests = read_otlp_json_lines(&out).expect("OTLP/JSON lines");
    let strict_totals = totals_of(&sum_points(&requests, "sliq.slo.events"), "replay");
    assert_eq!(strict_totals, want_strict);
    assert_ne!(
        want_strict, want,
        "a stricter threshold judges some requests bad"
    );

    let table = sliq_ok([
        "replay".as_ref(),
        "--config".as_ref(),
        strict.as_os_str(),
        "--archive".as_ref(),
        archive.as_os_str(),
        "--compare".as_ref(),
        spec_path.as_os_str(),
    ]);
    eprintln!("{table}");
    let row = |slo: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(slo))
            .unwrap_or_else(|| panic!("no row for {slo} in:\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    for slo in ["availability", "latency"] {
        let cells = row(slo);
        // SLO, objective old/new, events old/new, attained old/new, budget old/new.
        assert_eq!(cells.len(), 9, "{table}");
        assert_eq!(cells[5], attainment(&want, slo), "{table}");
        assert_eq!(cells[6], attainment(&want_strict, slo), "{table}");
    }
    assert_ne!(row("latency")[5], row("latency")[6], "{table}");
}
