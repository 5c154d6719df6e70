//! Dead letters on real parts: a dead letter is never lost and no offset is committed past it.
//!
//! - The dead-letter topic is missing when `sliq run` starts (the clients may not auto-create it:
//!   `allow.auto.create.topics=false` through `source.kafka.options`, which Nisshi honours): the
//!   deliveries fail and are retried, the group's committed offset never passes the first
//!   malformed record, and once the topic exists every dead letter arrives, once, with its reason.
//! - A record larger than the dead-letter producer's `message.max.bytes` is kept whole in the
//!   quarantine folder and sent truncated; a record without payload is dead-lettered with none.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sliq_gen::{GeneratedRecord, RecordKind};
use sliq_tests::broker::Broker;
use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::run::{exported_by_slo_service, produce_records, record_counts, spec, write_spec};
use tokio::io::AsyncReadExt as _;

/// `sliq run` with its standard error collected (to read what it told a person).
struct Sliq {
    child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

fn start(spec_path: &Path, instance: &str) -> Sliq {
    let mut child = tokio::process::Command::new(sliq_tests::sliq_binary())
        .args(["run", "--config"])
        .arg(spec_path)
        .args(["--instance-id", instance, "--exit-on-idle", "6s"])
        .env("SLIQ_LOG", "warn,sliq_pipeline::dead_letter=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sliq starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr piped");
    let sink = Arc::clone(&stderr);
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Sliq {
        child,
        stderr,
        reader,
    }
}

impl Sliq {
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("sliq status").is_none()
    }

    /// Waits (at most 300 s) for a clean exit; returns what it wrote to standard error.
    async fn wait_ok(mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(300), self.child.wait())
            .await
            .expect("sliq stops within 300 s")
            .expect("wait for sliq");
        let _ = self.reader.await;
        let stderr = self.stderr.lock().clone();
        assert!(status.success(), "sliq failed: {stderr}");
        stderr
    }
}

/// Adds `source.kafka.options` (YAML lines, indented 6) to a spec of [`spec`].
fn with_options(spec_text: &str, options: &[(&str, &str)]) -> String {
    let mut lines = String::from("    dead_letter_topic: logs-dlq\n    options:\n");
    for (k, v) in options {
        lines.push_str(&format!("      {k}: \"{v}\"\n"));
    }
    let out = spec_text.replacen("    dead_letter_topic: logs-dlq\n", &lines, 1);
    assert_ne!(out, spec_text);
    out
}

/// An admin client that never auto-creates a topic by asking about it.
fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("admin client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_wait_for_their_topic_and_no_offset_passes_them() {
    let broker = Broker::start().expect("broker");
    broker.create_topic("logs", 4).await.expect("topic logs");
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let n = 4_000;
    let (records, want) = produce_records(&broker, 23, n).await;
    assert!(want.malformed >= 20, "{want:?}");

    // Where each malformed record sits, read back from the topic.
    let by_key: BTreeMap<&str, &GeneratedRecord> =
        records.iter().map(|r| (r.key.as_str(), r)).collect();
    let logs = broker
        .consume_all("logs", n, Duration::from_secs(60))
        .expect("read logs");
    assert_eq!(logs.len(), n);
    let mut first_bad: BTreeMap<i32, i64> = BTreeMap::new();
    let mut position = BTreeMap::new();
    for r in &logs {
        let key = String::from_utf8(r.key.clone().expect("key")).expect("utf8 key");
        position.insert(key.clone(), (r.partition, r.offset));
        if by_key[key.as_str()].kind != RecordKind::Valid {
            let o = first_bad.entry(r.partition).or_insert(r.offset);
            *o = (*o).min(r.offset);
        }
    }

    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let (_dir, spec_path, _archive) = write_spec(&broker, "it-dlq-wait", &endpoint);
    let text = std::fs::read_to_string(&spec_path).expect("spec");
    // A short message timeout makes librdkafka report the failing deliveries within seconds
    // (sliq's default is 30 s), so sliq's own retries run during the outage.
    let text = with_options(
        &text,
        &[
            ("allow.auto.create.topics", "false"),
            ("message.timeout.ms", "3000"),
        ],
    );
    std::fs::write(&spec_path, text).expect("spec");
    let mut sliq = start(&spec_path, "it-a");

    // The outage: 15 s without the topic. No partition's committed offset passes its first
    // malformed record.
    let outage_end = Instant::now() + Duration::from_secs(15);
    let mut looks = 0;
    while Instant::now() < outage_end {
        assert!(sliq.running(), "sliq stopped during the outage");
        let committed = broker
            .committed_offsets("it-dlq-wait", "logs")
            .expect("committed offsets");
        for (p, bad) in &first_bad {
            let c = committed.get(p).copied().unwrap_or(-1);
            assert!(
                c <= *bad,
                "partition {p} committed {c}, past its undelivered dead letter at {bad}"
            );
        }
        looks += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(looks >= 10);
    assert_eq!(
        admin(&broker)
            .inner()
            .fetch_metadata(Some("logs-dlq"), Duration::from_secs(5))
            .expect("metadata")
            .topics()
            .first()
            .map(|t| t.partitions().len()),
        Some(0),
        "the dead-letter topic was auto-created"
    );

    broker
        .create_topic("logs-dlq", 1)
        .await
        .expect("topic logs-dlq");
    let stderr = sliq.wait_ok().await;
    eprintln!("--- sliq's log ---\n{stderr}--- end ---");
    assert!(
        stderr.contains("dead-letter delivery failed: ")
            || stderr.contains("dead-letter delivery failing for "),
        "{stderr}"
    );
    assert!(
        stderr.contains("the topic does not exist: create it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dead letters are delivered again after failing for"),
        "{stderr}"
    );

    // Every dead letter once, with its reason and origin.
    let dlq = broker
        .consume_all("logs-dlq", want.malformed as usize, Duration::from_secs(60))
        .expect("dlq");
    assert_eq!(dlq.len() as u64, want.malformed);
    assert_eq!(
        broker.end_offsets("logs-dlq").expect("dlq end")[&0],
        want.malformed as i64,
        "a dead letter was written twice"
    );
    for d in &dlq {
        let key = String::from_utf8(d.key.clone().expect("key kept")).expect("utf8 key");
        let original = by_key[key.as_str()];
        let RecordKind::Malformed(kind) = original.kind else {
            panic!("{key} was valid")
        };
        assert_eq!(d.payload, original.payload);
        assert_eq!(d.headers["sliq.reason"], kind.code(), "{key}");
        let (p, o) = position[&key];
        assert_eq!(d.headers["sliq.source.topic"], "logs");
        assert_eq!(d.headers["sliq.source.partition"], p.to_string());
        assert_eq!(d.headers["sliq.source.offset"], o.to_string());
    }

    // Everything committed, and counted as the independent recount says.
    assert_eq!(
        broker
            .committed_offsets("it-dlq-wait", "logs")
            .expect("committed"),
        broker.end_offsets("logs").expect("end offsets")
    );
    let counts = record_counts(&receiver);
    let a = &counts["it-a"];
    assert_eq!(
        (a["accepted"], a["dead_lettered"], a["late"]),
        (want.valid, want.malformed, 0)
    );
    assert_eq!(exported_by_slo_service(&receiver), want.by_slo_service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_dead_letter_is_quarantined_whole_and_sent_truncated() {
    let broker = Broker::start().expect("broker");
    // `logs` takes records of up to 8 MiB; `logs-dlq` keeps the default (about 1 MiB).
    let created = admin(&broker)
        .create_topics(
            &[
                NewTopic::new("logs", 1, TopicReplication::Fixed(1))
                    .set("max.message.bytes", "8388608"),
                NewTopic::new("logs-dlq", 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    for r in created {
        r.expect("topic created");
    }
    for topic in ["logs", "logs-dlq"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !broker.end_offsets(topic).is_ok_and(|e| !e.is_empty()) {
            assert!(Instant::now() < deadline, "{topic} did not show up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // One valid record, a 3 MiB one (over max_record_bytes, 1 MiB, and over the dead-letter
    // producer's message.max.bytes), a tombstone, one valid record.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.max.bytes", "10000000")
        .create()
        .expect("producer");
    let valid = |id: &str| {
        format!(
            r#"{{"id":"{id}","ts":1767225600000,"service":"chat","status":"ok","latency_ms":120}}"#
        )
        .into_bytes()
    };
    let mut big = br#"{"id":"big","ts":1767225600000,"service":"chat","pad":""#.to_vec();
    let mut i = 0u32;
    while big.len() < 3 * 1024 * 1024 - 2 {
        big.push(b'a' + (i % 26) as u8);
        i += 1;
    }
    big.extend_from_slice(br#""}"#);
    let mut offsets = BTreeMap::new();
    for (key, payload) in [
        ("v1", Some(valid("v1"))),
        ("big", Some(big.clone())),
        ("tomb", None),
        ("v2", Some(valid("v2"))),
    ] {
        let headers = OwnedHeaders::new().insert(Header {
            key: "trace-id",
            value: Some(key),
        });
        let mut record = FutureRecord::<str, [u8]>::to("logs")
            .partition(0)
            .key(key)
            .headers(headers);
        if let Some(p) = &payload {
            record = record.payload(p.as_slice());
        }
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
        offsets.insert(key, delivery.offset);
    }

    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, spec(&broker, "it-dlq-big", &endpoint, &archive)).expect("spec");
    let quarantined = dir
        .path()
        .join("state/quarantine")
        .join(format!("logs.p0.o{}.bin", offsets["big"]));
    let mut sliq = start(&spec_path, "it-a");

    // No offset passes the big record before its whole bytes are in the quarantine file.
    let mut looks = 0;
    while sliq.running() {
        let committed = broker
            .committed_offsets("it-dlq-big", "logs")
            .expect("committed offsets");
        let c = committed.get(&0).copied().unwrap_or(-1);
        if c > offsets["big"] {
            assert_eq!(
                std::fs::metadata(&quarantined).map(|m| m.len()).ok(),
                Some(big.len() as u64),
                "offset {c} committed before the quarantine file was whole"
            );
        }
        looks += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(looks > 5);
    let stderr = sliq.wait_ok().await;
    eprintln!("--- sliq's log ---\n{stderr}--- end ---");

    let dlq = broker
        .consume_all("logs-dlq", 2, Duration::from_secs(30))
        .expect("dlq");
    assert_eq!(dlq.len(), 2);
    assert_eq!(broker.end_offsets("logs-dlq").expect("dlq end")[&0], 2);
    let letter = |key: &str| {
        dlq.iter()
            .find(|d| d.key.as_deref() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("no dead letter for {key}"))
    };

    let d = letter("big");
    assert_eq!(d.headers["sliq.reason"], "oversized");
    assert_eq!(d.headers["sliq.truncated"], big.len().to_string());
    assert_eq!(
        d.headers["sliq.quarantine"],
        quarantined.display().to_string()
    );
    assert_eq!(d.headers["trace-id"], "big");
    assert_eq!(d.headers["sliq.source.offset"], offsets["big"].to_string());
    assert!(
        !d.payload.is_empty() && d.payload.len() <= 900 * 1024,
        "{} bytes",
        d.payload.len()
    );
    assert_eq!(d.payload[..], big[..d.payload.len()]);
    assert_eq!(std::fs::read(&quarantined).expect("quarantine file"), big);
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(quarantined.with_extension("json")).expect("quarantine meta"),
    )
    .expect("meta is JSON");
    assert_eq!(meta["source"]["offset"], offsets["big"]);
    assert_eq!(meta["payload_bytes"], big.len());
    assert_eq!(meta["key"]["utf8"], "big");

    // A tombstone's dead letter has no payload either, and keeps key and headers.
    let t = letter("tomb");
    assert!(t.payload_null, "the tombstone's dead letter has a payload");
    assert_eq!(t.headers["sliq.reason"], "empty_record");
    assert_eq!(t.headers["trace-id"], "tomb");

    assert_eq!(
        broker
            .committed_offsets("it-dlq-big", "logs")
            .expect("committed"),
        broker.end_offsets("logs").expect("end offsets")
    );
    let counts = record_counts(&receiver);
    let a = &counts["it-a"];
    assert_eq!((a["accepted"], a["dead_lettered"]), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_topic_refuses_is_cut_until_it_fits() {
    let broker = Broker::start().expect("broker");
    // The dead-letter topic takes at most 64 KiB: a 300 kB letter passes the producer's own limit
    // and is refused by the broker (MESSAGE_TOO_LARGE).
    let created = admin(&broker)
        .create_topics(
            &[
                NewTopic::new("logs", 1, TopicReplication::Fixed(1)),
                NewTopic::new("logs-dlq", 1, TopicReplication::Fixed(1))
                    .set("max.message.bytes", "65536"),
            ],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    for r in created {
        r.expect("topic created");
    }
    for topic in ["logs", "logs-dlq"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !broker.end_offsets(topic).is_ok_and(|e| !e.is_empty()) {
            assert!(Instant::now() < deadline, "{topic} did not show up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let junk: Vec<u8> = (0..300_000u32).map(|i| b'A' + (i % 23) as u8).collect();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    let offset = producer
        .send(
            FutureRecord::<str, [u8]>::to("logs")
                .partition(0)
                .key("junk")
                .payload(junk.as_slice()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce")
        .offset;

    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, spec(&broker, "it-dlq-cut", &endpoint, &archive)).expect("spec");
    let quarantined = dir
        .path()
        .join(format!("state/quarantine/logs.p0.o{offset}.bin"));
    let stderr = start(&spec_path, "it-a").wait_ok().await;
    eprintln!("--- sliq's log ---\n{stderr}--- end ---");

    let dlq = broker
        .consume_all("logs-dlq", 1, Duration::from_secs(30))
        .expect("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(broker.end_offsets("logs-dlq").expect("dlq end")[&0], 1);
    let d = &dlq[0];
    assert_eq!(d.headers["sliq.reason"], "not_json");
    assert_eq!(d.headers["sliq.truncated"], junk.len().to_string());
    assert_eq!(
        d.headers["sliq.quarantine"],
        quarantined.display().to_string()
    );
    assert!(
        !d.payload.is_empty() && d.payload.len() < 65_536,
        "{} bytes",
        d.payload.len()
    );
    assert_eq!(d.payload[..], junk[..d.payload.len()]);
    assert_eq!(std::fs::read(&quarantined).expect("quarantine file"), junk);
    assert_eq!(
        broker
            .committed_offsets("it-dlq-cut", "logs")
            .expect("committed"),
        broker.end_offsets("logs").expect("end offsets")
    );
}
