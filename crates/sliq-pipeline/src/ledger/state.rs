//! What the active ledger holds: the merged windows of every source partition, the books that
//! count each offset range once, and everything judged from them; and its snapshot, by name.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use sliq_config::PipelineSpec;
use sliq_core::budget::{Granularity, RollupEntry};
use sliq_core::drift::DriftMonitor;
use sliq_core::ledger::Verdict;
use sliq_core::{Evaluator, LatencySeries, SourceId, SourceSnapshot, WindowCounts, Windows};
use sliq_otlp::RecordCounts;
use tracing::warn;

use crate::admin::PartialTally;
use crate::budgets::Budgets;
use crate::error::PipelineError;
use crate::export::Export;
use crate::judge::Judge;
use crate::persist::checkpoint::{Names, SeriesName};
use crate::persist::ledger_snapshot::{
    BookSnapshot, FORMAT, LedgerSnapshot, StoredPartition, StoredRollup,
};
use crate::source::Sources;
use crate::window_topic::{Body, Partial, SourceBook, SourcePartition, WindowMessage};

/// What the active ledger holds: the merged windows of every source partition and everything
/// judged from them.
pub(crate) struct Ledger {
    evaluator: Evaluator,
    windows: Windows,
    latency_series: LatencySeries,
    drift: Option<DriftMonitor>,
    budgets: Budgets,
    sources: Sources,
    /// Per source partition: the claim partials must carry and how far counting went.
    books: HashMap<SourceId, SourceBook>,
    pub(crate) counts: RecordCounts,
    slo_totals: Vec<[u64; 2]>,
    folded_warned: BTreeSet<usize>,
    /// Partials the book refused (stale or unknown claims, overlaps), reported.
    pub(crate) refused: u64,
    /// Partials by outcome since the loop last handed them to the self-metrics.
    pub(crate) partials_seen: PartialTally,
    /// Partitions whose reader last said it read everything there is.
    idle: HashSet<SourceId>,
    /// Next window-topic offset to read.
    pub(crate) next: i64,
}

impl Ledger {
    pub(crate) fn new(spec: &PipelineSpec) -> Result<Ledger, PipelineError> {
        let evaluator = Evaluator::new(spec.slos());
        let budgets = Budgets::in_memory(&evaluator);
        let drift = spec
            .drift
            .as_ref()
            .map(|d| d.monitor(spec.drift_slo()))
            .transpose()
            .map_err(PipelineError::Drift)?;
        Ok(Ledger {
            slo_totals: vec![[0, 0]; evaluator.slos().len()],
            evaluator,
            windows: Windows::new(spec.windows.window_config()),
            latency_series: LatencySeries::default(),
            drift,
            budgets,
            sources: Sources::default(),
            books: HashMap::new(),
            counts: RecordCounts::default(),
            folded_warned: BTreeSet::new(),
            refused: 0,
            partials_seen: PartialTally::default(),
            idle: HashSet::new(),
            next: 0,
        })
    }

    /// Registers every partition of the source topics: a window closes only once each has
    /// passed it (or is idle), so a partition without a reader holds the windows open.
    pub(crate) fn know_partitions(&mut self, partitions: &[(String, i32)]) {
        let now = Instant::now();
        for (topic, partition) in partitions {
            if self.sources.find(topic, *partition).is_none() {
                let id = self.sources.id(topic, *partition, now);
                self.windows.add_source(id);
            }
        }
    }

    /// Reads one window-topic message at `offset` through the book.
    pub(crate) fn read(&mut self, offset: i64, message: WindowMessage) {
        self.next = offset + 1;
        match message.body {
            Body::Claim { source, .. } => {
                let id = self.source_id(&source.topic, source.partition);
                self.books.entry(id).or_default().book.claim(offset);
                // Its new reader has yet to say how far the partition goes.
                self.idle.remove(&id);
            }
            Body::Partial(partial) => self.apply(partial),
        }
    }

    fn source_id(&mut self, topic: &str, partition: i32) -> SourceId {
        match self.sources.find(topic, partition) {
            Some(id) => id,
            None => {
                let id = self.sources.id(topic, partition, Instant::now());
                self.windows.add_source(id);
                id
            }
        }
    }

    /// Counts a partial once, in its own windows; a part of a window this ledger already closed
    /// is late only if its partition had passed that window before.
    fn apply(&mut self, partial: Partial) {
        let id = self.source_id(&partial.source.topic, partial.source.partition);
        match self.books.entry(id).or_default().offer(&partial) {
            Verdict::Apply => {}
            Verdict::ApplyAfterGap { missing } => warn!(
                "{}/{}: offsets {}..{} were never counted by any reader (it started past the \
                 count cut); counting goes on from {}",
                partial.source.topic,
                partial.source.partition,
                partial.from - missing,
                partial.from,
                partial.from
            ),
            Verdict::Repeat => {
                self.partials_seen.repeated += 1;
                return;
            }
            refused => {
                self.refused += 1;
                self.partials_seen.refused += 1;
                warn!(
                    "{}/{}: partial {}..{} from {} refused ({refused:?}): its reader no longer \
                     owns the partition; the new owner counts these records",
                    partial.source.topic,
                    partial.source.partition,
                    partial.from,
                    partial.to,
                    partial.instance
                );
                return;
            }
        }
        self.partials_seen.applied += 1;
        for request in &partial.bad_requests {
            self.evaluator.restore_bad_request(&request.clone().into());
        }
        let mut names = Names {
            evaluator: &mut self.evaluator,
            latency: &mut self.latency_series,
            features: self.drift.as_mut().map(|m| &mut m.features),
        };
        let (snapshot, dropped) = partial.snapshot(&mut names);
        if dropped > 0 {
            warn!(
                dropped,
                "parts of a partial do not fit this ledger's spec (SLOs or features it does not \
                 have): readers and ledger must run the same spec"
            );
        }
        let late = self.windows.apply_partial(id, snapshot);
        let mut records = RecordCounts::from(partial.records);
        for part in &late {
            records.accepted = records.accepted.saturating_sub(part.records);
            records.late = records.late.saturating_add(part.records);
        }
        self.counts.accepted += records.accepted;
        self.counts.dead_lettered += records.dead_lettered;
        self.counts.late += records.late;
        self.counts.replayed += records.replayed;
        if partial.idle {
            self.windows.set_idle(id);
            self.idle.insert(id);
        } else {
            self.idle.remove(&id);
        }
    }

    /// Whether every partition of the source topics was read to its end by its reader.
    pub(crate) fn all_idle(&self) -> bool {
        self.sources.iter().all(|(id, _)| self.idle.contains(&id))
    }

    /// The partitions no reader reported idle, with the offset their book counted to.
    pub(crate) fn not_idle(&self) -> impl Iterator<Item = (&str, i32, Option<i64>)> {
        self.sources
            .iter()
            .filter(|(id, _)| !self.idle.contains(id))
            .map(|(id, s)| {
                let counted = self.books.get(&id).and_then(|b| b.book.counted_to());
                (s.topic.as_str(), s.partition, counted)
            })
    }

    /// Closes what every partition passed (or everything, at the end of a bounded run), judges
    /// it and queues its export.
    pub(crate) fn judge(&mut self, export: &mut Export, close_all: bool) {
        let mut windows: Vec<WindowCounts> = self.windows.close_ready();
        if close_all {
            windows.extend(self.windows.close_all());
        }
        let judged = Judge {
            evaluator: &mut self.evaluator,
            drift: self.drift.as_mut(),
            budgets: &mut self.budgets,
            slo_totals: &mut self.slo_totals,
            folded_warned: &mut self.folded_warned,
        }
        .judge(windows, &self.windows);
        if !judged.windows.is_empty()
            || !judged.budgets.is_empty()
            || self.counts != export.exported_counts
        {
            let buffered = [("export", export.queue.backlog_bytes() as u64)];
            export.queue_judged(
                &judged,
                self.counts,
                &self.latency_series,
                self.drift.as_ref().map(|m| &m.features),
                &buffered,
                &self.evaluator,
            );
        }
    }
}

impl Ledger {
    /// The state by name, as of window-topic offset `next`, with the export's cumulative series
    /// (taken only once every export before it was acknowledged, so a restore loses none).
    pub(crate) fn snapshot(&mut self, export: &Export) -> (LedgerSnapshot, BookSnapshot) {
        let mut partitions = Vec::new();
        let ids: Vec<(SourceId, SourcePartition)> =
            self.sources.iter().map(|(id, s)| (id, s.name())).collect();
        let names = Names {
            evaluator: &mut self.evaluator,
            latency: &mut self.latency_series,
            features: self.drift.as_mut().map(|m| &mut m.features),
        };
        for (id, source) in &ids {
            let open = self.windows.source_snapshot(*id);
            partitions.push(StoredPartition {
                source: source.clone(),
                book: self.books.get(id).cloned().unwrap_or_default(),
                idle: self.idle.contains(id),
                parts: names.store_parts(&open.parts),
            });
        }
        let series = names.store_totals(export.builder.totals());
        let latency = names.store_latency_totals(export.builder.latency_totals());
        let (entries, budget_now_ms) = self.budgets.rollups();
        let rollups = entries
            .iter()
            .map(|e| StoredRollup {
                series: SeriesName::of(&self.evaluator, e.series),
                hour: e.granularity == Granularity::Hour,
                start_ms: e.start_ms,
                good: e.good,
                bad: e.bad,
            })
            .collect();
        let books = BookSnapshot {
            format: FORMAT.to_owned(),
            covers: self.next,
            books: partitions
                .iter()
                .map(|p| (p.source.clone(), p.book.clone()))
                .collect(),
        };
        let snapshot = LedgerSnapshot {
            format: FORMAT.to_owned(),
            covers: self.next,
            lineage_started_ms: export.builder.started_ms(),
            closed_before: self.windows.closed_before(),
            records: self.counts.into(),
            series,
            latency,
            partitions,
            bad_requests: self
                .evaluator
                .bad_requests()
                .into_iter()
                .map(Into::into)
                .collect(),
            rollups,
            budget_now_ms,
            drift_reference: self.drift.as_ref().and_then(DriftMonitor::reference_state),
            refused: self.refused,
        };
        (snapshot, books)
    }

    /// A ledger continuing `snapshot` (the export's cumulative series continue too); what no
    /// longer fits the spec (SLOs or features removed) is dropped and reported.
    pub(crate) fn restore(
        spec: &PipelineSpec,
        snapshot: LedgerSnapshot,
        export: &mut Export,
    ) -> Result<Ledger, PipelineError> {
        let mut ledger = Ledger::new(spec)?;
        let now = Instant::now();
        ledger.next = snapshot.covers;
        ledger.refused = snapshot.refused;
        ledger.counts = snapshot.records.into();
        ledger.windows.restore_closed_before(snapshot.closed_before);
        for request in snapshot.bad_requests {
            ledger.evaluator.restore_bad_request(&request.into());
        }
        if let (Some(monitor), Some(reference)) = (&mut ledger.drift, &snapshot.drift_reference) {
            monitor.restore(reference);
        }
        let mut dropped = 0;
        let mut names = Names {
            evaluator: &mut ledger.evaluator,
            latency: &mut ledger.latency_series,
            features: ledger.drift.as_mut().map(|m| &mut m.features),
        };
        let (totals, lost) = names.restore_totals(snapshot.series);
        dropped += lost;
        for (id, total) in totals {
            export.builder.restore_total(id, total);
        }
        for (id, total) in names.restore_latency_totals(snapshot.latency) {
            export.builder.restore_latency_total(id, total);
        }
        for p in snapshot.partitions {
            let (parts, lost) = names.restore_parts(&p.parts);
            dropped += lost;
            let id = ledger.sources.id(&p.source.topic, p.source.partition, now);
            ledger.windows.add_source(id);
            ledger.windows.restore_source(
                id,
                SourceSnapshot {
                    newest_ts: p.book.book.newest_ts(),
                    parts,
                },
            );
            if p.idle {
                ledger.windows.set_idle(id);
                ledger.idle.insert(id);
            }
            ledger.books.insert(id, p.book);
        }
        let mut entries = Vec::with_capacity(snapshot.rollups.len());
        for r in &snapshot.rollups {
            let Some(series) = r.series.intern(names.evaluator) else {
                dropped += 1;
                continue;
            };
            entries.push(RollupEntry {
                series,
                granularity: if r.hour {
                    Granularity::Hour
                } else {
                    Granularity::Minute
                },
                start_ms: r.start_ms,
                good: r.good,
                bad: r.bad,
            });
        }
        ledger
            .budgets
            .restore_rollups(&entries, snapshot.budget_now_ms);
        if dropped > 0 {
            warn!(
                dropped,
                "parts of the ledger's snapshot no longer fit the spec (SLOs or features removed)"
            );
        }
        Ok(ledger)
    }
}
