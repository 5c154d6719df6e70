//! The ledger on the rig: three readers and a ledger over live traffic, with readers joining,
//! leaving and one SIGKILLed, and the ledger itself SIGKILLed, a standby in a fresh folder taking
//! over from its snapshot in Kafka. Every exported counter must equal the exact recount, the
//! archive and the dead letters must hold each record once, and every budget, burn rate, alert,
//! policy and drift gauge must equal a single `--role all` run over the same records (to 1e-9:
//! sketches merged in another order may differ in a float's last bit). Pairs of records of one
//! request, the dependency's on one partition and the dependant's on another (so on different
//! readers), must cascade as they do in one process.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use sliq_gen::RecordKind;
use sliq_tests::broker::signal;
use sliq_tests::fault::{Scenario, Truth, knob, rate, wait_until};
use sliq_tests::otlp::{OtlpReceiver, gauge_points};
use sliq_tests::run::{start_sliq, start_sliq_logged, terminate, wait_exit, wait_ok};
use sliq_tests::traffic::{Landed, Traffic, send_to_partition};

/// An SLO that depends on `availability` for the same request (`id`): a fast answer to a request
/// whose other record failed is bad.
const DOWNSTREAM: &str = "slos:
  - name: downstream
    objective: 0.9
    dimensions: [service]
    depends_on: [availability]
    sli:
      latency: { threshold: 4s }
";

/// Drift judged on the readers' merged sketches, and snapshots often enough that the second
/// ledger restores one.
const DRIFT_AND_SNAPSHOTS: &str = "drift:
  reference: { trailing: 2m }
  min_events: 100
  features:
    - { name: latency_ms, pointer: /latency_ms, type: numeric }
    - { name: model, pointer: /model, type: categorical }
ledger: { snapshot_every: 2s, window_retention: 1h }
";

const PAIRS: i32 = 24;
const PAIR_SERVICE: &str = "pair-service";

/// Produces `PAIRS` requests as two records each: the dependency's (failed on even pairs) on
/// partition k mod 4, the dependant's (a fast success) on the next partition.
async fn produce_pairs(bootstrap: &str) -> Vec<Landed> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let start_ms = sliq_tests::run::gen_config(0).start_ms;
    let mut landed = Vec::new();
    for k in 0..PAIRS {
        let id = format!("pair-{k}");
        let ts = start_ms + 5_000 + i64::from(k) * 500;
        let failed = k % 2 == 0;
        let records = [
            (
                k % 4,
                serde_json::json!({
                    "id": id, "ts": ts, "service": PAIR_SERVICE, "model": "gpt-4o",
                    "status": if failed { "error" } else { "ok" }, "latency_ms": 300.0,
                }),
            ),
            (
                (k + 1) % 4,
                serde_json::json!({
                    "id": id, "ts": ts + 100, "service": PAIR_SERVICE, "model": "gpt-4o",
                    "status": "ok", "latency_ms": 200.0,
                }),
            ),
        ];
        for (partition, json) in records {
            landed.push(send_to_partition(&producer, partition, &json).await);
        }
    }
    landed
}

/// The `downstream` SLO recounted: the latency verdict of every successful record, made bad when
/// another record of its request failed.
fn downstream_truth(landed: &[Landed], truth: &mut Truth) {
    let mut failed_ids = std::collections::BTreeSet::new();
    let mut judged = Vec::new();
    for l in landed {
        if matches!(l.record.kind, RecordKind::Malformed(_)) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&l.record.payload).expect("json");
        let ok = match v["status"].as_str() {
            Some(s) => s == "ok",
            None => v.get("error").is_none_or(serde_json::Value::is_null),
        };
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        if !ok {
            failed_ids.insert(id);
            continue;
        }
        if let Some(latency) = v["latency_ms"].as_f64() {
            let service = v["service"].as_str().expect("service").to_owned();
            judged.push((
                id,
                service,
                latency > sliq_tests::recount::LATENCY_THRESHOLD_MS,
            ));
        }
    }
    for (id, service, slow) in judged {
        let bad = slow || failed_ids.contains(&id);
        let dims = BTreeMap::from([("service".to_owned(), service)]);
        truth
            .by_series
            .entry(("downstream".to_owned(), dims))
            .or_default()[usize::from(bad)] += 1;
    }
}

/// The last value of every gauge a run exported about its SLOs (budgets, burn rates, alerts,
/// policy states, objectives) and drift, by metric and point attributes; the resource (which
/// process) is left out.
fn slo_gauges(requests: &[ExportMetricsServiceRequest]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for m in requests
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name.starts_with("sliq.slo.") || m.name.starts_with("sliq.drift."))
    {
        let Some(metric::Data::Gauge(gauge)) = &m.data else {
            continue;
        };
        for p in &gauge.data_points {
            let attrs: BTreeMap<String, String> = p
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
                .collect();
            let value = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                Some(number_data_point::Value::AsDouble(d)) => d,
                None => f64::NAN,
            };
            out.insert(format!("{} {attrs:?}", m.name), value);
        }
    }
    out
}

/// Budget remaining per series as the SRE workbook computes it over all records (the budget
/// period spans the whole run): 1 − bad / (total × (1 − objective)).
fn check_budgets_against_the_workbook(s: &mut Scenario, truth: &Truth) {
    let objectives = [
        ("availability", 0.99),
        ("latency", 0.95),
        ("downstream", 0.9),
    ];
    let points = gauge_points(&s.receiver.requests(), "sliq.slo.budget.remaining");
    let mut got: BTreeMap<(String, BTreeMap<String, String>), f64> = BTreeMap::new();
    for p in points {
        let mut dims = p.attributes;
        let slo = dims.remove("sliq.slo.name").unwrap_or_default();
        dims.retain(|k, _| !k.starts_with("sliq."));
        got.insert((slo, dims), p.value);
    }
    let mut wrong = Vec::new();
    for ((slo, dims), [good, bad]) in &truth.by_series {
        let objective = objectives
            .iter()
            .find(|(name, _)| name == slo)
            .map(|(_, o)| *o)
            .expect("an SLO of the spec");
        let want = 1.0 - *bad as f64 / (good + bad) as f64 / (1.0 - objective);
        match got.get(&(slo.clone(), dims.clone())) {
            Some(v) if (v - want).abs() < 1e-9 => {}
            other => wrong.push(format!("{slo} {dims:?}: {other:?} vs {want}")),
        }
    }
    s.findings.figure(format!(
        "budget remaining: {} series against the workbook formula, {} differ",
        truth.by_series.len(),
        wrong.len()
    ));
    if !wrong.is_empty() {
        s.findings.problem(format!(
            "budget remaining differs from the workbook: {}",
            wrong[..wrong.len().min(5)].join("; ")
        ));
    }
}

/// Waits until the traffic has put `more` records beyond `from` into the topic.
async fn traffic_past(traffic: &Traffic, records: u64) {
    let reached = wait_until(Duration::from_secs(120), Duration::from_millis(100), || {
        traffic.acknowledged() >= records
    })
    .await;
    assert!(
        reached,
        "the traffic reached {records} records within 120 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_a_ledger_under_churn_count_once_and_judge_like_one_process() {
    let mut s = Scenario::new("ledger", false).await;
    let spec = std::fs::read_to_string(&s.spec).expect("spec");
    let spec = spec.replacen("slos:\n", DOWNSTREAM, 1) + DRIFT_AND_SNAPSHOTS;
    std::fs::write(&s.spec, spec).expect("spec");
    let reader = ["--role", "reader", "--exit-on-idle", "6s"];

    let pairs = produce_pairs(&s.broker.bootstrap()).await;
    let traffic = Traffic::start(&s.broker, "logs", 1_200, rate()).expect("traffic");
    let ledger_1 = s.sliq("ledger-1", &["--role", "ledger"]).await;
    let r1 = s.sliq("reader-1", &reader).await;
    let mut r2 = s.sliq("reader-2", &reader).await;
    let r3 = s.sliq("reader-3", &reader).await;

    traffic_past(&traffic, 1_500).await;
    // A reader dies in the middle of a window: its partitions wait out its session and move.
    r2.kill().await.expect("SIGKILL reader-2");
    traffic_past(&traffic, 2_500).await;
    let r4 = s.sliq("reader-4", &reader).await;
    // A second ledger in a fresh folder (its own state.dir) stands by; the active one dies and
    // the standby takes over from the newest snapshot in Kafka.
    let ledger_2_log = s.dir.path().join("ledger-2.log");
    let admin_port = sliq_tests::free_port().expect("a port");
    let admin = format!("127.0.0.1:{admin_port}");
    let ledger_2 = start_sliq_logged(
        &s.spec,
        "ledger-2",
        &[
            "--role",
            "ledger",
            "--exit-on-idle",
            "8s",
            "--admin-listen",
            &admin,
        ],
        &ledger_2_log,
    )
    .await;
    traffic_past(&traffic, 3_500).await;
    let mut ledger_1 = ledger_1;
    ledger_1.kill().await.expect("SIGKILL ledger-1");
    traffic_past(&traffic, 4_500).await;
    // A reader leaves cleanly and comes back.
    terminate(&r3);
    let mut r3 = r3;
    let left = wait_exit(&mut r3, Duration::from_secs(120)).await;
    assert!(
        left.is_some_and(|st| st.success()),
        "reader-3 left cleanly on SIGTERM: {left:?}"
    );
    let r3 = s.sliq("reader-3", &reader).await;
    traffic_past(&traffic, 5_500).await;
    // Under traffic, the ledger that took over is ready and keeps up: its lag on the window
    // topic comes down to 0 between the readers' partials.
    let windows_topic = format!("{}.sliq-windows", s.group);
    let mut lag = None;
    for _ in 0..150 {
        lag = sliq_tests::admin::scrape(admin_port)
            .await
            .ok()
            .and_then(|m| {
                m.find(
                    "sliq_consumer_lag",
                    &[("messaging_destination_name", windows_topic.as_str())],
                )
                .first()
                .map(|sample| sample.value)
            });
        if lag == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the book made of the partials this ledger read, against its own log's refusals.
    let partials = sliq_tests::admin::scrape(admin_port).await.ok();
    let partials_of = |outcome: &str| {
        partials.as_ref().map_or(0.0, |m| {
            m.find(
                "sliq_ledger_partials_total",
                &[("sliq_partial_outcome", outcome)],
            )
            .iter()
            .map(|sample| sample.value)
            .sum::<f64>()
        })
    };
    let (applied, refused) = (partials_of("applied"), partials_of("refused"));
    let refusals_logged = std::fs::read_to_string(&ledger_2_log)
        .unwrap_or_default()
        .matches(" refused (")
        .count() as f64;
    s.findings.figure(format!(
        "ledger-2's partials: {applied} applied, {refused} refused ({refusals_logged} refusals \
         in its log)"
    ));
    if applied < 1.0 || refused > refusals_logged {
        s.findings.problem(format!(
            "sliq_ledger_partials_total: {applied} applied and {refused} refused, with \
             {refusals_logged} refusals logged"
        ));
    }
    let ready = sliq_tests::admin::get(admin_port, "/readyz").await;
    let ready = ready.map(|(status, _)| status).map_err(|e| e.to_string());
    s.findings.figure(format!(
        "ledger-2 under traffic: window-topic lag {lag:?}, /readyz {ready:?}"
    ));
    if lag != Some(0.0) || ready != Ok(200) {
        let log = std::fs::read_to_string(&ledger_2_log).unwrap_or_default();
        s.findings.problem(format!(
            "the active ledger did not report itself ready and caught up; its log:\n{log}"
        ));
    }
    let report = traffic
        .stop_beside(&s.broker, &pairs)
        .await
        .expect("traffic report");

    for (child, name) in [(r1, "reader-1"), (r3, "reader-3"), (r4, "reader-4")] {
        wait_ok(child, name).await;
    }
    wait_ok(ledger_2, "ledger-2").await;
    let log = std::fs::read_to_string(&ledger_2_log).expect("ledger-2's log");
    assert!(
        log.contains("stands by") && log.contains("restored from its newest snapshot"),
        "ledger-2 stood by, then restored ledger-1's snapshot from Kafka:\n{log}"
    );

    let mut landed = pairs;
    landed.extend(report.landed.iter().cloned());
    let mut truth = Truth::of(&landed, &BTreeMap::new());
    downstream_truth(&landed, &mut truth);
    let cascaded = truth
        .by_series
        .get(&(
            "downstream".to_owned(),
            BTreeMap::from([("service".to_owned(), PAIR_SERVICE.to_owned())]),
        ))
        .copied()
        .unwrap_or_default();
    s.findings.figure(format!(
        "{} records ({} traffic, {} in cascade pairs); downstream of the pairs good/bad {cascaded:?}",
        landed.len(),
        report.landed.len(),
        2 * PAIRS
    ));
    // Odd pairs: both records fast and fine. Even pairs: the dependency failed (no latency
    // verdict), so the fast dependant is bad.
    assert_eq!(
        cascaded,
        [PAIRS as u64, PAIRS as u64 / 2],
        "the recount cascades the even pairs"
    );
    s.remove_abandoned(&["reader-2"]);
    // The ledger's series carry no instance: they are under "".
    s.check_all(&landed, &truth, "");
    check_budgets_against_the_workbook(&mut s, &truth);

    // The same records judged by one process: every SLO gauge the same.
    let single = OtlpReceiver::start_grpc().await.expect("receiver");
    let single_spec = s.dir.path().join("single.yaml");
    let spec = std::fs::read_to_string(&s.spec).expect("spec");
    std::fs::write(
        &single_spec,
        spec.replace(&s.group, "it-ledger-single")
            .replace(&s.receiver.endpoint(), &single.endpoint())
            .replace(
                &s.archive.display().to_string(),
                &s.dir.path().join("single-archive").display().to_string(),
            ),
    )
    .expect("single spec");
    let one = start_sliq(&single_spec, "single", &["--exit-on-idle", "5s"]).await;
    wait_ok(one, "the single-process run").await;
    let ledger_gauges = slo_gauges(&s.receiver.requests());
    let single_gauges = slo_gauges(&single.requests());
    let differ: Vec<String> = single_gauges
        .iter()
        // Sketches merged in another order may differ in the last bit of a float.
        .filter(|(k, v)| {
            ledger_gauges
                .get(*k)
                .is_none_or(|l| (l - *v).abs() > 1e-9 * v.abs().max(1.0))
        })
        .map(|(k, v)| format!("{k}: one process {v}, ledger {:?}", ledger_gauges.get(k)))
        .collect();
    s.findings.figure(format!(
        "SLO gauges: {} from one process, {} from the ledger, {} differ",
        single_gauges.len(),
        ledger_gauges.len(),
        differ.len()
    ));
    if single_gauges.is_empty() || !differ.is_empty() || ledger_gauges.len() != single_gauges.len()
    {
        s.findings.problem(format!(
            "the ledger's SLO gauges differ from one process's: {}",
            differ[..differ.len().min(5)].join("; ")
        ));
    }
    s.findings.assert_none();
}

/// Readers SIGKILLed at random moments under live traffic, each restarted as a StatefulSet pod
/// is (same instance id, same folder) except every third, which is gone for good and replaced by
/// a new instance: the ledger's counters stay exact, every refused record is dead-lettered once
/// (a new owner reads back what the previous one sent past the cut), and every record is
/// archived once (the readers share one archive folder, so a new owner sees from the file names
/// what the previous one published past the group's offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_killed_at_random_leave_the_ledger_exact() {
    let kills = knob("SLIQ_FAULT_READER_KILLS", 5);
    let seed = knob("SLIQ_FAULT_SEED", 1);
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut s = Scenario::new("reader-kills", false).await;
    let spec = std::fs::read_to_string(&s.spec).expect("spec");
    std::fs::write(
        &s.spec,
        spec + "ledger: { snapshot_every: 2s, window_retention: 1h }\n",
    )
    .expect("spec");
    let reader = ["--role", "reader", "--exit-on-idle", "6s"];
    let traffic = Traffic::start(&s.broker, "logs", 300 + seed, rate()).expect("traffic");
    let ledger = s
        .sliq("ledger", &["--role", "ledger", "--exit-on-idle", "8s"])
        .await;
    let mut readers = Vec::new();
    for i in 0..3 {
        let name = format!("reader-{i}");
        readers.push((s.sliq(&name, &reader).await, name));
    }
    let started = std::time::Instant::now();
    let mut gone = Vec::new();
    for kill in 0..kills {
        let delay = Duration::from_secs_f64(rng.random_range(1.0..4.0));
        tokio::time::sleep(delay).await;
        let victim = rng.random_range(0..readers.len());
        let (child, name) = &mut readers[victim];
        child.kill().await.expect("SIGKILL a reader");
        if kill % 3 == 2 {
            gone.push(std::mem::replace(name, format!("reader-new-{kill}")));
        }
        *child = s.sliq(name, &reader).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = traffic.stop(&s.broker).await.expect("traffic report");
    s.findings.figure(format!(
        "{kills} readers SIGKILLed in {:.0} s ({} replaced by new instances); {} records",
        started.elapsed().as_secs_f64(),
        gone.len(),
        report.landed.len()
    ));
    for (child, name) in readers {
        wait_ok(child, &name).await;
    }
    wait_ok(ledger, "ledger").await;
    s.remove_abandoned(&gone);
    let truth = Truth::of(&report.landed, &BTreeMap::new());
    s.findings.check_exported(&s.receiver, &truth);
    s.findings.check_records(&s.receiver, "", &truth);
    s.findings.check_archive(&s.archive, &truth, true);
    s.findings
        .check_dlq(&s.broker, &report.landed, &truth, true);
    s.findings.check_committed(&s.broker, &s.group);
    s.findings.assert_none();
}

/// A bounded run whose last reader dies after committing everything: no reader will ever report
/// its partitions idle, yet the ledger, having counted every partition to its end, judges every
/// window and stops (before, it waited for ever; `scripts/bench-e2e.sh` met it when a reader
/// stopped while the group was still handing it partitions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_whose_readers_are_gone_stops_once_everything_is_counted() {
    let mut s = Scenario::new("readers-gone", false).await;
    // Silence alone must not make the partitions idle: only the ledger's own check may end it.
    let spec = std::fs::read_to_string(&s.spec).expect("spec");
    let spec = spec.replace("idle_partition_after: 2s", "idle_partition_after: 5m");
    std::fs::write(&s.spec, spec).expect("spec");
    let traffic = Traffic::start(&s.broker, "logs", 500, rate()).expect("traffic");
    let ledger = s
        .sliq("ledger", &["--role", "ledger", "--exit-on-idle", "4s"])
        .await;
    let mut reader = s.sliq("reader-0", &["--role", "reader"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = traffic.stop(&s.broker).await.expect("traffic report");
    let read = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        let committed = s.broker.committed_offsets(&s.group, "logs");
        matches!((committed, s.broker.end_offsets("logs")), (Ok(c), Ok(e)) if c == e)
    })
    .await;
    assert!(read, "reader-0 did not commit every partition to its end");
    reader.kill().await.expect("SIGKILL the reader");
    let stopped = tokio::time::timeout(Duration::from_secs(40), wait_ok(ledger, "ledger")).await;
    assert!(
        stopped.is_ok(),
        "the ledger did not stop within 40 s though every partition was counted to its end"
    );
    let truth = Truth::of(&report.landed, &BTreeMap::new());
    s.findings
        .figure(format!("{} records", report.landed.len()));
    s.findings.check_exported(&s.receiver, &truth);
    s.findings.check_records(&s.receiver, "", &truth);
    s.findings.assert_none();
}

/// A ledger paused past its session (a long stop of the world: SIGSTOP here, a frozen VM in
/// production) loses the window topic to the standby, which restores the newest snapshot, catches
/// up and exports. Woken, the old ledger must send nothing from the state it had: that state is
/// older than what the standby sent, and the same series under the same start time would go
/// backwards. Whichever of the two the group then makes active, every counter equals the recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_paused_past_its_session_sends_nothing_once_it_wakes() {
    let mut s = Scenario::new("ledger-paused", false).await;
    let spec = std::fs::read_to_string(&s.spec).expect("spec");
    std::fs::write(&s.spec, spec + "ledger: { snapshot_every: 2s }\n").expect("spec");
    let traffic = Traffic::start(&s.broker, "logs", 1_300, rate()).expect("traffic");
    let logs = [1, 2].map(|i| s.dir.path().join(format!("ledger-{i}.log")));
    let ledger = ["--role", "ledger", "--exit-on-idle", "8s"];
    let mut ledger_1 = start_sliq_logged(&s.spec, "ledger-1", &ledger, &logs[0]).await;
    let reader = s
        .sliq("reader-1", &["--role", "reader", "--exit-on-idle", "6s"])
        .await;
    traffic_past(&traffic, 600).await;
    let receiver = s.receiver.clone();
    let exported = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        !receiver.sum_points("sliq.slo.events").is_empty()
    })
    .await;
    assert!(exported, "ledger-1 exported within 60 s");

    let pid = ledger_1.id().expect("ledger-1 runs");
    signal(pid, "STOP").expect("SIGSTOP ledger-1");
    let mut ledger_2 = start_sliq_logged(&s.spec, "ledger-2", &ledger, &logs[1]).await;
    let read = |i: usize| std::fs::read_to_string(&logs[i]).unwrap_or_default();
    let took_over = wait_until(Duration::from_secs(90), Duration::from_millis(200), || {
        read(1).contains("caught up with the window topic")
    })
    .await;
    assert!(took_over, "ledger-2 took over within 90 s:\n{}", read(1));
    // The standby exports what it caught up with before the old ledger wakes.
    let sent_before = s.receiver.requests().len();
    let standby_exported = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        s.receiver.requests().len() > sent_before
    })
    .await;
    assert!(
        standby_exported,
        "ledger-2 exported within 30 s of catching up"
    );
    signal(pid, "CONT").expect("SIGCONT ledger-1");
    let report = traffic.stop(&s.broker).await.expect("traffic report");
    wait_ok(reader, "reader-1").await;
    // The active one stops once everything is judged; the other stands by until asked to stop.
    let first = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::select! {
            status = ledger_1.wait() => (1, status.ok()),
            status = ledger_2.wait() => (2, status.ok()),
        }
    })
    .await;
    let Ok((active, status)) = first else {
        panic!(
            "neither ledger stopped within 120 s of the reader\nledger-1:\n{}\nledger-2:\n{}",
            read(0),
            read(1)
        );
    };
    assert!(
        status.is_some_and(|st| st.success()),
        "ledger-{active} stopped cleanly: {status:?}\n{}",
        read(active - 1)
    );
    let standby = if active == 1 {
        &mut ledger_2
    } else {
        &mut ledger_1
    };
    terminate(standby);
    let stopped = wait_exit(standby, Duration::from_secs(60)).await;
    let other = 3 - active;
    assert!(
        stopped.is_some_and(|st| st.success()),
        "ledger-{other}, standing by, stopped cleanly on SIGTERM: {stopped:?}\n{}",
        read(other - 1)
    );
    s.findings.figure(format!(
        "after the wake, ledger-{active} was the active one; ledger-1's log:\n{}",
        read(0)
    ));

    let truth = Truth::of(&report.landed, &BTreeMap::new());
    s.findings
        .figure(format!("{} records", report.landed.len()));
    // Exact counters, and no cumulative point of the older state after a newer one.
    s.check_all(&report.landed, &truth, "");
    s.findings.assert_none();
}
