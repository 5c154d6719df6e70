//! Quality SLIs and budgets on the real rig. The expected counts, burn rates, alerts and budgets are
//! recomputed in this file from the generated JSON with the SRE Workbook's formulas; the stream is
//! processed in two runs with a restart between them, so the budget state must survive the restart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sliq_gen::{GenConfig, GeneratedRecord, Generator, RecordKind};
use sliq_tests::otlp::{OtlpReceiver, ReceivedPoint, gauge_points, last_values};
use sliq_tests::run::{broker_with_topics, start_sliq, wait_ok};

const MINUTE: i64 = 60_000;

/// (name, objective) of the spec's SLOs, in declaration order.
const SLOS: [(&str, f64); 6] = [
    ("faithful", 0.97),
    ("faithful-strict", 0.999),
    ("not-hallucinated", 0.99),
    ("tests", 0.97),
    ("no-refusal", 0.97),
    ("good-answer", 0.95),
];

fn spec(brokers: &str, otlp: &str, dir: &std::path::Path) -> String {
    format!(
        "source:
  kafka: {{ brokers: \"{brokers}\", topics: [logs], group_id: budgets, dead_letter_topic: logs-dlq }}
windows: {{ size: 1m, allowed_lateness: 30s, max_out_of_orderness: 5s, idle_partition_after: 2s }}
slos:
  - {{ name: faithful, objective: 0.97, dimensions: [service], sli: {{ score: {{ evaluator: faithfulness, min: 0.7 }} }} }}
  - {{ name: faithful-strict, objective: 0.999, dimensions: [service], sli: {{ score: {{ evaluator: faithfulness, min: 0.7 }} }} }}
  - {{ name: not-hallucinated, objective: 0.99, dimensions: [service], sli: {{ flag: {{ name: hallucination }} }} }}
  - {{ name: tests, objective: 0.97, dimensions: [service], sli: {{ tests: {{ mode: per_test }} }} }}
  - name: no-refusal
    objective: 0.97
    dimensions: [service]
    sli:
      rule:
        rules: [{{ name: refusal, pattern: \"sorry|cannot assist|unable to provide\" }}]
  - name: good-answer
    objective: 0.95
    dimensions: [service]
    sli:
      all_of:
        - latency: {{ threshold: 4s }}
        - score: {{ evaluator: faithfulness, min: 0.7 }}
        - flag: {{ name: hallucination }}
export:
  otlp: {{ endpoint: \"{otlp}\", temporality: delta }}
archive: {{ dir: \"{archive}\", max_age: 5s }}
state: {{ dir: \"{state}\" }}
",
        archive = dir.join("archive").display(),
        state = dir.join("state").display(),
    )
}

/// Per (slo, service): minute start → [good, bad], recounted from the records' JSON.
type Minutes = BTreeMap<(String, String), BTreeMap<i64, [u64; 2]>>;

fn recount(records: &[GeneratedRecord]) -> Minutes {
    let mut out = Minutes::new();
    for r in records.iter().filter(|r| r.kind == RecordKind::Valid) {
        let v: Value = serde_json::from_slice(&r.payload).expect("json");
        let ts = match &v["ts"] {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .expect("ts")
                .timestamp_millis(),
            other => other.as_i64().expect("ts"),
        };
        let minute = ts.div_euclid(MINUTE) * MINUTE;
        let service = v["service"].as_str().expect("service").to_owned();
        let mut count = |slo: &str, good: u64, bad: u64| {
            let c = out
                .entry((slo.to_owned(), service.clone()))
                .or_default()
                .entry(minute)
                .or_default();
            c[0] += good;
            c[1] += bad;
        };
        let faith = v["evals"]["faithfulness"].as_f64();
        let hallucinated = v["flags"]["hallucination"].as_bool();
        if let Some(f) = faith {
            count("faithful", u64::from(f >= 0.7), u64::from(f < 0.7));
            count("faithful-strict", u64::from(f >= 0.7), u64::from(f < 0.7));
        }
        if let Some(h) = hallucinated {
            count("not-hallucinated", u64::from(!h), u64::from(h));
        }
        let passed = v["tests"]["passed"].as_u64().unwrap_or(0);
        let failed = v["tests"]["failed"].as_u64().unwrap_or(0);
        if passed + failed > 0 {
            count("tests", passed, failed);
        }
        if let Some(text) = v["response"]["text"].as_str() {
            let refused = ["sorry", "cannot assist", "unable to provide"]
                .iter()
                .any(|p| text.contains(p));
            count("no-refusal", u64::from(!refused), u64::from(refused));
        }
        let ok = v["status"] == "ok";
        let fast = v["latency_ms"].as_f64().filter(|_| ok).map(|l| l <= 4000.0);
        let parts = [fast, faith.map(|f| f >= 0.7), hallucinated.map(|h| !h)];
        if parts.contains(&Some(false)) {
            count("good-answer", 0, 1);
        } else if parts.iter().all(Option::is_some) {
            count("good-answer", 1, 0);
        }
    }
    out
}

fn sum_over(minutes: &BTreeMap<i64, [u64; 2]>, from: i64, to: i64) -> [u64; 2] {
    minutes
        .range(from..to)
        .fold([0, 0], |a, (_, c)| [a[0] + c[0], a[1] + c[1]])
}

/// The last gauge value per (metric attributes) for one metric, keyed by (slo, service, extra attr).
fn last_gauges(
    receiver: &OtlpReceiver,
    metric: &str,
    extra: &str,
) -> BTreeMap<(String, String, String), f64> {
    let points: Vec<ReceivedPoint> = gauge_points(&receiver.requests(), metric);
    last_values(&points)
        .into_iter()
        .map(|((_, a), v)| {
            let extra = a.get(extra).cloned().unwrap_or_default();
            ((a["sliq.slo.name"].clone(), a["service"].clone(), extra), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_budgets_match_the_workbook_formulas_across_a_restart() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    // 5 requests per second of event time: 12,000 records span 40 minutes.
    let config = GenConfig {
        seed: 5,
        events_per_second: 5.0,
        late_ratio: 0.0,
        ..GenConfig::default()
    };
    let n = 12_000;
    let records: Vec<GeneratedRecord> = Generator::new(config.clone()).take(n).collect();
    let minutes = recount(&records);

    let dir = tempfile::tempdir().expect("tempdir");
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(
        &spec_path,
        spec(&broker.bootstrap(), &receiver.endpoint(), dir.path()),
    )
    .expect("spec");
    let mut generator = Generator::new(config);
    // First half, a clean stop, then the second half with the same instance id.
    for part in 0..2 {
        sliq_pipeline::produce_generated(
            &broker.bootstrap(),
            "logs",
            &mut generator,
            (n / 2) as u64,
            None,
        )
        .await
        .expect("produce");
        let child = start_sliq(&spec_path, "budget-1", &["--exit-on-idle", "4s"]).await;
        wait_ok(child, &format!("run {part}")).await;
    }

    // Counters: delta points summed over both runs equal the recount.
    let mut counted: BTreeMap<(String, String), [u64; 2]> = BTreeMap::new();
    for p in receiver.sum_points("sliq.slo.events") {
        let key = (
            p.attributes["sliq.slo.name"].clone(),
            p.attributes["service"].clone(),
        );
        counted.entry(key).or_default()[usize::from(p.attributes["sliq.slo.outcome"] == "bad")] +=
            p.value as u64;
    }
    let totals: BTreeMap<(String, String), [u64; 2]> = minutes
        .iter()
        .map(|(k, m)| (k.clone(), sum_over(m, i64::MIN, i64::MAX)))
        .collect();
    assert_eq!(counted, totals);

    // Budgets at the end: event time "now" is the end of the newest window.
    let newest = minutes
        .values()
        .filter_map(|m| m.keys().next_back())
        .max()
        .copied()
        .expect("minutes");
    let now = newest + MINUTE;
    let remaining = last_gauges(&receiver, "sliq.slo.budget.remaining", "");
    let burn = last_gauges(&receiver, "sliq.slo.burn_rate", "sliq.window");
    let alert = last_gauges(&receiver, "sliq.slo.alert", "sliq.window");
    let objective_gauge = last_gauges(&receiver, "sliq.slo.objective", "");
    let burn_windows = [
        ("5m", 5),
        ("30m", 30),
        ("1h", 60),
        ("2h", 120),
        ("6h", 360),
        ("1d", 1440),
        ("3d", 4320),
    ];
    // (label, long minutes, short minutes, factor for 30 days)
    let rules = [
        ("1h/5m", 60, 5, 14.4),
        ("6h/30m", 360, 30, 6.0),
        ("1d/2h", 1440, 120, 3.0),
        ("3d/6h", 4320, 360, 1.0),
    ];
    let mut fired = 0;
    for ((slo, service), m) in &minutes {
        let objective = SLOS.iter().find(|s| s.0 == slo).expect("slo").1;
        let budget = 1.0 - objective;
        let key = |extra: &str| (slo.clone(), service.clone(), extra.to_owned());
        assert_eq!(objective_gauge[&key("")], objective);
        let all = sum_over(m, i64::MIN, now);
        let want_remaining = 1.0 - all[1] as f64 / (all[0] + all[1]) as f64 / budget;
        let got = remaining[&key("")];
        assert!(
            (got - want_remaining).abs() < 1e-9,
            "{slo}/{service}: remaining {got} vs {want_remaining}"
        );
        let rate = |minutes_back: i64| {
            let c = sum_over(m, now - minutes_back * MINUTE, now);
            let total = c[0] + c[1];
            (total > 0)
                .then(|| c[1] as f64 / total as f64 / budget)
                .map(|r| (r, total))
        };
        for (label, mins) in burn_windows {
            match rate(mins) {
                Some((want, _)) => {
                    let got = burn[&key(label)];
                    assert!(
                        (got - want).abs() < 1e-9,
                        "{slo}/{service} burn {label}: {got} vs {want}"
                    );
                }
                None => assert!(
                    !burn.contains_key(&key(label)),
                    "{slo}/{service}: no events in {label}"
                ),
            }
        }
        for (label, long, short, factor) in rules {
            let fires = match (rate(long), rate(short)) {
                (Some((l, total)), Some((s, _))) => total >= 100 && l > factor && s > factor,
                _ => false,
            };
            fired += usize::from(fires);
            assert_eq!(
                alert[&key(label)],
                f64::from(u8::from(fires)),
                "{slo}/{service} alert {label}"
            );
        }
    }
    assert!(
        fired > 0,
        "the strict SLO must page somewhere, or the alert check proves nothing"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
}
