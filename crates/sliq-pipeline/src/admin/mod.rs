//! What an operator sees of a running instance: whether it is alive and ready (`/healthz`,
//! `/readyz`), and its own metrics (`/metrics` in Prometheus text, and/or OTLP to the spec's
//! collector under their own service name). The stages publish into [`Telemetry`] once per batch
//! or per change; the admin server and the OTLP reader only read it.

mod health;
pub(crate) mod names;
mod otlp_reader;
mod prometheus;
mod self_metrics;
mod server;

use sliq_config::{OtlpSettings, PipelineSpec};
use tokio::runtime::Handle;

pub(crate) use health::Health;
pub(crate) use self_metrics::{PartialTally, SelfMetrics, Stage, Tally};
pub(crate) use server::{AdminServer, serve};

use crate::error::PipelineError;
use otlp_reader::otlp_reader;
use self_metrics::Readers;

/// Health and self-metrics, shared by the stages (writers) and the admin server (reader).
#[derive(Debug)]
pub(crate) struct Telemetry {
    pub(crate) metrics: SelfMetrics,
    pub(crate) health: Health,
}

impl Telemetry {
    /// The instruments and readers `spec.admin` asks for.
    pub(crate) fn new(
        spec: &PipelineSpec,
        otlp_settings: &OtlpSettings,
        instance_id: &str,
        rt: &Handle,
    ) -> Result<Self, PipelineError> {
        let otlp = &spec.export.otlp;
        let mode = spec.admin.self_metrics;
        let readers = Readers {
            prometheus: mode.prometheus(),
            otlp: mode
                .otlp()
                .then(|| otlp_reader(otlp_settings, spec.admin.self_metrics_interval.0, rt))
                .transpose()?,
        };
        let limits = (
            spec.archive.max_buffered_bytes as u64,
            otlp.max_backlog_bytes,
        );
        Ok(Telemetry {
            metrics: SelfMetrics::new(readers, instance_id, limits),
            health: Health::new(
                &otlp_settings.endpoint.value,
                &spec.source.kafka.brokers,
                &spec.source.kafka.dead_letter_topic,
            ),
        })
    }
}
