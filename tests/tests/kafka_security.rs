//! sliq against a secured Kafka. Two brokers of the rig: Nisshi's own TLS listener with a
//! SCRAM-SHA-512 login, and Nisshi behind the rig's proxy that requires a client certificate of
//! the test CA (mutual TLS; `sliq_tests::mtls_proxy`), with or without the login. Runs with the
//! right credentials are exact end to end (an independent recount, DuckDB over the archive, the
//! dead-letter topic read back); each kind of refusal ends `sliq run` within seconds saying what
//! to check; and one run configured with every kind of secret at once (login password, key
//! passphrase, OTLP token, redaction key, a secret librdkafka option, the private keys) leaves
//! none of them in anything it produced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use sliq_gen::{GeneratedRecord, Generator, RecordKind};
use sliq_tests::admin::{get, scrape, wait_for};
use sliq_tests::broker::{Broker, ConsumedRecord, ScramUser};
use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::python::duckdb_json;
use sliq_tests::recount::expected;
use sliq_tests::run::{
    assert_archived_and_committed, exported_by_slo_service, gen_config, record_counts, spec,
    terminate,
};
use sliq_tests::tls::TestCa;

/// Distinctive, so finding one anywhere is a leak and not a coincidence.
const PASSWORD: &str = "pw-Zq81vK3mXr7s";
const KEY_PASSWORD: &str = "kp-Wd40sQ9tLr2e";
const TOKEN: &str = "tok-Hn7Vb2Kq9Zx4";
const REDACT_KEY: &str = "hk-Pc3Mf8Ys1Gt6";
const OPTION_SECRET: &str = "os-Jr5Ue0Nw7Ba3";
/// A header value that is no secret: the receiver must see it (the grep is not blind).
const TENANT: &str = "tenant-Mk29";
const USER: &str = "sliq";
/// A second user, stored for SCRAM-SHA-256.
const USER_256: &str = "sliq-256";
const TOPICS: [(&str, i32); 2] = [("logs", 4), ("logs-dlq", 1)];

/// The records every exact run reads: `sliq gen --config` writes them, so the generator's
/// producer gets in with the spec's credentials too.
const RECORDS: usize = 5_000;
const GEN_ARGS: [&str; 13] = [
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

/// A broker with Nisshi's own TLS listener and a SCRAM login for user `sliq`.
async fn secured_broker(dir: &Path, ca: &TestCa) -> Broker {
    let users = [
        ScramUser {
            name: USER,
            password: PASSWORD,
            mechanism: "scram512",
        },
        ScramUser {
            name: USER_256,
            password: PASSWORD,
            mechanism: "scram256",
        },
    ];
    Broker::start_secured(&dir.join("broker"), ca, &users, &TOPICS)
        .await
        .expect("secured broker")
}

/// The SCRAM login, the password from `KAFKA_PASSWORD`.
fn scram() -> String {
    format!(
        "    sasl:\n      mechanism: scram-sha-512\n      username: {USER}\n      password: \
         ${{KAFKA_PASSWORD}}\n"
    )
}

/// `tls` (the CA only) and `sasl` keys.
fn security(ca_file: &Path) -> String {
    format!(
        "    tls:\n      ca_file: {}\n{}",
        ca_file.display(),
        scram()
    )
}

/// `tls` with `ca`'s client certificate and `key`; with `key_password` its passphrase comes
/// from `KAFKA_KEY_PASSWORD`.
fn client_tls(ca: &TestCa, key: &Path, key_password: bool) -> String {
    let mut tls = format!(
        "    tls:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
        ca.ca_cert.display(),
        ca.client_cert.display(),
        key.display()
    );
    if key_password {
        tls.push_str("      key_password: ${KAFKA_KEY_PASSWORD}\n");
    }
    tls
}

/// `sliq` with `env` added, debug logs, its state beside the spec.
fn command(args: &[&str], spec: &Path, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(sliq_tests::sliq_binary());
    command
        .args(args)
        .arg("--config")
        .arg(spec)
        .envs(env.iter().copied())
        .env("SLIQ_TEST_STATE", spec.with_file_name("state"))
        .env("SLIQ_LOG", "debug")
        .kill_on_drop(true);
    command
}

/// Runs `sliq` to completion with `env` added.
async fn sliq(args: &[&str], spec: &Path, env: &[(&str, &str)]) -> Output {
    command(args, spec, env).output().await.expect("sliq runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes the records with `sliq gen --config spec`; returns them (the generator run again in
/// the test) and requires success.
async fn generate(spec: &Path, env: &[(&str, &str)]) -> (Vec<GeneratedRecord>, Output) {
    let produced = sliq(&GEN_ARGS, spec, env).await;
    assert!(produced.status.success(), "{}", text(&produced));
    let records: Vec<GeneratedRecord> = Generator::new(gen_config(7)).take(RECORDS).collect();
    (records, produced)
}

/// `sliq run` until idle; requires success.
async fn run_to_idle(spec: &Path, instance: &str, env: &[(&str, &str)]) -> Output {
    let run = tokio::time::timeout(
        Duration::from_secs(300),
        sliq(
            &["run", "--exit-on-idle", "6s", "--instance-id", instance],
            spec,
            env,
        ),
    )
    .await
    .expect("sliq run ends within 300 s");
    assert!(run.status.success(), "{}", text(&run));
    run
}

/// The run of `group`/`instance` counted, archived, dead-lettered and committed exactly what
/// `records` hold: exported counters against the recount, DuckDB over the archive, the
/// dead-letter topic read back (one letter per malformed record, its reason, its bytes).
/// Returns the dead letters.
fn assert_exact(
    broker: &Broker,
    receiver: &OtlpReceiver,
    archive: &Path,
    (group, instance): (&str, &str),
    records: &[GeneratedRecord],
) -> Vec<ConsumedRecord> {
    let want = expected(records);
    assert!(want.malformed > 20 && want.valid > 4_900, "{want:?}");
    assert_eq!(exported_by_slo_service(receiver), want.by_slo_service);
    let counts = record_counts(receiver);
    let got = &counts[instance];
    assert_eq!(
        (got["accepted"], got["dead_lettered"], got["late"]),
        (want.valid, want.malformed, 0)
    );
    assert_archived_and_committed(broker, group, archive, &want);

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
    dlq
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The base64 lines of a PEM private key: a piece of the key itself.
fn key_material(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("key")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 40)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_with_every_secret_is_exact_and_leaves_none_in_any_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new().expect("test CA");
    let user = ScramUser {
        name: USER,
        password: PASSWORD,
        mechanism: "scram512",
    };
    // Mutual TLS and a SCRAM login: the client certificate's key is encrypted.
    let broker = Broker::start_mtls(&dir.path().join("broker"), &ca, &[user], &TOPICS)
        .await
        .expect("mTLS broker");
    let receiver = OtlpReceiver::start_grpc_tls(ca.server_tls().expect("server TLS"))
        .await
        .expect("receiver");
    let encrypted_key = ca
        .encrypted_client_key(KEY_PASSWORD)
        .expect("encrypted key");
    let kafka = format!(
        "{}{}    options:\n      ssl.keystore.password: ${{KAFKA_KEYSTORE_PASSWORD}}\n",
        client_tls(&ca, &encrypted_key, true),
        scram()
    );
    let export = format!(
        "    endpoint: {}\n    compression: gzip\n    headers:\n      Authorization: Bearer \
         ${{OTLP_TOKEN}}\n      X-Scope-OrgID: {TENANT}\n    tls:\n      ca_file: {}\n      \
         cert_file: {}\n      key_file: {}\n",
        receiver.endpoint(),
        ca.ca_cert.display(),
        ca.client_cert.display(),
        ca.client_key.display()
    );
    let spec_path = write_spec(dir.path(), &broker, "sec-exact", &export, &kafka);
    // The redaction key hashes e-mail addresses in responses; raw bytes are kept, so the
    // archive's digest still checks every record.
    let text_of_spec = std::fs::read_to_string(&spec_path).expect("spec").replace(
        "archive:\n",
        "archive:\n  redact:\n    key: ${SLIQ_REDACT_KEY}\n    raw: keep\n    rules:\n      \
             - fields: [response]\n        presets: [email]\n        action: hash\n",
    ) + "admin:\n  self_metrics: both\n  self_metrics_interval: 1s\n";
    std::fs::write(&spec_path, text_of_spec).expect("spec");
    let env = [
        ("KAFKA_PASSWORD", PASSWORD),
        ("KAFKA_KEY_PASSWORD", KEY_PASSWORD),
        ("OTLP_TOKEN", TOKEN),
        ("SLIQ_REDACT_KEY", REDACT_KEY),
        ("KAFKA_KEYSTORE_PASSWORD", OPTION_SECRET),
    ];
    // Every output, and a marker each must hold (a grep of the wrong thing finds nothing); the
    // files under state.dir are checked for a marker together (a lock file may be empty).
    let mut outputs: Vec<(String, Vec<u8>, Option<&str>)> = Vec::new();

    let validate = sliq(&["validate", "--connect"], &spec_path, &env).await;
    assert!(validate.status.success(), "{}", text(&validate));
    let answered = format!("kafka: {} answered", broker.bootstrap());
    outputs.push((
        "sliq validate --connect".into(),
        text(&validate).into(),
        Some(answered.as_str()),
    ));

    let (records, produced) = generate(&spec_path, &env).await;
    outputs.push((
        "sliq gen".into(),
        text(&produced).into(),
        Some("produced 5000 records"),
    ));

    // The run in text logs, its /metrics scraped once everything was read, then stopped as a
    // service is (SIGTERM: the same final checkpoint, every window closed, as an idle exit,
    // without racing the scrape against the idle timer).
    let port = sliq_tests::free_port().expect("port");
    let listen = format!("127.0.0.1:{port}");
    let run_args = ["run", "--instance-id", "sec-a", "--admin-listen", &listen];
    let child = command(&run_args, &spec_path, &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sliq run starts");
    wait_for(Duration::from_secs(120), "every record read", || async {
        let s = scrape(port).await.map_err(|e| e.to_string())?;
        let read = s.value("sliq_records_read_total", &[]);
        if read == RECORDS as f64 {
            Ok(())
        } else {
            Err(format!("{read} read"))
        }
    })
    .await;
    let (_, metrics) = get(port, "/metrics").await.expect("/metrics");
    outputs.push((
        "/metrics".into(),
        metrics.into(),
        Some("sliq_records_read_total"),
    ));
    terminate(&child);
    let run = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("sliq run ends within 300 s")
        .expect("sliq run");
    assert!(run.status.success(), "{}", text(&run));
    outputs.push(("sliq run (text)".into(), text(&run).into(), Some("DEBUG")));

    // Again with JSON logs: nothing new to read, the same credentials at every step.
    let json_run = run_to_idle_json(&spec_path, &env).await;
    outputs.push((
        "sliq run (json)".into(),
        json_run.into(),
        Some("\"level\":\"DEBUG\""),
    ));

    let archive = dir.path().join("archive");
    let dlq = assert_exact(
        &broker,
        &receiver,
        &archive,
        ("sec-exact", "sec-a"),
        &records,
    );
    let proxy = broker.proxy().expect("proxy");
    assert!(proxy.forwarded() > 0, "nothing went through the proxy");

    for (i, request) in receiver.requests().iter().enumerate() {
        outputs.push((
            format!("OTLP request {i}"),
            request.encode_to_vec(),
            Some("service.instance.id"),
        ));
    }
    let bodies: Vec<u8> = receiver
        .requests()
        .iter()
        .flat_map(|r| r.encode_to_vec())
        .collect();
    assert!(holds(&bodies, "sliq.slo.name") && holds(&bodies, "sliq-self"));
    assert!(
        receiver
            .headers_seen()
            .iter()
            .all(|h| h.get("x-scope-orgid").map(String::as_str) == Some(TENANT))
    );

    let archived = duckdb_json(&format!(
        "rows = q(\"SELECT * FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)\")\n\
         print(json.dumps({{'text': json.dumps(rows, default=str)}}))",
        archive.display()
    ))
    .expect("duckdb reads the archive");
    let archived = archived["text"].as_str().expect("text").to_owned();
    outputs.push((
        "the archive, every column".into(),
        archived.into(),
        Some("\"raw\": "),
    ));

    for d in &dlq {
        let letter = format!("{:?} {}", d.headers, String::from_utf8_lossy(&d.payload));
        outputs.push(("a dead letter".into(), letter.into(), Some("sliq.reason")));
    }

    let state = sliq_tests::files_under(&dir.path().join("state"));
    assert!(state.len() >= 2, "{state:?}");
    assert!(
        state
            .iter()
            .any(|f| std::fs::read(f).is_ok_and(|bytes| holds(&bytes, "sliq-checkpoint/"))),
        "no checkpoint among {state:?}"
    );
    for file in state {
        let bytes = std::fs::read(&file).expect("state file");
        outputs.push((file.display().to_string(), bytes, None));
    }

    let mut secrets: Vec<String> = [PASSWORD, KEY_PASSWORD, TOKEN, REDACT_KEY, OPTION_SECRET]
        .map(str::to_owned)
        .to_vec();
    secrets.extend(key_material(&ca.client_key));
    secrets.extend(key_material(&encrypted_key));
    for (what, bytes, marker) in &outputs {
        if let Some(marker) = marker {
            assert!(holds(bytes, marker), "{what} lacks {marker:?}");
        }
        for secret in &secrets {
            assert!(
                !holds(bytes, secret),
                "{what} holds the secret {secret}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// A second `sliq run` of instance `sec-a` with JSON logs, to its idle exit; its output.
async fn run_to_idle_json(spec: &Path, env: &[(&str, &str)]) -> String {
    let args = [
        "--log-format",
        "json",
        "run",
        "--exit-on-idle",
        "3s",
        "--instance-id",
        "sec-a",
    ];
    let run = tokio::time::timeout(Duration::from_secs(120), sliq(&args, spec, env))
        .await
        .expect("sliq run ends within 120 s");
    assert!(run.status.success(), "{}", text(&run));
    text(&run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_is_exact_and_a_missing_certificate_or_wrong_key_password_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new().expect("test CA");
    let broker = Broker::start_mtls(&dir.path().join("broker"), &ca, &[], &TOPICS)
        .await
        .expect("mTLS broker");
    let proxy = broker.proxy().expect("proxy");
    let receiver = OtlpReceiver::start_grpc().await.expect("receiver");
    let endpoint = format!("    endpoint: {}", receiver.endpoint());
    let exact = dir.path().join("exact");
    std::fs::create_dir_all(&exact).expect("dir");
    let spec_path = write_spec(
        &exact,
        &broker,
        "mtls-exact",
        &endpoint,
        &client_tls(&ca, &ca.client_key, false),
    );
    let (records, _) = generate(&spec_path, &[]).await;
    run_to_idle(&spec_path, "mtls-a", &[]).await;
    assert_exact(
        &broker,
        &receiver,
        &exact.join("archive"),
        ("mtls-exact", "mtls-a"),
        &records,
    );
    // (Handshakes the proxy saw fail before here are clients closed mid-handshake: helper
    // clients that fetch one answer and go.)
    assert!(proxy.forwarded() > 0, "nothing went through the proxy");

    let at = broker.bootstrap();
    let case = |name: &str, kafka: &str| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("dir");
        write_spec(
            &folder,
            &broker,
            "mtls-refused",
            "    endpoint: file:///dev/null",
            kafka,
        )
    };

    // No client certificate: the proxy refuses the handshake.
    let refused_before = proxy.refused();
    let spec_path = case(
        "no-client-cert",
        &format!("    tls:\n      ca_file: {}\n", ca.ca_cert.display()),
    );
    let (took, stderr) = run_fails_fast(&spec_path, &[]).await;
    assert!(
        stderr.contains(&format!(
            "Kafka at {at} requires a client certificate: set source.kafka.tls.cert_file and \
             key_file"
        )),
        "{took:?}\n{stderr}"
    );
    assert!(proxy.refused() > refused_before);

    // An encrypted key with the wrong passphrase.
    let encrypted = ca
        .encrypted_client_key(KEY_PASSWORD)
        .expect("encrypted key");
    let spec_path = case("wrong-key-password", &client_tls(&ca, &encrypted, true));
    let wrong = "kp-wrong-Tz81";
    let (took, stderr) = run_fails_fast(&spec_path, &[("KAFKA_KEY_PASSWORD", wrong)]).await;
    assert!(
        stderr.contains(&format!(
            "the private key in source.kafka.tls.key_file ({}) cannot be decrypted: check \
             source.kafka.tls.key_password",
            encrypted.display()
        )),
        "{took:?}\n{stderr}"
    );
    assert!(!stderr.contains(wrong), "the passphrase shows:\n{stderr}");

    // A plaintext client on the proxy's TLS port.
    let spec_path = case("plaintext", "");
    let (took, stderr) = run_fails_fast(&spec_path, &[]).await;
    assert!(
        stderr.contains(&format!(
            "Kafka at {at} closed the connection at the first request, and its port speaks \
             TLS: add source.kafka.tls"
        )),
        "{took:?}\n{stderr}"
    );
}

/// Runs `sliq run` on `spec` and requires it to fail within 30 s; returns its output.
async fn run_fails_fast(spec: &Path, env: &[(&str, &str)]) -> (Duration, String) {
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        sliq(&["run", "--instance-id", "sec-refused"], spec, env),
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
    let (took, stderr) = run_fails_fast(&spec_path, &[("KAFKA_PASSWORD", wrong)]).await;
    let login = format!(
        "Kafka at {at} refused the SCRAM-SHA-512 login for user `{USER}`: check \
         source.kafka.sasl.username and the password in KAFKA_PASSWORD"
    );
    assert!(stderr.contains(&login), "{took:?}\n{stderr}");
    assert!(!stderr.contains(wrong), "the password shows:\n{stderr}");
    let validate = sliq(
        &["validate", "--connect"],
        &spec_path,
        &[("KAFKA_PASSWORD", wrong)],
    )
    .await;
    assert!(!validate.status.success());
    assert!(text(&validate).contains(&login), "{}", text(&validate));
    assert!(!text(&validate).contains(wrong), "{}", text(&validate));

    // SCRAM-SHA-256 over TLS logs in with the right password (validate --connect logs in and
    // reads metadata) and is refused with a wrong one. PLAIN is not offered by Nisshi, so there
    // a PLAIN login is refused at once, naming the mechanism (a PLAIN login that a broker accepts
    // is not tested on this rig).
    let login = |mechanism: &str, user: &str| {
        format!(
            "    tls:\n      ca_file: {}\n    sasl:\n      mechanism: {mechanism}\n      \
             username: {user}\n      password: ${{KAFKA_PASSWORD}}\n",
            ca.ca_cert.display()
        )
    };
    let spec_path = case("scram-256", &login("scram-sha-256", USER_256));
    let connect = |password: &'static str| {
        let spec_path = spec_path.clone();
        async move {
            sliq(
                &["validate", "--connect"],
                &spec_path,
                &[("KAFKA_PASSWORD", password)],
            )
            .await
        }
    };
    let accepted = connect(PASSWORD).await;
    assert!(accepted.status.success(), "{}", text(&accepted));
    let refused = connect(wrong).await;
    assert!(
        text(&refused).contains(&format!(
            "refused the SCRAM-SHA-256 login for user `{USER_256}`"
        )),
        "{}",
        text(&refused)
    );
    let spec_path = case("plain", &login("plain", USER));
    let (took, stderr) = run_fails_fast(&spec_path, &[("KAFKA_PASSWORD", PASSWORD)]).await;
    assert!(
        stderr.contains(&format!(
            "Kafka at {at} does not offer the login mechanism asked for: set \
             source.kafka.sasl.mechanism to one it offers"
        )) && stderr.contains("SCRAM-SHA-512,SCRAM-SHA-256"),
        "{took:?}\n{stderr}"
    );

    // The broker's certificate is not signed by the configured CA.
    let spec_path = case("unknown-ca", &security(&stranger.ca_cert));
    let (took, stderr) = run_fails_fast(&spec_path, &[("KAFKA_PASSWORD", PASSWORD)]).await;
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
    let (took, stderr) = run_fails_fast(&spec_path, &[("KAFKA_PASSWORD", PASSWORD)]).await;
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
    let out = sliq(&["validate"], &matching, &[]).await;
    assert!(out.status.success(), "{}", text(&out));

    // The server's key does not belong to the client certificate: librdkafka refuses the pair.
    let mismatched = write("mismatched.yaml", &ca.client_cert, &ca.server_key);
    let out = sliq(&["validate"], &mismatched, &[]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("check source.kafka.tls.key_file"),
        "{}",
        text(&out)
    );
    let (_, stderr) = run_fails_fast(&mismatched, &[]).await;
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
        &[],
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
