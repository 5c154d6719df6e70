//! What an operator sees of a running instance: whether it is alive and ready (`/healthz`,
//! `/readyz`), and its own metrics (`/metrics` in Prometheus text, and/or OTLP to the spec's
//! collector under their own service name). The stages publish into [`Telemetry`] once per batch
//! or per change; the admin server and the OTLP reader only read it.

mod health;
pub(crate) mod names;
mod prometheus;
mod self_metrics;
mod server;

use std::collections::HashMap;

use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::metrics::PeriodicReader;
use sliq_config::{OtlpSettings, PipelineSpec, Protocol};
use tokio::runtime::Handle;

pub(crate) use health::Health;
pub(crate) use self_metrics::{SelfMetrics, Stage, Tally};
pub(crate) use server::serve;

use crate::error::PipelineError;
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

/// The periodic OTLP reader of the self-metrics, sending to the spec's collector.
fn otlp_reader(
    otlp: &OtlpSettings,
    interval: std::time::Duration,
    rt: &Handle,
) -> Result<PeriodicReader<opentelemetry_otlp::MetricExporter>, PipelineError> {
    let exporter = match otlp.protocol {
        Protocol::Grpc => {
            // tonic's channel needs the runtime's reactor when it is made.
            let _runtime = rt.enter();
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(&otlp.endpoint.value)
                .with_timeout(otlp.timeout)
                .build()
        }
        Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            // The resolved HTTP endpoint is already the URL requests are posted to.
            .with_endpoint(&otlp.endpoint.value)
            .with_timeout(otlp.timeout)
            .with_headers(
                otlp.headers
                    .iter()
                    .map(|header| (header.name.clone(), header.value.expose().to_owned()))
                    .collect::<HashMap<_, _>>(),
            )
            .build(),
        Protocol::File => {
            return Err(PipelineError::SelfMetricsExporter {
                endpoint: otlp.endpoint.value.clone(),
                detail: "a file is not an OTLP collector".into(),
            });
        }
    }
    .map_err(|e| PipelineError::SelfMetricsExporter {
        endpoint: otlp.endpoint.value.clone(),
        detail: e.to_string(),
    })?;
    Ok(PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build())
}
