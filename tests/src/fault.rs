//! Shared pieces of the fault tests (`tests/tests/faults.rs`): knobs read from the environment
//! (CI-sized defaults, bigger in `scripts/fault-loop.sh`), the exact figures a run must end with,
//! recounted from what the topic holds, and a report of every mismatch at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sliq_gen::RecordKind;

use crate::broker::Broker;
use crate::otlp::{OtlpReceiver, cumulative_regressions, last_values};
use crate::python::duckdb_json;
use crate::recount::{Expected, LATENCY_THRESHOLD_MS, expected};
use crate::traffic::Landed;

/// An environment knob (`SLIQ_FAULT_*`) or its default.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Records per second of the live traffic (`SLIQ_FAULT_RATE`, default 200).
pub fn rate() -> f64 {
    knob("SLIQ_FAULT_RATE", 200) as f64
}

/// A position in Kafka: (partition, offset) of the source topic.
pub type Position = (i32, i64);

/// What the topic held, recounted with no sliq code.
#[derive(Debug)]
pub struct Truth {
    pub expected: Expected,
    /// (slo, dimension attributes) → [good, bad], one entry per exported series.
    pub by_series: BTreeMap<(String, BTreeMap<String, String>), [u64; 2]>,
    /// Valid records: position → sha256 of the raw bytes.
    pub valid: BTreeMap<Position, String>,
    /// Refused records: position → the reasons sliq may give.
    pub refused: BTreeMap<Position, Vec<String>>,
}

impl Truth {
    /// The truth of `landed` (the records of `logs` in order); `extra_refused` are positions of
    /// hand-made records that must be dead-lettered with one of the given reasons.
    pub fn of(landed: &[Landed], extra_refused: &BTreeMap<Position, Vec<String>>) -> Truth {
        let plain: Vec<&Landed> = landed
            .iter()
            .filter(|l| !extra_refused.contains_key(&(l.partition, l.offset)))
            .collect();
        let records: Vec<_> = plain.iter().map(|l| l.record.clone()).collect();
        let mut by_series: BTreeMap<_, [u64; 2]> = BTreeMap::new();
        let (mut valid, mut refused) = (BTreeMap::new(), extra_refused.clone());
        for l in &plain {
            let pos = (l.partition, l.offset);
            let RecordKind::Malformed(kind) = l.record.kind else {
                valid.insert(pos, format!("{:x}", Sha256::digest(&l.record.payload)));
                let v: serde_json::Value =
                    serde_json::from_slice(&l.record.payload).expect("valid records are JSON");
                let service = v["service"].as_str().expect("service").to_owned();
                let model = v["model"].as_str().unwrap_or("unknown").to_owned();
                let ok = match v["status"].as_str() {
                    Some(s) => s == "ok",
                    None => v.get("error").is_none_or(serde_json::Value::is_null),
                };
                let dims = BTreeMap::from([("service".to_owned(), service.clone())]);
                by_series
                    .entry(("availability".to_owned(), dims.clone()))
                    .or_default()[usize::from(!ok)] += 1;
                if ok && let Some(latency) = v["latency_ms"].as_f64() {
                    let mut dims = dims;
                    dims.insert("model".to_owned(), model);
                    by_series.entry(("latency".to_owned(), dims)).or_default()
                        [usize::from(latency > LATENCY_THRESHOLD_MS)] += 1;
                }
                continue;
            };
            refused.insert(pos, vec![kind.code().to_owned()]);
        }
        Truth {
            expected: expected(&records),
            by_series,
            valid,
            refused,
        }
    }
}

/// Every mismatch found, with the figures, reported at once.
#[derive(Debug, Default)]
pub struct Findings {
    pub name: String,
    pub problems: Vec<String>,
    pub figures: Vec<String>,
}

impl Findings {
    pub fn new(name: &str) -> Findings {
        Findings {
            name: name.to_owned(),
            ..Findings::default()
        }
    }

    pub fn problem(&mut self, p: impl Into<String>) {
        let p = p.into();
        eprintln!("[{}] PROBLEM: {p}", self.name);
        self.problems.push(p);
    }

    pub fn figure(&mut self, f: impl Into<String>) {
        let f = f.into();
        eprintln!("[{}] {f}", self.name);
        self.figures.push(f);
    }

    /// Fails the test with every problem found.
    pub fn assert_none(self) {
        assert!(
            self.problems.is_empty(),
            "{}: {} problem(s):\n  {}\nfigures:\n  {}",
            self.name,
            self.problems.len(),
            self.problems.join("\n  "),
            self.figures.join("\n  ")
        );
    }

    /// Cumulative `sliq.slo.events` as a backend reads them (the last point per series) against
    /// the recount, series by series; and no cumulative series going backwards.
    pub fn check_exported(&mut self, receiver: &OtlpReceiver, truth: &Truth) {
        let points = receiver.sum_points("sliq.slo.events");
        let mut got: BTreeMap<(String, BTreeMap<String, String>), [u64; 2]> = BTreeMap::new();
        for ((_, attrs), value) in last_values(&points) {
            let mut dims = attrs;
            let slo = dims.remove("sliq.slo.name").unwrap_or_default();
            let bad = dims.remove("sliq.slo.outcome").is_some_and(|o| o == "bad");
            got.entry((slo, dims)).or_default()[usize::from(bad)] += value as u64;
        }
        let (mut wrong, mut first) = (0, Vec::new());
        let (mut want_total, mut got_total) = ([0u64; 2], [0u64; 2]);
        let keys: std::collections::BTreeSet<_> =
            truth.by_series.keys().chain(got.keys()).collect();
        for key in keys {
            let w = truth.by_series.get(key).copied().unwrap_or_default();
            let g = got.get(key).copied().unwrap_or_default();
            if w != g {
                wrong += 1;
                if first.len() < 5 {
                    first.push((key.clone(), g, w));
                }
            }
        }
        for w in truth.by_series.values() {
            want_total[0] += w[0];
            want_total[1] += w[1];
        }
        for g in got.values() {
            got_total[0] += g[0];
            got_total[1] += g[1];
        }
        self.figure(format!(
            "sliq.slo.events: {} series exported, {} recounted; good/bad exported {got_total:?} vs recount {want_total:?}",
            got.len(),
            truth.by_series.len()
        ));
        if wrong > 0 {
            let detail: Vec<String> = first
                .iter()
                .map(|((slo, dims), g, w)| {
                    format!("{slo} {dims:?}: last value good/bad {g:?} vs recount {w:?}")
                })
                .collect();
            self.problem(format!(
                "{wrong} SLO series differ from the recount, e.g. {}",
                detail.join("; ")
            ));
        }
        let mut all = points;
        all.extend(receiver.sum_points("sliq.records"));
        let (regressions, resets) = cumulative_regressions(&all);
        self.figure(format!(
            "cumulative points received: {}; series restarts (new start time): {resets}",
            all.len()
        ));
        if !regressions.is_empty() {
            self.problem(format!(
                "{} cumulative points went backwards with the same start time, e.g. {}",
                regressions.len(),
                regressions[..regressions.len().min(3)].join("; ")
            ));
        }
    }

    /// `sliq.records` of `instance` (last values): accepted = valid, dead-lettered = refused,
    /// late = 0.
    pub fn check_records(&mut self, receiver: &OtlpReceiver, instance: &str, truth: &Truth) {
        let counts = crate::run::record_counts(receiver);
        let c = counts.get(instance).cloned().unwrap_or_default();
        let get = |k: &str| c.get(k).copied().unwrap_or(0);
        let got = (get("accepted"), get("dead_lettered"), get("late"));
        let want = (truth.valid.len() as u64, truth.refused.len() as u64, 0);
        self.figure(format!(
            "sliq.records of {instance}: accepted/dead_lettered/late {got:?} vs recount {want:?}"
        ));
        if got != want {
            self.problem(format!(
                "sliq.records of {instance} (accepted, dead_lettered, late) = {got:?}, recount {want:?}"
            ));
        }
    }

    /// The archive read by DuckDB: every valid record's (topic, partition, offset) exactly once
    /// (or at least once) with its raw bytes, nothing else, and no unfinished file.
    pub fn check_archive(&mut self, archive: &Path, truth: &Truth, exactly_once: bool) {
        let rows = match archive_positions(archive) {
            Ok(rows) => rows,
            Err(e) => {
                self.problem(format!("DuckDB cannot read the archive: {e}"));
                return;
            }
        };
        let (mut duplicates, mut missing, mut foreign, mut differ) = (0u64, 0u64, 0u64, 0u64);
        for (pos, sha) in &truth.valid {
            match rows.get(pos) {
                None => missing += 1,
                Some((n, got_sha)) => {
                    duplicates += n - 1;
                    if got_sha != sha {
                        differ += 1;
                    }
                }
            }
        }
        for (pos, (n, _)) in &rows {
            if !truth.valid.contains_key(pos) {
                foreign += n;
            }
        }
        let total: u64 = rows.values().map(|(n, _)| n).sum();
        self.figure(format!(
            "archive: {total} rows for {} valid records: {duplicates} duplicate rows, {missing} missing, {foreign} rows of other positions, {differ} with other raw bytes",
            truth.valid.len()
        ));
        if missing > 0 || foreign > 0 || differ > 0 || (exactly_once && duplicates > 0) {
            self.problem(format!(
                "archive: {duplicates} duplicate rows, {missing} missing, {foreign} rows of other positions, {differ} with other raw bytes"
            ));
        }
        let unfinished = crate::recount::unfinished_files(archive);
        if !unfinished.is_empty() {
            self.problem(format!(
                "{} unfinished archive files left",
                unfinished.len()
            ));
        }
    }

    /// The dead-letter topic: every refused record once (or at least once), with its original
    /// bytes and one of its reasons; nothing else.
    pub fn check_dlq(
        &mut self,
        broker: &Broker,
        landed: &[Landed],
        truth: &Truth,
        exactly_once: bool,
    ) {
        let dlq = match broker.consume_to_end("logs-dlq", Duration::from_secs(60)) {
            Ok(d) => d,
            Err(e) => {
                self.problem(format!("reading logs-dlq: {e}"));
                return;
            }
        };
        let payloads: BTreeMap<Position, &[u8]> = landed
            .iter()
            .map(|l| ((l.partition, l.offset), l.record.payload.as_slice()))
            .collect();
        let mut seen: BTreeMap<Position, u64> = BTreeMap::new();
        let (mut wrong_reason, mut foreign, mut wrong_bytes) = (Vec::new(), 0, 0);
        for d in &dlq {
            let pos = (
                d.headers
                    .get("sliq.source.partition")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(-1),
                d.headers
                    .get("sliq.source.offset")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(-1),
            );
            let Some(reasons) = truth.refused.get(&pos) else {
                foreign += 1;
                continue;
            };
            *seen.entry(pos).or_default() += 1;
            let reason = d.headers.get("sliq.reason").cloned().unwrap_or_default();
            if !reasons.contains(&reason) {
                wrong_reason.push(format!("{pos:?}: {reason} (want {reasons:?})"));
            }
            if payloads
                .get(&pos)
                .is_some_and(|p| *p != d.payload.as_slice())
            {
                wrong_bytes += 1;
            }
        }
        let missing = truth
            .refused
            .keys()
            .filter(|p| !seen.contains_key(p))
            .count();
        let duplicates: u64 = seen.values().map(|n| n - 1).sum();
        self.figure(format!(
            "dead letters: {} for {} refused records: {duplicates} duplicates, {missing} missing, {foreign} of other records, {} wrong reasons",
            dlq.len(),
            truth.refused.len(),
            wrong_reason.len()
        ));
        if (exactly_once && duplicates > 0)
            || missing > 0
            || foreign > 0
            || wrong_bytes > 0
            || !wrong_reason.is_empty()
        {
            self.problem(format!(
                "dead letters: {duplicates} duplicates, {missing} missing, {foreign} of other records, {wrong_bytes} with other bytes, wrong reasons: {:?}",
                &wrong_reason[..wrong_reason.len().min(3)]
            ));
        }
    }

    /// The group committed every partition up to its high-water mark.
    pub fn check_committed(&mut self, broker: &Broker, group: &str) {
        let committed = broker.committed_offsets(group, "logs");
        let ends = broker.end_offsets("logs");
        match (committed, ends) {
            (Ok(c), Ok(e)) if c == e => {
                self.figure(format!("committed = end offsets = {e:?}"));
            }
            (Ok(c), Ok(e)) => {
                self.problem(format!("committed {c:?} vs end offsets {e:?}"));
            }
            (c, e) => self.problem(format!("reading offsets: {c:?} {e:?}")),
        }
    }
}

/// The archive's rows per (partition, offset) of topic `logs`: (count, sha256 of the first raw).
pub fn archive_positions(dir: &Path) -> anyhow::Result<BTreeMap<Position, (u64, String)>> {
    if !has_parquet(dir) {
        // No file published at all: an empty archive (DuckDB refuses a glob that matches nothing).
        return Ok(BTreeMap::new());
    }
    let json = duckdb_json(&format!(
        "rows = q(\"SELECT kafka_topic, kafka_partition, kafka_offset, raw FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")\n\
         out = {{}}\n\
         for r in rows:\n    k = '%s %d %d' % (r['kafka_topic'], r['kafka_partition'], r['kafka_offset'])\n    n, h = out.get(k, (0, hashlib.sha256(r['raw']).hexdigest()))\n    out[k] = (n + 1, h)\n\
         print(json.dumps(out))",
        dir.display()
    ))?;
    let mut out = BTreeMap::new();
    for (k, v) in json.as_object().into_iter().flatten() {
        let parts: Vec<&str> = k.split(' ').collect();
        let pos = if parts[0] == "logs" {
            (parts[1].parse()?, parts[2].parse()?)
        } else {
            (-1, -1)
        };
        let n = v[0].as_u64().unwrap_or(0);
        let sha = v[1].as_str().unwrap_or_default().to_owned();
        out.entry(pos)
            .and_modify(|e: &mut (u64, String)| e.0 += n)
            .or_insert((n, sha));
    }
    Ok(out)
}

fn has_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            if p.is_dir() {
                has_parquet(&p)
            } else {
                p.extension().is_some_and(|x| x == "parquet")
            }
        })
}

/// Waits until `check` holds, polling every `every`, for at most `timeout`; whether it held.
pub async fn wait_until(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// The newest `sliq.records` points of `instance`: (their start time, their total). A new process
/// that has read records changes it (a new total, or a new start time in a new lineage).
pub fn records_marker(receiver: &OtlpReceiver, instance: &str) -> (u64, u64) {
    let mut latest: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for p in receiver.sum_points("sliq.records") {
        if p.resource.get("service.instance.id").map(String::as_str) == Some(instance) {
            let outcome = p
                .attributes
                .get("sliq.record.outcome")
                .cloned()
                .unwrap_or_default();
            latest.insert(outcome, (p.start_time_unix_nano, p.value as u64));
        }
    }
    latest
        .values()
        .fold((0, 0), |(start, total), (s, v)| (start.max(*s), total + v))
}

/// Records `instance` has read so far, by its exported `sliq.records` (all outcomes).
pub fn records_read(receiver: &OtlpReceiver, instance: &str) -> u64 {
    crate::run::record_counts(receiver)
        .get(instance)
        .map(|c| c.values().sum())
        .unwrap_or(0)
}

/// One fault test's rig: a broker with the test topics (memory, or sqlite storage that survives a
/// broker restart), a gRPC receiver, a spec in a temporary folder, and the findings.
#[derive(Debug)]
pub struct Scenario {
    pub broker: Broker,
    pub receiver: OtlpReceiver,
    pub dir: tempfile::TempDir,
    pub spec: std::path::PathBuf,
    pub archive: std::path::PathBuf,
    pub group: String,
    pub findings: Findings,
}

impl Scenario {
    pub async fn new(name: &str, sqlite: bool) -> Scenario {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = if sqlite {
            Broker::start_sqlite(&dir.path().join("broker")).expect("broker on sqlite")
        } else {
            Broker::start().expect("broker")
        };
        crate::run::create_test_topics(&broker).await;
        let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
        let archive = dir.path().join("archive");
        let spec = dir.path().join("spec.yaml");
        let group = format!("it-{name}");
        let export = format!("    endpoint: {}", receiver.endpoint());
        std::fs::write(&spec, crate::run::spec(&broker, &group, &export, &archive)).expect("spec");
        Scenario {
            broker,
            receiver,
            dir,
            spec,
            archive,
            group,
            findings: Findings::new(name),
        }
    }

    /// Starts `sliq run` on this scenario's spec.
    pub async fn sliq(&self, instance: &str, extra: &[&str]) -> tokio::process::Child {
        crate::run::start_sliq(&self.spec, instance, extra).await
    }

    /// Watches `child` through a fault of `period`; an exit is a problem, and a new process of the
    /// same instance takes over so the rest of the run still yields its figures.
    pub async fn survive(
        &mut self,
        child: &mut tokio::process::Child,
        instance: &str,
        period: Duration,
        fault: &str,
    ) {
        if let Some((after, status)) = crate::run::exits_within(child, period).await {
            self.findings.problem(format!(
                "sliq exited ({status}) {:.0} s into the {fault}",
                after.as_secs_f64()
            ));
            *child = self.sliq(instance, &[]).await;
        }
    }

    /// Waits (at most 120 s) until `instance` has read `records` records, then stops it with
    /// SIGTERM and requires a clean exit within 120 s.
    pub async fn drain_and_stop(
        &mut self,
        mut child: tokio::process::Child,
        instance: &str,
        records: u64,
    ) {
        let receiver = self.receiver.clone();
        let caught_up = wait_until(Duration::from_secs(120), Duration::from_millis(250), || {
            records_read(&receiver, instance) >= records
        })
        .await;
        if !caught_up {
            self.findings.problem(format!(
                "{instance} reported {} of {records} records read after 120 s",
                records_read(&receiver, instance)
            ));
        }
        crate::run::terminate(&child);
        match crate::run::wait_exit(&mut child, Duration::from_secs(120)).await {
            Some(s) if s.success() => {}
            Some(s) => self
                .findings
                .problem(format!("{instance} stopped by SIGTERM exited {s}")),
            None => self
                .findings
                .problem(format!("{instance} did not stop within 120 s of SIGTERM")),
        }
    }

    /// The end of most fault tests: drain and stop `instance`, then every exact check against the
    /// recount of `landed` (no record refused by the test itself), failing on any finding.
    pub async fn stop_and_check_all(
        mut self,
        child: tokio::process::Child,
        instance: &str,
        landed: &[Landed],
    ) {
        self.drain_and_stop(child, instance, landed.len() as u64)
            .await;
        let truth = Truth::of(landed, &BTreeMap::new());
        self.check_all(landed, &truth, instance);
        self.findings.assert_none();
    }

    /// Every exact check: exported counts (and no regression), record counters of `instance`,
    /// archive exactly once, dead letters, commits.
    pub fn check_all(&mut self, landed: &[Landed], truth: &Truth, instance: &str) {
        self.findings.check_exported(&self.receiver, truth);
        self.findings.check_records(&self.receiver, instance, truth);
        self.findings.check_archive(&self.archive, truth, true);
        self.findings.check_dlq(&self.broker, landed, truth, true);
        self.findings.check_committed(&self.broker, &self.group);
    }

    /// Instances SIGKILLed and never started again leave the files they were closing in progress,
    /// hidden (readers of the archive skip them; only a restart under the same id removes them):
    /// removed here and counted, so the check that every other instance finished its own files
    /// still holds.
    pub fn remove_abandoned(&mut self, gone: &[impl AsRef<str>]) {
        let abandoned: Vec<_> = crate::recount::unfinished_files(&self.archive)
            .into_iter()
            .filter(|f| {
                let name = f.to_string_lossy();
                gone.iter()
                    .any(|g| name.ends_with(&format!(".{}.inprogress", g.as_ref())))
            })
            .collect();
        for file in &abandoned {
            std::fs::remove_file(file).expect("remove an abandoned file");
        }
        let names: Vec<&str> = gone.iter().map(AsRef::as_ref).collect();
        self.findings.figure(format!(
            "{} unfinished archive files left by instances gone for good ({})",
            abandoned.len(),
            names.join(", ")
        ));
    }
}
