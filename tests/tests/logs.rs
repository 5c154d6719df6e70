//! What an operator's log pipeline receives from `sliq run`: with `--log-format json` one JSON
//! object a line (the final error too), with text no colour codes when stderr is not a terminal,
//! and values written as people write them (`1m`, `a, b`, `gRPC`), never Rust's debug forms.

use std::process::Stdio;
use std::time::Duration;

use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::run::{broker_with_topics, produce_records, record_counts, write_spec};

/// Runs `sliq run` to its idle exit with `args`; returns (success, stderr).
async fn run_logged(spec: &std::path::Path, instance: &str, args: &[&str]) -> (bool, String) {
    let child = tokio::process::Command::new(sliq_tests::sliq_binary())
        .args(args)
        .args(["run", "--config"])
        .arg(spec)
        .args(["--instance-id", instance, "--exit-on-idle", "3s"])
        .env(
            "SLIQ_TEST_STATE",
            spec.with_file_name(format!("state-{instance}")),
        )
        .env("SLIQ_LOG", "info")
        .env_remove("SLIQ_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sliq starts");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("sliq exits within 180 s")
        .expect("sliq output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Debug forms that must never reach a person: options, quoted lists, enum variant names,
/// `Duration`'s own form.
fn debug_forms(text: &str) -> Vec<&str> {
    [
        "Some(",
        "None",
        "[\"",
        "Grpc",
        "HttpProtobuf",
        "Duration",
        "secs:",
        "days",
    ]
    .into_iter()
    .filter(|form| text.contains(form))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_for_shippers_and_no_colour_off_a_terminal() {
    let broker = broker_with_topics().await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let n = 2_000;
    let (_, want) = produce_records(&broker, 11, n).await;
    let export = format!("    endpoint: {}", receiver.endpoint());
    let (_dir, spec, _archive) = write_spec(&broker, "it-logs", &export);

    let (ok, stderr) = run_logged(&spec, "it-logs-json", &["--log-format", "json"]).await;
    assert!(ok, "sliq failed: {stderr}");
    // The run did its work (so the lines below are a real run's lines, not a start-up failure).
    let read: u64 = record_counts(&receiver)["it-logs-json"].values().sum();
    assert_eq!(read, n as u64);
    assert_eq!(want.valid + want.malformed, n as u64);

    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() >= 2,
        "a run logs its start and its end: {stderr}"
    );
    let mut messages = Vec::new();
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for field in ["timestamp", "level", "message", "target"] {
            assert!(object.get(field).is_some(), "no {field} in {line}");
        }
        messages.push(object["message"].as_str().unwrap_or_default().to_owned());
    }
    let all = messages.join("\n");
    assert!(!stderr.contains('\u{1b}'), "colour codes in JSON logs");
    assert!(
        debug_forms(&all).is_empty(),
        "{:?} in {all}",
        debug_forms(&all)
    );

    // Text logs into a pipe: no colour codes either. The group already committed everything, so
    // this run reads nothing and exits idle; it still logs its start and end.
    let (ok, stderr) = run_logged(&spec, "it-logs-text", &[]).await;
    assert!(ok, "sliq failed: {stderr}");
    assert!(stderr.lines().count() >= 2, "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes off a terminal: {stderr}"
    );
    assert!(
        debug_forms(&stderr).is_empty(),
        "{:?} in {stderr}",
        debug_forms(&stderr)
    );

    // The last line of a failing run is JSON too: a shipper reads every line.
    let missing = spec.with_file_name("missing.yaml");
    let out = std::process::Command::new(sliq_tests::sliq_binary())
        .args(["--log-format", "json", "run", "--config"])
        .arg(&missing)
        .output()
        .expect("sliq runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let object: serde_json::Value = serde_json::from_str(last).expect("the error is a JSON line");
    assert_eq!(object["level"], "ERROR");
    assert!(
        object["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing.yaml") && m.contains("cannot read the spec")),
        "{last}"
    );
}

fn validate(spec: &std::path::Path) -> std::process::Output {
    std::process::Command::new(sliq_tests::sliq_binary())
        .args(["validate", "--config"])
        .arg(spec)
        .output()
        .expect("sliq runs")
}

#[test]
fn validate_writes_values_as_people_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("spec.yaml");
    let body = |extra: &str| {
        format!(
            "source:
  kafka:
    brokers: 127.0.0.1:9092
    topics: [ai-requests, ai-requests-eu]
    dead_letter_topic: dlq
windows: {{ size: 1m }}
slos:
  - name: availability
    objective: 0.99
    sli: {{ availability: {{}} }}
export:
  otlp: {{ endpoint: http://127.0.0.1:4318, protocol: http/protobuf }}
{extra}"
        )
    };
    std::fs::write(&spec, body("")).expect("spec");
    let out = validate(&spec);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "topics ai-requests, ai-requests-eu, export OTLP/HTTP protobuf to \
             http://127.0.0.1:4318/v1/metrics (from export.otlp.endpoint), timeout 10s"
        ),
        "{stdout}"
    );

    // Spans in an error come back as the spec writes them.
    std::fs::write(
        &spec,
        body(
            "drift:
  reference: { trailing: 30s }
  features:
    - { name: latency, pointer: /latency_ms, type: numeric }
",
        ),
    )
    .expect("spec");
    let out = validate(&spec);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a trailing reference of 30s is shorter than one window (1m)"),
        "{stderr}"
    );
    assert!(debug_forms(&stderr).is_empty(), "{stderr}");
}
