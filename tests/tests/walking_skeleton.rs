//! End to end on real parts: Nisshi over TCP, `sliq run` as a process, OTLP over gRPC into a receiver
//! decoding the official protobuf, and DuckDB reading the archive back. Expected numbers are an
//! independent recount of the generated records with serde_json, never sliq's own output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sliq_gen::{GenConfig, GeneratedRecord, Generator, RecordKind};
use sliq_tests::broker::Broker;
use sliq_tests::otlp::{OtlpReceiver, last_values};
use sliq_tests::python::duckdb_json;

const LATENCY_THRESHOLD_MS: f64 = 4000.0;

fn sliq_binary() -> PathBuf {
    // target/debug/deps/<this test> → target/debug/sliq
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("sliq");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p sliq)",
        bin.display()
    );
    bin
}

fn spec(broker: &Broker, group: &str, otlp: &str, archive: &Path) -> String {
    format!(
        "source:
  kafka:
    brokers: {brokers}
    topics: [logs]
    group_id: {group}
    dead_letter_topic: logs-dlq
windows:
  size: 1m
  allowed_lateness: 30s
  max_out_of_orderness: 5s
  idle_partition_after: 2s
slos:
  - name: availability
    objective: 0.99
    dimensions: [service]
    sli:
      availability: {{}}
  - name: latency
    objective: 0.95
    dimensions: [service, model]
    sli:
      latency: {{ threshold: 4s }}
export:
  otlp:
    endpoint: {otlp}
archive:
  dir: {archive}
  max_rows: 20000
  max_age: 5s
",
        brokers = broker.bootstrap(),
        archive = archive.display(),
    )
}

fn gen_config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        start_ms: 1_767_225_600_000,
        events_per_second: 200.0,
        late_ratio: 0.0,
        ..GenConfig::default()
    }
}

/// What the records must produce, recounted from their JSON with no sliq code involved.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    valid: u64,
    malformed: u64,
    /// (slo, service) → [good, bad]
    by_slo_service: BTreeMap<(String, String), [u64; 2]>,
    /// sha256 over the sorted lines "id sha256(raw)" of every valid record.
    archive_digest: String,
}

fn expected(records: &[GeneratedRecord]) -> Expected {
    let mut e = Expected::default();
    let mut lines = Vec::new();
    for r in records {
        if r.kind != RecordKind::Valid {
            e.malformed += 1;
            continue;
        }
        e.valid += 1;
        let v: Value = serde_json::from_slice(&r.payload).expect("valid records are JSON");
        let service = v["service"].as_str().expect("service").to_owned();
        let ok = match v["status"].as_str() {
            Some(s) => s == "ok",
            None => v.get("error").is_none_or(Value::is_null),
        };
        let avail = e
            .by_slo_service
            .entry(("availability".into(), service.clone()))
            .or_default();
        avail[usize::from(!ok)] += 1;
        if ok && let Some(latency) = v["latency_ms"].as_f64() {
            let lat = e
                .by_slo_service
                .entry(("latency".into(), service))
                .or_default();
            lat[usize::from(latency > LATENCY_THRESHOLD_MS)] += 1;
        }
        lines.push(format!(
            "{} {:x}",
            v["id"].as_str().expect("id"),
            Sha256::digest(&r.payload)
        ));
    }
    lines.sort();
    e.archive_digest = format!("{:x}", Sha256::digest(lines.join("\n").as_bytes()));
    e
}

/// Reads the archive with DuckDB: rows, distinct Kafka positions, and the same digest as `expected`.
fn archive_summary(dir: &Path) -> Value {
    duckdb_json(&format!(
        "rows = q(\"SELECT id, raw, kafka_partition, kafka_offset FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")\n\
         lines = sorted(r['id'] + ' ' + hashlib.sha256(r['raw']).hexdigest() for r in rows)\n\
         print(json.dumps({{'rows': len(rows), 'positions': len({{(r['kafka_partition'], r['kafka_offset']) for r in rows}}), \
         'digest': hashlib.sha256('\\n'.join(lines).encode()).hexdigest()}}))",
        dir.display()
    ))
    .expect("duckdb reads the archive")
}

fn unfinished_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("archive folder").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "inprogress") {
                out.push(p);
            }
        }
    }
    out
}

async fn start_sliq(spec_path: &Path, instance: &str) -> tokio::process::Child {
    tokio::process::Command::new(sliq_binary())
        .args(["run", "--config"])
        .arg(spec_path)
        .args(["--exit-on-idle", "6s", "--instance-id", instance])
        .env("SLIQ_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sliq starts")
}

async fn wait_ok(child: tokio::process::Child, name: &str) {
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not stop within 300 s"))
        .expect("wait for sliq");
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Totals per (slo, service) from cumulative points: the last value of each series, summed over
/// the other dimensions and over instances.
fn exported_by_slo_service(receiver: &OtlpReceiver) -> BTreeMap<(String, String), [u64; 2]> {
    let mut out: BTreeMap<(String, String), [u64; 2]> = BTreeMap::new();
    for ((_, attrs), value) in last_values(&receiver.sum_points("sliq.slo.events")) {
        let key = (attrs["sliq.slo.name"].clone(), attrs["service"].clone());
        let slot = usize::from(attrs["sliq.slo.outcome"] == "bad");
        out.entry(key).or_default()[slot] += value as u64;
    }
    out
}

/// `sliq.records` totals per instance: outcome → count.
fn record_counts(receiver: &OtlpReceiver) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for ((resource, attrs), value) in last_values(&receiver.sum_points("sliq.records")) {
        out.entry(resource["service.instance.id"].clone())
            .or_default()
            .insert(attrs["sliq.record.outcome"].clone(), value as u64);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_records_are_counted_archived_and_dead_lettered_exactly() {
    let broker = Broker::start().expect("broker");
    broker.create_topic("logs", 4).await.expect("topic");
    broker.create_topic("logs-dlq", 1).await.expect("dlq topic");
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    // The first two exports are refused: sliq must retry, lose nothing and count nothing twice.
    receiver.fail_next(2);

    let n = 50_000;
    let records: Vec<GeneratedRecord> = Generator::new(gen_config(7)).take(n).collect();
    let want = expected(&records);
    assert!(want.malformed > 300 && want.valid > 49_000, "{want:?}");
    sliq_pipeline::produce_generated(
        &broker.bootstrap(),
        "logs",
        &mut Generator::new(gen_config(7)),
        n as u64,
        None,
    )
    .await
    .expect("produce");

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(
        &spec_path,
        spec(&broker, "it-exact", &receiver.endpoint(), &archive),
    )
    .expect("spec");
    wait_ok(start_sliq(&spec_path, "it-a").await, "sliq").await;

    // OTLP: every judged event once, in the right series.
    assert_eq!(exported_by_slo_service(&receiver), want.by_slo_service);
    let counts = record_counts(&receiver);
    let a = &counts["it-a"];
    assert_eq!(
        (a["accepted"], a["dead_lettered"], a["late"]),
        (want.valid, want.malformed, 0)
    );
    let events = receiver.sum_points("sliq.slo.events");
    assert!(events.iter().all(|p| p.time_unix_nano % 60_000_000_000 == 0
        && p.start_time_unix_nano < p.time_unix_nano
        && p.is_monotonic
        && p.temporality == 2
        && p.resource["service.name"] == "sliq"));

    // Archive: one row per valid record, raw bytes identical, no half files.
    let summary = archive_summary(&archive);
    assert_eq!(summary["rows"], want.valid);
    assert_eq!(summary["positions"], want.valid);
    assert_eq!(summary["digest"], want.archive_digest.as_str());
    assert!(unfinished_files(&archive).is_empty());

    // Dead letters: one per malformed record, original bytes, reason and origin in headers.
    let dlq = broker
        .consume_all("logs-dlq", want.malformed as usize, Duration::from_secs(30))
        .expect("dlq");
    assert_eq!(dlq.len() as u64, want.malformed);
    let by_key: BTreeMap<&str, &GeneratedRecord> =
        records.iter().map(|r| (r.key.as_str(), r)).collect();
    for d in &dlq {
        let key = String::from_utf8(d.key.clone().expect("key kept")).expect("utf8 key");
        let original = by_key[key.as_str()];
        let RecordKind::Malformed(kind) = original.kind else {
            panic!("{key} was valid")
        };
        assert_eq!(d.payload, original.payload);
        assert_eq!(d.headers["sliq.reason"], kind.code(), "{key}");
        assert_eq!(d.headers["sliq.source.topic"], "logs");
        assert!(!d.headers["sliq.error"].is_empty());
    }

    // Offsets: all committed after the clean stop.
    assert_eq!(
        broker
            .committed_offsets("it-exact", "logs")
            .expect("committed"),
        broker.end_offsets("logs").expect("ends")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_group_split_partitions_and_archive_each_record_once() {
    let broker = Broker::start().expect("broker");
    broker.create_topic("logs", 4).await.expect("topic");
    broker.create_topic("logs-dlq", 1).await.expect("dlq topic");
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let n = 20_000;
    let records: Vec<GeneratedRecord> = Generator::new(gen_config(11)).take(n).collect();
    let want = expected(&records);

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(
        &spec_path,
        spec(&broker, "it-pair", &receiver.endpoint(), &archive),
    )
    .expect("spec");

    // Instance a starts alone and reads the first part; b joins mid-stream, forcing a rebalance
    // while a holds open windows and files.
    let mut generator = Generator::new(gen_config(11));
    let a = start_sliq(&spec_path, "it-a").await;
    sliq_pipeline::produce_generated(&broker.bootstrap(), "logs", &mut generator, 6_000, None)
        .await
        .expect("produce first part");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = start_sliq(&spec_path, "it-b").await;
    sliq_pipeline::produce_generated(
        &broker.bootstrap(),
        "logs",
        &mut generator,
        (n - 6_000) as u64,
        Some(4_000.0),
    )
    .await
    .expect("produce the rest");
    wait_ok(a, "instance a").await;
    wait_ok(b, "instance b").await;

    let counts = record_counts(&receiver);
    let (ca, cb) = (&counts["it-a"], &counts["it-b"]);
    assert!(
        ca["accepted"] > 0 && cb["accepted"] > 0,
        "both instances worked: {counts:?}"
    );
    assert_eq!(ca["accepted"] + cb["accepted"], want.valid, "{counts:?}");
    assert_eq!(
        ca["dead_lettered"] + cb["dead_lettered"],
        want.malformed,
        "{counts:?}"
    );
    assert_eq!(exported_by_slo_service(&receiver), want.by_slo_service);

    let summary = archive_summary(&archive);
    assert_eq!(summary["rows"], want.valid);
    assert_eq!(summary["positions"], want.valid);
    assert_eq!(summary["digest"], want.archive_digest.as_str());
    assert_eq!(
        broker
            .committed_offsets("it-pair", "logs")
            .expect("committed"),
        broker.end_offsets("logs").expect("ends")
    );
}
