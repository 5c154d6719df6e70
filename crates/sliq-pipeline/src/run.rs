//! The consume loop and the state it drives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use sliq_archive::{Archive, ArchiveConfig, SourcePosition};
use sliq_config::{PipelineSpec, Protocol, Temporality};
use sliq_core::drift::{DriftMonitor, Observation, recycle};
use sliq_core::{Admission, Decoder, Evaluator, LatencySeries, Reject, SeriesId, Verdict, Windows};
use sliq_otlp::{Exporter, MetricsBuilder, RecordCounts};
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::budgets::Budgets;
use crate::checkpoint::Mode;
use crate::dead_letter::DeadLetters;
use crate::error::PipelineError;
use crate::progress::Progress;
use crate::source::Sources;

/// When a run ends by itself (besides the stop flag).
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Stop once no record arrived for this long (catch-up runs, tests, backfills).
    pub exit_on_idle: Option<Duration>,
    /// Stop after this many records were read (the bounded demo).
    pub max_records: Option<u64>,
    /// How often windows are closed, exported, and offsets committed.
    pub checkpoint_every: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            exit_on_idle: None,
            max_records: None,
            checkpoint_every: Duration::from_secs(1),
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub accepted: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub archive_files: usize,
    pub exports: u64,
}

/// Everything the loop and the rebalance callback share.
pub(crate) struct State {
    pub(crate) decoder: Decoder,
    pub(crate) evaluator: Evaluator,
    pub(crate) windows: Windows,
    pub(crate) archive: Archive,
    pub(crate) exporter: Exporter,
    pub(crate) builder: MetricsBuilder,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) sources: Sources,
    pub(crate) counts: RecordCounts,
    pub(crate) exported_counts: RecordCounts,
    /// Per SLO: [good, bad] counted so far, for the live table.
    pub(crate) slo_totals: Vec<[u64; 2]>,
    outcomes: Vec<(SeriesId, Verdict)>,
    pub(crate) rt: Handle,
    pub(crate) idle_after: Duration,
    pub(crate) archive_files: usize,
    pub(crate) exports: u64,
    pub(crate) progress: Option<Arc<Progress>>,
    pub(crate) budgets: Budgets,
    pub(crate) latency_series: LatencySeries,
    /// SLOs whose folding into `other` was already warned about.
    pub(crate) folded_warned: std::collections::BTreeSet<usize>,
    /// A failure inside the rebalance callback, raised by the loop.
    failure: Option<PipelineError>,
    /// Drift detection, when the spec has a `drift:` section.
    pub(crate) drift: Option<DriftMonitor>,
    /// The reused buffer of one event's feature values.
    observations: Vec<(u32, Observation<'static>)>,
    /// Where this instance's state lives (`state.dir`), and its id.
    pub(crate) state_dir: std::path::PathBuf,
    pub(crate) instance_id: String,
}

impl State {
    fn process(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), PipelineError> {
        let now = Instant::now();
        let id = self.sources.id(msg.topic(), msg.partition(), now);
        let source = self.sources.get_mut(id);
        source.next_offset = Some(msg.offset() + 1);
        source.last_record_at = now;
        source.idle = false;
        source.assigned = true;

        if let Some(p) = &self.progress {
            p.record_read();
        }
        let payload = msg.payload().unwrap_or_default();
        let value = match self.decoder.parse(payload) {
            Ok(v) => v,
            Err(reject) => return self.dead_letter(msg, &reject),
        };
        let event = match self.decoder.decode(&value) {
            Ok(e) => e,
            Err(reject) => return self.dead_letter(msg, &reject),
        };
        self.outcomes.clear();
        self.evaluator.evaluate(&event, &mut self.outcomes);
        let latency = self.latency_series.observe(&event);
        match self.windows.add(
            id,
            msg.offset(),
            event.ts_ms,
            &self.outcomes,
            self.evaluator.deferred(),
            latency,
        ) {
            Admission::Counted => {
                self.counts.accepted += 1;
                if let Some(monitor) = &mut self.drift {
                    let mut observations = recycle(std::mem::take(&mut self.observations));
                    monitor.observe(&event, &mut observations);
                    self.windows.add_drift(event.ts_ms, &observations);
                    self.observations = recycle(observations);
                }
                // The live table counts waiting (deferred) verdicts as judged so far.
                let waiting = self
                    .evaluator
                    .deferred()
                    .iter()
                    .map(|d| (d.series, d.verdict));
                for (series, verdict) in self.outcomes.iter().copied().chain(waiting) {
                    let slo = self.evaluator.series(series).slo;
                    self.slo_totals[slo][0] += verdict.good;
                    self.slo_totals[slo][1] += verdict.bad;
                }
            }
            Admission::Late => self.counts.late += 1,
        }
        let at = SourcePosition {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
        };
        let ingested_at_ms = chrono::Utc::now().timestamp_millis();
        self.archive
            .append(at, &event, payload, ingested_at_ms, now)?;
        Ok(())
    }

    fn dead_letter(
        &mut self,
        msg: &BorrowedMessage<'_>,
        reject: &Reject,
    ) -> Result<(), PipelineError> {
        self.counts.dead_lettered += 1;
        self.dead_letters.send(msg, reject)
    }

    fn records_read(&self) -> u64 {
        self.counts.accepted + self.counts.dead_lettered + self.counts.late
    }
}

/// Hands the pipeline state to librdkafka's rebalance callbacks: before partitions leave this
/// instance, everything read from them is made durable and committed.
struct SourceContext {
    state: Arc<Mutex<State>>,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut state = self.state.lock();
        if state.failure.is_some() {
            return;
        }
        if let Err(e) = state.checkpoint(consumer, Mode::Rebalance) {
            state.failure = Some(e);
            return;
        }
        for tp in revoked.elements() {
            if let Some(id) = state.sources.find(tp.topic(), tp.partition()) {
                state.windows.remove_source(id);
                let s = state.sources.get_mut(id);
                s.assigned = false;
                s.next_offset = None;
                s.committed = None;
            }
        }
        info!(
            partitions = revoked.count(),
            "partitions revoked after a checkpoint"
        );
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let mut state = self.state.lock();
            let now = Instant::now();
            for tp in assigned.elements() {
                let id = state.sources.id(tp.topic(), tp.partition(), now);
                let source = state.sources.get_mut(id);
                source.assigned = true;
                source.idle = false;
                source.last_record_at = now;
                state.windows.add_source(id);
            }
            info!(partitions = assigned.count(), "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            warn!(
                partitions = offsets.count(),
                "offset commit failed: {e}; the next checkpoint commits again"
            );
        }
    }
}

/// Runs the pipeline of `spec` on the current thread until `stop` is set, a limit is reached, or a
/// failure. Async work (exports, dead-letter acknowledgements) runs on `rt`; call this from a
/// thread outside the runtime (e.g. `spawn_blocking`).
pub fn run(
    spec: &PipelineSpec,
    instance_id: &str,
    limits: RunLimits,
    stop: &AtomicBool,
    progress: Option<Arc<Progress>>,
    rt: Handle,
) -> Result<RunSummary, PipelineError> {
    let kafka = &spec.source.kafka;
    let otlp = &spec.export.otlp;
    let exporter = match otlp.effective_protocol() {
        Protocol::Grpc => rt.block_on(async { Exporter::grpc(&otlp.endpoint, otlp.timeout.0) }),
        Protocol::HttpProtobuf => {
            Exporter::http(&otlp.endpoint, otlp.timeout.0, otlp.headers.clone())
        }
        Protocol::File => Exporter::file(&otlp.endpoint),
    }
    .map_err(PipelineError::Exporter)?;
    let temporality = match otlp.temporality {
        Temporality::Cumulative => sliq_otlp::Temporality::Cumulative,
        Temporality::Delta => sliq_otlp::Temporality::Delta,
    };
    let archive = Archive::new(ArchiveConfig {
        dir: spec.archive.dir.clone(),
        max_rows: spec.archive.max_rows,
        max_age: spec.archive.max_age.0,
        zstd_level: spec.archive.zstd_level,
    })?;

    let dead_letters = DeadLetters::new(
        client_config(kafka, instance_id),
        kafka.dead_letter_topic.clone(),
        &spec.state.dir,
        rt.clone(),
    )?;

    let mut drift = spec
        .drift
        .as_ref()
        .map(|d| d.monitor(spec.drift_slo()))
        .transpose()
        .map_err(PipelineError::Drift)?;
    if let Some(monitor) = &mut drift {
        crate::drift_state::load(&spec.state.dir, instance_id, monitor);
    }
    let slos = spec.slos();
    let mut evaluator = Evaluator::new(slos);
    let budgets = Budgets::load(&spec.state.dir, instance_id, &mut evaluator)?;
    let state = Arc::new(Mutex::new(State {
        decoder: Decoder::new(spec.fields.field_map(), kafka.max_record_bytes),
        slo_totals: vec![[0, 0]; evaluator.slos().len()],
        evaluator,
        budgets,
        folded_warned: std::collections::BTreeSet::new(),
        latency_series: LatencySeries::default(),
        windows: Windows::new(spec.windows.window_config()),
        archive,
        exporter,
        builder: MetricsBuilder::new(
            instance_id,
            temporality,
            chrono::Utc::now().timestamp_millis(),
        ),
        dead_letters,
        sources: Sources::default(),
        counts: RecordCounts::default(),
        exported_counts: RecordCounts::default(),
        outcomes: Vec::new(),
        rt,
        idle_after: spec.windows.idle_partition_after.0,
        archive_files: 0,
        exports: 0,
        progress,
        failure: None,
        drift,
        observations: Vec::new(),
        state_dir: spec.state.dir.clone(),
        instance_id: instance_id.to_owned(),
    }));

    let mut consumer_config = client_config(kafka, instance_id);
    consumer_config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000");
    let consumer: BaseConsumer<SourceContext> = consumer_config
        .create_with_context(SourceContext {
            state: Arc::clone(&state),
        })
        .map_err(PipelineError::kafka("creating the consumer"))?;
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(PipelineError::kafka(format!("subscribing to {topics:?}")))?;
    info!(?topics, group = %kafka.group_id, instance = instance_id, "consuming");

    consume(&consumer, &state, limits, stop)?;

    let mut st = state.lock();
    st.checkpoint(&consumer, Mode::Final)?;
    let summary = RunSummary {
        accepted: st.counts.accepted,
        dead_lettered: st.counts.dead_lettered,
        late: st.counts.late,
        archive_files: st.archive_files,
        exports: st.exports,
    };
    drop(st);
    consumer.unsubscribe();
    Ok(summary)
}

fn consume(
    consumer: &BaseConsumer<SourceContext>,
    state: &Mutex<State>,
    limits: RunLimits,
    stop: &AtomicBool,
) -> Result<(), PipelineError> {
    let mut last_checkpoint = Instant::now();
    let mut last_record = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let polled = consumer.poll(Duration::from_millis(50));
        let mut st = state.lock();
        if let Some(e) = st.failure.take() {
            return Err(e);
        }
        match polled {
            Some(Ok(msg)) => {
                st.process(&msg)?;
                last_record = Instant::now();
                if limits
                    .max_records
                    .is_some_and(|max| st.records_read() >= max)
                {
                    return Ok(());
                }
            }
            Some(Err(e)) => warn!("Kafka: {e}"),
            None => {}
        }
        if last_checkpoint.elapsed() >= limits.checkpoint_every {
            st.checkpoint(consumer, Mode::Regular)?;
            last_checkpoint = Instant::now();
        }
        drop(st);
        if limits
            .exit_on_idle
            .is_some_and(|idle| last_record.elapsed() >= idle)
        {
            info!("no record for {:?}: stopping", limits.exit_on_idle);
            return Ok(());
        }
    }
    Ok(())
}

fn client_config(kafka: &sliq_config::KafkaSpec, instance_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", format!("sliq-{instance_id}"));
    for (k, v) in &kafka.options {
        config.set(k, v);
    }
    config
}
