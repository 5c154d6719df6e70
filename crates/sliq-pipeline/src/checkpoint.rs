//! The checkpoint: close what the watermark allows, export it, roll the archive, settle dead
//! letters, then commit every partition up to its lowest record that is not yet durable.
//!
//! The commit floor of a partition is the least of: the next offset to read, the lowest offset
//! still counted in an open window (`Windows::hold_floor`), and the lowest offset still in an open
//! archive file (`Archive::open_floor`). Dead letters are settled before every commit, and the
//! export is acknowledged before it, so everything below the floor is durable.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use sliq_otlp::ExportBatch;
use tracing::{info, warn};

use crate::error::PipelineError;
use crate::progress::SloProgress;
use crate::run::State;
use crate::source::Source;

/// Why a checkpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Periodic: close windows the watermark passed, roll archive files by age.
    Regular,
    /// Partitions are about to move: hand out open windows' counts, close every file, commit now.
    Rebalance,
    /// Shutdown: close every window and file, commit now.
    Final,
}

/// Whether a partition has nothing left to read (asks the broker for its high-water mark; only
/// for partitions silent for `idle_partition_after`). A partition that is merely slow to deliver
/// is not idle: declaring it idle would let the watermark run ahead and turn its records late.
fn caught_up<C: ConsumerContext>(consumer: &BaseConsumer<C>, source: &Source) -> bool {
    match consumer.fetch_watermarks(&source.topic, source.partition, Duration::from_millis(500)) {
        Ok((low, high)) if high >= 0 => match source.next_offset {
            Some(next) => next >= high,
            // Nothing read yet: idle only when the partition holds nothing at all.
            None => high <= low,
        },
        _ => false,
    }
}

const EXPORT_ATTEMPTS: u32 = 12;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

impl State {
    pub(crate) fn checkpoint<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: Mode,
    ) -> Result<(), PipelineError> {
        let now = Instant::now();
        if mode == Mode::Regular {
            for (id, s) in self.sources.iter_mut() {
                let silent = now.duration_since(s.last_record_at) >= self.idle_after;
                if s.assigned && !s.idle && silent && caught_up(consumer, s) {
                    s.idle = true;
                    self.windows.set_idle(id);
                }
            }
        }
        let mut windows = self.windows.close_ready();
        match mode {
            Mode::Regular => {}
            Mode::Rebalance => windows.extend(self.windows.drain_open()),
            Mode::Final => windows.extend(self.windows.close_all()),
        }
        for w in &mut windows {
            self.evaluator.resolve(w);
        }
        let config = self.windows.config();
        self.evaluator.forget_requests_before(
            self.windows
                .closed_before()
                .saturating_sub(config.size_ms + config.allowed_lateness_ms),
        );
        let mut drift_points = Vec::new();
        if let Some(monitor) = &mut self.drift {
            for w in windows.iter_mut().filter(|w| w.closed) {
                let before = w.counts.len();
                drift_points.extend(monitor.judge(w, &mut self.evaluator));
                // The drift SLO's window verdicts, for the live table.
                for c in &w.counts[before..] {
                    let slo = self.evaluator.series(c.series).slo;
                    self.slo_totals[slo][0] += c.good;
                    self.slo_totals[slo][1] += c.bad;
                }
            }
        }
        let (budgets, budget_time_ms) = self.budgets.update(&windows, &self.evaluator);
        let folded: Vec<u64> = (0..self.evaluator.slos().len())
            .map(|i| self.evaluator.folded_events(i))
            .collect();
        for (i, n) in folded.iter().enumerate() {
            if *n > 0 && self.folded_warned.insert(i) {
                let slo = &self.evaluator.slos()[i];
                warn!(
                    slo = %slo.name,
                    max_series = slo.max_series,
                    "series beyond max_series now fold into `other`; raise max_series or drop a dimension"
                );
            }
        }
        if !windows.is_empty() || !budgets.is_empty() || self.counts != self.exported_counts {
            if !drift_points.is_empty() {
                let drifted = drift_points.iter().filter(|p| p.detected).count();
                if drifted > 0 {
                    info!(
                        drifted,
                        judged = drift_points.len(),
                        "features drifted in closed windows"
                    );
                }
            }
            let batch = ExportBatch {
                windows: &windows,
                budgets: &budgets,
                budget_time_ms,
                records: self.counts,
                folded: &folded,
                latency_series: Some(&self.latency_series),
                now_ms: chrono::Utc::now().timestamp_millis(),
                drift: self
                    .drift
                    .as_ref()
                    .map(|m| (&drift_points[..], &m.features)),
            };
            let request = self.builder.build(&batch, &self.evaluator);
            self.export(&request)?;
            self.exported_counts = self.counts;
            if !windows.is_empty() {
                self.budgets.persist(&windows, &self.evaluator)?;
            }
        }
        // After the export: the reference then covers only windows whose counts are out.
        if let Some(monitor) = &mut self.drift
            && (monitor.take_reference_changed() || mode == Mode::Final)
        {
            crate::drift_state::save(&self.state_dir, &self.instance_id, monitor)?;
        }
        let closed = match mode {
            Mode::Regular => self.archive.roll_due(now)?,
            Mode::Rebalance | Mode::Final => self.archive.close_all()?,
        };
        self.archive_files += closed.len();
        self.dead_letters.settle()?;
        self.commit(consumer, mode)?;
        self.publish_progress();
        Ok(())
    }

    fn export(
        &mut self,
        request: &sliq_otlp::ExportMetricsServiceRequest,
    ) -> Result<(), PipelineError> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 1;
        loop {
            match self.rt.block_on(self.exporter.export(request)) {
                Ok(()) => {
                    self.exports += 1;
                    return Ok(());
                }
                Err(last) if attempt >= EXPORT_ATTEMPTS => {
                    return Err(PipelineError::Export {
                        attempts: attempt,
                        last,
                    });
                }
                Err(e) => {
                    warn!(attempt, retry_in = ?delay, "OTLP export not acknowledged: {e}");
                    self.rt.block_on(tokio::time::sleep(delay));
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    attempt += 1;
                }
            }
        }
    }

    fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: Mode,
    ) -> Result<(), PipelineError> {
        let mut offsets = TopicPartitionList::new();
        for (id, s) in self.sources.iter_mut() {
            if !s.assigned {
                continue;
            }
            let Some(next) = s.next_offset else { continue };
            let floor = [
                Some(next),
                self.windows.hold_floor(id),
                self.archive.open_floor(&s.topic, s.partition),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next);
            if s.committed.is_none_or(|c| floor > c) {
                offsets
                    .add_partition_offset(&s.topic, s.partition, Offset::Offset(floor))
                    .map_err(PipelineError::kafka("building the offsets to commit"))?;
                s.committed = Some(floor);
            }
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        let commit_mode = match mode {
            Mode::Regular => CommitMode::Async,
            Mode::Rebalance | Mode::Final => CommitMode::Sync,
        };
        consumer
            .commit(&offsets, commit_mode)
            .map_err(PipelineError::kafka("committing offsets"))
    }

    pub(crate) fn publish_progress(&self) {
        let Some(progress) = &self.progress else {
            return;
        };
        let slos: Vec<SloProgress> = self
            .evaluator
            .slos()
            .iter()
            .zip(&self.slo_totals)
            .map(|(slo, [good, bad])| SloProgress {
                name: slo.name.clone(),
                objective: slo.objective,
                good: *good,
                bad: *bad,
            })
            .collect();
        progress.update(
            &slos,
            self.counts.accepted + self.counts.dead_lettered + self.counts.late,
            self.counts.dead_lettered,
            self.counts.late,
        );
    }
}
