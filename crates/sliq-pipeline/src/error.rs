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
    /// The dead-letter producer could not be made (bad `source.kafka.options`, typically). Failed
    /// deliveries are never this: they are retried until acknowledged (see `dead_letter`).
    #[error("dead-letter topic {topic:?}: {detail}; check source.kafka.options")]
    DeadLetter { topic: String, detail: String },
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
