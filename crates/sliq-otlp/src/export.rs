//! Delivering requests: gRPC, HTTP/protobuf, or OTLP/JSON lines in a file (the OTel Collector file
//! exporter's format). `export` returns only once the receiver acknowledged the request (or, for a
//! file, once it is fsynced): the pipeline commits Kafka offsets on that acknowledgement.

use std::io::Write as _;
use std::path::PathBuf;

use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::transport::{Headers, TlsFiles, TlsMaterial, Transport, chain_words, diagnose_tls};

/// Why an export was not acknowledged, or an exporter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "OTLP endpoint {endpoint:?} is not a valid URL: {detail}; write e.g. http://collector:4317"
    )]
    BadEndpoint { endpoint: String, detail: String },
    /// Shown after the endpoint (the export stage's message names it), so only the cause.
    #[error("{detail}")]
    Grpc { endpoint: String, detail: String },
    #[error("{detail}")]
    Http { url: String, detail: String },
    #[error(
        "cannot write OTLP/JSON to {path}: {source}; check export.otlp.endpoint and the folder's permissions"
    )]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A CA, certificate or key file that cannot serve; says which key or variable named it.
    #[error("{origin} {}: {problem}", path.display())]
    TlsFile {
        origin: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("OTLP TLS: {0}")]
    Tls(String),
    /// The value is never shown: it is usually a token.
    #[error("OTLP header {name:?} from {origin}: {what}")]
    BadHeader {
        name: String,
        origin: &'static str,
        what: &'static str,
    },
}

/// One OTLP destination.
#[derive(Debug)]
pub enum Exporter {
    Grpc {
        endpoint: String,
        client: MetricsServiceClient<Channel>,
        headers: Headers,
        tls: Option<TlsFiles>,
    },
    Http {
        url: String,
        client: reqwest::Client,
        headers: Headers,
        gzip: bool,
        tls: Option<TlsFiles>,
    },
    File {
        path: PathBuf,
        file: std::fs::File,
    },
    /// Acknowledges every request without sending it (`export.enabled: false`): the counts still
    /// go into the checkpoint and the budgets, nothing leaves the process.
    Disabled,
}

impl Exporter {
    /// A gRPC exporter; connects lazily, so a collector that starts later is fine. Call it
    /// inside a Tokio runtime.
    pub fn grpc(endpoint: &str, transport: Transport) -> Result<Self, ExportError> {
        let bad = |detail: String| ExportError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            detail,
        };
        let mut channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| bad(chain_words(&e)))?
            .timeout(transport.timeout)
            .connect_timeout(transport.timeout);
        let material = transport.tls.as_ref().map(TlsMaterial::load).transpose()?;
        if let Some(material) = &material {
            let mut config = ClientTlsConfig::new().timeout(transport.timeout);
            config = match &material.ca_pem {
                Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            if let Some(client) = &material.client {
                config = config.identity(tonic::transport::Identity::from_pem(
                    &client.cert,
                    &client.key,
                ));
            }
            channel = channel.tls_config(config).map_err(|e| {
                ExportError::Tls(format!(
                    "{}; set export.otlp.tls.ca_file to the CA that signed the collector's \
                     certificate",
                    chain_words(&e)
                ))
            })?;
        }
        let mut client = MetricsServiceClient::new(channel.connect_lazy());
        if transport.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(Exporter::Grpc {
            endpoint: endpoint.to_owned(),
            client,
            headers: transport.headers,
            tls: transport.tls,
        })
    }

    /// An HTTP/protobuf exporter posting to `url` as it is (the caller applies the `/v1/metrics`
    /// rule).
    pub fn http(url: &str, transport: Transport) -> Result<Self, ExportError> {
        reqwest::Url::parse(url).map_err(|e| ExportError::BadEndpoint {
            endpoint: url.to_owned(),
            detail: e.to_string(),
        })?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(transport.timeout);
        if let Some(material) = transport.tls.as_ref().map(TlsMaterial::load).transpose()? {
            let unusable = |e: reqwest::Error| ExportError::Tls(chain_words(&e));
            if let Some(pem) = &material.ca_pem {
                builder = builder.tls_built_in_root_certs(false);
                for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(unusable)? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if let Some(client) = &material.client {
                let mut pem = client.cert.clone();
                pem.push(b'\n');
                pem.extend_from_slice(&client.key);
                builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(unusable)?);
            }
        }
        let client = builder.build().map_err(|e| ExportError::Http {
            url: url.to_owned(),
            detail: format!(
                "cannot set up the HTTP client for {url}: {}",
                chain_words(&e)
            ),
        })?;
        Ok(Exporter::Http {
            url: url.to_owned(),
            client,
            headers: transport.headers,
            gzip: transport.gzip,
            tls: transport.tls,
        })
    }

    /// Appends OTLP/JSON lines to `path` (a `file://` URL or a plain path), creating its folder.
    pub fn file(endpoint: &str) -> Result<Self, ExportError> {
        let path = PathBuf::from(endpoint.strip_prefix("file://").unwrap_or(endpoint));
        let open = || -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        };
        match open() {
            Ok(file) => Ok(Exporter::File { path, file }),
            Err(source) => Err(ExportError::File { path, source }),
        }
    }

    /// Sends one request and waits for its acknowledgement.
    pub async fn export(
        &mut self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<(), ExportError> {
        match self {
            Exporter::Grpc {
                endpoint,
                client,
                headers,
                tls,
            } => {
                let mut outgoing = tonic::Request::new(request.clone());
                *outgoing.metadata_mut() = MetadataMap::from_headers(headers.map().clone());
                client
                    .export(outgoing)
                    .await
                    .map(drop)
                    .map_err(|status| ExportError::Grpc {
                        endpoint: endpoint.clone(),
                        detail: grpc_words(&status, tls.as_ref()),
                    })
            }
            Exporter::Http {
                url,
                client,
                headers,
                gzip,
                tls,
            } => {
                let fail = |detail: String| ExportError::Http {
                    url: url.clone(),
                    detail,
                };
                let mut body = request.encode_to_vec();
                let mut req = client
                    .post(url.as_str())
                    .headers(headers.map().clone())
                    .header("content-type", "application/x-protobuf");
                if *gzip {
                    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
                    body = encoder
                        .write_all(&body)
                        .and_then(|()| encoder.finish())
                        .map_err(|e| fail(format!("gzip: {e}")))?;
                    req = req.header("content-encoding", "gzip");
                }
                let response = req.body(body).send().await.map_err(|e| {
                    fail(diagnose_tls(&e, tls.as_ref()).unwrap_or_else(|| chain_words(&e)))
                })?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    let body = response.text().await.unwrap_or_default();
                    Err(fail(format!(
                        "HTTP {status}: {}",
                        body.chars().take(300).collect::<String>()
                    )))
                }
            }
            Exporter::Disabled => Ok(()),
            Exporter::File { path, file } => {
                let mut line = serde_json::to_vec(request).map_err(|e| ExportError::File {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
                line.push(b'\n');
                file.write_all(&line)
                    .and_then(|()| file.sync_data())
                    .map_err(|source| ExportError::File {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }
}

/// A gRPC status in words: its code and message, then the transport's own chain (a TLS failure
/// said as what to check), without tonic's `Debug` forms.
fn grpc_words(status: &tonic::Status, tls: Option<&TlsFiles>) -> String {
    if let Some(diagnosis) = diagnose_tls(status, tls) {
        return diagnosis;
    }
    let mut words = status.code().description().to_owned();
    if !status.message().is_empty() {
        words.push_str(": ");
        words.push_str(status.message());
    }
    if let Some(source) = std::error::Error::source(status) {
        let detail = chain_words(source);
        if !words.contains(&detail) {
            words.push_str(" (");
            words.push_str(&detail);
            words.push(')');
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn plain() -> Transport {
        Transport {
            timeout: Duration::from_secs(1),
            headers: Headers::default(),
            gzip: false,
            tls: None,
        }
    }

    fn ca_only(path: &std::path::Path) -> Transport {
        Transport {
            tls: Some(TlsFiles {
                ca: Some(crate::PemFile {
                    path: path.to_owned(),
                    origin: "OTEL_EXPORTER_OTLP_CERTIFICATE",
                }),
                client: None,
            }),
            ..plain()
        }
    }

    #[tokio::test]
    async fn bad_endpoints_say_what_to_write() {
        let e = Exporter::grpc("not a url", plain()).unwrap_err();
        assert!(
            e.to_string().contains("write e.g. http://collector:4317"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn unusable_ca_files_name_their_variable_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        for exporter in [
            Exporter::grpc("https://127.0.0.1:4317", ca_only(&missing)),
            Exporter::http("https://127.0.0.1:4318/v1/metrics", ca_only(&missing)),
        ] {
            let e = exporter.unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "OTEL_EXPORTER_OTLP_CERTIFICATE {}: cannot be read (",
                    missing.display()
                )),
                "{e}"
            );
            assert!(e.ends_with("check the path and its permissions"), "{e}");
        }
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "just some text\n").unwrap();
        let e = Exporter::grpc("https://127.0.0.1:4317", ca_only(&not_pem))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "OTEL_EXPORTER_OTLP_CERTIFICATE {}: holds no PEM certificate \
                 (-----BEGIN CERTIFICATE-----)",
                not_pem.display()
            )
        );
    }

    #[test]
    fn a_header_that_http_cannot_carry_is_named_without_its_value() {
        let mut headers = Headers::default();
        let e = headers
            .insert(
                "Authorization",
                "Bearer s3cret\nInjected: 1",
                "export.otlp.headers",
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("OTLP header \"Authorization\" from export.otlp.headers: its value"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        headers
            .insert("Authorization", "Bearer s3cret", "export.otlp.headers")
            .unwrap();
        let shown = format!("{headers:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[tokio::test]
    async fn file_exporter_appends_one_json_line_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/metrics.jsonl");
        let mut ex = Exporter::file(&format!("file://{}", path.display())).unwrap();
        let req = ExportMetricsServiceRequest::default();
        ex.export(&req).await.unwrap();
        ex.export(&req).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"resourceMetrics\":[]}\n{\"resourceMetrics\":[]}\n");
    }
}
