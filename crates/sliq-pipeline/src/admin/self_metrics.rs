//! sliq's own metrics: one set of OTel instruments, read by up to two readers, the Prometheus
//! endpoint's pull reader and the OTLP periodic reader (`admin.self_metrics`). Values are recorded
//! once; each reader only reads them.
//!
//! The reader thread never records per record: it keeps plain counters ([`Tally`]) and hands them
//! over once per poll batch; gauges are atomics read when a reader collects.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Temporality,
};
use parking_lot::Mutex;

use super::names::{self, Name};
use super::otlp_reader::SelfMetricsPush;

/// Where a stage's duration is recorded (`sliq.stage`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Poll,
    Batch,
    ArchiveWrite,
    Export,
    Commit,
    Checkpoint,
}

impl Stage {
    fn attribute(self) -> &'static str {
        match self {
            Stage::Poll => "poll",
            Stage::Batch => "batch",
            Stage::ArchiveWrite => "archive_write",
            Stage::Export => "export",
            Stage::Commit => "commit",
            Stage::Checkpoint => "checkpoint",
        }
    }
}

/// What the reader counted since it last handed its counts over: plain integers, no lock.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) read: u64,
    pub(crate) accepted: u64,
    pub(crate) late: u64,
    pub(crate) replayed: u64,
    /// Dead letters by reason code (a handful of codes: a short list beats a map).
    pub(crate) dead_lettered: Vec<(&'static str, u64)>,
}

/// What the ledger's book made of the partials read since the loop last handed them over.
#[derive(Debug, Default)]
pub(crate) struct PartialTally {
    pub(crate) applied: u64,
    pub(crate) repeated: u64,
    pub(crate) refused: u64,
}

impl Tally {
    pub(crate) fn dead_letter(&mut self, reason: &'static str) {
        match self.dead_lettered.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.dead_lettered.push((reason, 1)),
        }
    }
}

/// Values read when a reader collects: the memory in use and the lag per partition.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub(crate) archive_buffered: AtomicU64,
    pub(crate) export_buffered: AtomicU64,
    archive_limit: u64,
    export_limit: u64,
    /// (topic, partition) → high-water mark − committed offset, replaced by each statistics report.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Gauges {
    pub(crate) fn set_lag(&self, lag: BTreeMap<(String, i32), i64>) {
        *self.lag.lock() = lag;
    }
}

/// The pull reader the Prometheus endpoint collects from; the provider holds a second handle.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The instruments, the provider that owns their readers, and the gauges' shared values.
#[derive(Debug)]
pub(crate) struct SelfMetrics {
    provider: SdkMeterProvider,
    pull: Option<SharedReader>,
    records_read: Counter<u64>,
    records: Counter<u64>,
    archive_rows: Counter<u64>,
    archive_files: Counter<u64>,
    archive_size: Counter<u64>,
    stage_duration: Histogram<f64>,
    export_failures: Counter<u64>,
    commit_failures: Counter<u64>,
    dead_letter_failures: Counter<u64>,
    ledger_partials: Counter<u64>,
    pub(crate) gauges: Arc<Gauges>,
}

/// The readers to attach: the Prometheus endpoint's, and a periodic OTLP one.
pub(crate) struct Readers {
    pub(crate) prometheus: bool,
    pub(crate) otlp: Option<PeriodicReader<SelfMetricsPush>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("prometheus", &self.prometheus)
            .field("otlp", &self.otlp.is_some())
            .finish()
    }
}

fn counter(meter: &Meter, n: Name) -> Counter<u64> {
    meter
        .u64_counter(n.name)
        .with_unit(n.unit)
        .with_description(n.description)
        .build()
}

/// Adds each non-zero count to `counter` under `key` = its value.
fn add_each<const N: usize>(
    counter: &Counter<u64>,
    key: &'static str,
    counts: [(&'static str, u64); N],
) {
    for (value, n) in counts {
        if n > 0 {
            counter.add(n, &[KeyValue::new(key, value)]);
        }
    }
}

impl SelfMetrics {
    /// `limits` are the memory bounds (archive, export) shown beside what is buffered.
    pub(crate) fn new(readers: Readers, instance_id: &str, limits: (u64, u64)) -> Self {
        let resource = Resource::builder_empty()
            .with_service_name(names::SERVICE_NAME)
            .with_attributes([
                KeyValue::new("service.instance.id", instance_id.to_owned()),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let mut builder = SdkMeterProvider::builder().with_resource(resource);
        let pull = readers.prometheus.then(|| {
            SharedReader(Arc::new(
                ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
            ))
        });
        if let Some(reader) = &pull {
            builder = builder.with_reader(reader.clone());
        }
        if let Some(reader) = readers.otlp {
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder(names::SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let gauges = Arc::new(Gauges {
            archive_limit: limits.0,
            export_limit: limits.1,
            ..Gauges::default()
        });
        observe_gauges(&meter, &gauges);
        SelfMetrics {
            records_read: counter(&meter, names::RECORDS_READ),
            records: counter(&meter, names::RECORDS),
            archive_rows: counter(&meter, names::ARCHIVE_ROWS),
            archive_files: counter(&meter, names::ARCHIVE_FILES),
            archive_size: counter(&meter, names::ARCHIVE_SIZE),
            stage_duration: meter
                .f64_histogram(names::STAGE_DURATION.name)
                .with_unit(names::STAGE_DURATION.unit)
                .with_description(names::STAGE_DURATION.description)
                .with_boundaries(names::DURATION_BOUNDS.to_vec())
                .build(),
            export_failures: counter(&meter, names::EXPORT_FAILURES),
            commit_failures: counter(&meter, names::COMMIT_FAILURES),
            dead_letter_failures: counter(&meter, names::DEAD_LETTER_FAILURES),
            ledger_partials: counter(&meter, names::LEDGER_PARTIALS),
            gauges,
            provider,
            pull,
        }
    }

    /// Adds what the reader counted and starts its tally again.
    pub(crate) fn add_tally(&self, tally: &mut Tally) {
        if tally.read > 0 {
            self.records_read.add(tally.read, &[]);
        }
        add_each(
            &self.records,
            names::OUTCOME,
            [
                ("accepted", tally.accepted),
                ("late", tally.late),
                ("replayed", tally.replayed),
            ],
        );
        for (reason, n) in &tally.dead_lettered {
            if *n > 0 {
                self.records.add(
                    *n,
                    &[
                        KeyValue::new(names::OUTCOME, "dead_lettered"),
                        KeyValue::new(names::REASON, *reason),
                    ],
                );
            }
        }
        tally.read = 0;
        tally.accepted = 0;
        tally.late = 0;
        tally.replayed = 0;
        for (_, n) in &mut tally.dead_lettered {
            *n = 0;
        }
    }

    /// Adds what the ledger made of the partials it read and starts the tally again.
    pub(crate) fn add_partials(&self, tally: &mut PartialTally) {
        add_each(
            &self.ledger_partials,
            names::PARTIAL_OUTCOME,
            [
                ("applied", tally.applied),
                ("repeated", tally.repeated),
                ("refused", tally.refused),
            ],
        );
        *tally = PartialTally::default();
    }

    pub(crate) fn stage(&self, stage: Stage, took: Duration) {
        self.stage_duration.record(
            took.as_secs_f64(),
            &[KeyValue::new(names::STAGE, stage.attribute())],
        );
    }

    /// An archive file was published.
    pub(crate) fn archived(&self, rows: u64, bytes: u64) {
        self.archive_files.add(1, &[]);
        self.archive_rows.add(rows, &[]);
        self.archive_size.add(bytes, &[]);
    }

    pub(crate) fn export_failed(&self) {
        self.export_failures.add(1, &[]);
    }

    pub(crate) fn commit_failed(&self) {
        self.commit_failures.add(1, &[]);
    }

    pub(crate) fn dead_letter_failed(&self) {
        self.dead_letter_failures.add(1, &[]);
    }

    /// Everything recorded so far, for the Prometheus endpoint; `None` when it is not a reader
    /// (`admin.self_metrics: otlp`) or the provider is shut down.
    pub(crate) fn collect(&self) -> Option<ResourceMetrics> {
        let reader = self.pull.as_ref()?;
        let mut rm = ResourceMetrics::default();
        reader.collect(&mut rm).ok()?;
        Some(rm)
    }

    /// Sends what the OTLP reader has not sent yet and stops the readers (at the end of a run).
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// The gauges: read from [`Gauges`] whenever a reader collects.
fn observe_gauges(meter: &Meter, gauges: &Arc<Gauges>) {
    let g = Arc::clone(gauges);
    meter
        .i64_observable_gauge(names::CONSUMER_LAG.name)
        .with_unit(names::CONSUMER_LAG.unit)
        .with_description(names::CONSUMER_LAG.description)
        .with_callback(move |observer| {
            for ((topic, partition), lag) in g.lag.lock().iter() {
                observer.observe(
                    *lag,
                    &[
                        KeyValue::new(names::TOPIC, topic.clone()),
                        KeyValue::new(names::PARTITION, partition.to_string()),
                    ],
                );
            }
        })
        .build();
    let g = Arc::clone(gauges);
    bytes_by_stage(meter, names::BUFFERED, move || {
        [
            ("archive", g.archive_buffered.load(Ordering::Relaxed)),
            ("export", g.export_buffered.load(Ordering::Relaxed)),
        ]
    });
    let g = Arc::clone(gauges);
    bytes_by_stage(meter, names::BUFFER_LIMIT, move || {
        [("archive", g.archive_limit), ("export", g.export_limit)]
    });
}

/// A gauge of bytes per `sliq.stage`, read from `values` at each collection.
fn bytes_by_stage(
    meter: &Meter,
    n: Name,
    values: impl Fn() -> [(&'static str, u64); 2] + Send + Sync + 'static,
) {
    meter
        .u64_observable_gauge(n.name)
        .with_unit(n.unit)
        .with_description(n.description)
        .with_callback(move |observer| {
            for (stage, bytes) in values() {
                observer.observe(bytes, &[KeyValue::new(names::STAGE, stage)]);
            }
        })
        .build();
}
