//! The consume loop and the state it drives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use sliq_archive::{Archive, ArchiveConfig, ClosedFile, SourcePosition};
use sliq_config::{OtlpSettings, PipelineSpec, Temporality};
use sliq_core::drift::{DriftMonitor, Observation, recycle};
use sliq_core::{
    Admission, Decoder, Evaluator, Event, LatencySeries, Reject, SeriesId, SourceId, Verdict,
    Windows,
};
use sliq_otlp::{MetricsBuilder, RecordCounts};
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use crate::admin::{Stage, Tally, Telemetry};
use crate::budgets::Budgets;
use crate::checkpoint::Mode;
use crate::dead_letter::{DeadLetters, SourceOffset};
use crate::error::PipelineError;
use crate::export::{Export, ExportQueue, open_exporter};
use crate::kafka_client::{AccessWatch, WatchedContext, client_config};
use crate::outage::{Outage, failing, human};
use crate::partials::{MAX_WAITING_PARTIALS, Partials};
use crate::persist::checkpoint::{Names, PartitionState};
use crate::persist::state_dir::StateDir;
use crate::progress::Progress;
use crate::rebalance::SourceContext;
use crate::redaction::Redaction;
use crate::source::Sources;

/// When a run ends by itself (besides the stop flag).
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Stop once no record arrived for this long and the group has committed every partition of
    /// the topics to its end (catch-up runs, tests, backfills); until then, close and commit what
    /// was read once per interval and wait.
    pub exit_on_idle: Option<Duration>,
    /// Stop after this many records were read (the bounded demo).
    pub max_records: Option<u64>,
    /// How often windows are closed, exported, checkpointed and offsets committed.
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

/// Which part of the pipeline a process runs (ARCHITECTURE.md, "The ledger").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Everything in one process, with its checkpoints under `state.dir`.
    #[default]
    All,
    /// Reads, archives and dead-letters its partitions, and hands its counts to the ledger
    /// through the window topic.
    Reader,
    /// Merges every reader's counts and is the one writer of counters, budgets, alerts and
    /// drift.
    Ledger,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub instance_id: String,
    pub accepted: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub replayed: u64,
    pub archive_files: usize,
    pub exports: u64,
}

/// Everything the loop and the rebalance callback share: one field per stage (ARCHITECTURE.md,
/// "Stages and threads"), each owning its state, and the loop's own flags.
pub(crate) struct State {
    pub(crate) reader: Reader,
    /// The archive stage's handle (its writer runs on its own thread); `None` with
    /// `archive.enabled: false`.
    pub(crate) archive: Option<Archive>,
    /// What the archive must not keep, applied to each record on its way in; `None` without
    /// `archive.redact`.
    redaction: Option<Redaction>,
    pub(crate) export: Export,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) checkpoints: Checkpoints,
    /// With `--role reader`: the window topic, where counts go instead of closed windows.
    pub(crate) partials: Option<Partials>,
    /// Records whose dead letters reached the topic after the resumed checkpoint: not sent again.
    pub(crate) sent_before: HashSet<SourceOffset>,
    /// A failure inside the rebalance callback, raised by the loop.
    pub(crate) failure: Option<PipelineError>,
    /// Partitions paused because the export backlog is full.
    pub(crate) paused: bool,
    /// Health and self-metrics, read by the admin server.
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) shutdown_timeout: Duration,
}

/// The reader stage: polls, decodes and judges; owns the partitions' positions, the windows and
/// every series.
pub(crate) struct Reader {
    pub(crate) decoder: Decoder,
    pub(crate) evaluator: Evaluator,
    pub(crate) windows: Windows,
    pub(crate) latency_series: LatencySeries,
    /// Drift detection, when the spec has a `drift:` section.
    pub(crate) drift: Option<DriftMonitor>,
    pub(crate) sources: Sources,
    pub(crate) counts: RecordCounts,
    /// Per SLO: [good, bad] counted so far, for the live table.
    pub(crate) slo_totals: Vec<[u64; 2]>,
    /// SLOs whose folding into `other` was already warned about.
    pub(crate) folded_warned: std::collections::BTreeSet<usize>,
    pub(crate) max_future_skew_ms: i64,
    pub(crate) idle_after: Duration,
    pub(crate) progress: Option<Arc<Progress>>,
    /// Records counted since the last batch handed its figures to the self-metrics.
    pub(crate) tally: Tally,
    /// The reused buffer of one event's verdicts.
    outcomes: Vec<(SeriesId, Verdict)>,
    /// The reused buffer of one event's feature values.
    observations: Vec<(u32, Observation<'static>)>,
}

/// The checkpoint and commit stage: what survives a restart and what was last made durable.
pub(crate) struct Checkpoints {
    pub(crate) state_dir: StateDir,
    /// The sequence number of the last checkpoint written.
    pub(crate) seq: u64,
    /// Something a checkpoint records changed since the last one.
    pub(crate) dirty: bool,
    /// Partitions this instance checkpointed but does not hold now, by (topic, partition): used
    /// if one comes back and nobody else moved it meanwhile.
    pub(crate) resumable: HashMap<(String, i32), PartitionState>,
    /// Per partition, the commit the last checkpoint written recorded: commits never pass it.
    pub(crate) recorded_commits: HashMap<SourceId, i64>,
    /// Closed windows' counts whose rollups the next checkpoint written appends.
    pub(crate) rollups_due: Vec<sliq_core::WindowCounts>,
    /// Budget rollups and statuses, persisted with each checkpoint.
    pub(crate) budgets: Budgets,
    pub(crate) commit_outage: Outage,
    /// Archive files published so far.
    pub(crate) archive_files: usize,
}

const HOUR_MS: i64 = 3_600_000;

/// Records handled per poll batch (one clock read, one pass of the loop's bookkeeping): enough to
/// amortize both, few enough that a checkpoint is never late by more than a few milliseconds.
const MAX_BATCH: usize = 1024;

/// Dead letters kept in memory while their topic does not acknowledge; past this reading pauses.
const MAX_WAITING_LETTERS: usize = 10_000;

impl Reader {
    fn records_read(&self) -> u64 {
        self.counts.accepted + self.counts.dead_lettered + self.counts.late
    }

    /// The names of this process's series ids, for a checkpoint.
    pub(crate) fn names(&mut self) -> Names<'_> {
        Names {
            evaluator: &mut self.evaluator,
            latency: &mut self.latency_series,
            features: self.drift.as_mut().map(|m| &mut m.features),
        }
    }
}

impl State {
    fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        now: Instant,
        now_ms: i64,
    ) -> Result<(), PipelineError> {
        let id = self.reader.sources.id(msg.topic(), msg.partition(), now);
        let offset = msg.offset();
        let source = self.reader.sources.get_mut(id);
        source.next_offset = Some(offset + 1);
        source.last_record_at = now;
        source.idle = false;
        source.assigned = true;
        self.checkpoints.dirty = true;
        if let Some(p) = &self.reader.progress {
            p.record_read();
        }
        self.reader.tally.read += 1;
        let payload = msg.payload();
        if let Some(resume) = &mut source.resume {
            if offset < resume.count_from {
                resume.replayed_to = resume.replayed_to.max(offset + 1);
            }
            if offset < resume.archive_from {
                return Ok(());
            }
            if offset < resume.count_from {
                return self.archive_again(id, msg, now, now_ms);
            }
            source.resume = None;
        }
        if source.replay_until.is_some_and(|until| offset < until) {
            self.reader.counts.replayed += 1;
            source.unpublished.replayed += 1;
            self.reader.tally.replayed += 1;
        }
        let value = match self.reader.decoder.parse_payload(payload) {
            Ok(v) => v,
            Err(reject) => return self.dead_letter(id, msg, &reject),
        };
        let event = match self.reader.decoder.decode(&value) {
            Ok(e) => e,
            Err(reject) => return self.dead_letter(id, msg, &reject),
        };
        if let Err(reject) =
            sliq_core::check_future_skew(event.ts_ms, now_ms, self.reader.max_future_skew_ms)
        {
            return self.dead_letter(id, msg, &reject);
        }
        self.reader.outcomes.clear();
        self.reader
            .evaluator
            .evaluate(&event, &mut self.reader.outcomes);
        let latency = self.reader.latency_series.observe(&event);
        let admission = self.reader.windows.add(
            id,
            offset,
            event.ts_ms,
            &self.reader.outcomes,
            self.reader.evaluator.deferred(),
            latency,
        );
        match admission {
            Admission::Counted => {
                self.reader.counts.accepted += 1;
                self.reader.sources.get_mut(id).unpublished.accepted += 1;
                self.reader.tally.accepted += 1;
                if let Some(monitor) = &mut self.reader.drift {
                    let mut observations = recycle(std::mem::take(&mut self.reader.observations));
                    monitor.observe(&event, &mut observations);
                    self.reader
                        .windows
                        .add_drift(id, offset, event.ts_ms, &observations);
                    self.reader.observations = recycle(observations);
                }
                // The live table counts waiting (deferred) verdicts as judged so far.
                let waiting = self
                    .reader
                    .evaluator
                    .deferred()
                    .iter()
                    .map(|d| (d.series, d.verdict));
                for (series, verdict) in self.reader.outcomes.iter().copied().chain(waiting) {
                    let slo = self.reader.evaluator.series(series).slo;
                    self.reader.slo_totals[slo][0] += verdict.good;
                    self.reader.slo_totals[slo][1] += verdict.bad;
                }
            }
            Admission::Late => {
                self.reader.counts.late += 1;
                self.reader.sources.get_mut(id).unpublished.late += 1;
                self.reader.tally.late += 1;
            }
        }
        // A reader does not know whether the ledger will find the record late: the row says so
        // (null), as a replay's does.
        let admission = self.partials.is_none().then_some(admission);
        archive_record(
            &mut self.archive,
            &mut self.redaction,
            msg,
            (&event, admission),
            (now_ms, now),
        )
    }

    /// A record a resumed checkpoint had counted but whose archive file was only in memory:
    /// archived again, unless a written file holds it; refused ones were dead-lettered then.
    fn archive_again(
        &mut self,
        id: SourceId,
        msg: &BorrowedMessage<'_>,
        now: Instant,
        now_ms: i64,
    ) -> Result<(), PipelineError> {
        let payload = msg.payload();
        let Ok(value) = self.reader.decoder.parse_payload(payload) else {
            return Ok(());
        };
        let Ok(event) = self.reader.decoder.decode(&value) else {
            return Ok(());
        };
        if self
            .reader
            .sources
            .get(id)
            .is_archived(event.ts_ms.div_euclid(HOUR_MS), msg.offset())
        {
            return Ok(());
        }
        // Whether it was late then is not known now: the row says so (null).
        archive_record(
            &mut self.archive,
            &mut self.redaction,
            msg,
            (&event, None),
            (now_ms, now),
        )
    }

    /// Remembers written files per partition, for the checkpoint's replay list (when their
    /// `Written` is drained, at the checkpoint cut).
    pub(crate) fn note_archived(&mut self, closed: &[ClosedFile]) {
        for f in closed {
            if let Some(id) = self.reader.sources.find(&f.topic, f.partition) {
                self.reader.sources.get_mut(id).archived.push(f.range());
            }
        }
    }

    fn dead_letter(
        &mut self,
        id: SourceId,
        msg: &BorrowedMessage<'_>,
        reject: &Reject,
    ) -> Result<(), PipelineError> {
        self.reader.counts.dead_lettered += 1;
        self.reader.sources.get_mut(id).unpublished.dead_lettered += 1;
        self.reader.tally.dead_letter(reject.code());
        if !self.sent_before.is_empty()
            && self.sent_before.remove(&SourceOffset {
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                offset: msg.offset(),
            })
        {
            return Ok(());
        }
        self.dead_letters.send(msg, reject)
    }

    /// Continues from this instance's checkpoint: the cumulative series, the record counters, the
    /// export backlog and the window frontier now; each partition's entry when it is assigned.
    fn resume(&mut self, checkpoint: crate::persist::checkpoint::Checkpoint, horizon_ms: i64) {
        let now = Instant::now();
        self.checkpoints.seq = checkpoint.seq;
        self.reader.counts = checkpoint.records.into();
        self.export.exported_counts = self.reader.counts;
        if checkpoint.closed_before <= horizon_ms {
            self.reader
                .windows
                .restore_closed_before(checkpoint.closed_before);
        } else {
            warn!(
                "the checkpoint's windows reach past this machine's clock (a poisoned timestamp \
                 from an older run); they are not resumed"
            );
        }
        for request in checkpoint.bad_requests {
            self.reader.evaluator.restore_bad_request(&request.into());
        }
        let mut names = self.reader.names();
        let (totals, dropped) = names.restore_totals(checkpoint.series);
        let latency = names.restore_latency_totals(checkpoint.latency);
        for (id, total) in totals {
            self.export.builder.restore_total(id, total);
        }
        for (id, total) in latency {
            self.export.builder.restore_latency_total(id, total);
        }
        if dropped > 0 {
            warn!(
                series = dropped,
                "the checkpoint has series of SLOs no longer in the spec; they end here"
            );
        }
        let backlog = checkpoint
            .backlog
            .into_iter()
            .map(|stored| {
                let holds = stored
                    .holds
                    .iter()
                    .map(|h| (self.reader.sources.id(&h.topic, h.partition, now), h.offset))
                    .collect();
                (stored.file, holds)
            })
            .collect();
        if let Err(e) = self.export.queue.restore(backlog) {
            warn!(
                "{e}; those exports are lost, their windows' counts reach the collector with later points"
            );
        }
        for mut p in checkpoint.partitions {
            if p.newest_ts.is_some_and(|t| t > horizon_ms) {
                p.newest_ts = None;
                p.parts.retain(|part| part.start_ms() <= horizon_ms);
            }
            self.checkpoints
                .resumable
                .insert((p.topic.clone(), p.partition), p);
        }
        info!(
            seq = self.checkpoints.seq,
            partitions = self.checkpoints.resumable.len(),
            unexported = self.export.queue.len(),
            "resuming the checkpoint in {}",
            self.checkpoints.state_dir.path().display()
        );
    }
}

/// What every role starts with: the brokers answered, `state.dir` locked, the instance named,
/// the OTLP settings resolved, health and self-metrics served.
pub(crate) struct Started {
    pub(crate) watch: Arc<AccessWatch>,
    pub(crate) state_dir: StateDir,
    pub(crate) instance_id: String,
    pub(crate) client_id: String,
    pub(crate) settings: OtlpSettings,
    pub(crate) telemetry: Arc<Telemetry>,
    /// Serves from now on, so /healthz answers while the process starts and joins its group.
    pub(crate) admin: Option<crate::admin::AdminServer>,
    pub(crate) temporality: sliq_otlp::Temporality,
}

impl Started {
    pub(crate) fn new(
        spec: &PipelineSpec,
        instance_id: Option<&str>,
        rt: &Handle,
    ) -> Result<Started, PipelineError> {
        let connection = spec.source.kafka.connection();
        let watch = AccessWatch::new(connection);
        crate::kafka_client::probe_before_start(connection, &watch)?;
        let state_dir = StateDir::open(&spec.state.dir, instance_id)?;
        let instance_id = state_dir.instance_id().to_owned();
        let settings = spec
            .export
            .otlp
            .resolve(|name| std::env::var(name).ok())
            .map_err(PipelineError::OtlpSettings)?;
        let telemetry = Arc::new(Telemetry::new(spec, &settings, &instance_id, rt)?);
        let admin = spec
            .admin
            .listen
            .map(|address| crate::admin::serve(address, Arc::clone(&telemetry), rt))
            .transpose()?;
        let temporality = match spec.export.otlp.temporality {
            Temporality::Cumulative => sliq_otlp::Temporality::Cumulative,
            Temporality::Delta => sliq_otlp::Temporality::Delta,
        };
        Ok(Started {
            watch,
            client_id: format!("sliq-{instance_id}"),
            state_dir,
            instance_id,
            settings,
            telemetry,
            admin,
            temporality,
        })
    }
}

/// Runs the pipeline of `spec` on the current thread until `stop` is set, a limit is reached, or a
/// failure. `instance_id` defaults to the one kept in `state.dir`. Async work (exports,
/// dead-letter acknowledgements) runs on `rt`; call this from a thread outside the runtime (e.g.
/// `spawn_blocking`).
pub fn run(
    spec: &PipelineSpec,
    instance_id: Option<&str>,
    role: Role,
    limits: RunLimits,
    stop: &AtomicBool,
    progress: Option<Arc<Progress>>,
    rt: Handle,
) -> Result<RunSummary, PipelineError> {
    if role != Role::All
        && let Some(drift) = &spec.drift
        && drift.reference.first_events.is_some()
    {
        // Which events come first is one process's reading order; spread over readers it is
        // not defined.
        return Err(PipelineError::Drift(
            "drift.reference.first_events takes the first N events one process reads, which \
             readers and a ledger cannot agree on; with --role reader and --role ledger use \
             trailing (e.g. trailing: 7d) or a baseline file"
                .into(),
        ));
    }
    if role == Role::Ledger {
        return crate::ledger::run(spec, instance_id, limits, stop, rt);
    }
    let kafka = &spec.source.kafka;
    let otlp = &spec.export.otlp;
    let connection = kafka.connection();
    let Started {
        watch,
        state_dir,
        instance_id,
        client_id,
        settings,
        telemetry,
        admin: _admin_server,
        temporality,
    } = Started::new(spec, instance_id, &rt)?;
    let resumed = crate::persist::checkpoint::read(state_dir.path(), &instance_id);
    let now_ms = chrono::Utc::now().timestamp_millis();
    // Nothing legitimate lies further ahead than the skew guard lets through.
    let horizon_ms = now_ms
        .saturating_add(spec.windows.max_future_skew_ms())
        .saturating_add(spec.windows.size.millis());

    let exporter = open_exporter(spec.export.enabled, &settings, &rt)?;
    let pending_files = resumed
        .as_ref()
        .map(|c| c.pending_files.clone())
        .unwrap_or_default();
    let archive = spec
        .archive
        .enabled
        .then(|| {
            Archive::new(
                ArchiveConfig {
                    dir: spec.archive.dir.clone(),
                    max_rows: spec.archive.max_rows,
                    max_age: spec.archive.max_age.0,
                    zstd_level: spec.archive.zstd_level,
                    row_group_bytes: spec.archive.row_group_bytes,
                    max_buffered_bytes: spec.archive.max_buffered_bytes,
                    writer: instance_id.clone(),
                },
                &pending_files,
            )
        })
        .transpose()?;

    let mut dead_letters = DeadLetters::new(
        client_config(connection, &client_id),
        &watch,
        kafka.dead_letter_topic.clone(),
        state_dir.path(),
        rt.clone(),
        Arc::clone(&telemetry),
    )?;
    dead_letters.start_from(resumed.as_ref().map(|c| c.dead_letter_ends.as_slice()));
    let sent_before = if resumed.is_some() {
        dead_letters.sent_after_checkpoint()
    } else {
        HashSet::new()
    };

    let mut drift = spec
        .drift
        .as_ref()
        .map(|d| d.monitor(spec.drift_slo()))
        .transpose()
        .map_err(PipelineError::Drift)?;
    if let Some(monitor) = &mut drift {
        crate::persist::drift_reference::load(state_dir.path(), &instance_id, monitor);
    }
    let slos = spec.slos();
    let mut evaluator = Evaluator::new(slos);
    let budgets = Budgets::load(
        state_dir.path(),
        &instance_id,
        &mut evaluator,
        resumed.as_ref().map(|c| c.seq),
        horizon_ms,
    )?;
    let lineage_started_ms = resumed.as_ref().map_or(now_ms, |c| c.lineage_started_ms);
    let mut state = State {
        reader: Reader {
            decoder: spec.decoder(kafka.max_record_bytes),
            slo_totals: vec![[0, 0]; evaluator.slos().len()],
            evaluator,
            windows: Windows::new(spec.windows.window_config()),
            latency_series: LatencySeries::default(),
            drift,
            sources: Sources::default(),
            counts: RecordCounts::default(),
            folded_warned: std::collections::BTreeSet::new(),
            max_future_skew_ms: spec.windows.max_future_skew_ms(),
            idle_after: spec.windows.idle_partition_after.0,
            progress,
            tally: Tally::default(),
            outcomes: Vec::new(),
            observations: Vec::new(),
        },
        archive,
        redaction: Redaction::new(spec)?,
        export: Export {
            builder: MetricsBuilder::new(Some(&instance_id), temporality, lineage_started_ms),
            queue: ExportQueue::new(
                exporter,
                &settings.endpoint.value,
                otlp.max_backlog_bytes,
                state_dir.path(),
                rt.clone(),
                Arc::clone(&telemetry),
            ),
            exported_counts: RecordCounts::default(),
        },
        dead_letters,
        checkpoints: Checkpoints {
            state_dir,
            seq: 0,
            dirty: false,
            resumable: HashMap::new(),
            recorded_commits: HashMap::new(),
            rollups_due: Vec::new(),
            budgets,
            commit_outage: Outage::default(),
            archive_files: 0,
        },
        partials: None,
        sent_before,
        failure: None,
        paused: false,
        telemetry: Arc::clone(&telemetry),
        shutdown_timeout: spec.shutdown_timeout.0,
    };
    if let Some(checkpoint) = resumed {
        state.resume(checkpoint, horizon_ms);
    }
    if role == Role::Reader {
        let client = client_config(connection, &client_id);
        rt.block_on(crate::window_topic::ensure_topics(
            &client,
            &kafka.group_id,
            spec.ledger.window_retention.0,
        ))?;
        state.partials = Some(Partials::new(&client, &kafka.group_id, &instance_id, rt)?);
    }
    let state = Arc::new(Mutex::new(state));

    let mut consumer_config = client_config(connection, &client_id);
    // sliq's defaults first: the spec's own librdkafka options (client_config) win over them.
    for (key, value) in [
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "100"),
        // librdkafka's default (1 s) idles the fetcher for a whole second whenever the local
        // queue is full; a reader that drains it in less then waits in poll: a third of the run's
        // time on 1 KB records (BENCHMARKS.md, "End to end").
        ("fetch.queue.backoff.ms", "100"),
        ("session.timeout.ms", "10000"),
        // Members learn of a rebalance at their next heartbeat: at librdkafka's 3 s, an instance
        // joining a running group read nothing for 3 s, and neither did a takeover.
        ("heartbeat.interval.ms", "1000"),
        // Lag per partition and broker states for the self-metrics and /readyz.
        ("statistics.interval.ms", "1000"),
    ] {
        if !kafka.options.contains_key(key) {
            consumer_config.set(key, value);
        }
    }
    consumer_config
        .set("group.id", &kafka.group_id)
        // Static membership: a restarted instance takes its own partitions back.
        .set("group.instance.id", &instance_id);
    let consumer: BaseConsumer<SourceContext> = crate::kafka_client::create(
        &consumer_config,
        SourceContext {
            state: Arc::clone(&state),
            commit_warned_ms: std::sync::atomic::AtomicU64::new(0),
            client: WatchedContext::new(&watch),
            telemetry: Arc::clone(&telemetry),
        },
    )?;
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(PipelineError::kafka(format!(
            "subscribing to {}",
            topics.join(", ")
        )))?;
    info!(
        topics = %topics.join(", "),
        group = %kafka.group_id,
        instance = %instance_id,
        "consuming"
    );

    let consumed = consume(&consumer, &state, &watch, limits, stop, &topics);
    let mut st = state.lock();
    let finished = &mut *st;
    finished
        .telemetry
        .metrics
        .add_tally(&mut finished.reader.tally);
    if let Err(e) = consumed {
        // An error exit commits nothing more: what was not made durable is replayed.
        drop(st);
        return Err(e);
    }
    let deadline = Instant::now() + st.shutdown_timeout;
    st.checkpoint(&consumer, Mode::Final(deadline))?;
    // The revocation that leaving the group triggers has nothing left to wait for.
    st.shutdown_timeout = Duration::ZERO;
    let summary = RunSummary {
        instance_id: instance_id.clone(),
        accepted: st.reader.counts.accepted,
        dead_lettered: st.reader.counts.dead_lettered,
        late: st.reader.counts.late,
        replayed: st.reader.counts.replayed,
        archive_files: st.checkpoints.archive_files,
        exports: st.export.queue.acknowledged(),
    };
    let unexported = st.export.queue.len();
    drop(st);
    consumer.unsubscribe();
    // The OTLP reader sends what it has not sent yet.
    telemetry.metrics.shutdown();
    if unexported > 0 {
        warn!(
            "stopping with {unexported} export requests not acknowledged by {}: they are kept in \
             the checkpoint under {} and sent by the next run; offsets were committed only below \
             their records",
            settings.endpoint.value,
            spec.state.dir.display()
        );
    }
    Ok(summary)
}

fn consume(
    consumer: &BaseConsumer<SourceContext>,
    state: &Mutex<State>,
    watch: &AccessWatch,
    limits: RunLimits,
    stop: &AtomicBool,
    topics: &[&str],
) -> Result<(), PipelineError> {
    let mut last_checkpoint = Instant::now();
    let mut last_record = Instant::now();
    let mut idle_report = Outage::default();
    let mut poll_outage = Outage::default();
    let mut longest_pause = Duration::ZERO;
    let mut polled_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // The reader's pause: from the end of one batch to the start of this poll.
        longest_pause = longest_pause.max(polled_at.elapsed());
        let poll_started = Instant::now();
        let polled = consumer.poll(Duration::from_millis(50));
        // A refused login or certificate (seen by any client) ends the run: no wait cures it.
        watch.check()?;
        // One clock read per batch: the records waiting now share it.
        let now = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let batch_had_records = matches!(polled, Some(Ok(_)));
        let mut batch = polled;
        let mut batch_left = MAX_BATCH;
        let mut st = state.lock();
        if batch_had_records {
            st.telemetry
                .metrics
                .stage(Stage::Poll, now.duration_since(poll_started));
        }
        loop {
            if let Some(e) = st.failure.take() {
                return Err(e);
            }
            match batch {
                Some(Ok(msg)) => {
                    st.process(&msg, now, now_ms)?;
                    last_record = now;
                    idle_report.recovered(now);
                    if let Some(lasted) = poll_outage.recovered(now) {
                        info!("reading from Kafka again after {}", human(lasted));
                    }
                    if limits
                        .max_records
                        .is_some_and(|max| st.reader.records_read() >= max)
                    {
                        return Ok(());
                    }
                }
                Some(Err(e)) => {
                    if let Some(lasted) = poll_outage.failed(now) {
                        warn!(
                            "Kafka consumer {}: {e}; retrying (librdkafka reconnects and \
                             rejoins the group by itself)",
                            failing(lasted)
                        );
                    }
                    break;
                }
                None => break,
            }
            batch_left -= 1;
            if batch_left == 0 {
                break;
            }
            // The rebalance callback runs inside poll and takes the lock: never hold it there.
            drop(st);
            batch = consumer.poll(Duration::ZERO);
            st = state.lock();
        }
        polled_at = Instant::now();
        if batch_had_records {
            st.telemetry
                .metrics
                .stage(Stage::Batch, polled_at.duration_since(now));
        }
        st.export.queue.pump();
        st.apply_backpressure(consumer);
        st.publish_telemetry();
        if now.duration_since(last_checkpoint) >= limits.checkpoint_every {
            let started = Instant::now();
            st.checkpoint(consumer, Mode::Regular)?;
            last_checkpoint = Instant::now();
            st.telemetry
                .metrics
                .stage(Stage::Checkpoint, last_checkpoint.duration_since(started));
            debug!(
                longest_pause_ms = longest_pause.as_millis() as u64,
                "longest pause between polls in the last interval"
            );
            longest_pause = Duration::ZERO;
        }
        drop(st);
        if let Some(idle) = limits.exit_on_idle
            && last_record.elapsed() >= idle
            && idle_report.failed(now).is_some()
        {
            // Close and commit everything read so far, so the group's offsets can reach the end;
            // a record arriving later reopens its window.
            let mut st = state.lock();
            let deadline = Instant::now() + st.shutdown_timeout;
            st.checkpoint(consumer, Mode::Final(deadline))?;
            let unread = st.unread_partitions(consumer, topics);
            drop(st);
            if unread.is_empty() {
                info!(
                    "no record for {} and the group has committed every partition to its end: \
                     stopping",
                    human(idle)
                );
                return Ok(());
            }
            info!(
                "idle for {}, but not every partition is committed to its end yet: {}; waiting",
                human(last_record.elapsed()),
                unread.join(", ")
            );
        }
    }
    Ok(())
}

impl State {
    /// Hands the batch's counts to the self-metrics and publishes what the gauges and `/readyz`
    /// read: once per batch, never per record.
    fn publish_telemetry(&mut self) {
        let metrics = &self.telemetry.metrics;
        metrics.add_tally(&mut self.reader.tally);
        let gauges = &metrics.gauges;
        gauges.archive_buffered.store(
            self.archive
                .as_ref()
                .map_or(0, |a| a.buffered_bytes() as u64),
            Ordering::Relaxed,
        );
        gauges
            .export_buffered
            .store(self.export.queue.backlog_bytes() as u64, Ordering::Relaxed);
    }

    /// Pauses every assigned partition while the export backlog is full, resumes them once it has
    /// room again.
    fn apply_backpressure(&mut self, consumer: &BaseConsumer<SourceContext>) {
        let letters = self.dead_letters.pending();
        let partials = self.partials.as_ref().map_or(0, Partials::waiting);
        let pause = self.export.queue.is_full()
            || letters >= MAX_WAITING_LETTERS
            || partials >= MAX_WAITING_PARTIALS;
        let room = self.export.queue.has_room()
            && letters < MAX_WAITING_LETTERS / 2
            && partials < MAX_WAITING_PARTIALS / 2;
        if pause == self.paused || (!pause && !room) {
            return;
        }
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let result = if pause {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        };
        match result {
            Ok(()) => {
                self.paused = pause;
                if pause {
                    warn!(
                        "{} export requests wait for the collector, {letters} dead letters for \
                         the dead-letter topic and {partials} partials for the window topic: \
                         reading is paused until they drain",
                        self.export.queue.len()
                    );
                } else {
                    info!("exports and dead letters drained: reading again");
                }
            }
            Err(e) => warn!("cannot pause or resume the partitions: {e}"),
        }
    }

    /// Partitions of the subscribed topics whose committed offset is short of the high-water mark,
    /// as "topic/partition (committed c of h)".
    fn unread_partitions(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        topics: &[&str],
    ) -> Vec<String> {
        let timeout = Duration::from_secs(5);
        let mut unread = Vec::new();
        let mut ends = rdkafka::TopicPartitionList::new();
        for topic in topics {
            let metadata = match consumer.fetch_metadata(Some(topic), timeout) {
                Ok(m) => m,
                Err(e) => {
                    unread.push(format!("{topic} (no metadata: {e})"));
                    continue;
                }
            };
            for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
                match consumer.fetch_watermarks(topic, p.id(), timeout) {
                    Ok((_, high)) if high > 0 => {
                        let _ = ends.add_partition_offset(topic, p.id(), Offset::Offset(high));
                    }
                    Ok(_) => {}
                    Err(e) => unread.push(format!("{topic}/{} (no high-water mark: {e})", p.id())),
                }
            }
        }
        if ends.count() == 0 {
            return unread;
        }
        let committed = match consumer.committed_offsets(ends.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                unread.push(format!("the group's committed offsets are unknown ({e})"));
                return unread;
            }
        };
        for end in ends.elements() {
            let Offset::Offset(high) = end.offset() else {
                continue;
            };
            let done = committed
                .find_partition(end.topic(), end.partition())
                .and_then(|c| match c.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(0);
            if done < high {
                unread.push(format!(
                    "{}/{} (committed {done} of {high})",
                    end.topic(),
                    end.partition()
                ));
            }
        }
        unread
    }
}

/// Appends the record to the archive (if enabled), through `archive.redact` when the spec has
/// it, with what its windows did with it. Takes the two stages rather than the state: the event
/// borrows the reader's decoder.
fn archive_record(
    archive: &mut Option<Archive>,
    redaction: &mut Option<Redaction>,
    msg: &BorrowedMessage<'_>,
    (event, admission): (&Event<'_>, Option<Admission>),
    (now_ms, now): (i64, Instant),
) -> Result<(), PipelineError> {
    let Some(archive) = archive else {
        return Ok(());
    };
    let at = SourcePosition {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
    };
    let payload = msg.payload().unwrap_or_default();
    match redaction {
        None => archive.append(at, event, Some(payload), admission, now_ms, now)?,
        Some(redaction) => redaction
            .kept(payload, event, |row, raw| {
                archive.append(at, row, raw, admission, now_ms, now)
            })
            .map_err(|detail| {
                PipelineError::Redact(format!(
                    "cannot redact the record at {} partition {} offset {} for the archive: \
                     {detail}",
                    at.topic, at.partition, at.offset
                ))
            })??,
    }
    Ok(())
}
