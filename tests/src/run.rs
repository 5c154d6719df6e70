//! Running `sliq` in tests: specs, processes, and the totals read back from the receiver.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sliq_gen::GenConfig;

use crate::broker::Broker;
use crate::otlp::{OtlpReceiver, last_values};

/// A pipeline spec for the test topics `logs`/`logs-dlq` with an availability SLO by service and
/// a 4 s latency SLO by service and model; `export` is the indented body of `export.otlp`.
pub fn spec(broker: &Broker, group: &str, export: &str, archive: &Path) -> String {
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
{export}
archive:
  dir: {archive}
  max_rows: 20000
  max_age: 5s
state:
  dir: ${{SLIQ_TEST_STATE:-{state}}}
",
        brokers = broker.bootstrap(),
        archive = archive.display(),
        state = archive.with_file_name("state").display(),
    )
}

/// The generator settings of the end-to-end tests: no late events, ~1% malformed.
pub fn gen_config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        start_ms: 1_767_225_600_000,
        events_per_second: 200.0,
        late_ratio: 0.0,
        ..GenConfig::default()
    }
}

/// Starts `sliq run` on a spec; `extra` adds arguments (e.g. `--exit-on-idle 6s`). Each instance
/// gets its own state folder beside the spec (`state-<instance>`): one process per `state.dir`.
pub async fn start_sliq(spec_path: &Path, instance: &str, extra: &[&str]) -> tokio::process::Child {
    sliq_run(spec_path, instance, extra)
        .env("SLIQ_LOG", "warn")
        .spawn()
        .expect("sliq starts")
}

/// [`start_sliq`] with its log at `info` written to `log`, for a test that reads what it said.
pub async fn start_sliq_logged(
    spec_path: &Path,
    instance: &str,
    extra: &[&str],
    log: &Path,
) -> tokio::process::Child {
    sliq_run(spec_path, instance, extra)
        .env("SLIQ_LOG", "info")
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("sliq starts")
}

fn sliq_run(spec_path: &Path, instance: &str, extra: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(crate::sliq_binary());
    command
        .args(["run", "--config"])
        .arg(spec_path)
        .args(["--instance-id", instance])
        .args(extra)
        .env(
            "SLIQ_TEST_STATE",
            spec_path.with_file_name(format!("state-{instance}")),
        )
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `sliq` with `args` to completion and requires success; returns its standard output.
pub fn sliq_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new(crate::sliq_binary())
        .args(args)
        .output()
        .expect("sliq runs");
    assert!(
        out.status.success(),
        "sliq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (at most 300 s) for a sliq process and requires a clean exit.
pub async fn wait_ok(child: tokio::process::Child, name: &str) {
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
pub fn exported_by_slo_service(receiver: &OtlpReceiver) -> BTreeMap<(String, String), [u64; 2]> {
    let mut out: BTreeMap<(String, String), [u64; 2]> = BTreeMap::new();
    for ((_, attrs), value) in last_values(&receiver.sum_points("sliq.slo.events")) {
        let key = (attrs["sliq.slo.name"].clone(), attrs["service"].clone());
        let slot = usize::from(attrs["sliq.slo.outcome"] == "bad");
        out.entry(key).or_default()[slot] += value as u64;
    }
    out
}

/// `sliq.records` totals per instance of the SLI metrics (`service.name=sliq`): outcome → count.
pub fn record_counts(receiver: &OtlpReceiver) -> BTreeMap<String, BTreeMap<String, u64>> {
    records_of(receiver, "sliq")
}

/// `sliq.records` totals per instance of the self-metrics (`service.name=sliq-self`): outcome →
/// count, dead letters summed over their reasons.
pub fn self_record_counts(receiver: &OtlpReceiver) -> BTreeMap<String, BTreeMap<String, u64>> {
    records_of(receiver, "sliq-self")
}

fn records_of(receiver: &OtlpReceiver, service: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for ((resource, attrs), value) in last_values(&receiver.sum_points("sliq.records")) {
        if resource.get("service.name").map(String::as_str) != Some(service) {
            continue;
        }
        // The ledger's series have no instance: they are under "".
        let instance = resource.get("service.instance.id").cloned();
        *out.entry(instance.unwrap_or_default())
            .or_default()
            .entry(attrs["sliq.record.outcome"].clone())
            .or_default() += value as u64;
    }
    out
}

/// A broker with the test topics: `logs` (4 partitions) and `logs-dlq` (1).
pub async fn broker_with_topics() -> Broker {
    let broker = Broker::start().expect("broker");
    create_test_topics(&broker).await;
    broker
}

/// Creates the test topics: `logs` (4 partitions) and `logs-dlq` (1).
pub async fn create_test_topics(broker: &Broker) {
    broker.create_topic("logs", 4).await.expect("topic logs");
    broker
        .create_topic("logs-dlq", 1)
        .await
        .expect("topic logs-dlq");
}

/// Asks a running sliq to stop cleanly (SIGTERM).
pub fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = crate::broker::signal(pid, "TERM");
    }
}

/// Waits at most `timeout` for a sliq process to exit and returns its status; at the timeout it
/// is SIGKILLed and `None` returned.
pub async fn wait_exit(
    child: &mut tokio::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// Watches a running sliq for `period`: `None` when it is still running at the end, else how
/// long after the start it exited and with what status.
pub async fn exits_within(
    child: &mut tokio::process::Child,
    period: Duration,
) -> Option<(Duration, std::process::ExitStatus)> {
    let started = std::time::Instant::now();
    match tokio::time::timeout(period, child.wait()).await {
        Ok(Ok(status)) => Some((started.elapsed(), status)),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Produces the first `n` records of `seed` (see [`gen_config`]) to `logs`; returns them with
/// their independent recount.
pub async fn produce_records(
    broker: &Broker,
    seed: u64,
    n: usize,
) -> (Vec<sliq_gen::GeneratedRecord>, crate::recount::Expected) {
    let records: Vec<_> = sliq_gen::Generator::new(gen_config(seed)).take(n).collect();
    let want = crate::recount::expected(&records);
    let mut generator = sliq_gen::Generator::new(gen_config(seed));
    sliq_pipeline::produce_generated(&broker.bootstrap(), "logs", &mut generator, n as u64, None)
        .await
        .expect("produce");
    (records, want)
}

/// A temporary folder holding `spec.yaml` (see [`spec`]); returns it, the spec's path and the
/// archive folder.
pub fn write_spec(
    broker: &Broker,
    group: &str,
    export: &str,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, spec(broker, group, export, &archive)).expect("spec");
    (dir, spec_path, archive)
}

/// The archive holds each valid record exactly once with its raw bytes (DuckDB: rows, distinct
/// Kafka positions, digest), no unfinished file is left, and `group` committed every offset.
pub fn assert_archived_and_committed(
    broker: &Broker,
    group: &str,
    archive: &Path,
    want: &crate::recount::Expected,
) {
    let summary = crate::recount::archive_summary(archive);
    assert_eq!(summary["rows"], want.valid);
    assert_eq!(summary["positions"], want.valid);
    assert_eq!(summary["digest"], want.archive_digest.as_str());
    assert!(crate::recount::unfinished_files(archive).is_empty());
    assert_eq!(
        broker
            .committed_offsets(group, "logs")
            .expect("committed offsets"),
        broker.end_offsets("logs").expect("end offsets")
    );
}
