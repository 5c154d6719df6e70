//! What happens when partitions move: before one leaves, everything read from it is made durable
//! and committed; when one arrives, this instance's checkpoint of it is resumed if nobody else read
//! it meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use sliq_core::SourceId;
use tracing::{info, warn};

use crate::admin::Telemetry;
use crate::checkpoint::Mode;
use crate::error::PipelineError;
use crate::kafka_client::WatchedContext;
use crate::run::State;
use crate::source::Resume;

/// What a commit's metadata says: how far the committing instance had counted the partition.
const COUNTED_PREFIX: &str = "sliq counted to ";

pub(crate) fn counted_metadata(next_offset: i64) -> String {
    format!("{COUNTED_PREFIX}{next_offset}")
}

pub(crate) fn parse_counted(metadata: &str) -> Option<i64> {
    metadata.strip_prefix(COUNTED_PREFIX)?.parse().ok()
}

/// Which position lag is measured from: the group's committed offset (a reader: what is durable),
/// or the consumer's own position (the ledger, which commits nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Position {
    Committed,
    Read,
}

/// librdkafka's statistics into the self-metrics and `/readyz`: the lag of each assigned
/// partition (how far its high-water mark is ahead of `from`), and whether any broker connection
/// is up.
pub(crate) fn observe_statistics(telemetry: &Telemetry, statistics: &Statistics, from: Position) {
    let mut lag = BTreeMap::new();
    for (topic, t) in &statistics.topics {
        for (partition, p) in &t.partitions {
            // -1 is librdkafka's bucket of unassigned messages; negative offsets are unknown.
            let behind = match from {
                Position::Committed => (p.hi_offset >= 0 && p.committed_offset >= 0)
                    .then(|| p.hi_offset - p.committed_offset),
                Position::Read => {
                    (p.hi_offset >= 0 && p.app_offset >= 0).then(|| p.hi_offset - p.app_offset)
                }
            };
            if let Some(behind) = behind
                && *partition >= 0
                && p.desired
            {
                lag.insert((topic.clone(), *partition), behind);
            }
        }
    }
    telemetry.metrics.gauges.set_lag(lag);
    let up = statistics.brokers.values().any(|b| b.state == "UP");
    telemetry.health.brokers((!up).then(Instant::now));
}

/// Hands the pipeline state to librdkafka's rebalance callbacks.
pub(crate) struct SourceContext {
    pub(crate) state: Arc<Mutex<State>>,
    /// When a failed commit was last reported (ms since the epoch): once per interval.
    pub(crate) commit_warned_ms: AtomicU64,
    /// librdkafka's lines and errors, as every client of sliq takes them.
    pub(crate) client: WatchedContext,
    pub(crate) telemetry: Arc<Telemetry>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }

    /// Every `statistics.interval.ms` (on the reader thread, inside poll).
    fn stats(&self, statistics: Statistics) {
        observe_statistics(&self.telemetry, &statistics, Position::Committed);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        self.telemetry.health.assigned(None);
        let mut state = self.state.lock();
        if state.failure.is_some() {
            // A failed run commits nothing more: what it did not make durable is read again.
            return;
        }
        let ids: Vec<SourceId> = revoked
            .elements()
            .iter()
            .filter_map(|tp| state.reader.sources.find(tp.topic(), tp.partition()))
            .collect();
        let deadline = Instant::now() + state.shutdown_timeout;
        if let Err(e) = state.checkpoint(consumer, Mode::Rebalance(&ids, deadline)) {
            state.failure = Some(e);
            return;
        }
        for id in ids {
            state.release(id);
        }
        info!(
            partitions = revoked.count(),
            "partitions revoked after a checkpoint"
        );
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        let committed = consumer
            .committed_offsets((*assigned).clone(), Duration::from_secs(10))
            .map_err(|e| warn!("cannot read the group's committed offsets: {e}; resuming this instance's checkpoint where it has one"))
            .ok();
        let mut state = self.state.lock();
        state.paused = false;
        let mut arrived = Vec::new();
        for tp in assigned.elements() {
            let group = committed
                .as_ref()
                .and_then(|c| c.find_partition(tp.topic(), tp.partition()));
            let offset = group.as_ref().and_then(|g| match g.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            });
            let counted = group.as_ref().and_then(|g| parse_counted(g.metadata()));
            let id = state.assign(tp.topic(), tp.partition(), offset, counted);
            arrived.push((id, offset));
        }
        if state.partials.is_some()
            && let Err(e) = state.claim(&arrived)
        {
            state.failure = Some(e);
            return;
        }
        let held = state.reader.sources.assigned().len();
        self.telemetry.health.assigned(Some(held));
        info!(partitions = assigned.count(), "partitions assigned");
        if state.partials.is_none() {
            let topics: Vec<String> = state
                .reader
                .sources
                .iter()
                .map(|(_, s)| s.topic.clone())
                .collect();
            drop(state);
            warn_if_shared(consumer, &topics, held);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let Err(e) = result else {
            self.telemetry.health.commit_succeeded();
            return;
        };
        self.telemetry.metrics.commit_failed();
        self.telemetry
            .health
            .commit_failed(Instant::now(), &e.to_string());
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let last = self.commit_warned_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000 {
            self.commit_warned_ms.store(now, Ordering::Relaxed);
            warn!(
                partitions = offsets.count(),
                "offset commit failed: {e}; the next checkpoint commits again, and the checkpoint \
                 keeps the counts exact meanwhile"
            );
        }
    }
}

/// A `--role all` instance that holds only part of its topics shares the group with others: each
/// judges budgets, alerts and drift on its own share only, and a partition that moves for good is
/// counted again from the group's offset. Said once per rebalance, with what to run instead.
fn warn_if_shared(consumer: &BaseConsumer<SourceContext>, topics: &[String], held: usize) {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for topic in topics.iter().filter(|t| seen.insert(t.as_str())) {
        if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            total += metadata
                .topics()
                .iter()
                .map(|t| t.partitions().len())
                .sum::<usize>();
        }
    }
    if held > 0 && held < total {
        warn!(
            "this instance holds {held} of {total} partitions: other `sliq run` instances share \
             the group, and each judges budgets, alerts and drift on its own share only; for one \
             budget over all of them, run them as `--role reader` with one `--role ledger`"
        );
    }
}

impl State {
    /// A partition left: its entry is kept in case it comes back, its windows' share is gone
    /// (drained by the rebalance checkpoint).
    fn release(&mut self, id: SourceId) {
        if let Some(entry) = self.partition_state(id) {
            self.checkpoints
                .resumable
                .insert((entry.topic.clone(), entry.partition), entry);
        }
        self.reader.windows.remove_source(id);
        if let Some(partials) = &mut self.partials {
            partials.release(id);
        }
        let s = self.reader.sources.get_mut(id);
        s.assigned = false;
        s.forget_position();
    }

    /// A partition arrived, with the group's committed offset and what its committer had counted.
    fn assign(
        &mut self,
        topic: &str,
        partition: i32,
        committed: Option<i64>,
        counted: Option<i64>,
    ) -> SourceId {
        let now = Instant::now();
        let id = self.reader.sources.id(topic, partition, now);
        {
            let s = self.reader.sources.get_mut(id);
            s.assigned = true;
            s.idle = false;
            s.last_record_at = now;
            s.forget_position();
            s.starts_at = committed;
        }
        let key = (topic.to_owned(), partition);
        if let Some(entry) = self.checkpoints.resumable.remove(&key) {
            if committed.is_none_or(|c| c <= entry.commit) {
                let (snapshot, dropped) = self.reader.names().restore_partition(&entry);
                if dropped > 0 {
                    warn!(
                        topic,
                        partition,
                        dropped,
                        "parts of the checkpoint no longer fit the spec (SLOs or features removed)"
                    );
                }
                self.reader.windows.restore_source(id, snapshot);
                let s = self.reader.sources.get_mut(id);
                s.resume = Some(Resume {
                    archive_from: entry.archive_from,
                    count_from: entry.count_from,
                    replayed_to: entry.archive_from,
                });
                s.archived = entry.archived;
                s.next_offset = Some(entry.count_from);
                s.committed = committed;
                info!(
                    topic,
                    partition,
                    from = entry.count_from,
                    "partition resumed from this instance's checkpoint"
                );
                return id;
            }
            warn!(
                topic,
                partition,
                "another instance read this partition since this one's checkpoint (committed {} \
                 is past {}): its checkpointed share is dropped and the records are read from the \
                 group's offset",
                committed.unwrap_or_default(),
                entry.commit
            );
        }
        self.reader.windows.add_source(id);
        if let (Some(from), Some(until)) = (committed, counted)
            && until > from
        {
            // The previous owner counted up to `until` but committed only `from` (it crashed with
            // windows open): records in between are counted again here, and say so.
            self.reader.sources.get_mut(id).replay_until = Some(until);
            warn!(
                topic,
                partition,
                "records {from}..{until} were counted by the partition's previous owner, which \
                 did not finish: they are counted again here (sliq.records outcome replayed)"
            );
        }
        id
    }

    /// `--role reader`: claims the partitions just assigned (with the group's committed offsets)
    /// in the window topic, and counts each from where the book says counting stopped. Records
    /// between the committed offset and that point are archived again, not counted: the
    /// window topic, not this instance's checkpoint, is the truth of what was counted.
    fn claim(&mut self, arrived: &[(SourceId, Option<i64>)]) -> Result<(), PipelineError> {
        let Some(partials) = &mut self.partials else {
            return Ok(());
        };
        let sources: Vec<_> = arrived
            .iter()
            .map(|(id, _)| (*id, self.reader.sources.get(*id).name()))
            .collect();
        let learned = partials.claim(&sources, Instant::now() + self.shutdown_timeout)?;
        let mut letters_from: BTreeMap<i32, i64> = BTreeMap::new();
        let mut counting_from = HashMap::new();
        for (id, committed) in arrived {
            let counted_to = learned.get(id).and_then(|l| l.counted_to);
            let s = self.reader.sources.get_mut(*id);
            // This instance's checkpoint still knows what it archived (when nobody else read the
            // partition since); the count cut comes from the book alone.
            let archive_from = match &s.resume {
                Some(r) => r.archive_from.max(committed.unwrap_or(0)),
                None => committed.unwrap_or(0),
            };
            s.replay_until = None;
            s.next_offset = *committed;
            let count_from = counted_to.unwrap_or(archive_from).max(archive_from);
            s.resume = (count_from > archive_from).then_some(Resume {
                archive_from,
                count_from,
                replayed_to: archive_from,
            });
            // What another owner already published in a shared archive folder is not written
            // again when its records are read again (with a folder per instance, nothing shows).
            if let Some(archive) = &self.archive
                && count_from > archive_from
            {
                let (topic, partition) = (s.topic.clone(), s.partition);
                s.archived
                    .extend(archive.published(&topic, partition, archive_from));
            }
            partials.start_at(*id, count_from);
            let s = self.reader.sources.get(*id);
            counting_from.insert((s.topic.clone(), s.partition), count_from);
            for (partition, end) in learned.get(id).iter().flat_map(|l| &l.dead_letter_ends) {
                let from = letters_from.entry(*partition).or_insert(*end);
                *from = (*from).min(*end);
            }
        }
        // Letters the previous owners sent for records past the cut: in the topic already, so
        // not sent again when those records are read here.
        if !letters_from.is_empty() {
            let sent = self.dead_letters.sent_since(&letters_from);
            self.sent_before.extend(sent.into_iter().filter(|letter| {
                counting_from
                    .get(&(letter.topic.clone(), letter.partition))
                    .is_some_and(|from| letter.offset >= *from)
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_metadata_round_trips_and_refuses_strangers() {
        assert_eq!(parse_counted(&counted_metadata(1234)), Some(1234));
        assert_eq!(parse_counted(""), None);
        assert_eq!(parse_counted("someone else's"), None);
    }
}
