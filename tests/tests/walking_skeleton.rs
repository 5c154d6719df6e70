//! End to end on real parts: Nisshi over TCP, `sliq run` as a process, OTLP over gRPC into a receiver
//! decoding the official protobuf, and DuckDB reading the archive back. Expected numbers are an
//! independent recount of the generated records with serde_json, never sliq's own output.

use std::collections::BTreeMap;
use std::time::Duration;

use sliq_gen::{GeneratedRecord, Generator, RecordKind};
use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::recount::expected;
use sliq_tests::run::{
    assert_archived_and_committed, broker_with_topics, exported_by_slo_service, gen_config,
    produce_records, record_counts, start_sliq, wait_ok, write_spec,
};

/// (service, model, error type) → (count, sum of seconds, bucket index → count).
type LatencyTotals = BTreeMap<(String, String, String), (u64, f64, BTreeMap<i32, u64>)>;

const IDLE: &[&str] = &["--exit-on-idle", "6s"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_records_are_counted_archived_and_dead_lettered_exactly() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    // The first two exports are refused: sliq must retry, lose nothing and count nothing twice.
    receiver.fail_next(2);
    let (records, want) = produce_records(&broker, 7, 50_000).await;
    assert!(want.malformed > 300 && want.valid > 49_000, "{want:?}");
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let (_dir, spec_path, archive) = write_spec(&broker, "it-exact", &endpoint);
    wait_ok(start_sliq(&spec_path, "it-a", IDLE).await, "sliq").await;

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

    // Latency histograms (gen_ai.client.operation.duration, cumulative): the last point of each
    // series holds every valid record's latency, in the buckets the OTLP definition puts it.
    let mut want_hist = LatencyTotals::new();
    for r in records.iter().filter(|r| r.kind == RecordKind::Valid) {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("json");
        let Some(ms) = v["latency_ms"].as_f64() else {
            continue;
        };
        let key = (
            v["service"].as_str().expect("service").to_owned(),
            v["model"].as_str().unwrap_or("unknown").to_owned(),
            if v["status"] == "error" {
                v["error"]["type"].as_str().unwrap_or("_OTHER").to_owned()
            } else {
                String::new()
            },
        );
        let seconds = ms / 1000.0;
        let e = want_hist.entry(key).or_default();
        e.0 += 1;
        e.1 += seconds;
        // Bucket i of scale 3 holds (2^(i/8), 2^((i+1)/8)].
        let mut i = (seconds.log2() * 8.0).floor() as i32;
        while 2f64.powf(f64::from(i + 1) / 8.0) < seconds {
            i += 1;
        }
        while 2f64.powf(f64::from(i) / 8.0) >= seconds {
            i -= 1;
        }
        *e.2.entry(i).or_default() += 1;
    }
    let mut got_hist = LatencyTotals::new();
    for ((_, attrs), p) in sliq_tests::otlp::exp_histogram_points(
        &receiver.requests(),
        "gen_ai.client.operation.duration",
    ) {
        assert_eq!(p.scale, 3);
        let key = (
            attrs["service"].clone(),
            attrs["gen_ai.request.model"].clone(),
            attrs.get("error.type").cloned().unwrap_or_default(),
        );
        let buckets = p.positive.expect("positive buckets");
        let counts: BTreeMap<i32, u64> = buckets
            .bucket_counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (buckets.offset + i as i32, *n))
            .collect();
        got_hist.insert(key, (p.count, p.sum.expect("sum"), counts));
    }
    assert_eq!(got_hist.len(), want_hist.len());
    for (key, (count, sum, buckets)) in &want_hist {
        let got = &got_hist[key];
        assert_eq!((got.0, &got.2), (*count, buckets), "{key:?}");
        assert!(
            (got.1 - sum).abs() < 1e-6 * sum.max(1.0),
            "{key:?}: sum {} vs {sum}",
            got.1
        );
    }

    // Archive: one row per valid record, raw bytes identical, no half files; all committed.
    assert_archived_and_committed(&broker, "it-exact", &archive, &want);

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_group_split_partitions_and_archive_each_record_once() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let n = 20_000;
    let records: Vec<GeneratedRecord> = Generator::new(gen_config(11)).take(n).collect();
    let want = expected(&records);
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let (_dir, spec_path, archive) = write_spec(&broker, "it-pair", &endpoint);

    // Instance a starts alone and reads the first part; b joins mid-stream, forcing a rebalance
    // while a holds open windows and files.
    let mut generator = Generator::new(gen_config(11));
    let a = start_sliq(&spec_path, "it-a", IDLE).await;
    sliq_pipeline::produce_generated(&broker.bootstrap(), "logs", &mut generator, 6_000, None)
        .await
        .expect("produce first part");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = start_sliq(&spec_path, "it-b", IDLE).await;
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

    assert_archived_and_committed(&broker, "it-pair", &archive, &want);
}
