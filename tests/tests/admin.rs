//! The admin endpoints of a running `sliq run`, against the Nisshi broker and the test collector:
//! `/metrics` (parsed by the official Prometheus parser) against a recount of what was produced and
//! the archive read back by DuckDB, lag against the broker's own offsets, `/readyz` through a
//! collector outage, `/healthz` throughout, and the same figures over OTLP.

use std::collections::BTreeMap;
use std::time::Duration;

use sliq_gen::RecordKind;
use sliq_tests::admin::{Scrape, get, scrape, wait_for};
use sliq_tests::otlp::{OtlpReceiver, ReceivedPoint, last_values};
use sliq_tests::python::duckdb_json;
use sliq_tests::run::{
    broker_with_topics, gen_config, produce_records, start_sliq, terminate, wait_ok, write_spec,
};

const READ: &str = "sliq_records_read_total";
const RECORDS: &str = "sliq_records_total";
const LAG: &str = "sliq_consumer_lag";

/// Dead letters per reason, recounted from what the generator meant each record to be.
fn malformed_by_reason(records: &[sliq_gen::GeneratedRecord]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        if let RecordKind::Malformed(kind) = r.kind {
            *out.entry(kind.code().to_owned()).or_default() += 1;
        }
    }
    out
}

fn dead_lettered_by_reason(s: &Scrape) -> BTreeMap<String, u64> {
    s.find(RECORDS, &[("sliq_record_outcome", "dead_lettered")])
        .into_iter()
        .map(|x| (x.labels["sliq_dead_letter_reason"].clone(), x.value as u64))
        .collect()
}

/// Lag per partition of topic `logs` as scraped.
fn lag(s: &Scrape) -> BTreeMap<i32, i64> {
    s.find(LAG, &[("messaging_destination_name", "logs")])
        .into_iter()
        .filter_map(|x| {
            let p = x.labels["messaging_destination_partition_id"]
                .parse()
                .ok()?;
            Some((p, x.value as i64))
        })
        .collect()
}

/// Self-metric Sum points (resource `service.name=sliq-self`) of `metric`: last value per
/// attribute set.
fn self_points(receiver: &OtlpReceiver, metric: &str) -> BTreeMap<BTreeMap<String, String>, u64> {
    let points: Vec<ReceivedPoint> = receiver
        .sum_points(metric)
        .into_iter()
        .filter(|p| p.resource.get("service.name").map(String::as_str) == Some("sliq-self"))
        .collect();
    last_values(&points)
        .into_iter()
        .map(|((_, attrs), v)| (attrs, v as u64))
        .collect()
}

/// Waits until the scraped lag of every partition equals the broker's high-water mark minus the
/// group's committed offset (the statistics behind the gauge come every second); returns it.
async fn lag_as_the_broker_says(
    port: u16,
    broker: &sliq_tests::broker::Broker,
) -> BTreeMap<i32, i64> {
    wait_for(Duration::from_secs(30), "lag = end - committed", || async {
        let scraped = lag(&scrape(port).await.map_err(|e| e.to_string())?);
        let ends = broker.end_offsets("logs").map_err(|e| e.to_string())?;
        let committed = broker
            .committed_offsets("it-admin", "logs")
            .map_err(|e| e.to_string())?;
        let want: BTreeMap<i32, i64> = ends
            .iter()
            .map(|(p, end)| (*p, end - committed.get(p).copied().unwrap_or(0)))
            .collect();
        if scraped == want {
            Ok(want)
        } else {
            Err(format!("scraped {scraped:?}, broker {want:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_readiness_and_lag_through_a_collector_outage() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let (first, want_first) = produce_records(&broker, 21, 3_000).await;
    let export = format!("    endpoint: {}", receiver.endpoint());
    let (dir, spec_path, archive) = write_spec(&broker, "it-admin", &export);
    let mut spec = std::fs::read_to_string(&spec_path).expect("spec");
    spec.push_str("admin:\n  self_metrics: both\n  self_metrics_interval: 1s\n");
    std::fs::write(&spec_path, spec).expect("spec");
    let port = sliq_tests::free_port().expect("port");
    let listen = format!("127.0.0.1:{port}");
    let child = start_sliq(&spec_path, "it-admin", &["--admin-listen", &listen]).await;

    let (status, _) = wait_for(Duration::from_secs(30), "/healthz", || async {
        get(port, "/healthz").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(60), "/readyz 200", || async {
        match get(port, "/readyz").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Every record read; dead letters per reason as the generator made them.
    let n = first.len() as f64;
    let s = wait_for(Duration::from_secs(60), "all records read", || async {
        let s = scrape(port).await.map_err(|e| e.to_string())?;
        if s.value(READ, &[]) == n {
            Ok(s)
        } else {
            Err(format!("{} read", s.value(READ, &[])))
        }
    })
    .await;
    assert_eq!(dead_lettered_by_reason(&s), malformed_by_reason(&first));
    assert!(want_first.malformed > 0);

    // The collector goes away while more records arrive: not ready, and the reason names it.
    receiver.stop().await;
    // Ten minutes of event time later: the first records' windows close, and their exports fail.
    let later = sliq_gen::GenConfig {
        start_ms: gen_config(22).start_ms + 600_000,
        ..gen_config(22)
    };
    let second: Vec<_> = sliq_gen::Generator::new(later.clone())
        .take(2_000)
        .collect();
    sliq_pipeline::produce_generated(
        &broker.bootstrap(),
        "logs",
        &mut sliq_gen::Generator::new(later),
        second.len() as u64,
        None,
    )
    .await
    .expect("produce");
    let body = wait_for(Duration::from_secs(60), "/readyz 503", || async {
        match get(port, "/readyz").await {
            Ok((503, body)) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        body.contains("export: the collector at") && body.contains(&receiver.endpoint()),
        "{body}"
    );
    assert_eq!(get(port, "/healthz").await.expect("healthz").0, 200);

    // Behind: each partition's lag is the broker's high-water mark minus the group's commit.
    let behind = lag_as_the_broker_says(port, &broker).await;
    assert_eq!(behind.len(), 4);
    assert!(behind.values().any(|l| *l > 0), "{behind:?}");

    // Back: ready again, everything committed, lag 0 on every partition.
    receiver.restart().await.expect("receiver restart");
    wait_for(Duration::from_secs(60), "/readyz 200 again", || async {
        match get(port, "/readyz").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let want = sliq_tests::recount::expected(&all);
    let s = wait_for(Duration::from_secs(90), "everything archived", || async {
        let s = scrape(port).await.map_err(|e| e.to_string())?;
        let rows = s.value("sliq_archive_rows_total", &[]);
        if rows == want.valid as f64
            && s.value(RECORDS, &[("sliq_record_outcome", "accepted")]) > 0.0
        {
            Ok(s)
        } else {
            Err(format!("{rows} rows archived"))
        }
    })
    .await;
    // Caught up: what is left uncommitted is the records of windows still open (the newest
    // window of each partition waits for the watermark), and the gauge says exactly that much.
    // Commits resume once the retried exports are acknowledged: the lag falls within a minute.
    let during: i64 = behind.values().sum();
    wait_for(
        Duration::from_secs(60),
        "lag falls after the outage",
        || async {
            let running = lag_as_the_broker_says(port, &broker).await;
            if running.values().sum::<i64>() < during {
                Ok(())
            } else {
                Err(format!(
                    "after the outage {running:?}, during it {behind:?}"
                ))
            }
        },
    )
    .await;
    assert_eq!(s.value(READ, &[]), all.len() as f64);
    let judged = s.value(RECORDS, &[("sliq_record_outcome", "accepted")])
        + s.value(RECORDS, &[("sliq_record_outcome", "late")]);
    assert_eq!(judged, want.valid as f64);
    assert_eq!(dead_lettered_by_reason(&s), malformed_by_reason(&all));
    assert!(s.value("sliq_export_failures_total", &[]) >= 1.0);
    assert_eq!(
        s.value("sliq_buffered_limit_bytes", &[("sliq_stage", "export")]),
        (64u64 << 20) as f64
    );
    for stage in [
        "poll",
        "batch",
        "export",
        "commit",
        "checkpoint",
        "archive_write",
    ] {
        assert!(
            s.value(
                "sliq_stage_duration_seconds_count",
                &[("sliq_stage", stage)]
            ) > 0.0,
            "no {stage} duration"
        );
    }

    // The archive as DuckDB reads it: rows, files and bytes agree with the counters.
    let glob = format!("{}/**/*.parquet", archive.display());
    let read_back = duckdb_json(&format!(
        "import os\n\
         rows = q(\"SELECT count(*) AS n, count(DISTINCT filename) AS files FROM read_parquet('{glob}', filename = true)\")[0]\n\
         size = sum(os.path.getsize(r['filename']) for r in q(\"SELECT DISTINCT filename FROM read_parquet('{glob}', filename = true)\"))\n\
         print(json.dumps({{'rows': rows['n'], 'files': rows['files'], 'bytes': size}}))"
    ))
    .expect("duckdb");
    assert_eq!(read_back["rows"], want.valid);
    assert_eq!(
        s.value("sliq_archive_files_total", &[]),
        read_back["files"].as_f64().expect("files")
    );
    assert_eq!(
        s.value("sliq_archive_size_bytes_total", &[]),
        read_back["bytes"].as_f64().expect("bytes")
    );

    // The same figures over OTLP, under the self-metrics' own service name.
    let total = all.len() as u64;
    let otlp = wait_for(
        Duration::from_secs(30),
        "self-metrics over OTLP",
        || async {
            let read = self_points(&receiver, "sliq.records.read");
            match read.values().next() {
                Some(v) if *v == total => Ok(self_points(&receiver, "sliq.records")),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let scraped: BTreeMap<BTreeMap<String, String>, u64> = s
        .find(RECORDS, &[])
        .into_iter()
        .map(|x| (x.labels.clone(), x.value as u64))
        .collect();
    // OTel attribute keys as Prometheus writes them.
    let otlp: BTreeMap<BTreeMap<String, String>, u64> = otlp
        .into_iter()
        .map(|(attrs, v)| {
            let labels = attrs
                .into_iter()
                .map(|(k, val)| (k.replace('.', "_"), val))
                .collect();
            (labels, v)
        })
        .collect();
    assert_eq!(otlp, scraped);

    // A stop closes every window and commits to the end: no lag left.
    terminate(&child);
    wait_ok(child, "sliq").await;
    assert_eq!(
        broker
            .committed_offsets("it-admin", "logs")
            .expect("committed"),
        broker.end_offsets("logs").expect("ends")
    );
    drop(dir);
}
