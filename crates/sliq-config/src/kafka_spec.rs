//! `source.kafka`: the brokers, the group, and how sliq proves who it is to a secured cluster
//! (`tls`, `sasl`). The security keys are checked here, files included, so a spec that cannot
//! connect is refused by `sliq validate` with the key and the fix rather than by a broker later.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::Deserializer;

use crate::spec::key;
use crate::{KeyRef, Secret};

/// The Kafka consumer group sliq joins.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    /// Bootstrap servers, comma-separated `host:port`; empty entries are refused.
    #[serde(deserialize_with = "brokers")]
    #[schemars(schema_with = "brokers_schema")]
    pub brokers: String,
    /// The topics whose records are judged, e.g. `[ai-requests]`.
    #[schemars(length(min = 1))]
    pub topics: Vec<String>,
    /// The consumer group; instances with the same group share the partitions.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Where refused records go, with their original bytes and the reason in headers.
    pub dead_letter_topic: String,
    /// Records larger than this are dead-lettered unparsed.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// TLS to the brokers: present means every connection is encrypted and the brokers'
    /// certificates are verified.
    pub tls: Option<KafkaTlsSpec>,
    /// A SASL login (user and password) on every connection.
    pub sasl: Option<SaslSpec>,
    /// Extra librdkafka properties, passed as they are.
    #[serde(default)]
    pub options: KafkaOptions,
}

/// What every Kafka client needs to reach the cluster: the part of [`KafkaSpec`] that is not
/// about the group or topics (`sliq gen` builds one from its flags alone).
#[derive(Debug, Clone, Copy)]
pub struct KafkaConnection<'a> {
    pub brokers: &'a str,
    pub tls: Option<&'a KafkaTlsSpec>,
    pub sasl: Option<&'a SaslSpec>,
    pub options: &'a KafkaOptions,
}

impl<'a> KafkaConnection<'a> {
    /// A connection without TLS, SASL or options.
    pub fn plaintext(brokers: &'a str) -> Self {
        static NO_OPTIONS: KafkaOptions = KafkaOptions(BTreeMap::new());
        KafkaConnection {
            brokers,
            tls: None,
            sasl: None,
            options: &NO_OPTIONS,
        }
    }

    /// librdkafka's `security.protocol` for the spec's `tls` and `sasl`; `None` when neither is
    /// set (plaintext, unless `options` says otherwise).
    pub fn security_protocol(&self) -> Option<&'static str> {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => None,
            (true, false) => Some("SSL"),
            (true, true) => Some("SASL_SSL"),
            (false, true) => Some("SASL_PLAINTEXT"),
        }
    }
}

impl<'a> From<&'a str> for KafkaConnection<'a> {
    fn from(brokers: &'a str) -> Self {
        KafkaConnection::plaintext(brokers)
    }
}

impl<'a> From<&'a String> for KafkaConnection<'a> {
    fn from(brokers: &'a String) -> Self {
        KafkaConnection::plaintext(brokers)
    }
}

/// Certificates for TLS to the brokers (PEM files).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaTlsSpec {
    /// The CA that signed the brokers' certificates; absent: the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate, for brokers that require one (mTLS); with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// The passphrase of an encrypted `key_file`.
    pub key_password: Option<Secret>,
}

/// A SASL login.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslSpec {
    /// `scram-sha-512`, `scram-sha-256`, or `plain` (which sends the password, so only over TLS).
    pub mechanism: SaslMechanism,
    /// The SASL user name.
    pub username: String,
    /// The password, normally from the environment: `${KAFKA_PASSWORD}`. Never shown.
    pub password: Secret,
    /// SASL on a connection without TLS: the login (and with `plain`, the password itself)
    /// crosses the network readable, so it is refused unless asked for by name.
    #[serde(default)]
    pub without_tls: bool,
    /// The environment variable the password came from (`${KAFKA_PASSWORD}`), to name it when
    /// the brokers refuse the login.
    #[serde(skip)]
    pub password_variable: Option<String>,
}

/// How the password is proven: `plain` sends it (so only inside TLS), SCRAM proves it without
/// sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum SaslMechanism {
    #[serde(rename = "plain")]
    Plain,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka and brokers use (`sasl.mechanism`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kafka_name())
    }
}

/// librdkafka properties, passed as they are, e.g. `fetch.wait.max.ms: 100`. Values of keys that
/// name a password, secret, token or private key are never shown.
// (In no `Debug` form: see the impl below.)
#[derive(Clone, Default, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct KafkaOptions(pub BTreeMap<String, String>);

impl KafkaOptions {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the value of librdkafka property `key` must never be shown.
    pub fn is_secret(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        [
            "password",
            "secret",
            "token",
            "key.pem",
            "jaas",
            "oauthbearer.config",
        ]
        .iter()
        .any(|word| key.contains(word))
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if KafkaOptions::is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// librdkafka properties that `tls` and `sasl` set; `options` may not set them too.
const SECURITY_PROPERTIES: [&str; 9] = [
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
];

impl KafkaSpec {
    /// The brokers and how to reach them.
    pub fn connection(&self) -> KafkaConnection<'_> {
        KafkaConnection {
            brokers: &self.brokers,
            tls: self.tls.as_ref(),
            sasl: self.sasl.as_ref(),
            options: &self.options,
        }
    }

    /// Checks the security keys, reading every file they name.
    pub(crate) fn check_security(&self) -> Result<(), (KeyRef, String)> {
        if (self.tls.is_some() || self.sasl.is_some())
            && let Some(property) = SECURITY_PROPERTIES
                .iter()
                .find(|p| self.options.contains_key(p))
        {
            return Err((
                key(
                    &format!("source.kafka.options.{property}"),
                    Some(&format!("{property}:")),
                ),
                format!(
                    "{property} is set by source.kafka.tls and source.kafka.sasl; remove it \
                     from options"
                ),
            ));
        }
        if let Some(sasl) = &self.sasl {
            if sasl.username.trim().is_empty() {
                return Err((
                    key("source.kafka.sasl.username", Some("username:")),
                    "the user name is empty; write the Kafka user sliq logs in as, e.g. \
                     username: sliq"
                        .into(),
                ));
            }
            match (self.tls.is_some(), sasl.without_tls) {
                (false, false) => {
                    return Err((
                        key("source.kafka.sasl", Some("sasl:")),
                        format!(
                            "a {} login without TLS crosses the network readable; add \
                             source.kafka.tls (tls: {{}} trusts the system's CAs, or tls: \
                             {{ca_file: ca.pem}}), or write without_tls: true under sasl if the \
                             network is trusted",
                            sasl.mechanism
                        ),
                    ));
                }
                (true, true) => {
                    return Err((
                        key("source.kafka.sasl.without_tls", Some("without_tls:")),
                        "without_tls: true contradicts source.kafka.tls; remove one of them".into(),
                    ));
                }
                _ => {}
            }
        }
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err((
                    key("source.kafka.tls.key_file", Some("cert_file:")),
                    "a client certificate needs its private key; add key_file: (PEM) next to \
                     cert_file"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    key("source.kafka.tls.cert_file", Some("key_file:")),
                    "a private key needs its client certificate; add cert_file: (PEM) next to \
                     key_file"
                        .into(),
                ));
            }
            _ => {}
        }
        if tls.key_password.is_some() && tls.key_file.is_none() {
            return Err((
                key("source.kafka.tls.key_password", Some("key_password:")),
                "key_password unlocks key_file, which is not set; add key_file and cert_file, or \
                 remove key_password"
                    .into(),
            ));
        }
        let files = [
            (
                "ca_file",
                &tls.ca_file,
                "the PEM file of the CA that signed the brokers' certificates",
            ),
            ("cert_file", &tls.cert_file, "the client certificate (PEM)"),
            ("key_file", &tls.key_file, "the client's private key (PEM)"),
        ];
        for (name, path, what) in files {
            if let Some(path) = path {
                check_readable(path).map_err(|problem| {
                    (
                        key(
                            &format!("source.kafka.tls.{name}"),
                            Some(&format!("{name}:")),
                        ),
                        format!("{problem}; write the path of {what}"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// `Err` says why `path` cannot serve as a PEM file.
fn check_readable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return Err(format!(
            "{shown} is not a PEM file (no -----BEGIN line): sliq takes certificates and keys \
             as PEM"
        ));
    }
    Ok(())
}

/// The environment variable named by `${NAME}` in the value of `field:` inside the `parent:`
/// block of the raw spec text (before interpolation), e.g. `KAFKA_PASSWORD` for `password:` under
/// `sasl:`. Only used to word an error, so a spec written some other way just gets no name.
pub(crate) fn variable_of(raw: &str, parent: &str, field: &str) -> Option<String> {
    let start = raw.find(&format!("{parent}:"))?;
    let after = &raw[start..];
    let at = after.match_indices(&format!("{field}:")).find(|(i, _)| {
        after[..*i]
            .chars()
            .last()
            .is_some_and(|c| c.is_whitespace() || c == '{' || c == ',')
    })?;
    let value = after[at.0 + field.len() + 1..].trim_start_matches([' ', '"', '\'']);
    let name = value.strip_prefix("${")?;
    let end = name.find(['}', ':'])?;
    Some(name[..end].to_owned())
}

fn default_group() -> String {
    "sliq".into()
}
fn default_max_record_bytes() -> usize {
    1 << 20
}

/// What [`brokers`] accepts: text whose comma-separated entries each hold more than spaces.
fn brokers_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The bootstrap servers, comma-separated host:port, e.g. \
            kafka-1:9092,kafka-2:9092.",
        "type": "string",
        "pattern": r"^[^,]*\S[^,]*(?:,[^,]*\S[^,]*)*$"
    })
}

fn brokers<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bootstrap servers as host:port[,host:port]")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
            const FIX: &str = "write host:port[,host:port], e.g. 127.0.0.1:9092";
            if s.trim().is_empty() {
                return Err(E::custom(format!("brokers is empty; {FIX}")));
            }
            if s.split(',').any(|b| b.trim().is_empty()) {
                return Err(E::custom(format!(
                    "{s:?} has an empty entry between commas; {FIX}"
                )));
            }
            Ok(s.to_owned())
        }
        // `brokers:` with nothing after it (e.g. an empty `${BROKERS:-}`) is YAML null.
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            self.visit_str("")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<String, E> {
            self.visit_str("")
        }
    }
    d.deserialize_any(Visitor)
}
