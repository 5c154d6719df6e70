//! The pipeline's failures. Each stops the run *before* any offset past the failure is committed, so
//! a restart replays what was not made durable.

/// Why a pipeline stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("Kafka: {context}: {source}")]
    Kafka {
        context: String,
        source: rdkafka::error::KafkaError,
    },
    /// librdkafka could not make a client of the spec's settings (a certificate or key it cannot
    /// load, an unknown option); says which key to check and never shows an option's value.
    /// Failed dead-letter deliveries are never this: they are retried until acknowledged.
    #[error("{0}")]
    KafkaClient(String),
    /// The brokers refused sliq's login or certificates: no wait cures that, so the run stops
    /// and says what to check (see `kafka_client`).
    #[error("{0}")]
    KafkaRefused(String),
    #[error("archive: {0}")]
    Archive(#[from] sliq_archive::ArchiveError),
    #[error(
        "OTLP export failed after {attempts} attempts, last: {last}; offsets were not committed, so a restart replays"
    )]
    Export {
        attempts: u32,
        last: sliq_otlp::ExportError,
    },
    #[error("exporter: {0}")]
    Exporter(sliq_otlp::ExportError),
    /// A setting of `export.otlp` or an `OTEL_EXPORTER_OTLP_*` variable that cannot be used.
    #[error("{0}")]
    OtlpSettings(sliq_config::OtlpSettingsError),
    /// The drift section could not be set up (its baseline file, typically); says what to do.
    #[error("{0}")]
    Drift(String),
    #[error("cannot {action} {path}: {source}; check state.dir, its permissions and free space")]
    State {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state.dir {path} is in use by another sliq process; give each instance its own state.dir \
         (e.g. one volume per StatefulSet pod)"
    )]
    StateLocked { path: std::path::PathBuf },
    /// A record the archive must keep redacted could not be (the spec's checks rule out the
    /// known causes); nothing past it is committed.
    #[error("{0}; check archive.redact")]
    Redact(String),
    #[error(
        "cannot serve the admin endpoints on {address}: {source}; choose a free address with \
         --admin-listen or admin.listen (e.g. 127.0.0.1:9464)"
    )]
    AdminListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot send the self-metrics to {endpoint}: {detail}; check export.otlp or set \
         admin.self_metrics: prometheus"
    )]
    SelfMetricsExporter { endpoint: String, detail: String },
    #[error("cannot encode the checkpoint {path}: {detail}")]
    Checkpoint {
        path: std::path::PathBuf,
        detail: String,
    },
}

impl PipelineError {
    pub(crate) fn kafka(
        context: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let context = context.into();
        move |source| PipelineError::Kafka { context, source }
    }
}
