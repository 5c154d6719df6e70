//! The spec's sections and the checks that need the whole spec. Values that can be wrong on their
//! own (an objective of 1.5, a duration of "soon", a pointer without its leading slash) are in
//! `values`, refused while deserializing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use sliq_core::{Decoder, FieldMap, Slo, WindowConfig};
use sliq_redact::{RedactError, Redactor};

use crate::admin_spec::AdminSpec;
use crate::drift_spec::DriftSpec;
use crate::kafka_spec::KafkaSpec;
use crate::redact_spec::RedactSpec;
use crate::slo_spec::SloSpec;
use crate::values::{JsonPointer, Span};

use crate::{KeyRef, Secret};

/// A whole pipeline: where records come from, which SLOs they feed, where results go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Where records come from.
    pub source: SourceSpec,
    /// Where the record's fields are, for records not shaped like
    /// `schemas/request-log.v1.schema.json`.
    #[serde(default)]
    pub fields: FieldsSpec,
    /// Event-time windows: their size, and how long late and out-of-order events are waited for.
    #[serde(default)]
    pub windows: WindowsSpec,
    /// The SLOs records are judged by; at least one.
    #[schemars(length(min = 1))]
    pub slos: Vec<SloSpec>,
    /// Where metrics go (OTLP).
    #[serde(default)]
    pub export: ExportSpec,
    /// The Parquet archive of every record.
    #[serde(default)]
    pub archive: ArchiveSpec,
    /// Where checkpoints and budgets are kept across restarts.
    #[serde(default)]
    pub state: StateSpec,
    /// Health and metrics endpoints, and where sliq's own metrics go.
    #[serde(default)]
    pub admin: AdminSpec,
    /// Drift detection; absent: no drift is tracked.
    pub drift: Option<DriftSpec>,
    /// The scaled-out form (`sliq run --role reader` and `--role ledger`): how the ledger keeps
    /// its state in Kafka.
    #[serde(default)]
    pub ledger: LedgerSpec,
    /// How long a stop (SIGTERM) may take: exports and dead letters still waiting then stay in
    /// the checkpoint and their records are replayed by the next run.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Span,
}

fn default_shutdown_timeout() -> Span {
    Span(Duration::from_secs(30))
}

/// Where this instance keeps what must survive a restart: checkpoints, budget rollups, drift
/// references.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StateSpec {
    /// A folder of this instance's own: checkpoints, budget rollups, drift references.
    pub dir: PathBuf,
}

impl Default for StateSpec {
    fn default() -> Self {
        StateSpec {
            dir: PathBuf::from("sliq-state"),
        }
    }
}

/// How readers and the ledger share their state through Kafka (`<group_id>.sliq-windows` and
/// `<group_id>.sliq-ledger`, created by sliq).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSpec {
    /// How often the active ledger snapshots its state: a ledger taking over reads the window
    /// topic from the newest snapshot on.
    pub snapshot_every: Span,
    /// How long the window topic keeps what readers published (its `retention.ms` when sliq
    /// creates it): at least several `snapshot_every`.
    pub window_retention: Span,
}

impl Default for LedgerSpec {
    fn default() -> Self {
        LedgerSpec {
            snapshot_every: Span(Duration::from_secs(30)),
            window_retention: Span(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// Where records come from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The Kafka topics, group and connection.
    pub kafka: KafkaSpec,
}

/// JSON Pointers to the canonical fields, for records of another shape. Unset fields keep the
/// canonical location (see `schemas/request-log.v1.schema.json`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsSpec {
    /// The request id (canonical `/id`).
    pub id: Option<JsonPointer>,
    /// The event time, RFC 3339 or epoch ms (canonical `/ts`).
    pub ts: Option<JsonPointer>,
    /// The service name (canonical `/service`).
    pub service: Option<JsonPointer>,
    /// The operation (canonical `/operation`).
    pub operation: Option<JsonPointer>,
    /// The model (canonical `/model`).
    pub model: Option<JsonPointer>,
    /// The labels object (canonical `/labels`).
    pub labels: Option<JsonPointer>,
    /// The prompt (canonical `/request/text`).
    pub request_text: Option<JsonPointer>,
    /// Input tokens (canonical `/request/tokens`).
    pub request_tokens: Option<JsonPointer>,
    /// The response (canonical `/response/text`).
    pub response_text: Option<JsonPointer>,
    /// Output tokens (canonical `/response/tokens`).
    pub response_tokens: Option<JsonPointer>,
    /// Why generation stopped (canonical `/response/finish_reason`).
    pub finish_reason: Option<JsonPointer>,
    /// `ok` or `error` (canonical `/status`).
    pub status: Option<JsonPointer>,
    /// The error object (canonical `/error`).
    pub error: Option<JsonPointer>,
    /// The error's type (canonical `/error/type`).
    pub error_type: Option<JsonPointer>,
    /// The error's message (canonical `/error/message`).
    pub error_message: Option<JsonPointer>,
    /// The whole request's duration in ms (canonical `/latency_ms`).
    pub latency_ms: Option<JsonPointer>,
    /// Time to the first token in ms (canonical `/ttft_ms`).
    pub ttft_ms: Option<JsonPointer>,
    /// Evaluator scores and labels (canonical `/evals`).
    pub evals: Option<JsonPointer>,
    /// Boolean flags such as hallucination (canonical `/flags`).
    pub flags: Option<JsonPointer>,
    /// Tests passed (canonical `/tests/passed`).
    pub tests_passed: Option<JsonPointer>,
    /// Tests failed (canonical `/tests/failed`).
    pub tests_failed: Option<JsonPointer>,
    /// Tests skipped (canonical `/tests/skipped`).
    pub tests_skipped: Option<JsonPointer>,
    /// Numbers and categories for drift (canonical `/features`).
    pub features: Option<JsonPointer>,
}

impl FieldsSpec {
    /// The decoder's field map: canonical locations overridden by the spec.
    pub fn field_map(&self) -> FieldMap {
        let mut m = FieldMap::default();
        let pairs: [(&Option<JsonPointer>, &mut String); 23] = [
            (&self.id, &mut m.id),
            (&self.ts, &mut m.ts),
            (&self.service, &mut m.service),
            (&self.operation, &mut m.operation),
            (&self.model, &mut m.model),
            (&self.labels, &mut m.labels),
            (&self.request_text, &mut m.request_text),
            (&self.request_tokens, &mut m.request_tokens),
            (&self.response_text, &mut m.response_text),
            (&self.response_tokens, &mut m.response_tokens),
            (&self.finish_reason, &mut m.finish_reason),
            (&self.status, &mut m.status),
            (&self.error, &mut m.error),
            (&self.error_type, &mut m.error_type),
            (&self.error_message, &mut m.error_message),
            (&self.latency_ms, &mut m.latency_ms),
            (&self.ttft_ms, &mut m.ttft_ms),
            (&self.evals, &mut m.evals),
            (&self.flags, &mut m.flags),
            (&self.tests_passed, &mut m.tests_passed),
            (&self.tests_failed, &mut m.tests_failed),
            (&self.tests_skipped, &mut m.tests_skipped),
            (&self.features, &mut m.features),
        ];
        for (spec, slot) in pairs {
            if let Some(p) = spec {
                slot.clone_from(&p.0);
            }
        }
        m
    }
}

/// Event-time windowing.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsSpec {
    /// The length of each tumbling window, in event time.
    pub size: Span,
    /// How long after a window's end (in event time) late events still count into it.
    pub allowed_lateness: Span,
    /// How far behind the newest event time of a partition other events may arrive.
    pub max_out_of_orderness: Span,
    /// A partition silent this long (wall clock) stops holding the watermark back.
    pub idle_partition_after: Span,
    /// How far ahead of this machine's clock an event time may be before it is refused
    /// (`future_timestamp`): one such event would drag its partition's watermark into the future
    /// and make every correct event after it late. Positive, at most 1d.
    pub max_future_skew: Span,
}

impl Default for WindowsSpec {
    fn default() -> Self {
        WindowsSpec {
            size: Span(Duration::from_secs(60)),
            allowed_lateness: Span(Duration::from_secs(30)),
            max_out_of_orderness: Span(Duration::from_secs(5)),
            idle_partition_after: Span(Duration::from_secs(30)),
            max_future_skew: Span(Duration::from_secs(300)),
        }
    }
}

impl WindowsSpec {
    pub fn window_config(&self) -> WindowConfig {
        WindowConfig {
            size_ms: self.size.millis(),
            allowed_lateness_ms: self.allowed_lateness.millis(),
            max_out_of_orderness_ms: self.max_out_of_orderness.millis(),
        }
    }

    /// `windows.max_future_skew` in ms, for [`sliq_core::check_future_skew`].
    pub fn max_future_skew_ms(&self) -> i64 {
        self.max_future_skew.millis()
    }
}

/// The longest `windows.max_future_skew` accepted.
pub const MAX_FUTURE_SKEW_LIMIT: Duration = Duration::from_secs(86_400);

/// Where metrics go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// `false` sends nothing (an archive-only instance, or measuring what export costs).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The OTLP exporter.
    #[serde(default)]
    pub otlp: OtlpSpec,
}

impl Default for ExportSpec {
    fn default() -> Self {
        ExportSpec {
            enabled: true,
            otlp: OtlpSpec::default(),
        }
    }
}

fn enabled() -> bool {
    true
}

/// The OTLP exporter: `grpc` (default), `http/protobuf`, or a `file://` path for OTLP/JSON lines.
/// Keys left out here may come from the standard `OTEL_EXPORTER_OTLP_*` variables.
// The keys that have such a variable are optional rather than defaulted, so that resolving can
// tell a key left out from one set (see [`OtlpSpec::resolve`]).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSpec {
    /// The collector: `http(s)://host:port`, or `file:///path` for OTLP/JSON lines. Default:
    /// `OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT`, then `http://127.0.0.1:4317`.
    pub endpoint: Option<String>,
    /// `grpc`, `http/protobuf` or `file`. Default: `OTEL_EXPORTER_OTLP_(METRICS_)PROTOCOL`, then
    /// `file` for a `file://` endpoint and `grpc` otherwise.
    pub protocol: Option<Protocol>,
    /// `cumulative` (default) or `delta`.
    pub temporality: Temporality,
    /// How long one export may take. Default: `OTEL_EXPORTER_OTLP_(METRICS_)TIMEOUT`, then 10s.
    pub timeout: Option<Span>,
    /// Sent with every request (`Authorization`, tenant headers); values never appear in messages.
    pub headers: BTreeMap<String, Secret>,
    /// `gzip` or `none`. Default: `OTEL_EXPORTER_OTLP_(METRICS_)COMPRESSION`, then none.
    pub compression: Option<Compression>,
    /// Certificates for an `https://` collector.
    pub tls: TlsSpec,
    /// Closed windows not yet acknowledged by the collector are kept up to this many bytes
    /// (encoded); past it the partitions are paused until the collector takes them.
    #[schemars(range(min = 1_048_576))]
    pub max_backlog_bytes: u64,
}

impl Default for OtlpSpec {
    fn default() -> Self {
        OtlpSpec {
            endpoint: None,
            protocol: None,
            temporality: Temporality::Cumulative,
            timeout: None,
            headers: BTreeMap::new(),
            compression: None,
            tls: TlsSpec::default(),
            max_backlog_bytes: 64 << 20,
        }
    }
}

/// PEM files for an `https://` collector: the CA that signed its certificate (the system's roots
/// when unset), and this client's certificate and key when the collector asks for one (mTLS).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSpec {
    /// The CA that signed the collector's certificate (PEM); default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for a collector that asks for one; with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
}

/// How request bodies travel: gzip saves most of a metrics request's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Compressed request bodies.
    Gzip,
    /// Uncompressed.
    None,
}

/// How metrics travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318, path /v1/metrics).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/JSON lines appended to the file the `file://` endpoint names.
    #[serde(rename = "file")]
    File,
}

/// As the OTLP specification writes the protocols.
impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "gRPC",
            Protocol::HttpProtobuf => "HTTP/protobuf",
            Protocol::File => "OTLP/JSON file",
        })
    }
}

/// Cumulative (default: a point carries the total since the series' start) or delta (a point
/// carries one window's counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Temporality {
    /// Each point carries the total since the series started.
    #[default]
    Cumulative,
    /// Each point carries one window's counts.
    Delta,
}

/// The smallest `archive.row_group_bytes` accepted: below it, row groups are mostly metadata.
const MIN_ROW_GROUP_BYTES: usize = 64 << 10;

/// The Parquet archive.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSpec {
    /// `false` archives nothing (metrics only; no audit trail of the raw records).
    pub enabled: bool,
    /// Where Parquet files go, Hive-partitioned by date and hour.
    pub dir: PathBuf,
    /// A file is closed at this many rows.
    pub max_rows: usize,
    /// A file is closed when it has been open this long, less up to 7/16 by the order files were
    /// opened in (so that files opened together do not roll at once).
    pub max_age: Span,
    /// The zstd compression level of the Parquet files (1 fast … 22 small).
    pub zstd_level: i32,
    /// An open file's rows go to the writer thread as one row group at this many bytes (or
    /// earlier, the largest file's first, once all open files' rows pass half of
    /// `max_buffered_bytes`, so that files filled at one pace do not empty together).
    #[schemars(range(min = 65_536))]
    pub row_group_bytes: usize,
    /// Rows in memory for the archive (filling or waiting for the writer), at most; past it
    /// reading waits for the writer.
    pub max_buffered_bytes: usize,
    /// What the archive must not keep; absent: every record as it arrived.
    pub redact: Option<RedactSpec>,
}

impl Default for ArchiveSpec {
    fn default() -> Self {
        ArchiveSpec {
            enabled: true,
            dir: PathBuf::from("sliq-archive"),
            max_rows: 200_000,
            max_age: Span(Duration::from_secs(60)),
            zstd_level: 3,
            row_group_bytes: 8 << 20,
            max_buffered_bytes: 128 << 20,
            redact: None,
        }
    }
}

/// Who else sets an attribute (or a Prometheus label) named like the record's label `key`.
fn reserved_attribute(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    match lower.as_str() {
        "severity" | "owner" | "alertname" => Some("the alert rules of `sliq rules`"),
        _ if lower.starts_with("sliq.") || lower.starts_with("sliq_") => Some("sliq's own series"),
        _ if lower.starts_with("__") => Some("Prometheus (its reserved labels)"),
        _ => None,
    }
}

impl PipelineSpec {
    /// Checks that need the whole spec; returns the offending key and what is wrong.
    pub(crate) fn check(&self) -> Result<(), (KeyRef, String)> {
        let k = &self.source.kafka;
        if k.topics.is_empty() {
            return Err((
                key("source.kafka.topics", Some("topics")),
                "list at least one topic to consume, e.g. topics: [ai-logs]".into(),
            ));
        }
        if let Some(i) = k.topics.iter().position(|t| t.trim().is_empty()) {
            return Err((
                key(&format!("source.kafka.topics[{i}]"), Some("topics")),
                "a topic name is empty; write the topic's name, e.g. topics: [ai-logs]".into(),
            ));
        }
        if k.topics.contains(&k.dead_letter_topic) {
            return Err((
                key("source.kafka.dead_letter_topic", Some("dead_letter_topic")),
                format!(
                    "{:?} is also a consumed topic; dead letters must go elsewhere",
                    k.dead_letter_topic
                ),
            ));
        }
        k.check_security()?;
        if self.windows.size.0.as_millis() == 0 {
            return Err((
                key("windows.size", Some("size:")),
                "window size must be positive, e.g. 1m".into(),
            ));
        }
        let skew = self.windows.max_future_skew.0;
        if skew.as_millis() == 0 || skew > MAX_FUTURE_SKEW_LIMIT {
            return Err((
                key("windows.max_future_skew", Some("max_future_skew:")),
                format!(
                    "{} is outside (0, 1d]; write a small positive span such as 5m (how far \
                     ahead of this machine's clock an event time may be)",
                    Span(skew)
                ),
            ));
        }
        if self.export.otlp.max_backlog_bytes < 1 << 20 {
            return Err((
                key("export.otlp.max_backlog_bytes", Some("max_backlog_bytes:")),
                format!(
                    "{} bytes is too small to hold one export; write at least 1048576 (1 MiB), \
                     e.g. 67108864 (64 MiB, the default)",
                    self.export.otlp.max_backlog_bytes
                ),
            ));
        }
        let archive = &self.archive;
        if archive.row_group_bytes < MIN_ROW_GROUP_BYTES {
            return Err((
                key("archive.row_group_bytes", Some("row_group_bytes:")),
                format!(
                    "{} bytes makes row groups too small to compress or skip well; write at \
                     least 65536 (64 KiB), e.g. 8388608 (8 MiB, the default)",
                    archive.row_group_bytes
                ),
            ));
        }
        if archive.max_buffered_bytes < 2 * archive.row_group_bytes {
            return Err((
                key("archive.max_buffered_bytes", Some("max_buffered_bytes:")),
                format!(
                    "{} bytes cannot hold a row group filling while another is written; write at \
                     least twice archive.row_group_bytes ({}), e.g. 134217728 (128 MiB, the \
                     default)",
                    archive.max_buffered_bytes,
                    2 * archive.row_group_bytes
                ),
            ));
        }
        if let Some(redact) = &archive.redact {
            redact.check(&self.fields.field_map())?;
        }
        if self.admin.self_metrics.otlp() && !self.export.enabled {
            return Err((
                key("admin.self_metrics", Some("self_metrics:")),
                "self-metrics over OTLP go to export.otlp.endpoint, but export.enabled is false: \
                 enable the export or write self_metrics: prometheus"
                    .into(),
            ));
        }
        if self.admin.self_metrics.otlp()
            && (self.export.otlp.protocol == Some(Protocol::File)
                || self
                    .export
                    .otlp
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("file://")))
        {
            return Err((
                key("admin.self_metrics", Some("self_metrics:")),
                "self-metrics over OTLP go to export.otlp.endpoint, which is a file here; point \
                 it at a collector or write self_metrics: prometheus"
                    .into(),
            ));
        }
        if self.ledger.snapshot_every.0.as_millis() == 0 {
            return Err((
                key("ledger.snapshot_every", Some("snapshot_every:")),
                "the ledger needs snapshots to restart without reading the window topic from its \
                 beginning; write e.g. 30s"
                    .into(),
            ));
        }
        if self.ledger.window_retention.0 < self.ledger.snapshot_every.0 * 4 {
            return Err((
                key("ledger.window_retention", Some("window_retention:")),
                format!(
                    "the window topic must keep at least four snapshot intervals ({}), or a \
                     ledger taking over may find what it needs deleted; write e.g. 7d",
                    Span(self.ledger.snapshot_every.0 * 4)
                ),
            ));
        }
        if self.shutdown_timeout.0.as_millis() == 0 {
            return Err((
                key("shutdown_timeout", Some("shutdown_timeout:")),
                "a stop needs some time to export and commit; write e.g. 30s".into(),
            ));
        }
        crate::slo_spec::check_slos(&self.slos)?;
        if let Some(drift) = &self.drift {
            drift.check()?;
            if let Some(span) = drift.reference.trailing
                && span.0 < self.windows.size.0
            {
                return Err((
                    key("drift.reference.trailing", Some("trailing:")),
                    format!(
                        "a trailing reference of {} is shorter than one window ({}), so no \
                         window would ever have a reference; use a span of whole windows, e.g. 7d",
                        span, self.windows.size
                    ),
                ));
            }
        }
        for (i, slo) in self.slos.iter().enumerate() {
            for d in &slo.dimensions {
                if let sliq_core::slo::Dimension::Label(label) = &d.0
                    && let Some(owner) = reserved_attribute(label)
                {
                    return Err((
                        key(
                            &format!("slos[{i}].dimensions"),
                            Some(&format!("name: {}", slo.name)),
                        ),
                        format!(
                            "labels.{label} would become the attribute `{label}`, which {owner} \
                             already sets, so one would hide the other; split by a label of \
                             another name (rename it where the records are written)"
                        ),
                    ));
                }
            }
        }
        for (i, slo) in self.slos.iter().enumerate() {
            if slo.sli.drift.is_none() {
                continue;
            }
            let at = key(
                &format!("slos[{i}].sli.drift"),
                Some(&format!("name: {}", slo.name)),
            );
            let Some(drift) = &self.drift else {
                return Err((
                    at,
                    "a drift SLO needs a `drift:` section declaring the features to watch".into(),
                ));
            };
            if slo.dimensions != drift.dimensions {
                return Err((
                    at,
                    "a drift SLO has the dimensions of the `drift:` section (drift is judged per \
                     those values); make them equal"
                        .into(),
                ));
            }
            if slo.tiers.is_some() || !slo.depends_on.is_empty() {
                return Err((
                    at,
                    "a drift SLO takes no tiers or depends_on: it judges windows, not requests"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// The decoder of this spec's records: its field map, and every other pointer the pipeline reads
    /// after decoding (drift features, cascade correlation keys), so one pass over a record
    /// captures them all.
    pub fn decoder(&self, max_record_bytes: usize) -> Decoder {
        let features = self.drift.as_ref().map(DriftSpec::features);
        let slos = self.slos();
        Decoder::new(self.fields.field_map(), max_record_bytes).reading(
            slos.iter()
                .map(|s| s.correlate_by.as_str())
                .chain(features.iter().flatten().map(|f| f.pointer.as_str())),
        )
    }

    /// The compiled `archive.redact` rules, if the spec has them (checked when the spec was read).
    pub fn redactor(&self) -> Result<Option<Redactor>, RedactError> {
        self.archive
            .redact
            .as_ref()
            .map(|r| r.redactor(&self.fields.field_map()))
            .transpose()
    }

    /// The name of the drift SLO, if the spec declares one.
    pub fn drift_slo(&self) -> Option<String> {
        self.slos
            .iter()
            .find(|s| s.sli.drift.is_some())
            .map(|s| s.name.clone())
    }

    /// The SLOs as the core evaluates them.
    pub fn slos(&self) -> Vec<Slo> {
        crate::slo_spec::expand(&self.slos, &self.fields.field_map().id)
    }
}

pub(crate) fn key(path: &str, needle: Option<&str>) -> KeyRef {
    KeyRef {
        path: path.to_owned(),
        needle: needle.map(str::to_owned),
    }
}
