//! The ledger (`--role ledger`): the one process that merges every reader's partials from the
//! window topic and judges them: the only writer of counters, budgets, burn rates, alerts, policy
//! states, cascades and drift points (ARCHITECTURE.md, "The ledger").
//!
//! Election is Kafka's: the ledgers of a group share the consumer group `<group>.sliq-ledger` on
//! the one-partition window topic, so exactly one is assigned it. The active ledger builds its
//! state from the window topic's first message on; every ledger that reads the same order reaches
//! the same counts, and its cumulative series start at the first message's time, so a ledger
//! restarted elsewhere continues the same series.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use sliq_config::PipelineSpec;
use sliq_otlp::{MetricsBuilder, RecordCounts};
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use crate::admin::Telemetry;
use crate::error::PipelineError;
use crate::export::{Export, ExportQueue, open_exporter};
use crate::kafka_client::{WatchedContext, client_config};
use crate::outage::human;
use crate::persist::ledger_snapshot::{SnapshotWriter, read_snapshot};
use crate::rebalance::{Position, observe_statistics};
use crate::run::{RunLimits, RunSummary, Started};
use crate::window_topic::{FORMAT, WindowMessage, ledger_topic, windows_topic};

mod state;

use state::Ledger;

/// How often the source topics' partitions are looked up again (a topic may grow partitions).
const METADATA_EVERY: Duration = Duration::from_secs(30);

const SNAPSHOT_READ_TIMEOUT: Duration = Duration::from_secs(60);
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// The consumer context of the ledger: librdkafka's lines as every client takes them, and the
/// news that the window topic was (re)assigned, after which the state is built again from its
/// start, or taken away, after which this ledger stands down.
struct LedgerContext {
    client: WatchedContext,
    assigned: AtomicBool,
    revoked: AtomicBool,
    /// `/readyz`: a ledger is ready once it has joined its group, active or standby.
    telemetry: Arc<Telemetry>,
}

impl ClientContext for LedgerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }

    /// The window topic's lag (how far the ledger is behind the readers) and the brokers' state.
    fn stats(&self, statistics: Statistics) {
        observe_statistics(&self.telemetry, &statistics, Position::Read);
    }
}

impl ConsumerContext for LedgerContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.telemetry.health.assigned(Some(tpl.count()));
                if tpl.count() > 0 {
                    self.assigned.store(true, Ordering::SeqCst);
                    info!("this process is the active ledger: restoring its state");
                } else {
                    info!("another ledger is active: this one stands by");
                }
            }
            Rebalance::Revoke(tpl) if tpl.count() > 0 => {
                self.telemetry.health.assigned(None);
                self.revoked.store(true, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// Whether this ledger may still send, asked before each export request. A ledger stopped past
/// its session (a long pause, a frozen VM) wakes still believing it is active, while another has
/// taken over, judged further and exported; one request from the old state would take its series
/// backwards, and librdkafka learns of the takeover only after a round trip. So the ledger
/// watches for gaps in its own loop: after one long enough to have cost it the group, it sends
/// nothing until a commit succeeds. A commit carries the member's generation and the group's
/// coordinator refuses one from a member it has replaced, so success is the coordinator's word
/// that no other ledger holds the topic. The offset committed is 0 (from the start): a ledger
/// resumes from its snapshot, and without one reads the window topic from its start. Without a
/// gap nothing is asked: librdkafka's own heartbeats keep the membership while the loop runs.
struct Membership {
    last_seen: Instant,
    /// A gap was seen and no commit has succeeded since.
    in_doubt: bool,
    /// Since when exports are held, the coordinator having refused.
    held_since: Option<Instant>,
    last_asked: Option<Instant>,
}

impl Membership {
    /// A gap in the loop this long may be a pause of the whole process, which outlasts the
    /// session (10 s without a heartbeat; librdkafka sends one every 3 s) from about 7 s on.
    const GAP_TO_DOUBT: Duration = Duration::from_secs(3);
    /// Once refused, asks again at most this often until the group settles.
    const ASK_AGAIN_AFTER: Duration = Duration::from_millis(500);

    fn new() -> Self {
        Membership {
            last_seen: Instant::now(),
            in_doubt: false,
            held_since: None,
            last_asked: None,
        }
    }

    /// Notes that the loop runs; called on every turn, so a pause anywhere shows as a gap.
    fn watch(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_seen) >= Self::GAP_TO_DOUBT {
            self.in_doubt = true;
        }
        self.last_seen = now;
    }

    fn confirm(&mut self, consumer: &BaseConsumer<LedgerContext>, topic: &str) -> bool {
        self.watch();
        if !self.in_doubt {
            return true;
        }
        if self
            .last_asked
            .is_some_and(|at| at.elapsed() < Self::ASK_AGAIN_AFTER)
        {
            return false;
        }
        self.last_asked = Some(Instant::now());
        let mut position = TopicPartitionList::new();
        let committed = position
            .add_partition_offset(topic, 0, Offset::Offset(0))
            .map_err(|e| e.to_string())
            .and_then(|()| {
                consumer
                    .commit(&position, CommitMode::Sync)
                    .map_err(|e| e.to_string())
            });
        // The commit may have waited: that is no pause of the process.
        self.last_seen = Instant::now();
        match committed {
            Ok(()) => {
                if let Some(since) = self.held_since.take() {
                    info!(
                        "the group confirms this ledger as the active one: exports go on after \
                         {} held",
                        human(since.elapsed())
                    );
                }
                self.in_doubt = false;
                true
            }
            Err(e) => {
                debug!("the group's coordinator refused this ledger's commit: {e}");
                if self.held_since.is_none() {
                    warn!(
                        "this ledger's loop was held up, and the group's coordinator did not \
                         confirm it as the window topic's owner ({e}); exports are held until \
                         the group settles (another ledger may have taken over meanwhile)"
                    );
                    self.held_since = Some(Instant::now());
                }
                false
            }
        }
    }
}

/// The partitions of the source topics, from the brokers' metadata.
fn source_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[String],
) -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for topic in topics {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                for t in metadata.topics() {
                    found.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
                }
            }
            Err(e) => warn!("cannot read the partitions of {topic}: {e}; asking again later"),
        }
    }
    found
}

/// Whether every partition no reader reported idle was counted to its end anyway: a reader that
/// stopped or died after its last partial, or one that stopped while the group was still handing
/// it partitions, reports nothing more, and a bounded run must not wait for it for ever.
fn counted_to_end<C: ConsumerContext>(consumer: &BaseConsumer<C>, l: &Ledger) -> bool {
    l.not_idle().all(|(topic, partition, counted)| {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((low, high)) => high <= low || counted.is_some_and(|c| c >= high),
            Err(_) => false,
        }
    })
}

/// Runs the ledger until `stop`, or (with `exit_on_idle`) until the window topic is read to its
/// end and quiet for that long with every source partition read to its end by its reader (or
/// counted to its end), when every window is closed and judged.
pub(crate) fn run(
    spec: &PipelineSpec,
    instance_id: Option<&str>,
    limits: RunLimits,
    stop: &AtomicBool,
    rt: Handle,
) -> Result<RunSummary, PipelineError> {
    let kafka = &spec.source.kafka;
    // The state folder only keeps the export backlog while the collector is away: the ledger's
    // state is the window topic's.
    let started = Started::new(spec, instance_id, &rt)?;
    let (settings, temporality) = (&started.settings, started.temporality);
    let instance_id = started.instance_id.clone();
    let client = client_config(kafka.connection(), &started.client_id);
    rt.block_on(crate::window_topic::ensure_topics(
        &client,
        &kafka.group_id,
        spec.ledger.window_retention.0,
    ))?;
    let exporter = open_exporter(spec.export.enabled, settings, &rt)?;
    let mut export = Export {
        builder: MetricsBuilder::new(None, temporality, 0),
        queue: ExportQueue::new(
            exporter,
            &settings.endpoint.value,
            spec.export.otlp.max_backlog_bytes,
            started.state_dir.path(),
            rt.clone(),
            Arc::clone(&started.telemetry),
        ),
        exported_counts: RecordCounts::default(),
    };

    let topic = windows_topic(&kafka.group_id);
    let mut config = client.clone();
    config
        .set("group.id", format!("{}.sliq-ledger", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", "1000");
    let consumer: BaseConsumer<LedgerContext> = crate::kafka_client::create(
        &config,
        LedgerContext {
            client: WatchedContext::new(&started.watch),
            assigned: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
            telemetry: Arc::clone(&started.telemetry),
        },
    )?;
    consumer
        .subscribe(&[&topic])
        .map_err(PipelineError::kafka(format!("subscribing to {topic}")))?;
    info!(topic = %topic, instance = %instance_id, "ledger waiting for the window topic");

    let rt_snapshots = rt;
    let mut ledger: Option<Ledger> = None;
    let mut snapshots = SnapshotWriter::new(&client, &kafka.group_id, None)?;
    let mut snapshot_at = Instant::now();
    let mut snapshot_covers = 0;
    let mut last_cycle = Instant::now();
    let mut last_message = Instant::now();
    let mut metadata_at: Option<Instant> = None;
    let mut unreadable = 0u64;
    let mut exit_on_idle = false;
    // Whether the state has read the window topic as far as it went when this ledger took over:
    // until then nothing is exported, since a cumulative point of a state still catching up
    // would be lower than what the previous ledger sent, under the same start time.
    let mut caught_up = false;
    let mut membership = Membership::new();
    while !stop.load(Ordering::Relaxed) {
        started.watch.check()?;
        membership.watch();
        if consumer.context().revoked.swap(false, Ordering::SeqCst) {
            // What this ledger had not sent yet was built from a state another ledger now owns
            // and judges again from the newest snapshot: sending it would be sending the past.
            let dropped = export.queue.discard();
            ledger = None;
            caught_up = false;
            info!(
                dropped,
                "the group took the window topic from this ledger: it stands down, and drops its \
                 unsent exports (the ledger assigned the topic next judges them again)"
            );
        }
        if consumer.context().assigned.swap(false, Ordering::SeqCst) {
            // Assigned (again): the state starts over from the newest snapshot, or from the
            // window topic's beginning, and what the old state queued is judged again.
            export.queue.discard();
            metadata_at = None;
            caught_up = false;
            match read_snapshot(&client, &kafka.group_id, SNAPSHOT_READ_TIMEOUT) {
                Ok(Ok(Some(restored))) => {
                    let covers = restored.snapshot.covers;
                    export.builder = MetricsBuilder::new(
                        None,
                        temporality,
                        restored.snapshot.lineage_started_ms,
                    );
                    let l = Ledger::restore(spec, restored.snapshot, &mut export)?;
                    export.exported_counts = l.counts;
                    snapshots =
                        SnapshotWriter::new(&client, &kafka.group_id, Some(restored.generation))?;
                    snapshot_covers = covers;
                    // Where reading goes on; were the seek refused, the messages before it are
                    // skipped by offset.
                    let _ = consumer.seek(&topic, 0, Offset::Offset(covers), SEEK_TIMEOUT);
                    info!(
                        covers,
                        "ledger state restored from its newest snapshot; reading the window \
                         topic on from there"
                    );
                    ledger = Some(l);
                }
                Ok(Ok(None)) => ledger = None,
                Ok(Err(reason)) => {
                    warn!(
                        "the newest ledger snapshot in {} cannot be used: {reason}; rebuilding \
                         from the window topic",
                        ledger_topic(&kafka.group_id)
                    );
                    ledger = None;
                }
                Err(e) => {
                    warn!("reading the ledger's snapshot: {e}; trying again");
                    consumer.context().assigned.store(true, Ordering::SeqCst);
                    export
                        .queue
                        .flush_until_if(Instant::now() + Duration::from_secs(1), || {
                            membership.confirm(&consumer, &topic)
                        });
                    continue;
                }
            }
        }
        // Backpressure: while the collector's backlog is full, nothing more is read.
        let polled = if export.queue.is_full() {
            export
                .queue
                .flush_until_if(Instant::now() + Duration::from_millis(100), || {
                    membership.confirm(&consumer, &topic)
                });
            None
        } else {
            consumer.poll(Duration::from_millis(100))
        };
        match polled {
            Some(Ok(message)) if ledger.as_ref().is_some_and(|l| message.offset() < l.next) => {}
            Some(Ok(message)) => {
                last_message = Instant::now();
                let parsed = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<WindowMessage>(p).ok())
                    .filter(|m| m.format == FORMAT);
                match parsed {
                    Some(parsed) => {
                        if ledger.is_none() {
                            let mut fresh = Ledger::new(spec)?;
                            // The lineage starts with the window topic's first message, so every
                            // ledger that rebuilds from it continues the same series.
                            let started_ms = message.timestamp().to_millis().unwrap_or(0);
                            export.builder = MetricsBuilder::new(None, temporality, started_ms);
                            export.exported_counts = RecordCounts::default();
                            fresh.know_partitions(&source_partitions(&consumer, &kafka.topics));
                            metadata_at = Some(Instant::now());
                            ledger = Some(fresh);
                        }
                        if let Some(l) = &mut ledger {
                            l.read(message.offset(), parsed);
                        }
                    }
                    None => {
                        unreadable += 1;
                        if unreadable == 1 || unreadable.is_power_of_two() {
                            warn!(
                                offset = message.offset(),
                                unreadable,
                                "a window-topic message is not a {FORMAT} message; skipped \
                                 (readers and ledger must run the same sliq version)"
                            );
                        }
                    }
                }
            }
            Some(Err(e)) => warn!("reading {topic}: {e}; retrying"),
            None => {}
        }
        export
            .queue
            .pump_if(|| membership.confirm(&consumer, &topic));
        if last_cycle.elapsed() < limits.checkpoint_every {
            continue;
        }
        if let Some(l) = &mut ledger {
            started.telemetry.metrics.add_partials(&mut l.partials_seen);
        }
        last_cycle = Instant::now();
        let Some(l) = &mut ledger else {
            continue;
        };
        if metadata_at.is_none_or(|at| at.elapsed() >= METADATA_EVERY) {
            l.know_partitions(&source_partitions(&consumer, &kafka.topics));
            metadata_at = Some(Instant::now());
        }
        if !caught_up {
            caught_up = read_to_end(&consumer, &topic, l.next);
            if !caught_up {
                continue;
            }
            info!(
                covers = l.next,
                "the ledger caught up with the window topic: judging and exporting"
            );
        }
        l.judge(&mut export, false);
        if snapshot_at.elapsed() >= spec.ledger.snapshot_every.0
            && l.next > snapshot_covers
            && export.queue.len() == 0
        {
            snapshot_covers = write_snapshot(l, &export, &mut snapshots, &rt_snapshots);
            snapshot_at = Instant::now();
        }
        if let Some(idle) = limits.exit_on_idle
            && last_message.elapsed() >= idle
            && read_to_end(&consumer, &topic, l.next)
            && (l.all_idle() || counted_to_end(&consumer, l))
        {
            exit_on_idle = true;
            break;
        }
    }
    if exit_on_idle && let Some(l) = &mut ledger {
        l.judge(&mut export, true);
        info!(
            "the window topic was read to its end and quiet for {}: every window judged, stopping",
            human(limits.exit_on_idle.unwrap_or_default())
        );
    }
    let deadline = Instant::now() + spec.shutdown_timeout.0;
    if !export
        .queue
        .flush_until_if(deadline, || membership.confirm(&consumer, &topic))
    {
        warn!(
            "{} export requests were not acknowledged within {}; a ledger started later sends \
             the same cumulative values again",
            export.queue.len(),
            human(spec.shutdown_timeout.0)
        );
    } else if let Some(l) = &mut ledger
        && l.next > snapshot_covers
    {
        write_snapshot(l, &export, &mut snapshots, &rt_snapshots);
    }
    consumer.unsubscribe();
    started.telemetry.metrics.shutdown();
    let counts = ledger.as_ref().map(|l| l.counts).unwrap_or_default();
    if let Some(l) = &ledger
        && l.refused > 0
    {
        warn!(
            refused = l.refused,
            "partials refused by the book in this run"
        );
    }
    Ok(RunSummary {
        instance_id,
        accepted: counts.accepted,
        dead_lettered: counts.dead_lettered,
        late: counts.late,
        replayed: counts.replayed,
        archive_files: 0,
        exports: export.queue.acknowledged(),
    })
}

/// Writes the ledger's snapshot; returns the window-topic offset the newest snapshot covers (the
/// old one's if this one failed: it is only retried, nothing is lost).
fn write_snapshot(
    ledger: &mut Ledger,
    export: &Export,
    writer: &mut SnapshotWriter,
    rt: &Handle,
) -> i64 {
    let (snapshot, books) = ledger.snapshot(export);
    let covers = snapshot.covers;
    match rt.block_on(writer.write(&snapshot, &books)) {
        Ok(()) => {
            debug!(covers, "ledger snapshot written");
            covers
        }
        Err(e) => {
            warn!(
                "writing the ledger's snapshot: {e}; trying again later (a ledger taking over \
                   meanwhile reads the window topic from the previous snapshot)"
            );
            0
        }
    }
}

/// Whether the window topic holds nothing after `next`.
fn read_to_end<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, next: i64) -> bool {
    matches!(
        consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)),
        Ok((_, high)) if next >= high
    )
}
