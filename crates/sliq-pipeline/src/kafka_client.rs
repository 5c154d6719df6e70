//! Every Kafka client sliq makes (the group consumer, the dead-letter producer and its read-back
//! consumer, the metadata probe, the generator's producer) starts from [`client_config`], so TLS,
//! SASL and `source.kafka.options` reach all of them alike.
//!
//! librdkafka retries a refused login or a failed certificate check forever, as it retries a
//! broker that is down. Waiting cures an outage but never a wrong password: [`AccessWatch`] sees
//! librdkafka's errors in every client's context and recognises the refusals, so the run stops
//! with a message that says what to check, while outages are still waited out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use sliq_config::{KafkaConnection, KafkaSpec, SaslMechanism};
use tracing::warn;

use crate::error::PipelineError;
use crate::kafka_log::KafkaLog;
use crate::outage::human;

/// The brokers, security and `source.kafka.options` of `connection`, as librdkafka properties.
/// The options come last, so they win over sliq's choices (not over `tls`/`sasl`: the spec
/// refuses options that set those).
pub(crate) fn client_config(connection: KafkaConnection<'_>, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", connection.brokers)
        .set("client.id", client_id);
    if let Some(protocol) = connection.security_protocol() {
        config.set("security.protocol", protocol);
    }
    if let Some(tls) = connection.tls {
        match &tls.ca_file {
            Some(ca) => config.set("ssl.ca.location", ca.display().to_string()),
            // The vendored OpenSSL knows no system store of its own: librdkafka looks for one.
            None => config.set("ssl.ca.location", "probe"),
        };
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            config
                .set("ssl.certificate.location", cert.display().to_string())
                .set("ssl.key.location", key.display().to_string());
        }
        if let Some(password) = &tls.key_password {
            config.set("ssl.key.password", password.expose());
        }
    }
    if let Some(sasl) = connection.sasl {
        config
            .set("sasl.mechanism", sasl.mechanism.kafka_name())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose());
    }
    for (key, value) in connection.options.iter() {
        config.set(key, value);
    }
    config
}

/// Makes a client of `config`, with an error that names the spec key to fix and never shows the
/// value of a secret option.
pub(crate) fn create<C, T>(config: &ClientConfig, context: C) -> Result<T, PipelineError>
where
    C: ClientContext,
    T: FromClientConfigAndContext<C>,
{
    config
        .create_with_context(context)
        .map_err(|e| PipelineError::KafkaClient(describe_creation_error(&e, config)))
}

fn describe_creation_error(error: &KafkaError, config: &ClientConfig) -> String {
    match error {
        KafkaError::ClientCreation(reason)
            if reason.contains("ssl.key") && encrypted_key(config).is_some() =>
        {
            let path = encrypted_key(config).unwrap_or_default();
            let fix = if config.get("ssl.key.password").is_some() {
                "check source.kafka.tls.key_password"
            } else {
                "it is encrypted: set source.kafka.tls.key_password to its passphrase"
            };
            format!(
                "the private key in source.kafka.tls.key_file ({path}) cannot be decrypted: \
                 {fix} (librdkafka: {reason})"
            )
        }
        // Never the value: a misspelled `sasl.pasword` is still a password.
        KafkaError::ClientConfig(_, description, key, _) => format!(
            "librdkafka refused the property {key} ({description}); check source.kafka.options"
        ),
        KafkaError::ClientCreation(reason) => {
            let key = if reason.contains("ssl.key") || reason.contains("private key") {
                "source.kafka.tls.key_file (and key_password, for an encrypted key)"
            } else if reason.contains("ssl.certificate") {
                "source.kafka.tls.cert_file"
            } else if reason.contains("ssl.ca") {
                "source.kafka.tls.ca_file"
            } else {
                "source.kafka.tls, source.kafka.sasl and source.kafka.options"
            };
            format!("cannot make a Kafka client: {reason}; check {key}")
        }
        other => format!("cannot make a Kafka client: {other}"),
    }
}

/// The client's key file when it holds an encrypted key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a
/// traditional PEM key with `Proc-Type: 4,ENCRYPTED`). OpenSSL says only "PEM lib" when it
/// cannot decrypt one, so the file itself tells a wrong passphrase from a broken key.
fn encrypted_key(config: &ClientConfig) -> Option<&str> {
    let path = config.get("ssl.key.location")?;
    std::fs::read_to_string(path)
        .ok()
        .filter(|pem| pem.contains("ENCRYPTED"))
        .map(|_| path)
}

/// What the refusal messages name: the keys and values a person checks.
#[derive(Debug, Clone)]
struct Credentials {
    brokers: String,
    mechanism: Option<SaslMechanism>,
    username: Option<String>,
    /// Where the password came from: `the password in KAFKA_PASSWORD`, or the key.
    password_source: String,
    ca_file: Option<PathBuf>,
    /// `source.kafka.tls.cert_file`, when this client offers a certificate.
    cert_file: Option<PathBuf>,
    tls: bool,
}

/// Watches librdkafka's errors for refusals that waiting cannot cure; the first one is kept.
#[derive(Debug)]
pub(crate) struct AccessWatch {
    credentials: Credentials,
    refused: Mutex<Option<String>>,
    /// A broker (`host:port`) that closed a plaintext connection at its first request, with
    /// librdkafka's words: a TLS port, if [`speaks_tls`] says so.
    closed_early: Mutex<Option<(String, String)>>,
}

impl AccessWatch {
    pub(crate) fn new(connection: KafkaConnection<'_>) -> Arc<Self> {
        let sasl = connection.sasl;
        let password_source = match sasl.and_then(|s| s.password_variable.as_deref()) {
            Some(variable) => format!("the password in {variable}"),
            None => "source.kafka.sasl.password".to_owned(),
        };
        Arc::new(AccessWatch {
            credentials: Credentials {
                brokers: connection.brokers.to_owned(),
                mechanism: sasl.map(|s| s.mechanism),
                username: sasl.map(|s| s.username.clone()),
                password_source,
                ca_file: connection.tls.and_then(|t| t.ca_file.clone()),
                cert_file: connection.tls.and_then(|t| t.cert_file.clone()),
                tls: connection.tls.is_some()
                    || connection
                        .options
                        .get("security.protocol")
                        .is_some_and(|p| p.to_ascii_uppercase().contains("SSL")),
            },
            refused: Mutex::new(None),
            closed_early: Mutex::new(None),
        })
    }

    /// Looks at one of librdkafka's errors; `true` when it is a refusal (kept for [`refused`]).
    ///
    /// [`refused`]: AccessWatch::refused
    pub(crate) fn observe(&self, error: &KafkaError, reason: &str) -> bool {
        self.observe_log(reason);
        let Some(message) = refusal(&self.credentials, error.rdkafka_error_code(), reason) else {
            return false;
        };
        self.refused.lock().get_or_insert(message);
        true
    }

    /// Looks at one of librdkafka's log lines: a disconnect is reported only there.
    pub(crate) fn observe_log(&self, message: &str) {
        if closed_at_first_request(&self.credentials, message) {
            let broker = broker_of(message, &self.credentials.brokers).to_owned();
            *self.closed_early.lock() = Some((broker, message.to_owned()));
        }
    }

    /// The first refusal seen, worded for a person.
    pub(crate) fn refused(&self) -> Option<String> {
        self.refused.lock().clone()
    }

    /// `Err` once a refusal was seen: the run stops there.
    pub(crate) fn check(&self) -> Result<(), PipelineError> {
        match self.refused() {
            Some(message) => Err(PipelineError::KafkaRefused(message)),
            None => Ok(()),
        }
    }
}

/// The broker an error or log line came from (`sasl_ssl://127.0.0.1:9093/bootstrap: …` or
/// `[thrd:…]: 127.0.0.1:9093/bootstrap: …` → `127.0.0.1:9093`), or the configured brokers.
fn broker_of<'a>(reason: &'a str, brokers: &'a str) -> &'a str {
    let reason = match reason.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ").map_or(rest, |(_, text)| text),
        None => reason,
    };
    let named = reason.split_once("://").map_or(reason, |(_, rest)| rest);
    named
        .split_once('/')
        .map(|(address, _)| address)
        .filter(|address| address.contains(':') && !address.contains(' '))
        .unwrap_or(brokers)
}

/// The message for an error that no wait will cure, or `None` (an outage, or anything else).
/// Only unmistakable symptoms count: a TLS handshake cut by a disconnect, say, is what a broker
/// restarting looks like too.
fn refusal(c: &Credentials, code: Option<RDKafkaErrorCode>, reason: &str) -> Option<String> {
    let at = broker_of(reason, &c.brokers);
    let lower = reason.to_ascii_lowercase();
    // The broker's TLS alerts about this client's certificate (OpenSSL: "tlsv13 alert
    // certificate required"). Under TLS 1.3 they come after the client finished its handshake,
    // so they may arrive as a transport error rather than an SSL one.
    if let Some(words) = client_certificate_refusal(c, at, &lower) {
        return Some(format!("{words} (librdkafka: {reason})"));
    }
    if code == Some(RDKafkaErrorCode::SSL) || lower.contains("ssl handshake failed") {
        if lower.contains("hostname mismatch") || lower.contains("ip address mismatch") {
            return Some(format!(
                "the certificate of Kafka at {at} does not name the address sliq connected to: \
                 list the brokers in source.kafka.brokers by a name or IP in their certificates \
                 (librdkafka: {reason})"
            ));
        }
        if lower.contains("certificate verify failed") {
            let ca = match &c.ca_file {
                Some(path) => format!(
                    "the CA in source.kafka.tls.ca_file ({}) did not sign it: set ca_file to \
                     the CA that signed the brokers' certificates",
                    path.display()
                ),
                None => "no CA this machine trusts signed it: set source.kafka.tls.ca_file to \
                         the CA that signed the brokers' certificates"
                    .to_owned(),
            };
            return Some(format!(
                "Kafka at {at} presented a certificate that could not be verified: {ca} \
                 (librdkafka: {reason})"
            ));
        }
        if [
            "wrong version number",
            "packet length too long",
            "record layer failure",
        ]
        .iter()
        .any(|symptom| lower.contains(symptom))
        {
            return Some(format!(
                "Kafka at {at} does not speak TLS on this port: remove source.kafka.tls, or use \
                 the brokers' TLS port (librdkafka: {reason})"
            ));
        }
        return None;
    }
    // A connection lost during the login is reported as an authentication error too ("SASL
    // SCRAM-SHA-512 mechanism handshake failed: Local: Broker transport failure", seen through
    // the rig's mTLS proxy); nothing was refused, so it is waited out.
    let lost_connection = lower.contains("broker transport failure");
    if (code == Some(RDKafkaErrorCode::Authentication)
        || code == Some(RDKafkaErrorCode::SaslAuthenticationFailed))
        && !lost_connection
    {
        if lower.contains("unsupported sasl mechanism") || lower.contains("no supported mech") {
            return Some(format!(
                "Kafka at {at} does not offer the login mechanism asked for: set \
                 source.kafka.sasl.mechanism to one it offers (librdkafka: {reason})"
            ));
        }
        return Some(match (&c.mechanism, &c.username) {
            (Some(mechanism), Some(user)) => format!(
                "Kafka at {at} refused the {mechanism} login for user `{user}`: check \
                 source.kafka.sasl.username and {} (librdkafka: {reason})",
                c.password_source
            ),
            _ => format!(
                "Kafka at {at} refused the login: check the sasl properties in \
                 source.kafka.options, or set source.kafka.sasl (librdkafka: {reason})"
            ),
        });
    }
    None
}

/// What to check when the broker's TLS alert is about this client's certificate.
fn client_certificate_refusal(c: &Credentials, at: &str, lower: &str) -> Option<String> {
    const REFUSED: [&str; 6] = [
        "alert bad certificate",
        "alert unknown ca",
        "alert certificate unknown",
        "alert unsupported certificate",
        "alert certificate expired",
        "alert access denied",
    ];
    let required = lower.contains("alert certificate required");
    if !required && !REFUSED.iter().any(|alert| lower.contains(alert)) {
        return None;
    }
    Some(match &c.cert_file {
        None => format!(
            "Kafka at {at} requires a client certificate: set source.kafka.tls.cert_file and \
             key_file to a certificate signed by a CA the brokers trust, and its key"
        ),
        Some(cert) => format!(
            "Kafka at {at} refused this client's certificate: check that \
             source.kafka.tls.cert_file ({}) is signed by a CA the brokers trust and has not \
             expired, and that key_file is its key",
            cert.display()
        ),
    })
}

/// A client without TLS whose connection the broker closed at the first request (ApiVersion):
/// what a TLS port does to a plaintext client, but also what a broker going away can look like.
/// [`probe`] settles which by trying TLS on that port.
fn closed_at_first_request(c: &Credentials, reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    !c.tls
        && (lower.contains("incorrect security.protocol")
            || (lower.contains("state apiversion_query")
                && (lower.contains("disconnected") || lower.contains("closed"))))
}

/// The context of the clients that do not read the group: librdkafka's lines throttled, and its
/// errors watched for refusals.
#[derive(Debug)]
pub(crate) struct WatchedContext {
    pub(crate) log: KafkaLog,
    pub(crate) watch: Arc<AccessWatch>,
}

impl WatchedContext {
    pub(crate) fn new(watch: &Arc<AccessWatch>) -> Self {
        WatchedContext {
            log: KafkaLog::default(),
            watch: Arc::clone(watch),
        }
    }
}

impl ClientContext for WatchedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.watch.observe_log(log_message);
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !self.watch.observe(&error, reason) {
            self.log.error(&error, reason);
        }
    }
}

impl ConsumerContext for WatchedContext {}

/// How long [`probe`] tries before leaving the brokers to the run's own waiting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the brokers answered a metadata request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Answered,
    /// No answer and no refusal within the time: an outage, waited out like any other.
    NoAnswer,
}

/// Asks the brokers for metadata once, with every credential the run uses, so a refused login
/// or certificate stops the start within seconds instead of after the first waits.
fn probe(
    connection: KafkaConnection<'_>,
    watch: &Arc<AccessWatch>,
    timeout: Duration,
) -> Result<Probe, PipelineError> {
    let config = client_config(connection, "sliq-probe");
    let client: BaseConsumer<WatchedContext> = create(&config, WatchedContext::new(watch))?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        let answered = client
            .fetch_metadata(None, Duration::from_millis(500))
            .is_ok();
        // Serves the errors librdkafka queued meanwhile to the context, which watches them.
        let _ = client.poll(Duration::ZERO);
        watch.check()?;
        if answered {
            return Ok(Probe::Answered);
        }
        let closed_early = watch.closed_early.lock().take();
        if let Some((broker, reason)) = closed_early
            && speaks_tls(connection, &broker)?
        {
            return Err(PipelineError::KafkaRefused(format!(
                "Kafka at {broker} closed the connection at the first request, and its port \
                 speaks TLS: add source.kafka.tls (tls: {{}} trusts the system's CAs; tls: \
                 {{ca_file: ca.pem}} a CA of your own), or use the brokers' plaintext port \
                 (librdkafka: {reason})"
            )));
        }
    }
    Ok(Probe::NoAnswer)
}

/// librdkafka's errors and log lines, kept (for [`speaks_tls`]) and shown only at debug level.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<String>>);

impl ClientContext for Recorded {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", "{fac} {log_message}");
        self.0.lock().push(log_message.to_owned());
    }

    fn error(&self, _error: KafkaError, reason: &str) {
        self.0.lock().push(reason.to_owned());
    }
}

impl ConsumerContext for Recorded {}

/// Whether `broker` completes a TLS handshake: a client with TLS (certificate not checked: only
/// the port's protocol is in question) gets an answer, or gets past the handshake before failing.
fn speaks_tls(connection: KafkaConnection<'_>, broker: &str) -> Result<bool, PipelineError> {
    let mut config = client_config(
        KafkaConnection {
            brokers: broker,
            ..connection
        },
        "sliq-probe-tls",
    );
    config
        .set("security.protocol", "SSL")
        .set("enable.ssl.certificate.verification", "false")
        .set("ssl.endpoint.identification.algorithm", "none");
    let client: BaseConsumer<Recorded> = create(&config, Recorded::default())?;
    let answered = client.fetch_metadata(None, Duration::from_secs(2)).is_ok();
    let _ = client.poll(Duration::ZERO);
    let errors = client.context().0.lock();
    Ok(answered
        || errors.iter().any(|reason| {
            let lower = reason.to_ascii_lowercase();
            !lower.contains("ssl handshake failed")
                && ["state apiversion_query", "state auth", "state up"]
                    .iter()
                    .any(|state| lower.contains(state))
        }))
}

/// The probe before a run or `sliq gen`: a refusal stops it, silence is waited out.
pub(crate) fn probe_before_start(
    connection: KafkaConnection<'_>,
    watch: &Arc<AccessWatch>,
) -> Result<(), PipelineError> {
    if probe(connection, watch, PROBE_TIMEOUT)? == Probe::NoAnswer {
        warn!(
            "Kafka at {} did not answer within {}; waiting for it as for any outage",
            connection.brokers,
            human(PROBE_TIMEOUT)
        );
    }
    Ok(())
}

/// For `sliq validate`: makes a client of the spec's settings, so librdkafka loads every
/// certificate and key now (a key that does not match its certificate, or a wrong
/// `key_password`, is refused here rather than at the first connection).
pub fn check_kafka_client(kafka: &KafkaSpec) -> Result<(), PipelineError> {
    let connection = kafka.connection();
    let watch = AccessWatch::new(connection);
    let _client: BaseConsumer<WatchedContext> = create(
        &client_config(connection, "sliq-validate"),
        WatchedContext::new(&watch),
    )?;
    Ok(())
}

/// For `sliq validate --connect`: asks the brokers for metadata with the spec's credentials;
/// `Ok(false)` when they did not answer in time (down, or unreachable from here).
pub fn check_kafka_connection(kafka: &KafkaSpec) -> Result<bool, PipelineError> {
    let connection = kafka.connection();
    let watch = AccessWatch::new(connection);
    Ok(probe(connection, &watch, PROBE_TIMEOUT)? == Probe::Answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(tls: bool) -> Credentials {
        Credentials {
            brokers: "k1:9093,k2:9093".into(),
            mechanism: Some(SaslMechanism::ScramSha512),
            username: Some("sliq".into()),
            password_source: "the password in KAFKA_PASSWORD".into(),
            ca_file: tls.then(|| PathBuf::from("/etc/sliq/ca.pem")),
            cert_file: None,
            tls,
        }
    }

    #[test]
    fn a_missing_or_refused_client_certificate_names_the_keys() {
        // As librdkafka 2.12 reports it under TLS 1.3 (measured against the rig's proxy).
        let reason = "ssl://127.0.0.1:9093/bootstrap: Receive failed: \
                      ssl/record/rec_layer_s3.c:918:ssl3_read_bytes error:0A00045C:SSL \
                      routines::tlsv13 alert certificate required: SSL alert number 116 (after \
                      0ms in state APIVERSION_QUERY)";
        let code = Some(RDKafkaErrorCode::BrokerTransportFailure);
        let message = refusal(&credentials(true), code, reason).unwrap();
        assert!(
            message.starts_with(
                "Kafka at 127.0.0.1:9093 requires a client certificate: set \
                 source.kafka.tls.cert_file and key_file"
            ),
            "{message}"
        );
        let with_cert = Credentials {
            cert_file: Some(PathBuf::from("/etc/sliq/client.pem")),
            ..credentials(true)
        };
        let reason = "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000418:SSL \
                      routines::tlsv1 alert unknown ca: SSL alert number 48";
        let message = refusal(&with_cert, Some(RDKafkaErrorCode::SSL), reason).unwrap();
        assert!(
            message.starts_with(
                "Kafka at 127.0.0.1:9093 refused this client's certificate: check that \
                 source.kafka.tls.cert_file (/etc/sliq/client.pem) is signed"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_refused_login_names_the_broker_the_user_and_the_variable() {
        let reason = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: SASL \
                      SCRAM authentication failed: broker responded with invalid-proof";
        let message = refusal(
            &credentials(true),
            Some(RDKafkaErrorCode::Authentication),
            reason,
        )
        .unwrap();
        assert!(
            message.starts_with(
                "Kafka at 127.0.0.1:9093 refused the SCRAM-SHA-512 login for user `sliq`: check \
                 source.kafka.sasl.username and the password in KAFKA_PASSWORD"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_ca_names_the_ca_file() {
        let reason = "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL \
                      routines::certificate verify failed: broker certificate could not be \
                      verified";
        let message = refusal(&credentials(true), Some(RDKafkaErrorCode::SSL), reason).unwrap();
        assert!(
            message.contains("Kafka at 127.0.0.1:9093 presented a certificate")
                && message.contains("source.kafka.tls.ca_file (/etc/sliq/ca.pem) did not sign"),
            "{message}"
        );
    }

    #[test]
    fn a_connection_closed_at_the_first_request_is_only_a_suspicion() {
        let reason = "127.0.0.1:9093/bootstrap: Disconnected: connection closed by peer: receive \
                      0 after POLLIN (after 2ms in state APIVERSION_QUERY)";
        let code = Some(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(refusal(&credentials(false), code, reason), None);
        assert!(closed_at_first_request(&credentials(false), reason));
        assert_eq!(broker_of(reason, "k1:9093"), "127.0.0.1:9093");
        let logged = format!("[thrd:127.0.0.1:9093/bootstrap]: {reason}");
        assert_eq!(broker_of(&logged, "k1:9093"), "127.0.0.1:9093");
        assert_eq!(broker_of("1/1 brokers are down", "k1:9093"), "k1:9093");
        // A client with TLS configured is not asked to add it.
        assert!(!closed_at_first_request(&credentials(true), reason));
    }

    #[test]
    fn outages_are_not_refusals() {
        for (code, reason) in [
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection \
                 refused (after 0ms in state CONNECT)",
            ),
            (RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down"),
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                "127.0.0.1:9092/1: ApiVersionRequest failed: Local: Timed out: probably due to \
                 broker version < 0.10 (see api.version.request configuration)",
            ),
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: Disconnected: connecting \
                 to a PLAINTEXT broker listener? (after 3ms in state SSL_HANDSHAKE)",
            ),
            (
                RDKafkaErrorCode::MessageTimedOut,
                "127.0.0.1:9092/1: 3 request(s) timed out: disconnect",
            ),
            (
                RDKafkaErrorCode::Authentication,
                "GroupCoordinator: SASL SCRAM-SHA-512 mechanism handshake failed: Local: Broker \
                 transport failure: broker's supported mechanisms: (n/a) (after 0ms in state \
                 DOWN)",
            ),
        ] {
            assert_eq!(
                refusal(&credentials(true), Some(code), reason),
                None,
                "{reason}"
            );
            assert_eq!(
                refusal(&credentials(false), Some(code), reason),
                None,
                "{reason}"
            );
        }
    }

    #[test]
    fn an_encrypted_key_that_does_not_open_names_key_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = KafkaError::ClientCreation(
            "ssl.key.location failed: error:0A080009:SSL routines::PEM lib".into(),
        );
        let mut config = ClientConfig::new();
        config.set("ssl.key.location", key.display().to_string());
        let without = describe_creation_error(&error, &config);
        assert!(
            without.starts_with(&format!(
                "the private key in source.kafka.tls.key_file ({}) cannot be decrypted: it is \
                 encrypted: set source.kafka.tls.key_password",
                key.display()
            )),
            "{without}"
        );
        config.set("ssl.key.password", "wrong");
        let with = describe_creation_error(&error, &config);
        assert!(
            with.contains("cannot be decrypted: check source.kafka.tls.key_password"),
            "{with}"
        );
        // A plain key that fails is not called encrypted.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
        let plain = describe_creation_error(&error, &config);
        assert!(
            plain.ends_with(
                "check source.kafka.tls.key_file (and key_password, for an encrypted key)"
            ),
            "{plain}"
        );
    }

    #[test]
    fn option_values_never_reach_a_creation_error() {
        // Misspelled, so librdkafka refuses it; a misspelled password is still a password.
        let mut config = ClientConfig::new();
        config.set("sasl.pasword", "hunter2");
        let Err(e) = create::<_, BaseConsumer<WatchedContext>>(
            &config,
            WatchedContext::new(&AccessWatch::new(KafkaConnection::plaintext("k:1"))),
        ) else {
            panic!("librdkafka took an unknown property");
        };
        let e = e.to_string();
        assert!(
            e.contains("sasl.pasword") && e.contains("check source.kafka.options"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}
