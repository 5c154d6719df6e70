//! OTLP metrics: closed windows become official OTLP messages, and an [`Exporter`] delivers them.
//!
//! The messages are built straight from `opentelemetry-proto` because the SDK's instruments stamp
//! points with the wall clock, while a sliq point must carry the *event-time* end of its window: a
//! replayed window yields the same points, and dashboards line up with when requests happened.

mod build;
mod export;
pub mod names;
mod transport;

pub use build::{
    ExportBatch, LatencyTotal, MetricsBuilder, RecordCounts, SeriesTotal, Temporality, window_label,
};
pub use export::{ExportError, Exporter};
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use transport::{Headers, PemFile, TlsFiles, Transport};
