//! The export stage: OTLP requests wait in a bounded backlog and go out one at a time, off the
//! pipeline thread, retried with backoff for as long as the collector is away. Reading goes on
//! while the backlog has room; when it is full the pipeline pauses its partitions (backpressure).
//!
//! A request leaves the backlog only once acknowledged; the offsets its windows hold
//! ([`ExportQueue::hold_floor`]) are not committed before that. Each waiting request is written
//! once to `state.dir/export-backlog/` (protobuf) and listed by every checkpoint until
//! acknowledged, so a crash re-sends what was not acknowledged (a cumulative point sent twice
//! carries the same value and time), and a long outage costs no rewriting.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use sliq_config::{Compression, OtlpSettings, Protocol, Sourced};
use sliq_core::drift::Features;
use sliq_core::{Evaluator, LatencySeries, SourceId};
use sliq_otlp::{
    ExportBatch, ExportError, ExportMetricsServiceRequest, Exporter, Headers, MetricsBuilder,
    PemFile, RecordCounts, TlsFiles, Transport,
};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::admin::{Stage, Telemetry};
use crate::error::PipelineError;
use crate::judge::Judged;
use crate::outage::{Outage, failing, human};

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// The export stage as the judging stage sees it: the cumulative state of every series, and the
/// queue whose task sends requests off the judging thread.
pub(crate) struct Export {
    pub(crate) builder: MetricsBuilder,
    pub(crate) queue: ExportQueue,
    /// The record counters as of the last request built.
    pub(crate) exported_counts: RecordCounts,
}

impl Export {
    /// Builds the request of one round of judging (with the record counters and what each stage
    /// buffers) and queues it, holding the offsets its windows counted until it is acknowledged.
    pub(crate) fn queue_judged(
        &mut self,
        judged: &Judged,
        records: RecordCounts,
        latency_series: &LatencySeries,
        drift: Option<&Features>,
        buffered: &[(&str, u64)],
        evaluator: &Evaluator,
    ) {
        let batch = ExportBatch {
            windows: &judged.windows,
            budgets: &judged.budgets,
            budget_time_ms: judged.budget_time_ms,
            records,
            folded: &judged.folded,
            latency_series: Some(latency_series),
            now_ms: chrono::Utc::now().timestamp_millis(),
            drift: drift.map(|f| (&judged.drift_points[..], f)),
            buffered,
        };
        let request = self.builder.build(&batch, evaluator);
        let mut holds: BTreeMap<SourceId, i64> = BTreeMap::new();
        for (source, offset) in judged.windows.iter().flat_map(|w| &w.holds) {
            let hold = holds.entry(*source).or_insert(*offset);
            *hold = (*hold).min(*offset);
        }
        self.queue.push(request, holds.into_iter().collect());
        self.exported_counts = records;
    }
}

/// The exporter that `settings` (the spec merged with the `OTEL_EXPORTER_OTLP_*` variables) ask
/// for; `enabled: false` gives one that sends nothing. Reads and checks the TLS files, so a wrong
/// path or file stops the start, naming its key or variable.
pub fn open_exporter(
    enabled: bool,
    settings: &OtlpSettings,
    rt: &Handle,
) -> Result<Exporter, PipelineError> {
    if !enabled {
        return Ok(Exporter::Disabled);
    }
    let transport = || -> Result<Transport, ExportError> {
        let mut headers = Headers::default();
        for header in &settings.headers {
            headers.insert(&header.name, header.value.expose(), header.origin)?;
        }
        let pem = |file: &Sourced<PathBuf>| PemFile {
            path: file.value.clone(),
            origin: file.origin,
        };
        Ok(Transport {
            timeout: settings.timeout,
            headers,
            gzip: settings.compression == Compression::Gzip,
            tls: settings.tls.as_ref().map(|tls| TlsFiles {
                ca: tls.ca_file.as_ref().map(pem),
                client: tls
                    .client
                    .as_ref()
                    .map(|c| (pem(&c.cert_file), pem(&c.key_file))),
            }),
        })
    };
    let endpoint = &settings.endpoint.value;
    match settings.protocol {
        Protocol::Grpc => {
            // The channel's background connection task needs the runtime.
            let _runtime = rt.enter();
            transport().and_then(|t| Exporter::grpc(endpoint, t))
        }
        Protocol::HttpProtobuf => transport().and_then(|t| Exporter::http(endpoint, t)),
        Protocol::File => Exporter::file(endpoint),
    }
    .map_err(PipelineError::Exporter)
}

/// One request waiting for its acknowledgement, with the offsets its windows hold.
#[derive(Debug, Clone)]
pub(crate) struct PendingExport {
    pub(crate) request: Arc<ExportMetricsServiceRequest>,
    pub(crate) holds: Vec<(SourceId, i64)>,
    bytes: usize,
    /// Where it is kept on disk, once a checkpoint needed it.
    pub(crate) file: Option<PathBuf>,
}

type Sending = JoinHandle<(Exporter, Result<(), ExportError>)>;

#[derive(Debug)]
pub(crate) struct ExportQueue {
    /// `None` while a request is in flight: the exporter travels with it.
    exporter: Option<Exporter>,
    endpoint: String,
    rt: Handle,
    backlog: VecDeque<PendingExport>,
    bytes: usize,
    max_bytes: usize,
    sending: Option<Sending>,
    retry_at: Instant,
    delay: Duration,
    outage: Outage,
    acknowledged: u64,
    /// `state.dir/export-backlog`.
    dir: PathBuf,
    /// Files of acknowledged requests, deleted once a checkpoint without them is durable.
    done_files: Vec<PathBuf>,
    next_file: u64,
    telemetry: Arc<Telemetry>,
}

impl ExportQueue {
    pub(crate) fn new(
        exporter: Exporter,
        endpoint: &str,
        max_bytes: u64,
        state_dir: &Path,
        rt: Handle,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        ExportQueue {
            exporter: Some(exporter),
            endpoint: endpoint.to_owned(),
            rt,
            backlog: VecDeque::new(),
            bytes: 0,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            sending: None,
            retry_at: Instant::now(),
            delay: FIRST_RETRY_DELAY,
            outage: Outage::default(),
            acknowledged: 0,
            dir: state_dir.join("export-backlog"),
            done_files: Vec::new(),
            next_file: 0,
            telemetry,
        }
    }

    /// Queues a request whose windows hold these offsets.
    pub(crate) fn push(
        &mut self,
        request: ExportMetricsServiceRequest,
        holds: Vec<(SourceId, i64)>,
    ) {
        let bytes = request.encoded_len();
        self.bytes += bytes;
        self.backlog.push_back(PendingExport {
            request: Arc::new(request),
            holds,
            bytes,
            file: None,
        });
    }

    /// Writes every waiting request not yet on disk (each once) for the checkpoint about to list
    /// them; `seq` (the checkpoint's) keeps the names apart across runs.
    pub(crate) fn persist(&mut self, seq: u64) -> Result<(), PipelineError> {
        for pending in self.backlog.iter_mut().filter(|p| p.file.is_none()) {
            let path = self.dir.join(format!("{seq:012}-{}.pb", self.next_file));
            self.next_file += 1;
            sliq_archive::write_atomically(&path, &pending.request.encode_to_vec())?;
            pending.file = Some(path);
        }
        Ok(())
    }

    /// A checkpoint that no longer lists the acknowledged requests is durable: their files go.
    pub(crate) fn checkpointed(&mut self) {
        for path in self.done_files.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Puts back a request a resumed checkpoint listed, and removes backlog files it does not
    /// list (written after it, by the run that crashed).
    pub(crate) fn restore(
        &mut self,
        listed: Vec<(PathBuf, Vec<(SourceId, i64)>)>,
    ) -> Result<(), PipelineError> {
        let keep: Vec<&Path> = listed.iter().map(|(p, _)| p.as_path()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if !keep.contains(&entry.path().as_path()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for (path, holds) in listed {
            let bytes = std::fs::read(&path).map_err(|source| PipelineError::State {
                action: "read the export backlog file",
                path: path.clone(),
                source,
            })?;
            let request = ExportMetricsServiceRequest::decode(bytes.as_slice()).map_err(|e| {
                PipelineError::Checkpoint {
                    path: path.clone(),
                    detail: format!("not an OTLP export request: {e}"),
                }
            })?;
            self.push(request, holds);
            if let Some(last) = self.backlog.back_mut() {
                last.file = Some(path);
            }
        }
        Ok(())
    }

    /// Moves the queue on without waiting: collects a finished send, starts the next one when due.
    pub(crate) fn pump(&mut self) {
        self.pump_if(|| true);
    }

    /// [`ExportQueue::pump`] for a sender that must make sure it may still send: `may_send` is
    /// asked only when a request is about to go out, and `false` keeps it for a later pump.
    pub(crate) fn pump_if(&mut self, may_send: impl FnOnce() -> bool) {
        let now = Instant::now();
        if let Some(sending) = self.sending.take_if(|s| s.is_finished()) {
            // Finished: joining does not wait.
            match self.rt.block_on(sending) {
                Ok((exporter, result)) => {
                    self.exporter = Some(exporter);
                    self.settle(result, now);
                }
                Err(e) => {
                    // The task panicked and took the exporter with it: nothing can export now.
                    warn!("the OTLP export task failed: {e}; exports stop until restart");
                }
            }
        }
        if self.sending.is_some() || now < self.retry_at || self.backlog.is_empty() || !may_send() {
            return;
        }
        let (Some(front), Some(mut exporter)) = (self.backlog.front(), self.exporter.take()) else {
            return;
        };
        let request = Arc::clone(&front.request);
        let telemetry = Arc::clone(&self.telemetry);
        self.sending = Some(self.rt.spawn(async move {
            let started = Instant::now();
            let result = exporter.export(&request).await;
            telemetry.metrics.stage(Stage::Export, started.elapsed());
            (exporter, result)
        }));
    }

    fn settle(&mut self, result: Result<(), ExportError>, now: Instant) {
        match result {
            Ok(()) => {
                if let Some(done) = self.backlog.pop_front() {
                    self.bytes -= done.bytes;
                    self.done_files.extend(done.file);
                }
                self.acknowledged += 1;
                self.delay = FIRST_RETRY_DELAY;
                self.retry_at = now;
                let recovered = self.outage.recovered(now);
                self.telemetry.health.export(None);
                if let Some(lasted) = recovered {
                    info!(
                        "OTLP export to {} works again after {}; {} requests still to send",
                        self.endpoint,
                        human(lasted),
                        self.backlog.len()
                    );
                }
            }
            Err(e) => {
                self.retry_at = now + self.delay;
                self.delay = (self.delay * 2).min(MAX_RETRY_DELAY);
                let report = self.outage.failed(now);
                self.telemetry.metrics.export_failed();
                self.telemetry.health.export(self.outage.since());
                if let Some(lasted) = report {
                    warn!(
                        "OTLP export to {} {}: {e}; {} requests ({} KiB of {} KiB) wait, \
                         reading goes on until the backlog is full",
                        self.endpoint,
                        failing(lasted),
                        self.backlog.len(),
                        self.bytes >> 10,
                        self.max_bytes >> 10
                    );
                }
            }
        }
    }

    /// Sends until the backlog is empty or `deadline` passes; whether it emptied.
    pub(crate) fn flush_until(&mut self, deadline: Instant) -> bool {
        self.flush_until_if(deadline, || true)
    }

    /// [`ExportQueue::flush_until`], asking `may_send` before each request as
    /// [`ExportQueue::pump_if`] does.
    pub(crate) fn flush_until_if(
        &mut self,
        deadline: Instant,
        mut may_send: impl FnMut() -> bool,
    ) -> bool {
        loop {
            self.pump_if(&mut may_send);
            if self.backlog.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.rt
                .block_on(tokio::time::sleep(Duration::from_millis(10)));
        }
    }

    /// Drops every request not yet sent (one in flight goes on): they were built from a state
    /// another process now owns, which sends what they held again. A dropped request's file goes
    /// as an acknowledged one's does, once a checkpoint no longer lists it. Returns how many were
    /// dropped.
    pub(crate) fn discard(&mut self) -> usize {
        let keep = usize::from(self.sending.is_some());
        let mut dropped = 0;
        while self.backlog.len() > keep {
            let Some(gone) = self.backlog.pop_back() else {
                break;
            };
            self.bytes -= gone.bytes;
            self.done_files.extend(gone.file);
            dropped += 1;
        }
        dropped
    }

    /// Encoded bytes of the requests not yet acknowledged (the backlog's own count).
    pub(crate) fn backlog_bytes(&self) -> usize {
        self.bytes
    }

    /// Reading must pause: the backlog holds `max_backlog_bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= self.max_bytes
    }

    /// Reading may resume: the backlog is back under half its bound.
    pub(crate) fn has_room(&self) -> bool {
        self.bytes < self.max_bytes / 2
    }

    /// The lowest offset of `source` held by a request not yet acknowledged.
    pub(crate) fn hold_floor(&self, source: SourceId) -> Option<i64> {
        self.backlog
            .iter()
            .flat_map(|p| &p.holds)
            .filter(|(s, _)| *s == source)
            .map(|(_, offset)| *offset)
            .min()
    }

    pub(crate) fn pending(&self) -> impl Iterator<Item = &PendingExport> {
        self.backlog.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.backlog.len()
    }

    /// Requests acknowledged by the collector so far.
    pub(crate) fn acknowledged(&self) -> u64 {
        self.acknowledged
    }
}
