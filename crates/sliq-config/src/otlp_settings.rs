//! What the OTLP exporter is to do, resolved once from the spec and the standard
//! `OTEL_EXPORTER_OTLP_*` variables: a key the spec sets wins, then the metrics-specific variable,
//! then the generic one, then sliq's default. The environment arrives as a lookup function, so
//! these rules are tested without touching the process's own.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Compression, OtlpSpec, Protocol, Secret};

/// Where a setting came from (a spec key or a variable); every message about it names this.
pub type Origin = &'static str;

/// A setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// The exporter's settings after the spec and the environment are merged.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub protocol: Protocol,
    /// gRPC: the collector's URL; HTTP: the full URL requests are posted to; file: the path.
    pub endpoint: Sourced<String>,
    pub timeout: Duration,
    pub headers: Vec<Header>,
    pub compression: Compression,
    /// Set exactly when the endpoint is `https://`.
    pub tls: Option<TlsSettings>,
}

/// One header (gRPC metadata) sent with every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Secret,
    pub origin: Origin,
}

/// TLS towards an `https://` collector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA that signed the collector's certificate; `None`: the system's roots.
    pub ca_file: Option<Sourced<PathBuf>>,
    /// This client's certificate and key, for a collector that asks for one (mTLS).
    pub client: Option<ClientCertificate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: Sourced<PathBuf>,
    pub key_file: Sourced<PathBuf>,
}

impl OtlpSettings {
    /// One line for `sliq validate` and the start log: where, how, with which header names (their
    /// values are never shown).
    pub fn summary(&self) -> String {
        let protocol = match self.protocol {
            Protocol::Grpc => "OTLP/gRPC",
            Protocol::HttpProtobuf => "OTLP/HTTP protobuf",
            Protocol::File => "OTLP/JSON lines",
        };
        let mut out = format!(
            "{protocol} to {} (from {})",
            self.endpoint.value, self.endpoint.origin
        );
        if self.protocol == Protocol::File {
            return out;
        }
        if let Some(tls) = &self.tls {
            let ca = match &tls.ca_file {
                Some(ca) => format!("CA {}", ca.value.display()),
                None => "the system's CAs".to_owned(),
            };
            let client = match &tls.client {
                Some(c) => format!(", client certificate {}", c.cert_file.value.display()),
                None => String::new(),
            };
            out.push_str(&format!(", TLS with {ca}{client}"));
        }
        if self.compression == Compression::Gzip {
            out.push_str(", gzip");
        }
        out.push_str(&format!(
            ", timeout {}",
            humantime::format_duration(self.timeout)
        ));
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(|h| h.name.as_str()).collect();
            out.push_str(&format!(", headers {}", names.join(", ")));
        }
        out
    }
}

/// A setting that cannot be used; names the key or variable and what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpSettingsError {
    #[error(
        "{origin}: {value:?} is not an http:// or https:// URL ({detail}); write e.g. \
         https://collector:4317"
    )]
    BadEndpoint {
        origin: Origin,
        value: String,
        detail: String,
    },
    /// The endpoint itself is not shown: its password would be.
    #[error(
        "{origin}: the endpoint carries a user name or password, which would show wherever the \
         endpoint is printed (logs, sliq validate); remove it and send the credentials as a \
         header instead (export.otlp.headers, e.g. Authorization: Basic ..., or \
         OTEL_EXPORTER_OTLP_HEADERS)"
    )]
    CredentialsInEndpoint { origin: Origin },
    #[error("{origin}: {value:?} is not a protocol sliq sends; write grpc or http/protobuf")]
    BadProtocol { origin: Origin, value: String },
    #[error("{origin}: {value:?} is not a whole number of milliseconds; write e.g. 10000")]
    BadTimeout { origin: Origin, value: String },
    #[error("{origin}: {value:?} is not a compression sliq knows; write gzip or none")]
    BadCompression { origin: Origin, value: String },
    /// The entry itself is not shown: it may hold a token.
    #[error(
        "{origin}: entry {position} is not name=value with a URL-encoded value; write \
         comma-separated pairs such as Authorization=Bearer%20TOKEN,X-Scope-OrgID=tenant"
    )]
    BadHeaderEntry { origin: Origin, position: usize },
    #[error(
        "{set} is set but {missing} is not: a client certificate needs its key; set both or neither"
    )]
    HalfClientCertificate { set: Origin, missing: Origin },
    #[error(
        "{origin} is set but the endpoint {endpoint} (from {endpoint_origin}) does not start \
         with https://; TLS settings need an https:// endpoint"
    )]
    TlsWithoutHttps {
        origin: Origin,
        endpoint: String,
        endpoint_origin: Origin,
    },
}

/// One standard variable in its two spellings; the metrics-specific one wins.
#[derive(Debug, Clone, Copy)]
struct Variable {
    metrics: &'static str,
    generic: &'static str,
}

/// Both spellings of `OTEL_EXPORTER_OTLP_<suffix>`.
macro_rules! variable {
    ($suffix:literal) => {
        Variable {
            metrics: concat!("OTEL_EXPORTER_OTLP_METRICS_", $suffix),
            generic: concat!("OTEL_EXPORTER_OTLP_", $suffix),
        }
    };
}

const ENDPOINT: Variable = variable!("ENDPOINT");
const PROTOCOL: Variable = variable!("PROTOCOL");
const HEADERS: Variable = variable!("HEADERS");
const TIMEOUT: Variable = variable!("TIMEOUT");
const COMPRESSION: Variable = variable!("COMPRESSION");
const CERTIFICATE: Variable = variable!("CERTIFICATE");
const CLIENT_CERTIFICATE: Variable = variable!("CLIENT_CERTIFICATE");
const CLIENT_KEY: Variable = variable!("CLIENT_KEY");

/// A variable's value, which spelling gave it, and whether that was the metrics-specific one.
struct Found {
    value: String,
    origin: Origin,
    metrics_specific: bool,
}

impl Variable {
    /// An empty value counts as unset, as in the OTel SDKs.
    fn read(self, env: &dyn Fn(&str) -> Option<String>) -> Option<Found> {
        [(self.metrics, true), (self.generic, false)]
            .into_iter()
            .find_map(|(name, metrics_specific)| {
                env(name)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(|value| Found {
                        value,
                        origin: name,
                        metrics_specific,
                    })
            })
    }
}

const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
const DEFAULT_HTTP_URL: &str = "http://127.0.0.1:4318/v1/metrics";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl OtlpSpec {
    /// Merges the spec with the `OTEL_EXPORTER_OTLP_*` variables `env` returns (the spec wins
    /// where it sets a key; `_METRICS_` variables win over generic ones). Headers merge by name:
    /// the spec's, then the variable's for names the spec does not set. TLS variables are ignored
    /// for an endpoint that is not `https://` (as the OTel SDKs do); TLS keys in the spec are
    /// refused there.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OtlpSettings, OtlpSettingsError> {
        let env: &dyn Fn(&str) -> Option<String> = &env;
        let raw_endpoint = match &self.endpoint {
            Some(e) => Some((e.trim().to_owned(), "export.otlp.endpoint", None)),
            None => ENDPOINT
                .read(env)
                .map(|f| (f.value, f.origin, Some(f.metrics_specific))),
        };
        let protocol = match (&raw_endpoint, self.protocol) {
            (Some((e, _, _)), _) if e.starts_with("file://") => Protocol::File,
            (_, Some(p)) => p,
            (_, None) => match PROTOCOL.read(env) {
                Some(f) => match f.value.as_str() {
                    "grpc" => Protocol::Grpc,
                    "http/protobuf" => Protocol::HttpProtobuf,
                    _ => {
                        return Err(OtlpSettingsError::BadProtocol {
                            origin: f.origin,
                            value: f.value,
                        });
                    }
                },
                None => Protocol::Grpc,
            },
        };
        let endpoint = match (raw_endpoint, protocol) {
            (Some((value, origin, _)), Protocol::File) => Sourced { value, origin },
            (Some((value, origin, metrics_specific)), _) => Sourced {
                value: collector_url(&value, origin, protocol, metrics_specific)?,
                origin,
            },
            (None, Protocol::HttpProtobuf) => Sourced {
                value: DEFAULT_HTTP_URL.to_owned(),
                origin: "the default",
            },
            (None, _) => Sourced {
                value: DEFAULT_GRPC_ENDPOINT.to_owned(),
                origin: "the default",
            },
        };
        let timeout = match self.timeout {
            Some(span) => span.0,
            None => match TIMEOUT.read(env) {
                Some(f) => f
                    .value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| OtlpSettingsError::BadTimeout {
                        origin: f.origin,
                        value: f.value,
                    })?,
                None => DEFAULT_TIMEOUT,
            },
        };
        let compression = match self.compression {
            Some(c) => c,
            None => match COMPRESSION.read(env) {
                Some(f) => match f.value.as_str() {
                    "gzip" => Compression::Gzip,
                    "none" => Compression::None,
                    _ => {
                        return Err(OtlpSettingsError::BadCompression {
                            origin: f.origin,
                            value: f.value,
                        });
                    }
                },
                None => Compression::None,
            },
        };
        let mut headers: Vec<Header> = self
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
                origin: "export.otlp.headers",
            })
            .collect();
        if let Some(found) = HEADERS.read(env) {
            for header in parse_headers(&found)? {
                if !headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(&header.name))
                {
                    headers.push(header);
                }
            }
        }
        let tls = self.tls_settings(env, &endpoint)?;
        Ok(OtlpSettings {
            protocol,
            endpoint,
            timeout,
            headers,
            compression,
            tls,
        })
    }

    fn tls_settings(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        endpoint: &Sourced<String>,
    ) -> Result<Option<TlsSettings>, OtlpSettingsError> {
        let spec = &self.tls;
        let https = endpoint.value.starts_with("https://");
        if !https {
            let set_in_spec = [
                (&spec.ca_file, "export.otlp.tls.ca_file"),
                (&spec.cert_file, "export.otlp.tls.cert_file"),
                (&spec.key_file, "export.otlp.tls.key_file"),
            ]
            .into_iter()
            .find_map(|(value, origin)| value.as_ref().map(|_| origin));
            return match set_in_spec {
                Some(origin) => Err(OtlpSettingsError::TlsWithoutHttps {
                    origin,
                    endpoint: endpoint.value.clone(),
                    endpoint_origin: endpoint.origin,
                }),
                None => Ok(None),
            };
        }
        let file = |key: &Option<PathBuf>, origin: Origin, variable: Variable| match key {
            Some(path) => Some(Sourced {
                value: path.clone(),
                origin,
            }),
            None => variable.read(env).map(|f| Sourced {
                value: PathBuf::from(f.value),
                origin: f.origin,
            }),
        };
        let ca_file = file(&spec.ca_file, "export.otlp.tls.ca_file", CERTIFICATE);
        let cert_file = file(
            &spec.cert_file,
            "export.otlp.tls.cert_file",
            CLIENT_CERTIFICATE,
        );
        let key_file = file(&spec.key_file, "export.otlp.tls.key_file", CLIENT_KEY);
        let client = match (cert_file, key_file) {
            (Some(cert_file), Some(key_file)) => Some(ClientCertificate {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            (Some(cert), None) => {
                return Err(OtlpSettingsError::HalfClientCertificate {
                    set: cert.origin,
                    missing: "export.otlp.tls.key_file",
                });
            }
            (None, Some(key)) => {
                return Err(OtlpSettingsError::HalfClientCertificate {
                    set: key.origin,
                    missing: "export.otlp.tls.cert_file",
                });
            }
        };
        Ok(Some(TlsSettings { ca_file, client }))
    }
}

/// The URL requests go to. gRPC takes the endpoint as written. HTTP follows the OTel rule: the
/// generic variable names the collector's base (`/v1/metrics` is appended), the metrics-specific
/// one the whole URL (used as is); an endpoint written in the spec gets `/v1/metrics` only when
/// it has no path.
fn collector_url(
    value: &str,
    origin: Origin,
    protocol: Protocol,
    metrics_specific: Option<bool>,
) -> Result<String, OtlpSettingsError> {
    // An endpoint that may hold credentials is never repeated in a message.
    let shown = if value.contains('@') {
        "(not shown: it contains @, so it may carry a password)".to_owned()
    } else {
        value.to_owned()
    };
    let bad = |detail: String| OtlpSettingsError::BadEndpoint {
        origin,
        value: shown.clone(),
        detail,
    };
    let url = url::Url::parse(value).map_err(|e| bad(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OtlpSettingsError::CredentialsInEndpoint { origin });
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme is {}", url.scheme())));
    }
    if protocol != Protocol::HttpProtobuf {
        return Ok(value.to_owned());
    }
    let base = value.trim_end_matches('/');
    Ok(match metrics_specific {
        Some(true) => value.to_owned(),
        Some(false) => format!("{base}/v1/metrics"),
        None if url.path().is_empty() || url.path() == "/" => format!("{base}/v1/metrics"),
        None => value.to_owned(),
    })
}

/// `name=value,name=value` with URL-encoded values (the W3C baggage form the OTel spec uses).
fn parse_headers(found: &Found) -> Result<Vec<Header>, OtlpSettingsError> {
    found
        .value
        .split(',')
        .enumerate()
        .filter(|(_, entry)| !entry.trim().is_empty())
        .map(|(i, entry)| {
            let bad = || OtlpSettingsError::BadHeaderEntry {
                origin: found.origin,
                position: i + 1,
            };
            let (name, value) = entry.split_once('=').ok_or_else(bad)?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad());
            }
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| bad())?;
            Ok(Header {
                name: name.to_owned(),
                value: Secret::new(value),
                origin: found.origin,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::TlsSpec;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn http_spec() -> OtlpSpec {
        OtlpSpec {
            protocol: Some(Protocol::HttpProtobuf),
            ..OtlpSpec::default()
        }
    }

    fn endpoint(spec: &OtlpSpec, vars: &[(&str, &str)]) -> (String, Origin) {
        let s = spec.resolve(env(vars)).unwrap();
        (s.endpoint.value, s.endpoint.origin)
    }

    #[test]
    fn http_urls_follow_the_otel_rule_for_each_source() {
        let http = http_spec();
        // The generic variable is a base: /v1/metrics is appended, after any path it has.
        assert_eq!(
            endpoint(
                &http,
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318/tenant-a/")]
            ),
            (
                "https://c:4318/tenant-a/v1/metrics".to_owned(),
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            )
        );
        // The metrics-specific one is the whole URL, even without a path.
        assert_eq!(
            endpoint(
                &http,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://generic:4318"),
                    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://m:4318"),
                ]
            ),
            (
                "https://m:4318".to_owned(),
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
            )
        );
        // The spec: /v1/metrics only when there is no path; and it wins over both variables.
        let mut spec = http_spec();
        spec.endpoint = Some("http://s:4318".into());
        let both = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://generic:4318"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://m:4318"),
        ];
        assert_eq!(
            endpoint(&spec, &both),
            (
                "http://s:4318/v1/metrics".to_owned(),
                "export.otlp.endpoint"
            )
        );
        spec.endpoint = Some("http://s:4318/custom/path".into());
        assert_eq!(endpoint(&spec, &[]).0, "http://s:4318/custom/path");
        // Nothing set: the OTLP/HTTP default port.
        assert_eq!(endpoint(&http, &[]).0, "http://127.0.0.1:4318/v1/metrics");
        // gRPC takes every source as written.
        let grpc = OtlpSpec::default();
        assert_eq!(
            endpoint(&grpc, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://g:4317")]).0,
            "https://g:4317"
        );
        assert_eq!(endpoint(&grpc, &[]).0, "http://127.0.0.1:4317");
    }

    #[test]
    fn metrics_variables_win_over_generic_ones_and_the_spec_over_both() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.pem"),
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/metrics/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "/generic/client.pem",
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
                "/metrics/client.key",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=1"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-metrics=2"),
        ];
        let s = OtlpSpec::default().resolve(env(&vars)).unwrap();
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.endpoint.value, "https://c:4318/v1/metrics");
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.compression, Compression::Gzip);
        let names: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.origin))
            .collect();
        assert_eq!(names, [("x-metrics", "OTEL_EXPORTER_OTLP_METRICS_HEADERS")]);
        let tls = s.tls.unwrap();
        assert_eq!(
            tls.ca_file,
            Some(Sourced {
                value: "/metrics/ca.pem".into(),
                origin: "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"
            })
        );
        let client = tls.client.unwrap();
        assert_eq!(
            (client.cert_file.origin, client.key_file.origin),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY"
            )
        );

        let spec = OtlpSpec {
            protocol: Some(Protocol::Grpc),
            endpoint: Some("https://spec:4317".into()),
            timeout: Some(crate::Span(Duration::from_secs(3))),
            compression: Some(Compression::None),
            headers: [("X-Metrics".to_owned(), Secret::new("from-spec"))].into(),
            tls: TlsSpec {
                ca_file: Some("/spec/ca.pem".into()),
                ..TlsSpec::default()
            },
            ..OtlpSpec::default()
        };
        let s = spec.resolve(env(&vars)).unwrap();
        assert_eq!(s.protocol, Protocol::Grpc);
        assert_eq!(s.endpoint.value, "https://spec:4317");
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(s.compression, Compression::None);
        // The spec names X-Metrics (in another case): the variable's x-metrics does not come too.
        assert_eq!(s.headers.len(), 1);
        assert_eq!(
            (s.headers[0].value.expose(), s.headers[0].origin),
            ("from-spec", "export.otlp.headers")
        );
        let tls = s.tls.unwrap();
        assert_eq!(
            tls.ca_file.map(|f| (f.value, f.origin)),
            Some(("/spec/ca.pem".into(), "export.otlp.tls.ca_file"))
        );
    }

    #[test]
    fn header_variables_are_url_decoded_and_merge_under_the_spec() {
        let spec = OtlpSpec {
            headers: [("X-Scope-OrgID".to_owned(), Secret::new("tenant-1"))].into(),
            ..OtlpSpec::default()
        };
        let s = spec
            .resolve(env(&[(
                "OTEL_EXPORTER_OTLP_HEADERS",
                " Authorization = Bearer%20abc%3D%3D , x-scope-orgid=other,,",
            )]))
            .unwrap();
        let got: Vec<(&str, &str, &str)> = s
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.expose(), h.origin))
            .collect();
        assert_eq!(
            got,
            [
                ("X-Scope-OrgID", "tenant-1", "export.otlp.headers"),
                (
                    "Authorization",
                    "Bearer abc==",
                    "OTEL_EXPORTER_OTLP_HEADERS"
                ),
            ]
        );
    }

    #[test]
    fn bad_variables_are_named_and_secrets_are_not_shown() {
        let e = OtlpSpec::default()
            .resolve(env(&[(
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "a=1,Authorization Bearer s3cret",
            )]))
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("OTEL_EXPORTER_OTLP_METRICS_HEADERS: entry 2 is not name=value"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        let e = OtlpSpec::default()
            .resolve(env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_TIMEOUT: \"10s\" is not a whole number of milliseconds; write \
             e.g. 10000"
        );
        let e = OtlpSpec::default()
            .resolve(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]))
            .unwrap_err();
        assert!(e.to_string().contains("write grpc or http/protobuf"), "{e}");
        let e = OtlpSpec::default()
            .resolve(env(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]))
            .unwrap_err();
        assert!(e.to_string().contains("write gzip or none"), "{e}");
        let e = OtlpSpec::default()
            .resolve(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4317\" is not an http"),
            "{e}"
        );
    }

    #[test]
    fn tls_needs_https_and_a_whole_client_certificate() {
        let mut spec = OtlpSpec {
            endpoint: Some("http://c:4317".into()),
            tls: TlsSpec {
                ca_file: Some("/ca.pem".into()),
                ..TlsSpec::default()
            },
            ..OtlpSpec::default()
        };
        let e = spec.resolve(env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "export.otlp.tls.ca_file is set but the endpoint http://c:4317 (from \
             export.otlp.endpoint) does not start with https://; TLS settings need an https:// \
             endpoint"
        );
        // Variables are ignored for a plaintext endpoint, as the OTel SDKs do.
        spec.tls = TlsSpec::default();
        let s = spec
            .resolve(env(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")]))
            .unwrap();
        assert_eq!(s.tls, None);
        // https without any file: the system's roots, no client certificate.
        spec.endpoint = Some("https://c:4317".into());
        assert_eq!(
            spec.resolve(env(&[])).unwrap().tls,
            Some(TlsSettings::default())
        );
        spec.tls.cert_file = Some("/client.pem".into());
        let e = spec.resolve(env(&[])).unwrap_err();
        assert_eq!(
            e,
            OtlpSettingsError::HalfClientCertificate {
                set: "export.otlp.tls.cert_file",
                missing: "export.otlp.tls.key_file"
            }
        );
    }

    #[test]
    fn a_file_endpoint_is_the_file_exporter_whatever_the_protocol() {
        let s = OtlpSpec::default()
            .resolve(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "file:///tmp/m.jsonl"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ]))
            .unwrap();
        assert_eq!(
            (s.protocol, s.endpoint.value.as_str()),
            (Protocol::File, "file:///tmp/m.jsonl")
        );
    }

    /// A password in the endpoint would be printed with it: refused, and never repeated.
    #[test]
    fn credentials_in_an_endpoint_are_refused_without_showing_them() {
        let mut spec = http_spec();
        spec.endpoint = Some("https://alice:s3cret-pw@c:4318".into());
        let err = spec.resolve(env(&[])).unwrap_err();
        assert_eq!(
            err,
            OtlpSettingsError::CredentialsInEndpoint {
                origin: "export.otlp.endpoint"
            }
        );
        let from_env = OtlpSpec::default()
            .resolve(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://bob@c:4317")]))
            .unwrap_err();
        assert_eq!(
            from_env,
            OtlpSettingsError::CredentialsInEndpoint {
                origin: "OTEL_EXPORTER_OTLP_ENDPOINT"
            }
        );
        // One that does not even parse is not shown either.
        spec.endpoint = Some("https://alice:s3cret-pw@c:99999".into());
        let unparsable = spec.resolve(env(&[])).unwrap_err().to_string();
        assert!(unparsable.contains("not shown"), "{unparsable}");
        for message in [err.to_string(), from_env.to_string(), unparsable] {
            assert!(!message.contains("s3cret-pw"), "{message}");
        }
    }
}
