//! The checkpoint cycle: close what the watermark allows and queue its export, finish due archive
//! files, settle dead letters, write the checkpoint, publish the files, move the export backlog,
//! then commit every partition up to its lowest record that is not yet durable
//! (ARCHITECTURE.md, "Checkpoints", gives the order and why).
//!
//! The commit floor of a partition is the least of: the next offset to read, the lowest offset
//! still counted in an open window (`Windows::hold_floor`), in an unacknowledged export
//! (`ExportQueue::hold_floor`), in an unpublished archive file (`Archive::open_floor`), or with an
//! unacknowledged dead letter (`DeadLetters::pending_floor`). Everything below it is durable
//! outside this process.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use sliq_core::{SourceId, WindowCounts};
use tracing::{info, warn};

use crate::admin::Stage;
use crate::dead_letter::Settled;
use crate::error::PipelineError;
use crate::judge::Judge;
use crate::outage::{failing, human};
use crate::partials::Counted;
use crate::persist::checkpoint::{
    Checkpoint, FORMAT, Names, PartitionState, StoredExport, StoredHold,
};
use crate::progress::SloProgress;
use crate::run::State;
use crate::source::Source;

/// How long a regular checkpoint waits for dead-letter acknowledgements before it leaves them
/// for the next one: reading stops meanwhile, so this stays short (a healthy topic acknowledges
/// within the producer's linger of a few milliseconds).
const DEAD_LETTER_WAIT: Duration = Duration::from_millis(50);

/// Why a checkpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode<'a> {
    /// Periodic: close windows the watermark passed, roll archive files by age.
    Regular,
    /// These partitions are about to move: hand out their share of open windows, close every
    /// file, export and commit before the deadline.
    Rebalance(&'a [SourceId], Instant),
    /// Shutdown: close every window and file, export and commit before the deadline.
    Final(Instant),
}

/// Whether a partition has nothing left to read (asks the broker for its high-water mark; only
/// for partitions silent for `idle_partition_after`). A partition that is merely slow to deliver
/// is not idle: declaring it idle would let the watermark run ahead and turn its records late.
fn caught_up<C: ConsumerContext>(consumer: &BaseConsumer<C>, source: &Source) -> bool {
    match consumer.fetch_watermarks(&source.topic, source.partition, Duration::from_millis(500)) {
        Ok((low, high)) if high >= 0 => match source.next_offset {
            Some(next) => next >= high,
            // Nothing read yet: idle when the partition holds nothing at all, or nothing past the
            // group's offset it arrived with (an owner that arrived after the last record must
            // still say so, or windows would wait for it).
            None => high <= low || source.starts_at.is_some_and(|c| c >= high),
        },
        _ => false,
    }
}

impl State {
    pub(crate) fn checkpoint<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: Mode<'_>,
    ) -> Result<(), PipelineError> {
        let now = Instant::now();
        // At a stop, a partition read to its end is idle whatever its silence: the last partial
        // says so, and the ledger need not wait for it.
        if matches!(mode, Mode::Regular | Mode::Final(_)) {
            for (id, s) in self.reader.sources.iter_mut() {
                let silent = matches!(mode, Mode::Final(_))
                    || now.duration_since(s.last_record_at) >= self.reader.idle_after;
                if s.assigned && !s.idle && silent && caught_up(consumer, s) {
                    s.idle = true;
                    self.reader.windows.set_idle(id);
                }
            }
        }
        let windows = match self.partials {
            // A reader hands its counts on; the ledger closes and judges.
            Some(_) => {
                self.publish_partials(mode);
                Vec::new()
            }
            None => self.judge_and_queue_export(mode),
        };
        // Files are pending (listed by this checkpoint) only once the writer answered `Written`;
        // before partitions move or at a stop, every file is closed and waited for.
        if let Some(archive) = &mut self.archive {
            let written = match mode {
                Mode::Regular => {
                    archive.roll_due(now)?;
                    archive.drain_written()?
                }
                Mode::Rebalance(..) | Mode::Final(_) => archive.close_all()?,
            };
            self.checkpoints.dirty |= !written.is_empty() || !archive.pending().is_empty();
            self.note_archived(&written);
        }
        // A checkpoint says every refused record below its cut is dead-lettered: while the
        // dead-letter topic does not acknowledge, no checkpoint is written (a crash replays from
        // the previous one, exactly) and nothing is committed past the waiting letters.
        let letters_deadline = match mode {
            Mode::Regular => now + DEAD_LETTER_WAIT,
            Mode::Rebalance(_, deadline) | Mode::Final(deadline) => deadline,
        };
        let settled = matches!(
            self.dead_letters.settle_until(letters_deadline)?,
            Settled::All
        );

        // Closed windows' rollups go with the next checkpoint written (this one, unless dead
        // letters are still waiting).
        self.checkpoints
            .rollups_due
            .extend(
                windows
                    .iter()
                    .filter(|w| !w.counts.is_empty())
                    .map(|w| WindowCounts {
                        start_ms: w.start_ms,
                        end_ms: w.end_ms,
                        counts: w.counts.clone(),
                        latencies: Vec::new(),
                        deferred: Vec::new(),
                        closed: w.closed,
                        drift: Vec::new(),
                        holds: Vec::new(),
                    }),
            );
        if self.checkpoints.dirty && settled {
            self.checkpoints.seq += 1;
            if !self.checkpoints.rollups_due.is_empty() {
                self.checkpoints.budgets.persist(
                    &self.checkpoints.rollups_due,
                    &self.reader.evaluator,
                    self.checkpoints.seq,
                )?;
                self.checkpoints.rollups_due.clear();
            }
            // The reference covers only windows whose counts are in this checkpoint.
            if let Some(monitor) = &mut self.reader.drift
                && (monitor.take_reference_changed() || matches!(mode, Mode::Final(_)))
            {
                crate::persist::drift_reference::save(
                    self.checkpoints.state_dir.path(),
                    self.checkpoints.state_dir.instance_id(),
                    monitor,
                )?;
            }
            self.write_checkpoint()?;
            if let Some(archive) = &mut self.archive {
                let published = archive.publish_pending()?;
                self.checkpoints.archive_files += published.len();
                for file in &published {
                    let metrics = &self.telemetry.metrics;
                    metrics.archived(file.rows as u64, file.bytes);
                    metrics.stage(Stage::ArchiveWrite, file.write_time);
                }
            }
            self.checkpoints
                .budgets
                .checkpointed(self.checkpoints.seq)?;
            self.checkpoints.dirty = false;
        }

        match mode {
            // The loop moves the backlog between cycles.
            Mode::Regular => {}
            Mode::Rebalance(_, deadline) | Mode::Final(deadline) => {
                if !self.export.queue.flush_until(deadline) {
                    warn!(
                        "{} export requests were not acknowledged within {}: they stay in the \
                         checkpoint and are sent later; offsets are committed only below them",
                        self.export.queue.len(),
                        human(self.shutdown_timeout)
                    );
                }
                // The floors moved with the acknowledgements: record them before committing.
                if settled {
                    self.checkpoints.seq += 1;
                    self.write_checkpoint()?;
                }
            }
        }
        self.commit(consumer, mode);
        self.publish_progress();
        Ok(())
    }

    /// Closes what `mode` closes, judges it, and queues its export; returns the windows for the
    /// rollups.
    fn judge_and_queue_export(&mut self, mode: Mode<'_>) -> Vec<WindowCounts> {
        let reader = &mut self.reader;
        let mut windows = reader.windows.close_ready();
        match mode {
            Mode::Regular => {}
            Mode::Rebalance(revoked, _) => {
                for id in revoked {
                    windows.extend(reader.windows.drain_source(*id));
                }
            }
            Mode::Final(_) => windows.extend(reader.windows.close_all()),
        }
        let judged = Judge {
            evaluator: &mut reader.evaluator,
            drift: reader.drift.as_mut(),
            budgets: &mut self.checkpoints.budgets,
            slo_totals: &mut reader.slo_totals,
            folded_warned: &mut reader.folded_warned,
        }
        .judge(windows, &reader.windows);
        if let Some(progress) = &reader.progress {
            progress.observe_budgets(&judged.budgets, &reader.evaluator);
            if let Some(monitor) = &reader.drift {
                progress.observe_drift(&judged.drift_points, &monitor.features);
            }
        }
        if !judged.windows.is_empty()
            || !judged.budgets.is_empty()
            || reader.counts != self.export.exported_counts
        {
            let buffered = [
                (
                    "archive",
                    self.archive
                        .as_mut()
                        .map_or(0, |a| a.take_peak_buffered() as u64),
                ),
                ("export", self.export.queue.backlog_bytes() as u64),
            ];
            let drift = reader.drift.as_ref().map(|m| &m.features);
            self.export.queue_judged(
                &judged,
                reader.counts,
                &reader.latency_series,
                drift,
                &buffered,
                &reader.evaluator,
            );
            self.checkpoints.dirty = true;
        }
        judged.windows
    }

    /// A reader's cycle: what each partition counted since its last partial leaves the windows
    /// as a new partial, and every waiting partial is sent (before partitions move or at a stop,
    /// until the deadline).
    fn publish_partials(&mut self, mode: Mode<'_>) {
        let Some(partials) = &mut self.partials else {
            return;
        };
        partials.add_bad_requests(
            self.reader
                .evaluator
                .take_bad_requests()
                .into_iter()
                .map(Into::into),
        );
        let mut built = false;
        for id in self.reader.sources.assigned() {
            if !partials.is_claimed(id) {
                continue;
            }
            let s = self.reader.sources.get(id);
            let (to, idle, records) = (s.next_offset.unwrap_or(0), s.idle, s.unpublished);
            let snapshot = self.reader.windows.source_snapshot(id);
            let parts = Names {
                evaluator: &mut self.reader.evaluator,
                latency: &mut self.reader.latency_series,
                features: self.reader.drift.as_mut().map(|m| &mut m.features),
            }
            .store_parts(&snapshot.parts);
            let counted = Counted {
                to,
                newest_ts: snapshot.newest_ts,
                idle,
                records,
                parts,
                dead_letter_ends: self.dead_letters.ends(),
            };
            if partials.build(id, counted) {
                self.reader.windows.take_parts(id);
                self.reader.sources.get_mut(id).unpublished = Default::default();
                built = true;
            }
        }
        if built {
            partials.bad_requests_sent();
        }
        let deadline = match mode {
            Mode::Regular => None,
            Mode::Rebalance(_, deadline) | Mode::Final(deadline) => Some(deadline),
        };
        partials.flush(deadline);
    }

    /// The offset a commit for `id` may say now: below it everything is durable elsewhere.
    /// With `pending_published`, archive files written but not yet published count as published
    /// (they are, right after the checkpoint that lists them).
    fn floor(&self, id: SourceId, pending_published: bool) -> Option<i64> {
        let s = self.reader.sources.get(id);
        let next = s.next_offset?;
        let archive = self.archive.as_ref().and_then(|a| {
            if pending_published {
                a.unwritten_floor(&s.topic, s.partition)
            } else {
                a.open_floor(&s.topic, s.partition)
            }
        });
        [
            Some(next),
            self.reader.windows.hold_floor(id),
            self.export.queue.hold_floor(id),
            archive,
            self.dead_letters.pending_floor(&s.topic, s.partition),
            self.partials.as_ref().and_then(|p| p.hold_floor(id)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One assigned partition's checkpoint entry (`None` before it has a position).
    pub(crate) fn partition_state(&mut self, id: SourceId) -> Option<PartitionState> {
        let commit = self.floor(id, true)?;
        let s = self.reader.sources.get(id);
        let next = s.next_offset?;
        let (count_from, archive_from) = match &s.resume {
            // Still reading again what the resumed checkpoint had counted: archived up to where
            // the replay came, less what sits in files still in memory.
            Some(r) => (
                next.max(r.count_from),
                r.replayed_to.min(
                    self.archive
                        .as_ref()
                        .and_then(|a| a.unwritten_floor(&s.topic, s.partition))
                        .unwrap_or(i64::MAX),
                ),
            ),
            None => (
                next,
                self.archive
                    .as_ref()
                    .and_then(|a| a.unwritten_floor(&s.topic, s.partition))
                    .unwrap_or(next)
                    .min(next),
            ),
        };
        let (topic, partition) = (s.topic.clone(), s.partition);
        let archived = s
            .archived
            .iter()
            .filter(|a| a.last >= archive_from)
            .copied()
            .collect();
        let snapshot = self.reader.windows.source_snapshot(id);
        let parts = self.reader.names().store_parts(&snapshot.parts);
        Some(PartitionState {
            topic,
            partition,
            count_from,
            archive_from,
            archived,
            commit,
            newest_ts: snapshot.newest_ts,
            parts,
        })
    }

    fn write_checkpoint(&mut self) -> Result<(), PipelineError> {
        let mut partitions: Vec<PartitionState> = self
            .reader
            .sources
            .assigned()
            .into_iter()
            .filter_map(|id| self.partition_state(id))
            .collect();
        self.checkpoints.recorded_commits.clear();
        for p in &partitions {
            let Some(id) = self.reader.sources.find(&p.topic, p.partition) else {
                continue;
            };
            self.checkpoints.recorded_commits.insert(id, p.commit);
            // Written files below the archive floor are never read again.
            self.reader
                .sources
                .get_mut(id)
                .archived
                .retain(|a| a.last >= p.archive_from);
        }
        partitions.extend(self.checkpoints.resumable.values().cloned());
        let names = Names {
            evaluator: &mut self.reader.evaluator,
            latency: &mut self.reader.latency_series,
            features: self.reader.drift.as_mut().map(|m| &mut m.features),
        };
        let series = names.store_totals(self.export.builder.totals());
        let latency = names.store_latency_totals(self.export.builder.latency_totals());
        self.export.queue.persist(self.checkpoints.seq)?;
        let backlog = self
            .export
            .queue
            .pending()
            .map(|p| StoredExport {
                file: p.file.clone().unwrap_or_default(),
                holds: p
                    .holds
                    .iter()
                    .map(|(id, offset)| {
                        let s = self.reader.sources.get(*id);
                        StoredHold {
                            topic: s.topic.clone(),
                            partition: s.partition,
                            offset: *offset,
                        }
                    })
                    .collect(),
            })
            .collect();
        let checkpoint = Checkpoint {
            format: FORMAT.into(),
            seq: self.checkpoints.seq,
            lineage_started_ms: self.export.builder.started_ms(),
            closed_before: self.reader.windows.closed_before(),
            records: self.reader.counts.into(),
            series,
            latency,
            backlog,
            pending_files: self
                .archive
                .iter()
                .flat_map(|a| a.pending())
                .map(|f| f.path.clone())
                .collect(),
            dead_letter_ends: self.dead_letters.ends(),
            bad_requests: self
                .reader
                .evaluator
                .bad_requests()
                .into_iter()
                .map(Into::into)
                .collect(),
            partitions,
        };
        crate::persist::checkpoint::write(
            self.checkpoints.state_dir.path(),
            self.checkpoints.state_dir.instance_id(),
            &checkpoint,
        )?;
        self.export.queue.checkpointed();
        Ok(())
    }

    /// Commits every assigned partition up to its floor, with how far it was counted as the
    /// commit's metadata. A failed commit is not fatal: the checkpoint keeps counts exact, and the
    /// next cycle commits again.
    fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, mode: Mode<'_>) {
        let mut offsets = TopicPartitionList::new();
        let mut planned = Vec::new();
        for id in self.reader.sources.assigned() {
            // Never past what the last checkpoint recorded: a restart compares the group's offset
            // with it to tell whether another instance read the partition since.
            let Some(floor) = self
                .floor(id, false)
                .zip(self.checkpoints.recorded_commits.get(&id))
                .map(|(f, r)| f.min(*r))
            else {
                continue;
            };
            let s = self.reader.sources.get(id);
            let next = s.next_offset.unwrap_or(floor);
            // Commit when the floor rose, or when more was read (the metadata tells the group).
            if s.committed.is_some_and(|c| floor <= c)
                && s.committed_counted.is_some_and(|c| next <= c)
            {
                continue;
            }
            let added = offsets.add_partition_offset(&s.topic, s.partition, Offset::Offset(floor));
            if let Some(mut entry) = offsets.find_partition(&s.topic, s.partition) {
                entry.set_metadata(crate::rebalance::counted_metadata(next));
            }
            if added.is_ok() {
                planned.push((id, floor, next));
            }
        }
        if offsets.count() == 0 {
            return;
        }
        let commit_mode = match mode {
            Mode::Regular => CommitMode::Async,
            Mode::Rebalance(..) | Mode::Final(_) => CommitMode::Sync,
        };
        let started = Instant::now();
        let committed = consumer.commit(&offsets, commit_mode);
        self.telemetry
            .metrics
            .stage(Stage::Commit, started.elapsed());
        match committed {
            Ok(()) => {
                for (id, floor, next) in planned {
                    let s = self.reader.sources.get_mut(id);
                    s.committed = Some(floor);
                    s.committed_counted = Some(next);
                }
                // An asynchronous commit is only queued here: its callback says how it went.
                if matches!(commit_mode, CommitMode::Sync) {
                    self.telemetry.health.commit_succeeded();
                }
                if let Some(lasted) = self.checkpoints.commit_outage.recovered(Instant::now()) {
                    info!("offset commits work again after {}", human(lasted));
                }
            }
            Err(e) => {
                self.telemetry.metrics.commit_failed();
                self.telemetry
                    .health
                    .commit_failed(Instant::now(), &e.to_string());
                if let Some(lasted) = self.checkpoints.commit_outage.failed(Instant::now()) {
                    warn!(
                        "committing offsets {}: {e}; retried every checkpoint (the checkpoint \
                         under state.dir keeps counts exact; a restart meanwhile reads again from \
                         the last committed offsets)",
                        failing(lasted)
                    );
                }
            }
        }
    }

    pub(crate) fn publish_progress(&self) {
        let Some(progress) = &self.reader.progress else {
            return;
        };
        let slos: Vec<SloProgress> = self
            .reader
            .evaluator
            .slos()
            .iter()
            .zip(&self.reader.slo_totals)
            .map(|(slo, [good, bad])| SloProgress {
                name: slo.name.clone(),
                objective: slo.objective,
                good: *good,
                bad: *bad,
                worst: None,
            })
            .collect();
        progress.update(
            &slos,
            self.reader.counts.accepted
                + self.reader.counts.dead_lettered
                + self.reader.counts.late,
            self.reader.counts.dead_lettered,
            self.reader.counts.late,
        );
    }
}
