//! OTLP to a collector behind TLS, as an operator sets it up: gRPC and HTTP/protobuf to receivers
//! that require a client certificate (mTLS), with a bearer token and a tenant header, gzip bodies,
//! configured in the spec or only through the standard `OTEL_EXPORTER_OTLP_*` variables, with the
//! self-metrics (`admin.self_metrics: otlp`) going the same way. Counts, of the SLI metrics and of
//! the self-metrics, are checked against the independent recount; the receiver reports the
//! headers and encoding every request came with; a wrong CA and a missing client certificate are
//! said as such; the token is in no output.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sliq_tests::otlp::OtlpReceiver;
use sliq_tests::recount::Expected;
use sliq_tests::run::{
    broker_with_topics, exported_by_slo_service, produce_records, record_counts,
    self_record_counts, write_spec,
};
use sliq_tests::tls::{ServerTls, TestCa};
use tokio::io::AsyncReadExt as _;

const TOKEN: &str = "tok-5f3a9c21e7d04b68";
const TENANT: &str = "tenant-42";

fn server_tls(ca: &TestCa) -> ServerTls {
    ca.server_tls().expect("server TLS")
}

/// Adds `admin.self_metrics: otlp` every second to the spec at `path`: the self-metrics go to
/// the same collector as the SLI metrics, with the same settings.
fn with_self_metrics(path: &Path) {
    let mut spec = std::fs::read_to_string(path).expect("spec");
    spec.push_str("admin:\n  self_metrics: otlp\n  self_metrics_interval: 1s\n");
    std::fs::write(path, spec).expect("spec");
}

/// The body of `export.otlp` for `receiver` with TLS files, the token from `${OTLP_TOKEN}`, the
/// tenant header and gzip; `client` false leaves the client certificate out.
fn tls_export(
    receiver: &OtlpReceiver,
    protocol: &str,
    ca_file: &Path,
    ca: &TestCa,
    client: bool,
) -> String {
    let mut export = format!(
        "    endpoint: {}\n    protocol: {protocol}\n    compression: gzip\n    timeout: 5s\n    \
         headers:\n      Authorization: Bearer ${{OTLP_TOKEN}}\n      X-Scope-OrgID: {TENANT}\n    \
         tls:\n      ca_file: {}\n",
        receiver.endpoint(),
        ca_file.display()
    );
    if client {
        export.push_str(&format!(
            "      cert_file: {}\n      key_file: {}\n",
            ca.client_cert.display(),
            ca.client_key.display()
        ));
    }
    export
}

/// Starts `sliq run` with `env` added, everything it prints captured.
fn start(
    spec: &Path,
    instance: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> tokio::process::Child {
    tokio::process::Command::new(sliq_tests::sliq_binary())
        .args(["run", "--config"])
        .arg(spec)
        .args(["--instance-id", instance])
        .args(extra)
        .env(
            "SLIQ_TEST_STATE",
            spec.with_file_name(format!("state-{instance}")),
        )
        // Everything the libraries log too: the token must not be in any of it.
        .env("SLIQ_LOG", "debug")
        .env("OTLP_TOKEN", TOKEN)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sliq starts")
}

/// Collects a child's standard output and error as they come.
fn capture(child: &mut tokio::process::Child) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let streams: [Box<dyn tokio::io::AsyncRead + Unpin + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for mut stream in streams {
        let text = Arc::clone(&text);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                text.lock().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    text
}

/// Headers that carry transport, not configuration.
const TRANSPORT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "te",
    "user-agent",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
    "host",
    "accept",
    "accept-encoding",
];

/// Every request carried exactly the configured headers, and a gzip body.
fn assert_headers_and_gzip(receiver: &OtlpReceiver, encoding_header: &str) {
    let seen = receiver.headers_seen();
    assert!(!seen.is_empty(), "no request arrived");
    let want: BTreeMap<String, String> = [
        ("authorization".to_owned(), format!("Bearer {TOKEN}")),
        ("x-scope-orgid".to_owned(), TENANT.to_owned()),
    ]
    .into();
    for headers in &seen {
        let configured: BTreeMap<String, String> = headers
            .iter()
            .filter(|(name, _)| !TRANSPORT_HEADERS.contains(&name.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(configured, want, "all headers: {headers:?}");
        assert_eq!(
            headers.get(encoding_header).map(String::as_str),
            Some("gzip"),
            "{headers:?}"
        );
    }
}

/// The SLI metrics and the self-metrics (`service.name=sliq-self`, sent at least twice, the
/// last time at the stop) both count what the recount says.
fn assert_counts(receiver: &OtlpReceiver, instance: &str, want: &Expected) {
    assert_eq!(exported_by_slo_service(receiver), want.by_slo_service);
    for (what, counts) in [
        ("SLI metrics", record_counts(receiver)),
        ("self-metrics", self_record_counts(receiver)),
    ] {
        let got = &counts[instance];
        assert_eq!(
            (got["accepted"], got["dead_lettered"]),
            (want.valid, want.malformed),
            "{what}"
        );
    }
    // One `sliq.records.read` point per self-metrics request.
    let self_requests = receiver
        .sum_points("sliq.records.read")
        .iter()
        .filter(|p| p.resource["service.name"] == "sliq-self")
        .count();
    assert!(self_requests >= 2, "{self_requests} self-metrics requests");
}

async fn run_to_idle(spec: &Path, instance: &str, env: &[(&str, String)]) -> String {
    let mut child = start(spec, instance, &["--exit-on-idle", "6s"], env);
    let output = capture(&mut child);
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
        .await
        .expect("sliq stops within 300 s")
        .expect("wait");
    // Let the readers take the last bytes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = output.lock().clone();
    assert!(status.success(), "sliq failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_over_mtls_with_headers_and_gzip_count_exactly_from_spec_or_environment() {
    let broker = broker_with_topics().await;
    let ca = TestCa::new().expect("test CA");
    let (_, want) = produce_records(&broker, 11, 6_000).await;

    for (protocol, encoding_header) in [
        ("grpc", "grpc-encoding"),
        ("http/protobuf", "content-encoding"),
    ] {
        let receiver = match protocol {
            "grpc" => OtlpReceiver::start_grpc_tls(server_tls(&ca)).await,
            _ => OtlpReceiver::start_http_tls(server_tls(&ca)).await,
        }
        .expect("receiver");
        let group = format!("it-tls-{}", protocol.replace('/', "-"));
        let export = tls_export(&receiver, protocol, &ca.ca_cert, &ca, true);
        let (_dir, spec, _) = write_spec(&broker, &group, &export);
        with_self_metrics(&spec);

        let validated = std::process::Command::new(sliq_tests::sliq_binary())
            .args(["validate", "--config"])
            .arg(&spec)
            .env("OTLP_TOKEN", TOKEN)
            .output()
            .expect("sliq validate");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&validated.stdout),
            String::from_utf8_lossy(&validated.stderr)
        );
        assert!(validated.status.success(), "{shown}");
        assert!(
            shown.contains(&format!(
                "TLS with CA {}, client certificate {}, gzip, timeout 5s, headers \
                 Authorization, X-Scope-OrgID",
                ca.ca_cert.display(),
                ca.client_cert.display()
            )),
            "{shown}"
        );
        assert!(!shown.contains(TOKEN), "{shown}");

        let output = run_to_idle(&spec, &group, &[]).await;
        assert_counts(&receiver, &group, &want);
        assert_headers_and_gzip(&receiver, encoding_header);
        assert!(output.contains("DEBUG"), "the run logged at debug level");
        assert!(!output.contains(TOKEN), "the token was printed:\n{output}");
    }

    // Only the standard variables: the spec says nothing about export.otlp but its temporality.
    // The generic endpoint has no path: the HTTP receiver answers only /v1/metrics, which
    // sliq must append.
    let receiver = OtlpReceiver::start_http_tls(server_tls(&ca))
        .await
        .expect("receiver");
    let (_dir, spec, _) = write_spec(&broker, "it-tls-env", "    temporality: cumulative");
    with_self_metrics(&spec);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        (
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "http/protobuf".to_owned(),
        ),
        // A generic protocol that the metrics-specific one overrides.
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer%20{TOKEN},X-Scope-OrgID={TENANT}"),
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ca.ca_cert.display().to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ca.client_cert.display().to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ca.client_key.display().to_string(),
        ),
    ];
    let output = run_to_idle(&spec, "it-tls-env", &env).await;
    assert_counts(&receiver, "it-tls-env", &want);
    assert_headers_and_gzip(&receiver, "content-encoding");
    assert!(!output.contains(TOKEN), "the token was printed:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_and_a_missing_client_certificate_are_named_as_the_cause() {
    let broker = broker_with_topics().await;
    let ca = TestCa::new().expect("test CA");
    let other = TestCa::new().expect("another CA");
    // Two minutes of event time: windows close while sliq runs, so it tries to export.
    produce_records(&broker, 12, 24_000).await;

    for protocol in ["grpc", "http/protobuf"] {
        let cases = [
            (
                "wrong-ca",
                &other.ca_cert,
                true,
                format!(
                    "certificate verify failed: the collector's certificate is not signed by a \
                     trusted CA; check export.otlp.tls.ca_file ({})",
                    other.ca_cert.display()
                ),
            ),
            (
                "no-client-cert",
                &ca.ca_cert,
                false,
                "the collector requires a client certificate and none was accepted; check \
                 export.otlp.tls.cert_file and key_file (not set: no client certificate was \
                 offered)"
                    .to_owned(),
            ),
        ];
        for (case, ca_file, client, cause) in cases {
            // TLS 1.3 refuses a missing client certificate after the client has finished its
            // handshake: the alert may arrive, or the client may only see the connection close
            // or its next write fail (seen on a loaded machine: "connection closed" over gRPC,
            // "broken pipe" over HTTP). Either way nothing reaches the receiver; the named cause
            // is required only when the alert arrives.
            let accepted = |text: &str| {
                text.contains(&cause)
                    || (case == "no-client-cert"
                        && text.contains("OTLP export to https://")
                        && (text.contains("connection closed") || text.contains("broken pipe")))
            };
            let receiver = match protocol {
                "grpc" => OtlpReceiver::start_grpc_tls(server_tls(&ca)).await,
                _ => OtlpReceiver::start_http_tls(server_tls(&ca)).await,
            }
            .expect("receiver");
            let export = tls_export(&receiver, protocol, ca_file, &ca, client);
            let group = format!("it-{case}-{}", protocol.replace('/', "-"));
            let (_dir, spec, _) = write_spec(&broker, &group, &export);
            let mut child = start(&spec, &group, &[], &[]);
            let output = capture(&mut child);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !accepted(&output.lock()) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Its stop would wait shutdown_timeout for the exports; the message is all we need.
            let _ = child.kill().await;
            let text = output.lock().clone();
            assert!(
                accepted(&text),
                "{protocol} {case}: no \"{cause}\" within 60 s in:\n{}",
                text.lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert_eq!(receiver.request_count(), 0, "{protocol} {case}");
            assert!(!text.contains(TOKEN), "the token was printed");
        }
    }
}
