//! sliq against a secured Kafka: a Nisshi broker whose listener speaks only TLS (a throwaway CA,
//! `sliq_tests::tls`) and requires a SCRAM-SHA-512 login. A run with the right credentials is
//! exact end to end (an independent recount, DuckDB over the archive, the dead-letter topic read
//! back); each kind of refusal ends `sliq run` within seconds saying what to check; the password
//! appears in nothing the run produced.
//!
//! Nisshi 0.8.1 cannot require client certificates (its TLS listener is built without client
//! authentication), so mutual TLS is checked on sliq's side: the client certificate and key reach
//! librdkafka, which refuses a key that does not match its certificate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use sliq_gen::{GeneratedRecord, Generator, RecordKind};
use sliq_tests::broker::{Broker, ScramUser};
use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::python::duckdb_json;
use sliq_tests::recount::expected;
use sliq_tests::run::{
    assert_archived_and_committed, exported_by_slo_service, gen_config, record_counts, spec,
};
use sliq_tests::tls::TestCa;

/// Distinctive, so finding it anywhere is a leak and not a coincidence.
const PASSWORD: &str = "pw-Zq81vK3mXr7s";
const USER: &str = "sliq";

/// A secured broker with the test topics `logs` (4 partitions) and `logs-dlq` (1), user `sliq`.
async fn secured_broker(dir: &Path, ca: &TestCa) -> Broker {
    Broker::start_secured(
        &dir.join("broker"),
        ca,
        &[ScramUser {
            name: USER,
            password: PASSWORD,
        }],
        &[("logs", 4), ("logs-dlq", 1)],
    )
    .await
    .expect("secured broker")
}

/// The test spec (see `sliq_tests::run::spec`) with `kafka` (YAML, indented 4) added under
/// `source.kafka`; written to `dir/spec.yaml`.
fn write_spec(dir: &Path, broker: &Broker, group: &str, export: &str, kafka: &str) -> PathBuf {
    let text = spec(broker, group, export, &dir.join("archive")).replace(
        "    dead_letter_topic: logs-dlq\n",
        &format!("    dead_letter_topic: logs-dlq\n{kafka}"),
    );
    assert!(text.contains(kafka), "the spec took the security keys");
    let path = dir.join("spec.yaml");
    std::fs::write(&path, text).expect("spec");
    path
}

/// `tls` and `sasl` keys for `ca_file`, with the password from `KAFKA_PASSWORD`.
fn security(ca_file: &Path) -> String {
    format!(
        "    tls:\n      ca_file: {}\n    sasl:\n      mechanism: scram-sha-512\n      \
         username: {USER}\n      password: ${{KAFKA_PASSWORD}}\n",
        ca_file.display()
    )
}

/// Runs `sliq` to completion with `KAFKA_PASSWORD` set to `password`.
async fn sliq(args: &[&str], spec: &Path, password: &str) -> Output {
    tokio::process::Command::new(sliq_tests::sliq_binary())
        .args(args)
        .arg("--config")
        .arg(spec)
        .env("KAFKA_PASSWORD", password)
        .env("SLIQ_TEST_STATE", spec.with_file_name("state"))
        .env("SLIQ_LOG", "debug")
        .kill_on_drop(true)
        .output()
        .await
        .expect("sliq runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_run_is_exact_end_to_end_and_the_password_never_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new().expect("test CA");
    let broker = secured_broker(dir.path(), &ca).await;
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let spec_path = write_spec(
        dir.path(),
        &broker,
        "sec-exact",
        &endpoint,
        &security(&ca.ca_cert),
    );
    let mut outputs = Vec::new();

    let validate = sliq(&["validate", "--connect"], &spec_path, PASSWORD).await;
    assert!(validate.status.success(), "{}", text(&validate));
    assert!(
        text(&validate).contains(&format!("kafka: {} answered", broker.bootstrap())),
        "{}",
        text(&validate)
    );
    outputs.push(("sliq validate", text(&validate)));

    // The records go in through `sliq gen --config`: the generator's producer logs in too.
    let n = 5_000;
    let gen_args = [
        "gen",
        "--topic",
        "logs",
        "--count",
        "5000",
        "--seed",
        "7",
        "--start",
        "2026-01-01T00:00:00Z",
        "--events-per-second",
        "200",
        "--late-ratio",
        "0",
    ];
    let produced = sliq(&gen_args, &spec_path, PASSWORD).await;
    assert!(produced.status.success(), "{}", text(&produced));
    outputs.push(("sliq gen", text(&produced)));
    let records: Vec<GeneratedRecord> = Generator::new(gen_config(7)).take(n).collect();
    let want = expected(&records);
    assert!(want.malformed > 20 && want.valid > 4_900, "{want:?}");

    let run = tokio::time::timeout(
        Duration::from_secs(300),
        sliq(
            &["run", "--exit-on-idle", "6s", "--instance-id", "sec-a"],
            &spec_path,
            PASSWORD,
        ),
    )
    .await
    .expect("sliq run ends within 300 s");
    assert!(run.status.success(), "{}", text(&run));
    outputs.push(("sliq run", text(&run)));

    // Every exported counter equals the recount; the archive and the commits are exact.
    assert_eq!(exported_by_slo_service(&receiver), want.by_slo_service);
    let counts = record_counts(&receiver);
    let a = &counts["sec-a"];
    assert_eq!(
        (a["accepted"], a["dead_lettered"], a["late"]),
        (want.valid, want.malformed, 0)
    );
    let archive = dir.path().join("archive");
    assert_archived_and_committed(&broker, "sec-exact", &archive, &want);

    // Dead letters (read back over TLS with a login): one per malformed record, with its reason.
    let dlq = broker
        .consume_all("logs-dlq", want.malformed as usize, Duration::from_secs(30))
        .expect("dlq");
    let by_key: BTreeMap<&str, &GeneratedRecord> =
        records.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut letters: BTreeMap<String, String> = BTreeMap::new();
    for d in &dlq {
        let key = String::from_utf8(d.key.clone().expect("key kept")).expect("utf8 key");
        letters.insert(key, d.headers["sliq.reason"].clone());
    }
    let want_letters: BTreeMap<String, String> = records
        .iter()
        .filter_map(|r| match r.kind {
            RecordKind::Malformed(kind) => Some((r.key.clone(), kind.code().to_owned())),
            RecordKind::Valid => None,
        })
        .collect();
    assert_eq!(dlq.len() as u64, want.malformed);
    assert_eq!(letters, want_letters);
    assert!(dlq.iter().all(|d| {
        let key = String::from_utf8_lossy(d.key.as_deref().unwrap_or_default()).into_owned();
        by_key[key.as_str()].payload == d.payload
    }));

    // The password is in nothing the run produced.
    for (what, out) in &outputs {
        assert!(!out.contains(PASSWORD), "{what} shows the password:\n{out}");
    }
    let attributes = format!("{:?}", receiver.requests());
    assert!(
        attributes.contains("sliq.slo.name"),
        "the receiver got points"
    );
    assert!(
        !attributes.contains(PASSWORD),
        "an OTLP request carries the password"
    );
    let archived = duckdb_json(&format!(
        "rows = q(\"SELECT * FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")\n\
         text = json.dumps(rows, default=str)\n\
         print(json.dumps({{'rows': len(rows), 'hits': text.count('{PASSWORD}'), \
         'ids': text.count('\"id\": ')}}))",
        archive.display()
    ))
    .expect("duckdb reads the archive");
    assert_eq!(archived["rows"], want.valid);
    assert_eq!(
        archived["ids"], want.valid,
        "the search saw every row's text"
    );
    assert_eq!(archived["hits"], 0, "the archive holds the password");
    for d in &dlq {
        let all = format!("{:?} {}", d.headers, String::from_utf8_lossy(&d.payload));
        assert!(
            !all.contains(PASSWORD),
            "a dead letter carries the password: {all}"
        );
    }
}

/// Runs `sliq run` on `spec` and requires it to fail within 30 s; returns its output.
async fn run_fails_fast(spec: &Path, password: &str) -> (Duration, String) {
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        sliq(&["run", "--instance-id", "sec-refused"], spec, password),
    )
    .await
    .unwrap_or_else(|_| panic!("sliq run on {} did not end within 30 s", spec.display()));
    assert!(!out.status.success(), "sliq run succeeded: {}", text(&out));
    (started.elapsed(), text(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_and_certificates_end_the_run_within_seconds_saying_what_to_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new().expect("test CA");
    let stranger = TestCa::new().expect("another CA");
    let broker = secured_broker(dir.path(), &ca).await;
    let export = "    endpoint: file:///dev/null";
    let at = broker.bootstrap();

    // A spec of its own folder for each case.
    let case = |name: &str, kafka: &str| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("dir");
        write_spec(&folder, &broker, "sec-refused", export, kafka)
    };

    // A wrong password: the login is refused; the message names broker, user and variable.
    let spec_path = case("wrong-password", &security(&ca.ca_cert));
    let wrong = "pw-wrong-Hq2x9";
    let (took, stderr) = run_fails_fast(&spec_path, wrong).await;
    let login = format!(
        "Kafka at {at} refused the SCRAM-SHA-512 login for user `{USER}`: check \
         source.kafka.sasl.username and the password in KAFKA_PASSWORD"
    );
    assert!(stderr.contains(&login), "{took:?}\n{stderr}");
    assert!(!stderr.contains(wrong), "the password shows:\n{stderr}");
    let validate = sliq(&["validate", "--connect"], &spec_path, wrong).await;
    assert!(!validate.status.success());
    assert!(text(&validate).contains(&login), "{}", text(&validate));
    assert!(!text(&validate).contains(wrong), "{}", text(&validate));

    // The broker's certificate is not signed by the configured CA.
    let spec_path = case("unknown-ca", &security(&stranger.ca_cert));
    let (took, stderr) = run_fails_fast(&spec_path, PASSWORD).await;
    assert!(
        stderr.contains(&format!(
            "Kafka at {at} presented a certificate that could not be verified: the CA in \
             source.kafka.tls.ca_file ({}) did not sign it",
            stranger.ca_cert.display()
        )) && stderr.contains("certificate verify failed"),
        "{took:?}\n{stderr}"
    );

    // A plaintext client on the TLS port.
    let spec_path = case("plaintext", "");
    let (took, stderr) = run_fails_fast(&spec_path, PASSWORD).await;
    assert!(
        stderr.contains(&format!(
            "Kafka at {at} closed the connection at the first request, and its port speaks \
             TLS: add source.kafka.tls"
        )),
        "{took:?}\n{stderr}"
    );
}

#[tokio::test]
async fn the_client_certificate_and_key_reach_librdkafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new().expect("test CA");
    // No broker is needed: librdkafka loads the certificate and key when it makes a client.
    let broker_address = "127.0.0.1:9";
    let write = |name: &str, cert: &Path, key: &Path| {
        let text = format!(
            "source:\n  kafka:\n    brokers: {broker_address}\n    topics: [logs]\n    \
             dead_letter_topic: logs-dlq\n    tls:\n      ca_file: {}\n      cert_file: {}\n      \
             key_file: {}\nslos:\n  - name: availability\n    objective: 0.99\n    sli:\n      \
             availability: {{}}\nstate:\n  dir: {}\narchive:\n  dir: {}\n",
            ca.ca_cert.display(),
            cert.display(),
            key.display(),
            dir.path().join("state").display(),
            dir.path().join("archive").display(),
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("spec");
        path
    };

    let matching = write("matching.yaml", &ca.client_cert, &ca.client_key);
    let out = sliq(&["validate"], &matching, "").await;
    assert!(out.status.success(), "{}", text(&out));

    // The server's key does not belong to the client certificate: librdkafka refuses the pair.
    let mismatched = write("mismatched.yaml", &ca.client_cert, &ca.server_key);
    let out = sliq(&["validate"], &mismatched, "").await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("check source.kafka.tls.key_file"),
        "{}",
        text(&out)
    );
    let (_, stderr) = run_fails_fast(&mismatched, "").await;
    assert!(
        stderr.contains("check source.kafka.tls.key_file"),
        "{stderr}"
    );

    // A key file that is no PEM at all is refused by the spec check, at its line.
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").expect("write");
    let out = sliq(
        &["validate"],
        &write("garbage.yaml", &ca.client_cert, &garbage),
        "",
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("garbage.yaml:9: source.kafka.tls.key_file:")
            && text(&out).contains("is not a PEM file"),
        "{}",
        text(&out)
    );
}
