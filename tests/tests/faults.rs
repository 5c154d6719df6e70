//! Faults under live traffic, on real parts: `sliq run` SIGKILLed again and again, the collector
//! down longer than any retry budget, the broker frozen (SIGSTOP) and killed (SIGKILL, restarted
//! on the same sqlite db), far-future timestamps, and `--exit-on-idle` beside a dead group member.
//!
//! Every figure is checked against an independent recount of what the topic holds
//! (`sliq_tests::fault::Truth`), never a hard-coded count, and every mismatch is reported at once.
//! Each test is bounded by timeouts. Knobs (CI-sized defaults; `scripts/fault-loop.sh` runs them
//! longer): `SLIQ_FAULT_KILLS` (15), `SLIQ_FAULT_OUTAGE_SECS` (80), `SLIQ_FAULT_FREEZE_SECS` (25),
//! `SLIQ_FAULT_BROKER_DOWN_SECS` (10), `SLIQ_FAULT_SEED` (1), `SLIQ_FAULT_RATE` (200 records/s).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use sliq_tests::fault::{Scenario, Truth, knob, rate, records_marker, records_read, wait_until};
use sliq_tests::run::{exits_within, wait_exit};
use sliq_tests::traffic::{Landed, Traffic, send_to_partition};

/// Seconds of traffic before a fault and after it.
const SETTLE: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_loop_under_traffic_counts_archives_and_dead_letters_exactly_once() {
    let kills = knob("SLIQ_FAULT_KILLS", 15);
    let seed = knob("SLIQ_FAULT_SEED", 1);
    let mut s = Scenario::new("kill-loop", false).await;
    let mut rng = Pcg64::seed_from_u64(seed);
    let traffic = Traffic::start(&s.broker, "logs", 100 + seed, rate()).expect("traffic");
    let instance = "kill-loop";
    let started = Instant::now();
    let mut child = s.sliq(instance, &[]).await;
    let mut consuming_kills = 0;
    for kill in 0..kills {
        // Every other kill waits until the new process exported records it read (it joined,
        // holds partitions and checkpoints), so kills land both in the join and in the middle of
        // consuming.
        if kill % 2 == 1 {
            let receiver = s.receiver.clone();
            let before = records_marker(&receiver, instance);
            let consuming = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
                let now = records_marker(&receiver, instance);
                now != before && now.1 > 0
            })
            .await;
            if consuming {
                consuming_kills += 1;
            }
        }
        let delay = Duration::from_secs_f64(rng.random_range(0.3..3.0));
        if let Some((after, status)) = exits_within(&mut child, delay).await {
            s.findings.problem(format!(
                "sliq exited on its own ({status}) {:.1} s after start {kill}",
                after.as_secs_f64()
            ));
        }
        let _ = child.kill().await;
        child = s.sliq(instance, &[]).await;
    }
    tokio::time::sleep(SETTLE).await;
    let _ = child.kill().await;
    let report = traffic.stop(&s.broker).await.expect("traffic report");
    s.findings.figure(format!(
        "{kills} SIGKILLs in {:.0} s ({consuming_kills} after the process was seen exporting what it read); {} records in the topic ({} generated, {} resent, {} duplicates)",
        started.elapsed().as_secs_f64(),
        report.landed.len(),
        report.generated,
        report.resent,
        report.duplicates()
    ));

    // The clean final run: reads to the end, exports, commits, exits by itself.
    let mut last = s.sliq(instance, &["--exit-on-idle", "5s"]).await;
    match wait_exit(&mut last, Duration::from_secs(180)).await {
        Some(st) if st.success() => {}
        other => s
            .findings
            .problem(format!("the final --exit-on-idle run ended {other:?}")),
    }
    let truth = Truth::of(&report.landed, &BTreeMap::new());
    s.check_all(&report.landed, &truth, instance);
    s.findings.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_outage_longer_than_the_old_retry_budget_is_waited_out() {
    let outage = Duration::from_secs(knob("SLIQ_FAULT_OUTAGE_SECS", 80));
    let mut s = Scenario::new("outage", false).await;
    let traffic = Traffic::start(&s.broker, "logs", 200, rate()).expect("traffic");
    let instance = "outage";
    let mut child = s.sliq(instance, &[]).await;
    s.survive(&mut child, instance, SETTLE, "warm-up").await;

    // Down (connections refused) for two thirds, then up but refusing every export.
    s.receiver.stop().await;
    s.survive(
        &mut child,
        instance,
        outage * 2 / 3,
        "collector outage (down)",
    )
    .await;
    s.receiver.restart().await.expect("receiver back");
    s.receiver.refuse(true);
    s.survive(
        &mut child,
        instance,
        outage / 3,
        "collector outage (refusing)",
    )
    .await;
    s.receiver.refuse(false);
    s.findings.figure(format!(
        "collector down {:.0} s then refusing {:.0} s ({} exports refused)",
        (outage * 2 / 3).as_secs_f64(),
        (outage / 3).as_secs_f64(),
        s.receiver.refused()
    ));
    s.survive(&mut child, instance, SETTLE, "recovery").await;

    let report = traffic.stop(&s.broker).await.expect("traffic report");
    s.stop_and_check_all(child, instance, &report.landed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_collector_outage_stops_within_the_timeout_and_loses_nothing() {
    let mut s = Scenario::new("stop", false).await;
    let mut spec = std::fs::read_to_string(&s.spec).expect("spec");
    spec.push_str("shutdown_timeout: 5s\n");
    std::fs::write(&s.spec, spec).expect("spec");
    let traffic = Traffic::start(&s.broker, "logs", 400, rate()).expect("traffic");
    let instance = "stop";
    let mut child = s.sliq(instance, &[]).await;
    s.survive(&mut child, instance, SETTLE, "warm-up").await;
    s.receiver.stop().await;
    s.survive(&mut child, instance, SETTLE, "collector outage")
        .await;

    // Stopped while the collector is away: within shutdown_timeout (5 s) and a margin for a
    // loaded machine, committing only what is durable; the rest waits in the checkpoint.
    let asked = Instant::now();
    sliq_tests::run::terminate(&child);
    match wait_exit(&mut child, Duration::from_secs(60)).await {
        Some(status) if status.success() => {}
        Some(status) => s
            .findings
            .problem(format!("stopped during the outage, sliq exited {status}")),
        None => s
            .findings
            .problem("sliq did not stop within 60 s of SIGTERM"),
    }
    let took = asked.elapsed();
    s.findings.figure(format!(
        "SIGTERM during the collector outage: stopped in {:.1} s (shutdown_timeout 5 s)",
        took.as_secs_f64()
    ));
    if took > Duration::from_secs(20) {
        s.findings.problem(format!(
            "the stop took {:.1} s, far past shutdown_timeout 5 s",
            took.as_secs_f64()
        ));
    }

    // The collector is back and the next run sends what the stopped one kept.
    s.receiver.restart().await.expect("receiver back");
    let child = s.sliq(instance, &[]).await;
    let report = traffic.stop(&s.broker).await.expect("traffic report");
    s.stop_and_check_all(child, instance, &report.landed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_frozen_then_thawed_under_traffic_loses_and_repeats_nothing() {
    let freeze = Duration::from_secs(knob("SLIQ_FAULT_FREEZE_SECS", 25));
    let mut s = Scenario::new("freeze", true).await;
    let traffic = Traffic::start(&s.broker, "logs", 300, rate()).expect("traffic");
    let instance = "freeze";
    let mut child = s.sliq(instance, &[]).await;
    s.survive(&mut child, instance, SETTLE, "warm-up").await;
    s.broker.freeze().expect("SIGSTOP");
    s.survive(&mut child, instance, freeze, "broker freeze")
        .await;
    s.broker.thaw().expect("SIGCONT");
    s.survive(&mut child, instance, SETTLE * 2, "recovery")
        .await;

    let report = traffic.stop(&s.broker).await.expect("traffic report");
    s.findings.figure(format!(
        "broker frozen {:.0} s; {} records in the topic ({} resent by the producer)",
        freeze.as_secs_f64(),
        report.landed.len(),
        report.resent
    ));
    s.stop_and_check_all(child, instance, &report.landed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_under_traffic_loses_and_repeats_nothing() {
    let down = Duration::from_secs(knob("SLIQ_FAULT_BROKER_DOWN_SECS", 10));
    let mut s = Scenario::new("broker-kill", true).await;
    let traffic = Traffic::start(&s.broker, "logs", 400, rate()).expect("traffic");
    let instance = "broker-kill";
    let mut child = s.sliq(instance, &[]).await;
    s.survive(&mut child, instance, SETTLE, "warm-up").await;
    let committed_before = s.broker.committed_offsets(&s.group, "logs").ok();
    s.broker.kill().expect("SIGKILL the broker");
    s.survive(&mut child, instance, down, "broker outage").await;
    s.broker.restart().expect("broker restarted on its db");
    // The restarted broker kept the group's commits.
    let committed_after = s.broker.committed_offsets(&s.group, "logs").ok();
    s.findings.figure(format!(
        "broker down {:.0} s; committed before {committed_before:?}, after restart {committed_after:?}",
        down.as_secs_f64()
    ));
    s.survive(&mut child, instance, SETTLE * 2, "recovery")
        .await;

    let report = traffic.stop(&s.broker).await.expect("traffic report");
    s.findings.figure(format!(
        "{} records in the topic ({} resent by the producer, {} duplicates)",
        report.landed.len(),
        report.resent,
        report.duplicates()
    ));
    s.stop_and_check_all(child, instance, &report.landed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_timestamps_are_dead_lettered_and_make_nothing_late() {
    let mut s = Scenario::new("future", false).await;
    let instance = "future";
    let mut child = s.sliq(instance, &["--exit-on-idle", "10s"]).await;
    // On every partition first: one record stamped in year 9999, one at epoch ms
    // 99999999999999999 (beyond any calendar). Once every partition saw them and a checkpoint
    // passed, an unguarded watermark stands in year 9999 and every later record is late.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", s.broker.bootstrap())
        .create()
        .expect("producer");
    let mut future: Vec<(i32, i64, sliq_gen::GeneratedRecord)> = Vec::new();
    for partition in 0..4 {
        for (n, ts) in [
            ("9999", serde_json::json!("9999-12-31T23:59:59Z")),
            ("epoch", serde_json::json!(99_999_999_999_999_999_u64)),
        ] {
            let id = format!("future-{n}-p{partition}");
            let record = serde_json::json!({
                "id": id, "ts": ts, "service": "chat-assistant", "model": "gpt-4o",
                "status": "ok", "latency_ms": 100.0,
            });
            let landed = send_to_partition(&producer, partition, &record).await;
            future.push((landed.partition, landed.offset, landed.record));
        }
    }
    // Then, after a few checkpoints, normal traffic.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n = knob("SLIQ_FAULT_FUTURE_RECORDS", 12_000);
    let mut generator = sliq_gen::Generator::new(sliq_tests::run::gen_config(500));
    sliq_pipeline::produce_generated(&s.broker.bootstrap(), "logs", &mut generator, n, None)
        .await
        .expect("produce");
    let read = s
        .broker
        .consume_to_end("logs", Duration::from_secs(60))
        .expect("read back");
    let records: BTreeMap<String, sliq_gen::GeneratedRecord> =
        sliq_gen::Generator::new(sliq_tests::run::gen_config(500))
            .take(n as usize)
            .chain(future.iter().map(|f| f.2.clone()))
            .map(|r| (r.key.clone(), r))
            .collect();
    let landed: Vec<Landed> = read
        .iter()
        .map(|r| Landed {
            partition: r.partition,
            offset: r.offset,
            record: records
                [&String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned()]
                .clone(),
        })
        .collect();
    let refused: BTreeMap<_, _> = future
        .iter()
        .map(|(p, o, _)| {
            (
                (*p, *o),
                vec!["future_timestamp".to_owned(), "bad_timestamp".to_owned()],
            )
        })
        .collect();
    let truth = Truth::of(&landed, &refused);

    match wait_exit(&mut child, Duration::from_secs(180)).await {
        Some(st) if st.success() => {}
        other => s.findings.problem(format!("sliq ended {other:?}")),
    }
    s.check_all(&landed, &truth, instance);
    s.findings.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_on_idle_beside_a_dead_member_waits_for_every_partition() {
    let mut s = Scenario::new("dead-member", false).await;
    let traffic = Traffic::start(&s.broker, "logs", 600, rate()).expect("traffic");
    let mut a = s.sliq("member-a", &[]).await;
    let mut b = s.sliq("member-b", &["--exit-on-idle", "5s"]).await;
    // Both members hold partitions: both export what they read.
    let receiver = s.receiver.clone();
    let both = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        records_read(&receiver, "member-a") > 0 && records_read(&receiver, "member-b") > 0
    })
    .await;
    assert!(both, "both members read records within 60 s");
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.kill().await.expect("SIGKILL member a");
    let killed = Instant::now();
    let report = traffic.stop(&s.broker).await.expect("traffic report");

    let status = wait_exit(&mut b, Duration::from_secs(150)).await;
    let exited_after = killed.elapsed();
    // Read at its exit: the group's commits against the high-water marks.
    s.findings.check_committed(&s.broker, &s.group);
    s.findings.figure(format!(
        "member b exited {status:?} {:.1} s after a was killed; read a {} b {}",
        exited_after.as_secs_f64(),
        records_read(&s.receiver, "member-a"),
        records_read(&s.receiver, "member-b")
    ));
    match status {
        Some(st) if st.success() => {}
        other => s.findings.problem(format!("member b ended {other:?}")),
    }
    // Nothing lost: every valid record archived (b takes over from a's commit, so records a had
    // archived above it may be archived twice), every SLO series at least its recount. A file a
    // was closing when it died stays in progress (a never starts again here).
    s.remove_abandoned(&["member-a"]);
    let truth = Truth::of(&report.landed, &BTreeMap::new());
    s.findings.check_archive(&s.archive, &truth, false);
    let exported = sliq_tests::run::exported_by_slo_service(&s.receiver);
    for (key, want) in &truth.expected.by_slo_service {
        let got = exported.get(key).copied().unwrap_or_default();
        if got[0] < want[0] || got[1] < want[1] {
            s.findings
                .problem(format!("{key:?}: exported {got:?} < recount {want:?}"));
        }
    }
    s.findings.assert_none();
}
