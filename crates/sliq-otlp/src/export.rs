//! Delivering requests: gRPC, HTTP/protobuf, or OTLP/JSON lines in a file (the OTel Collector file
//! exporter's format). `export` returns only once the receiver acknowledged the request (or, for a
//! file, once it is fsynced): the pipeline commits Kafka offsets on that acknowledgement.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message as _;
use tonic::transport::{Channel, Endpoint};

/// Why an export was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "OTLP endpoint {endpoint:?} is not a valid URL: {detail}; write e.g. http://collector:4317"
    )]
    BadEndpoint { endpoint: String, detail: String },
    #[error("OTLP gRPC export to {endpoint} failed: {status}")]
    Grpc {
        endpoint: String,
        status: Box<tonic::Status>,
    },
    #[error("OTLP HTTP export to {url} failed: {detail}")]
    Http { url: String, detail: String },
    #[error(
        "cannot write OTLP/JSON to {path}: {source}; check export.otlp.endpoint and the folder's permissions"
    )]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One OTLP destination.
#[derive(Debug)]
pub enum Exporter {
    Grpc {
        endpoint: String,
        client: MetricsServiceClient<Channel>,
    },
    Http {
        url: String,
        client: reqwest::Client,
        headers: BTreeMap<String, String>,
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
    /// A gRPC exporter; connects lazily, so a collector that starts later is fine.
    pub fn grpc(endpoint: &str, timeout: Duration) -> Result<Self, ExportError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| ExportError::BadEndpoint {
                endpoint: endpoint.to_owned(),
                detail: e.to_string(),
            })?
            .timeout(timeout)
            .connect_timeout(timeout)
            .connect_lazy();
        Ok(Exporter::Grpc {
            endpoint: endpoint.to_owned(),
            client: MetricsServiceClient::new(channel),
        })
    }

    /// An HTTP/protobuf exporter. As with the OTel SDKs, an endpoint without a path gets `/v1/metrics`.
    pub fn http(
        endpoint: &str,
        timeout: Duration,
        headers: BTreeMap<String, String>,
    ) -> Result<Self, ExportError> {
        let parsed = reqwest::Url::parse(endpoint).map_err(|e| ExportError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            detail: e.to_string(),
        })?;
        let url = if parsed.path() == "/" || parsed.path().is_empty() {
            format!("{}/v1/metrics", endpoint.trim_end_matches('/'))
        } else {
            endpoint.to_owned()
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ExportError::Http {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        Ok(Exporter::Http {
            url,
            client,
            headers,
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
            Exporter::Grpc { endpoint, client } => client
                .export(request.clone())
                .await
                .map(drop)
                .map_err(|status| ExportError::Grpc {
                    endpoint: endpoint.clone(),
                    status: Box::new(status),
                }),
            Exporter::Http {
                url,
                client,
                headers,
            } => {
                let mut req = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec());
                for (k, v) in headers.iter() {
                    req = req.header(k, v);
                }
                let fail = |detail: String| ExportError::Http {
                    url: url.clone(),
                    detail,
                };
                let response = req.send().await.map_err(|e| fail(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoint_without_path_gets_the_metrics_path() {
        let Exporter::Http { url, .. } =
            Exporter::http("http://c:4318", Duration::from_secs(1), BTreeMap::new()).unwrap()
        else {
            panic!("http exporter")
        };
        assert_eq!(url, "http://c:4318/v1/metrics");
        let Exporter::Http { url, .. } = Exporter::http(
            "http://c:4318/custom/path",
            Duration::from_secs(1),
            BTreeMap::new(),
        )
        .unwrap() else {
            panic!("http exporter")
        };
        assert_eq!(url, "http://c:4318/custom/path");
    }

    #[test]
    fn bad_endpoints_say_what_to_write() {
        let e = Exporter::grpc("not a url", Duration::from_secs(1)).unwrap_err();
        assert!(
            e.to_string().contains("write e.g. http://collector:4317"),
            "{e}"
        );
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
