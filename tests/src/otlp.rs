//! An OTLP metrics receiver (gRPC, or HTTP/protobuf) on the official protobuf service definition,
//! keeping every request and the headers it came with; over TLS with client certificates
//! required (mTLS) when started with a [`ServerTls`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, Metric, metric, number_data_point,
};
use parking_lot::Mutex;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::tls::ServerTls;

#[derive(Debug, Default)]
struct Inbox {
    requests: Mutex<Vec<ExportMetricsServiceRequest>>,
    /// The headers (gRPC metadata) of each accepted request, names in lower case.
    headers: Mutex<Vec<BTreeMap<String, String>>>,
    fail_next: AtomicU32,
    /// Refuse every export (UNAVAILABLE / 503) while set.
    refusing: AtomicBool,
    /// Exports refused so far.
    refused: AtomicU64,
}

impl Inbox {
    fn accept(&self, request: ExportMetricsServiceRequest, headers: &axum::http::HeaderMap) {
        let headers = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.headers.lock().push(headers);
        self.requests.lock().push(request);
    }

    /// Whether this export is to be refused (and counts it).
    fn refuse(&self) -> bool {
        let refuse = self.refusing.load(Ordering::SeqCst)
            || self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if refuse {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        refuse
    }
}

#[derive(Debug, Clone)]
struct Service(Arc<Inbox>);

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        if self.0.refuse() {
            return Err(Status::unavailable("told to fail by the test"));
        }
        let headers = request.metadata().clone().into_headers();
        self.0.accept(request.into_inner(), &headers);
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn http_export(
    axum::extract::State(inbox): axum::extract::State<Arc<Inbox>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    use prost::Message as _;
    if inbox.refuse() {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, Vec::new());
    }
    if headers
        .get("content-type")
        .is_none_or(|v| v != "application/x-protobuf")
    {
        return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut plain = Vec::new();
        match std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain) {
            Ok(_) => axum::body::Bytes::from(plain),
            Err(_) => return (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
        }
    } else {
        body
    };
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            inbox.accept(request, &headers);
            (
                axum::http::StatusCode::OK,
                ExportMetricsServiceResponse::default().encode_to_vec(),
            )
        }
        Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
    }
}

/// A running receiver; stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    inbox: Arc<Inbox>,
    port: u16,
    /// The gRPC server's shutdown signal and task, while it serves.
    server: Arc<Mutex<Option<GrpcServer>>>,
    tls: Option<ServerTls>,
}

#[derive(Debug)]
struct GrpcServer {
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves OTLP/gRPC for `inbox` on `listener` until the returned server is shut down; accepts
/// gzip-compressed requests.
fn serve_grpc(
    listener: tokio::net::TcpListener,
    inbox: &Arc<Inbox>,
    tls: Option<&ServerTls>,
) -> anyhow::Result<GrpcServer> {
    let service = MetricsServiceServer::new(Service(Arc::clone(inbox)))
        .accept_compressed(CompressionEncoding::Gzip);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(
                    &tls.cert_pem,
                    &tls.key_pem,
                ))
                .client_ca_root(tonic::transport::Certificate::from_pem(&tls.client_ca_pem)),
        )?;
    }
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = builder
            .add_service(service)
            .serve_with_incoming_shutdown(tokio_stream_listener(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(GrpcServer { shutdown, task })
}

/// Serves `app` over TLS on `listener`: each connection's handshake, then HTTP/1.1 or HTTP/2 as
/// negotiated. A refused handshake only ends that connection (the client sees why).
fn serve_https(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: &ServerTls,
) -> anyhow::Result<()> {
    let mut config = crate::tls::mtls_server_config(tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(app),
                )
                .await;
            });
        }
    });
    Ok(())
}

/// One number point, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPoint {
    pub metric: String,
    pub resource: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: f64,
    pub temporality: i32,
    pub is_monotonic: bool,
}

fn strings(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

impl OtlpReceiver {
    /// Serves OTLP/gRPC on a free loopback port.
    pub async fn start_grpc() -> anyhow::Result<OtlpReceiver> {
        Self::grpc(None).await
    }

    /// Serves OTLP/gRPC over TLS, requiring a client certificate, on a free loopback port.
    pub async fn start_grpc_tls(tls: ServerTls) -> anyhow::Result<OtlpReceiver> {
        Self::grpc(Some(tls)).await
    }

    async fn grpc(tls: Option<ServerTls>) -> anyhow::Result<OtlpReceiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inbox = Arc::new(Inbox::default());
        let server = serve_grpc(listener, &inbox, tls.as_ref())?;
        Ok(OtlpReceiver {
            inbox,
            port,
            server: Arc::new(Mutex::new(Some(server))),
            tls,
        })
    }

    /// Takes a gRPC receiver down: connections are closed and the port refuses new ones until
    /// [`OtlpReceiver::restart`] (what the exporter sees of a collector that is down).
    pub async fn stop(&self) {
        let server = self.server.lock().take();
        if let Some(GrpcServer { shutdown, mut task }) = server {
            let _ = shutdown.send(());
            // Graceful first (in-flight exports finish); a connection that lingers is cut.
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }

    /// Serves a stopped gRPC receiver again on the same port, keeping what it received.
    pub async fn restart(&self) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("receiver restart on port {}: {e}; again", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let server = serve_grpc(listener, &self.inbox, self.tls.as_ref())?;
        *self.server.lock() = Some(server);
        Ok(())
    }

    /// While `on`, every export is refused with UNAVAILABLE (HTTP 503): a collector that is up but
    /// overloaded.
    pub fn refuse(&self, on: bool) {
        self.inbox.refusing.store(on, Ordering::SeqCst);
    }

    /// How many exports were refused so far.
    pub fn refused(&self) -> u64 {
        self.inbox.refused.load(Ordering::SeqCst)
    }

    /// Serves OTLP/HTTP with protobuf bodies (`POST /v1/metrics`) on a free loopback port.
    pub async fn start_http() -> anyhow::Result<OtlpReceiver> {
        Self::http(None).await
    }

    /// Serves OTLP/HTTP over TLS, requiring a client certificate, on a free loopback port.
    pub async fn start_http_tls(tls: ServerTls) -> anyhow::Result<OtlpReceiver> {
        Self::http(Some(tls)).await
    }

    async fn http(tls: Option<ServerTls>) -> anyhow::Result<OtlpReceiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new()
            .route("/v1/metrics", axum::routing::post(http_export))
            .with_state(Arc::clone(&inbox));
        match &tls {
            Some(tls) => serve_https(listener, app, tls)?,
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await });
            }
        }
        Ok(OtlpReceiver {
            inbox,
            port,
            server: Arc::new(Mutex::new(None)),
            tls,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://` for a TLS receiver.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The headers (gRPC metadata) of every accepted request, in arrival order.
    pub fn headers_seen(&self) -> Vec<BTreeMap<String, String>> {
        self.inbox.headers.lock().clone()
    }

    /// Makes the next `n` exports fail with UNAVAILABLE.
    pub fn fail_next(&self, n: u32) {
        self.inbox.fail_next.store(n, Ordering::SeqCst);
    }

    /// How many exports were received (accepted) so far.
    pub fn request_count(&self) -> usize {
        self.inbox.requests.lock().len()
    }

    pub fn requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.inbox.requests.lock().clone()
    }

    /// Every Sum point of `metric`, in arrival order.
    pub fn sum_points(&self, metric_name: &str) -> Vec<ReceivedPoint> {
        sum_points(&self.requests(), metric_name)
    }
}

/// Every Sum point of `metric_name` in `requests`, in order.
pub fn sum_points(
    requests: &[ExportMetricsServiceRequest],
    metric_name: &str,
) -> Vec<ReceivedPoint> {
    points(requests, metric_name, false)
}

/// Every Gauge point of `metric_name` in `requests`, in order.
pub fn gauge_points(
    requests: &[ExportMetricsServiceRequest],
    metric_name: &str,
) -> Vec<ReceivedPoint> {
    points(requests, metric_name, true)
}

/// Every metric named `metric_name` in `requests`, with its resource's attributes.
fn metrics_named<'a>(
    requests: &'a [ExportMetricsServiceRequest],
    metric_name: &'a str,
) -> impl Iterator<Item = (BTreeMap<String, String>, &'a Metric)> {
    requests
        .iter()
        .flat_map(|req| &req.resource_metrics)
        .flat_map(move |rm| {
            let resource = rm
                .resource
                .as_ref()
                .map(|r| strings(&r.attributes))
                .unwrap_or_default();
            rm.scope_metrics
                .iter()
                .flat_map(|sm| &sm.metrics)
                .filter(move |m| m.name == metric_name)
                .map(move |m| (resource.clone(), m))
        })
}

fn points(
    requests: &[ExportMetricsServiceRequest],
    metric_name: &str,
    gauges: bool,
) -> Vec<ReceivedPoint> {
    let mut out = Vec::new();
    for (resource, m) in metrics_named(requests, metric_name) {
        let (data_points, temporality, is_monotonic) = match &m.data {
            Some(metric::Data::Sum(sum)) if !gauges => (
                &sum.data_points,
                sum.aggregation_temporality,
                sum.is_monotonic,
            ),
            Some(metric::Data::Gauge(g)) if gauges => (&g.data_points, 0, false),
            _ => continue,
        };
        for p in data_points {
            let value = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                Some(number_data_point::Value::AsDouble(d)) => d,
                None => f64::NAN,
            };
            out.push(ReceivedPoint {
                metric: m.name.clone(),
                resource: resource.clone(),
                attributes: strings(&p.attributes),
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                value,
                temporality,
                is_monotonic,
            });
        }
    }
    out
}

/// A series' identity: resource attributes and point attributes.
pub type SeriesIdentity = (BTreeMap<String, String>, BTreeMap<String, String>);

/// The last value of every series: the total of a cumulative sum.
pub fn last_values(points: &[ReceivedPoint]) -> BTreeMap<SeriesIdentity, f64> {
    let mut out = BTreeMap::new();
    for p in points {
        out.insert((p.resource.clone(), p.attributes.clone()), p.value);
    }
    out
}

/// What a cumulative backend would object to, over every point in arrival order: a series (same
/// resource and attributes) whose value goes down or whose time goes back while its start time
/// stays; and, apart, how often a series restarted (a new start time: a reset to a backend).
pub fn cumulative_regressions(points: &[ReceivedPoint]) -> (Vec<String>, usize) {
    let mut last: BTreeMap<SeriesIdentity, &ReceivedPoint> = BTreeMap::new();
    let (mut regressions, mut resets) = (Vec::new(), 0);
    for p in points.iter().filter(|p| p.temporality == 2) {
        let id = (p.resource.clone(), p.attributes.clone());
        if let Some(prev) = last.get(&id) {
            if prev.start_time_unix_nano != p.start_time_unix_nano {
                resets += 1;
            } else if p.value < prev.value || p.time_unix_nano < prev.time_unix_nano {
                regressions.push(format!(
                    "{} {:?}: {} at {} after {} at {}",
                    p.metric,
                    p.attributes,
                    p.value,
                    p.time_unix_nano,
                    prev.value,
                    prev.time_unix_nano
                ));
            }
        }
        last.insert(id, p);
    }
    (regressions, resets)
}

/// Parses an OTLP/JSON-lines file (the Collector file exporter's format).
pub fn read_otlp_json_lines(
    path: &std::path::Path,
) -> anyhow::Result<Vec<ExportMetricsServiceRequest>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(s, _)| s);
        Some((accepted, l))
    })
}

/// Every exponential-histogram point of `metric_name`, with its resource and attributes, in order.
pub fn exp_histogram_points(
    requests: &[ExportMetricsServiceRequest],
    metric_name: &str,
) -> Vec<(SeriesIdentity, ExponentialHistogramDataPoint)> {
    let mut out = Vec::new();
    for (resource, m) in metrics_named(requests, metric_name) {
        if let Some(metric::Data::ExponentialHistogram(h)) = &m.data {
            for p in &h.data_points {
                out.push(((resource.clone(), strings(&p.attributes)), p.clone()));
            }
        }
    }
    out
}
