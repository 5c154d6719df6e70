//! The self-metrics over OTLP: the SDK's periodic reader collects the instruments, and
//! [`SelfMetricsPush`] turns what it collected into one `ExportMetricsServiceRequest`
//! (opentelemetry-proto's own transform) and sends it through the same [`Exporter`] kind as the
//! SLI metrics, made from the same resolved [`OtlpSettings`]. So the self-metrics travel with
//! exactly the export's TLS files, headers, gzip, timeout and protocol, through one TLS stack,
//! and a failure is worded as the SLI exporter words it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};
use sliq_config::{OtlpSettings, Protocol};
use sliq_otlp::{ExportMetricsServiceRequest, Exporter};
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::error::PipelineError;
use crate::export::open_exporter;
use crate::outage::{Outage, failing, human};

/// The periodic OTLP reader of the self-metrics, sending to the export's collector.
pub(super) fn otlp_reader(
    settings: &OtlpSettings,
    interval: Duration,
    rt: &Handle,
) -> Result<PeriodicReader<SelfMetricsPush>, PipelineError> {
    if settings.protocol == Protocol::File {
        return Err(PipelineError::SelfMetricsExporter {
            endpoint: settings.endpoint.value.clone(),
            detail: "a file is not an OTLP collector".into(),
        });
    }
    let push = SelfMetricsPush {
        exporter: Arc::new(tokio::sync::Mutex::new(open_exporter(true, settings, rt)?)),
        endpoint: settings.endpoint.value.clone(),
        rt: rt.clone(),
        outage: parking_lot::Mutex::new(Outage::default()),
    };
    Ok(PeriodicReader::builder(push)
        .with_interval(interval)
        .build())
}

/// Sends what the periodic reader collected; the reader calls it from its own thread, one
/// export at a time, and the request goes out on the runtime that drives the connection.
#[derive(Debug)]
pub(crate) struct SelfMetricsPush {
    /// Behind a lock only because the sending task must own a handle to it.
    exporter: Arc<tokio::sync::Mutex<Exporter>>,
    endpoint: String,
    rt: Handle,
    /// A collector that stays away is reported once per interval, not per export.
    outage: parking_lot::Mutex<Outage>,
}

impl SelfMetricsPush {
    fn report(&self, result: &Result<(), String>) {
        let now = Instant::now();
        let mut outage = self.outage.lock();
        match result {
            Ok(()) => {
                if let Some(lasted) = outage.recovered(now) {
                    info!(
                        "self-metrics reach {} again after {}",
                        self.endpoint,
                        human(lasted)
                    );
                }
            }
            Err(detail) => {
                if let Some(lasted) = outage.failed(now) {
                    warn!(
                        "self-metrics to {} {}: {detail}",
                        self.endpoint,
                        failing(lasted)
                    );
                }
            }
        }
    }
}

impl PushMetricExporter for SelfMetricsPush {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let request = ExportMetricsServiceRequest::from(metrics);
        let exporter = Arc::clone(&self.exporter);
        let sending = self
            .rt
            .spawn(async move { exporter.lock().await.export(&request).await });
        async move {
            let result = match sending.await {
                Ok(sent) => sent.map_err(|e| e.to_string()),
                Err(stopped) => Err(format!("the runtime stopped the export ({stopped})")),
            };
            self.report(&result);
            result.map_err(OTelSdkError::InternalFailure)
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    /// Totals since the start, as the Prometheus endpoint shows them.
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
