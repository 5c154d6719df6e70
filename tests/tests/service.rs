//! `sliq run` and `sliq validate` as an operator meets them: HTTP/protobuf export, delta
//! temporality, a stop by SIGTERM with nothing lost, and spec errors that point at the line.

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::run::{
    assert_archived_and_committed, broker_with_topics, produce_records, record_counts, start_sliq,
    wait_ok, write_spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_exports_over_http_and_commits_everything() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_http().await.expect("receiver");
    receiver.fail_next(1);
    let n = 8_000;
    let (_, want) = produce_records(&broker, 3, n).await;
    let export = format!(
        "    endpoint: {}\n    protocol: http/protobuf\n    temporality: delta",
        receiver.endpoint()
    );
    let (_dir, spec_path, archive) = write_spec(&broker, "it-term", &export);
    // No --exit-on-idle: the service runs until it is told to stop.
    let child = start_sliq(&spec_path, "it-term", &[]).await;
    let pid = child.id().expect("pid");

    // Wait until every record was read (the exported record counter says so), then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let read: u64 = record_counts(&receiver)
            .get("it-term")
            .map(|c| c.values().sum())
            .unwrap_or(0);
        if read == n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sliq read {read} of {n} records in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_ok(child, "sliq").await;

    // Delta points: the sum over all points is the total per (slo, service).
    let mut totals = std::collections::BTreeMap::<(String, String), [u64; 2]>::new();
    for p in receiver.sum_points("sliq.slo.events") {
        assert_eq!(p.temporality, 1, "delta");
        assert_eq!(
            p.time_unix_nano - p.start_time_unix_nano,
            60_000_000_000,
            "one window per point"
        );
        let key = (
            p.attributes["sliq.slo.name"].clone(),
            p.attributes["service"].clone(),
        );
        totals.entry(key).or_default()[usize::from(p.attributes["sliq.slo.outcome"] == "bad")] +=
            p.value as u64;
    }
    assert_eq!(totals, want.by_slo_service);
    assert_archived_and_committed(&broker, "it-term", &archive, &want);
}

#[test]
fn validate_points_at_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "source:\n  kafka:\n    brokers: b:9092\n    topics: [t]\n    dead_letter_topic: d\nslos:\n  - name: a\n    objective: 1.2\n    sli:\n      availability: {}\n",
    )
    .expect("spec");
    let out = Command::new(sliq_tests::sliq_binary())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .expect("sliq validate");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:8:", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("slos[0].objective") && stderr.contains("0.995"),
        "{stderr}"
    );

    let good = sliq_tests::repo_root().join("pipelines/chatbot.yaml");
    let stdout = sliq_tests::run::sliq_ok([
        OsStr::new("validate"),
        OsStr::new("--config"),
        good.as_os_str(),
    ]);
    // The SLO count, recounted from the file's text.
    let declared = std::fs::read_to_string(&good)
        .expect("chatbot spec")
        .matches("\n  - name: ")
        .count();
    assert!(declared >= 7);
    assert!(stdout.contains(&format!("{declared} SLOs")), "{stdout}");

    // Validating writes nothing: the demo spec exports to a file under ./sliq-demo, which a
    // validate run in this folder used to create.
    let cwd = tempfile::tempdir().expect("tempdir");
    let demo = sliq_tests::repo_root().join("pipelines/demo.yaml");
    let out = Command::new(sliq_tests::sliq_binary())
        .current_dir(cwd.path())
        .args(["validate", "--config"])
        .arg(&demo)
        .output()
        .expect("sliq validate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Vec<_> = std::fs::read_dir(cwd.path())
        .expect("read the folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(created.is_empty(), "validate created {created:?}");
}
