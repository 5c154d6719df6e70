//! The replay engine: archived records in, closed windows with their drift verdicts and budget
//! states out, through the live pipeline's core stages in the live pipeline's order.

use std::collections::BTreeMap;

use sliq_archive::ArchiveError;
use sliq_archive::reader::{ArchiveScan, ArchivedRecord};
use sliq_config::PipelineSpec;
use sliq_core::drift::{DriftMonitor, DriftPoint, Features, Observation, recycle};
use sliq_core::{
    Admission, BudgetStatus, Decoder, Evaluator, LatencySeries, Ledger, SeriesId, SourceId,
    Verdict, WindowCounts, Windows,
};
use sliq_otlp::{ExportBatch, RecordCounts};

use crate::error::ReplayError;

/// Every record is fed as one source: the archive is read in event-time order.
const SOURCE: SourceId = SourceId(0);

/// What the replay did with the records it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    /// As `sliq.records` counts them: accepted (counted in a window), late (refused as late by
    /// the run), dead-lettered (refused by this spec's decoder: a changed `fields:` map, say).
    pub records: RecordCounts,
    /// Refusals by reason code, with the first one's explanation.
    pub refused: BTreeMap<&'static str, (u64, String)>,
    /// Records whose file does not say whether the run found them late (older archives, records
    /// archived again after a restart): counted.
    pub admission_unknown: u64,
}

/// Windows the watermark closed, with what the live pipeline computes on each close.
#[derive(Debug, Clone, Default)]
pub struct Closed {
    /// Oldest first; cascaded verdicts settled, the drift SLO's events added.
    pub windows: Vec<WindowCounts>,
    pub drift: Vec<DriftPoint>,
    /// Every series' budget state at `budget_time_ms`.
    pub budgets: Vec<(SeriesId, BudgetStatus)>,
    /// Per SLO of the evaluator (by index), its budget state over all its series together.
    pub slo_budgets: Vec<BudgetStatus>,
    /// Event time of the budgets: the end of the newest window closed so far.
    pub budget_time_ms: i64,
}

/// One spec's core stages, fed archived records.
#[derive(Debug)]
pub struct Replay {
    decoder: Decoder,
    evaluator: Evaluator,
    windows: Windows,
    latency: LatencySeries,
    drift: Option<DriftMonitor>,
    /// Per series, as the live pipeline's budgets.
    ledger: Ledger,
    /// Per SLO (series id = the SLO's index): every series of the SLO together, for people.
    slo_ledger: Ledger,
    budget_time_ms: Option<i64>,
    /// The start of the window the watermark minus the allowed lateness last fell in: closing
    /// is tried only when it moves.
    frontier: Option<i64>,
    counts: ReplayCounts,
    outcomes: Vec<(SeriesId, Verdict)>,
    observations: Vec<(u32, Observation<'static>)>,
}

impl Replay {
    /// The stages `spec` makes, as `sliq run` makes them (without the Kafka, archive and export
    /// stages, and without state from an earlier run: stream-built drift references are built
    /// again from the replayed records).
    pub fn new(spec: &PipelineSpec) -> Result<Replay, ReplayError> {
        let drift = spec
            .drift
            .as_ref()
            .map(|d| d.monitor(spec.drift_slo()))
            .transpose()
            .map_err(ReplayError::Drift)?;
        let evaluator = Evaluator::new(spec.slos());
        let configs = evaluator.slos().iter().map(|s| &s.budget);
        Ok(Replay {
            decoder: spec.decoder(spec.source.kafka.max_record_bytes),
            ledger: Ledger::new(configs.clone()),
            slo_ledger: Ledger::new(configs),
            evaluator,
            windows: Windows::new(spec.windows.window_config()),
            latency: LatencySeries::default(),
            drift,
            budget_time_ms: None,
            frontier: None,
            counts: ReplayCounts::default(),
            outcomes: Vec::new(),
            observations: Vec::new(),
        })
    }

    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    pub fn counts(&self) -> &ReplayCounts {
        &self.counts
    }

    /// The drift features (naming the drift points' series), with a `drift:` section.
    pub fn drift_features(&self) -> Option<&Features> {
        self.drift.as_ref().map(|m| &m.features)
    }

    /// Replays every record of `scan` with `from_ms <= ts < to_ms` (bounds optional), then
    /// closes what is still open; `on_closed` gets each close, `progress` the records read per
    /// event hour.
    pub fn run<E: From<ArchiveError>>(
        &mut self,
        scan: &ArchiveScan,
        (from_ms, to_ms): (Option<i64>, Option<i64>),
        mut progress: impl FnMut(u64),
        mut on_closed: impl FnMut(&Replay, &Closed) -> Result<(), E>,
    ) -> Result<(), E> {
        scan.for_each_hour(from_ms, to_ms, |records| -> Result<(), E> {
            for record in records {
                if let Some(closed) = self.offer(record) {
                    on_closed(self, &closed)?;
                }
            }
            progress(records.len() as u64);
            Ok(())
        })?;
        let rest = self.finish();
        if !rest.windows.is_empty() {
            on_closed(self, &rest)?;
        }
        Ok(())
    }

    /// Judges and counts one record (records come in event-time order); returns the windows its
    /// event time let the watermark close, if any.
    pub fn offer(&mut self, record: &ArchivedRecord) -> Option<Closed> {
        let value = match self.decoder.parse(&record.raw) {
            Ok(v) => v,
            Err(reject) => {
                refuse(&mut self.counts, record, &reject);
                return None;
            }
        };
        let event = match self.decoder.decode(&value) {
            Ok(e) => e,
            Err(reject) => {
                refuse(&mut self.counts, record, &reject);
                return None;
            }
        };
        // The live order: judge (a late record's bad verdict still marks its request for the
        // cascades), intern its latency series, then the windows.
        self.outcomes.clear();
        self.evaluator.evaluate(&event, &mut self.outcomes);
        let latency = self.latency.observe(&event);
        if record.late == Some(true) {
            self.counts.records.late += 1;
            return None;
        }
        if record.late.is_none() {
            self.counts.admission_unknown += 1;
        }
        let admission = self.windows.add(
            SOURCE,
            record.offset,
            event.ts_ms,
            &self.outcomes,
            self.evaluator.deferred(),
            latency,
        );
        // In event-time order no record finds its own window closed; were one to, it is late.
        if admission == Admission::Late {
            self.counts.records.late += 1;
            return None;
        }
        self.counts.records.accepted += 1;
        if let Some(monitor) = &mut self.drift {
            let mut observations = recycle(std::mem::take(&mut self.observations));
            monitor.observe(&event, &mut observations);
            self.windows
                .add_drift(SOURCE, record.offset, event.ts_ms, &observations);
            self.observations = recycle(observations);
        }
        let config = self.windows.config();
        let frontier = self.windows.watermark().map(|w| {
            w.saturating_sub(config.allowed_lateness_ms)
                .div_euclid(config.size_ms)
        });
        if frontier == self.frontier {
            return None;
        }
        self.frontier = frontier;
        let closed = self.windows.close_ready();
        (!closed.is_empty()).then(|| self.close(closed))
    }

    /// Closes every window still open (the end of the replayed range).
    pub fn finish(&mut self) -> Closed {
        let open = self.windows.close_all();
        if open.is_empty() {
            return Closed::default();
        }
        self.close(open)
    }

    /// What the live checkpoint does with closed windows: settle cascades, judge drift, update
    /// the budgets.
    fn close(&mut self, mut windows: Vec<WindowCounts>) -> Closed {
        for w in &mut windows {
            self.evaluator.resolve(w);
        }
        let config = self.windows.config();
        self.evaluator.forget_requests_before(
            self.windows
                .closed_before()
                .saturating_sub(config.size_ms + config.allowed_lateness_ms),
        );
        let mut drift = Vec::new();
        if let Some(monitor) = &mut self.drift {
            for w in windows.iter_mut().filter(|w| w.closed) {
                drift.extend(monitor.judge(w, &mut self.evaluator));
            }
        }
        self.ledger.record(&windows);
        for w in &windows {
            for c in &w.counts {
                let slo = self.evaluator.series(c.series).slo;
                self.slo_ledger
                    .add(SeriesId(slo as u32), w.start_ms, c.good, c.bad);
            }
            self.budget_time_ms = Some(self.budget_time_ms.map_or(w.end_ms, |n| n.max(w.end_ms)));
        }
        let now = self.budget_time_ms.unwrap_or(i64::MIN);
        self.ledger.prune(now);
        self.slo_ledger.prune(now);
        let budgets = self.ledger.statuses(&self.evaluator, now);
        let slo_budgets = self
            .evaluator
            .slos()
            .iter()
            .enumerate()
            .map(|(i, slo)| {
                self.slo_ledger
                    .status(SeriesId(i as u32), slo.objective, &slo.budget, now)
            })
            .collect();
        Closed {
            windows,
            drift,
            budgets,
            slo_budgets,
            budget_time_ms: now,
        }
    }

    /// The OTLP export of one close, as the live checkpoint builds it; `sliq.records` is stamped
    /// with the budgets' event time (not the clock), so replaying the same archive again gives
    /// the same points.
    pub fn export_batch<'a>(&'a self, closed: &'a Closed, folded: &'a [u64]) -> ExportBatch<'a> {
        ExportBatch {
            windows: &closed.windows,
            budgets: &closed.budgets,
            budget_time_ms: closed.budget_time_ms,
            records: self.counts.records,
            folded,
            latency_series: Some(&self.latency),
            now_ms: closed.budget_time_ms,
            drift: self
                .drift
                .as_ref()
                .map(|m| (closed.drift.as_slice(), &m.features)),
            buffered: &[],
        }
    }

    /// Per SLO of the evaluator: events folded into `other` by the cardinality limit, so far.
    pub fn folded(&self) -> Vec<u64> {
        (0..self.evaluator.slos().len())
            .map(|i| self.evaluator.folded_events(i))
            .collect()
    }
}

fn refuse(counts: &mut ReplayCounts, record: &ArchivedRecord, reject: &sliq_core::Reject) {
    counts.records.dead_lettered += 1;
    let entry = counts
        .refused
        .entry(reject.code())
        .or_insert((0, String::new()));
    if entry.0 == 0 {
        entry.1 = format!(
            "{} partition {} offset {}: {reject}",
            record.topic, record.partition, record.offset
        );
    }
    entry.0 += 1;
}
