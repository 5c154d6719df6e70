//! The window topic, `<group>.sliq-windows`: readers publish what they counted per source
//! partition (*partials*) and *claim* the partitions they take over; the ledger, and a reader
//! taking a partition over, read it back through the same [`PartitionBook`]s
//! (ARCHITECTURE.md, "The ledger"). One partition, so every message has one place in one order.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sliq_core::ledger::{PartitionBook, Verdict};

use crate::error::PipelineError;
use sliq_core::SourceSnapshot;

use crate::persist::checkpoint::{Names, StoredBadRequest, StoredPart, StoredRecords};

/// The format tag every message carries; a message of another format is refused by name.
pub const FORMAT: &str = "sliq-window/1";

/// The window topic of consumer group `group`.
pub fn windows_topic(group: &str) -> String {
    format!("{group}.sliq-windows")
}

/// The ledger's compacted snapshot topic of consumer group `group`.
pub fn ledger_topic(group: &str) -> String {
    format!("{group}.sliq-ledger")
}

/// A source partition, by name: ids are per process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourcePartition {
    pub topic: String,
    pub partition: i32,
}

impl SourcePartition {
    /// The message key: every message about one source partition has the same.
    fn key(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }
}

/// One message of the window topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowMessage {
    pub format: String,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A reader takes `source` over: from this message's offset on, only its partials count.
    Claim {
        source: SourcePartition,
        instance: String,
    },
    Partial(Partial),
}

/// What one reader counted on one source partition in one checkpoint cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    pub source: SourcePartition,
    pub instance: String,
    /// The offset of the claim it was counted under.
    pub epoch: i64,
    /// The source offsets `[from, to)` it covers (empty: a heartbeat that carries event time).
    pub from: i64,
    pub to: i64,
    pub newest_ts: Option<i64>,
    /// The reader saw the partition's high-water mark: it holds no window back.
    pub idle: bool,
    #[serde(default)]
    pub(crate) records: StoredRecords,
    #[serde(default)]
    pub(crate) parts: Vec<StoredPart>,
    #[serde(default)]
    pub(crate) bad_requests: Vec<StoredBadRequest>,
    /// The dead-letter topic's ends (partition, offset) when it was built: every letter of a
    /// later record of this partition lies at or after them, so a reader taking the partition
    /// over reads back from there the letters not to send twice.
    #[serde(default)]
    pub dead_letter_ends: Vec<(i32, i64)>,
}

impl Partial {
    /// A partial without counts: `[from, to)` of records none of which counted (or none at all).
    pub fn empty(
        source: SourcePartition,
        instance: &str,
        epoch: i64,
        (from, to): (i64, i64),
        newest_ts: Option<i64>,
    ) -> Partial {
        Partial {
            source,
            instance: instance.to_owned(),
            epoch,
            from,
            to,
            newest_ts,
            idle: false,
            records: StoredRecords::default(),
            parts: Vec::new(),
            bad_requests: Vec::new(),
            dead_letter_ends: Vec::new(),
        }
    }
}

impl Partial {
    /// The partial's parts with this process's ids (the ledger's side); what no longer fits its
    /// spec (an SLO or feature the ledger does not know) is dropped and counted.
    pub(crate) fn snapshot(&self, names: &mut Names<'_>) -> (SourceSnapshot, usize) {
        let (parts, dropped) = names.restore_parts(&self.parts);
        (
            SourceSnapshot {
                newest_ts: self.newest_ts,
                parts,
            },
            dropped,
        )
    }
}

/// Creates the window topic (one partition, delete retention of `retention`) and the ledger's
/// snapshot topic (one partition, compacted) when they are missing. A broker that refuses says
/// which topic, with which settings, and what to ask for.
pub async fn ensure_topics(
    config: &ClientConfig,
    group: &str,
    retention: Duration,
) -> Result<(), PipelineError> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(PipelineError::kafka("creating the admin client"))?;
    let windows = windows_topic(group);
    let ledger = ledger_topic(group);
    let retention_ms = retention.as_millis().to_string();
    let topics = [
        NewTopic::new(&windows, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "delete")
            .set("retention.ms", &retention_ms),
        NewTopic::new(&ledger, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact"),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| cannot_create(group, retention, &format!("{windows} and {ledger}"), &e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(cannot_create(group, retention, &topic, &code)),
        }
    }
    Ok(())
}

/// What to do when the brokers will not create the topics: which topics, with which settings,
/// and what to grant instead.
fn cannot_create(
    group: &str,
    retention: Duration,
    what: &str,
    why: &dyn std::fmt::Display,
) -> PipelineError {
    PipelineError::KafkaRefused(format!(
        "the brokers did not create {what} ({why}); create them yourself, {} with 1 partition, \
         cleanup.policy=delete, retention.ms={} and {} with 1 partition, \
         cleanup.policy=compact; or grant this client's principal CREATE on the cluster (or on \
         topics prefixed {group}.sliq-)",
        windows_topic(group),
        retention.as_millis(),
        ledger_topic(group)
    ))
}

/// Publishes messages to the window topic and waits for each acknowledgement.
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(config: &ClientConfig, group: &str) -> Result<Self, PipelineError> {
        let mut config = config.clone();
        // Acknowledged by every in-sync replica, never written twice by a retry; partials are
        // JSON of repeated names, which zstd shrinks several times over on the broker's disk.
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "zstd");
        let producer: FutureProducer = config
            .create()
            .map_err(PipelineError::kafka("creating the window-topic producer"))?;
        let topic = windows_topic(group);
        // Connects now, so that the idempotent producer's id is on its way while the group
        // joins: asked for at the first claim, it held that claim for about a second. Only a
        // head start: a broker that does not answer here is waited for by the claim itself.
        if let Err(e) = producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(1))
        {
            tracing::debug!("window-topic producer: no metadata yet ({e}); the first claim waits");
        }
        Ok(Publisher { producer, topic })
    }

    /// Publishes `body` and returns its offset once acknowledged.
    pub async fn publish(&self, body: &Body) -> Result<i64, PipelineError> {
        let key = match body {
            Body::Claim { source, .. } => source.key(),
            Body::Partial(p) => p.source.key(),
        };
        /// A [`WindowMessage`] as written, borrowing what it says.
        #[derive(Serialize)]
        struct Outgoing<'a> {
            format: &'a str,
            #[serde(flatten)]
            body: &'a Body,
        }
        let message = Outgoing {
            format: FORMAT,
            body,
        };
        let payload = serde_json::to_vec(&message)
            .map_err(|e| PipelineError::KafkaClient(format!("encoding a window message: {e}")))?;
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(delivery) => Ok(delivery.offset),
            Err((source, _)) => Err(PipelineError::Kafka {
                context: format!("publishing to {}", self.topic),
                source,
            }),
        }
    }
}

/// One source partition's book, and the dead-letter ends its last counted partial carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBook {
    pub book: PartitionBook,
    /// Empty when unknown (nothing counted yet).
    pub dead_letter_ends: Vec<(i32, i64)>,
}

impl SourceBook {
    /// Reads one claim or partial at window-topic position `at`; returns the book's verdict on a
    /// partial.
    pub fn read(&mut self, at: i64, body: &Body) -> Option<Verdict> {
        match body {
            Body::Claim { .. } => {
                self.book.claim(at);
                None
            }
            Body::Partial(p) => Some(self.offer(p)),
        }
    }

    /// Offers a partial to the book; an applied one's dead-letter ends become the book's.
    pub fn offer(&mut self, partial: &Partial) -> Verdict {
        let verdict = self
            .book
            .offer(partial.epoch, partial.from, partial.to, partial.newest_ts);
        if verdict.applies() {
            self.dead_letter_ends.clone_from(&partial.dead_letter_ends);
        }
        verdict
    }
}

/// What reading the window topic up to a position found for the partitions asked about.
#[derive(Debug, Default)]
pub struct BookReading {
    pub books: BTreeMap<SourcePartition, SourceBook>,
    /// Partials the book refused or that skipped offsets, with why: reported, never silent.
    pub refused: Vec<(SourcePartition, Verdict)>,
    /// Messages of another format, or that do not parse: skipped and counted.
    pub unreadable: u64,
}

/// Reads the window topic from `start` up to (not including) `until` through one book per source
/// partition in `wanted` (each as `known` had it at `start`, or empty), as the ledger reads it:
/// claims move epochs, partials move count cuts.
pub fn read_books(
    config: &ClientConfig,
    group: &str,
    wanted: &[SourcePartition],
    known: &[(SourcePartition, SourceBook)],
    (start, until): (i64, i64),
    timeout: Duration,
) -> Result<BookReading, PipelineError> {
    let topic = windows_topic(group);
    let mut reading = BookReading::default();
    for source in wanted {
        let book = known
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        reading.books.insert(source.clone(), book);
    }
    if start >= until {
        return Ok(reading);
    }
    let mut config = config.clone();
    config
        .set("group.id", format!("{group}.sliq-book-reader"))
        .set("enable.auto.commit", "false")
        // Retention may have removed the first messages: start at the oldest there is.
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer = config
        .create()
        .map_err(PipelineError::kafka("creating the window-topic reader"))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Offset(start))
        .map_err(PipelineError::kafka(format!("assigning {topic}")))?;
    consumer
        .assign(&assignment)
        .map_err(PipelineError::kafka(format!("assigning {topic}")))?;
    let deadline = std::time::Instant::now() + timeout;
    let mut next = start;
    while next < until {
        if std::time::Instant::now() >= deadline {
            return Err(PipelineError::KafkaClient(format!(
                "reading {topic} from offset {start} to {until} took longer than {}: stopped at \
                 offset {next}",
                humantime::format_duration(timeout)
            )));
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = polled.map_err(PipelineError::kafka(format!("reading {topic}")))?;
        next = message.offset() + 1;
        if message.offset() >= until {
            break;
        }
        let Some(parsed) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<WindowMessage>(p).ok())
            .filter(|m| m.format == FORMAT)
        else {
            reading.unreadable += 1;
            continue;
        };
        let source = match &parsed.body {
            Body::Claim { source, .. } => source,
            Body::Partial(p) => &p.source,
        };
        if let Some(book) = reading.books.get_mut(source)
            && let Some(verdict) = book.read(message.offset(), &parsed.body)
            && !matches!(verdict, Verdict::Apply | Verdict::Repeat)
        {
            reading.refused.push((source.clone(), verdict));
        }
    }
    Ok(reading)
}

#[cfg(test)]
mod tests {
    use sliq_core::{Evaluator, LatencySeries, SeriesId, SourceId, Verdict, WindowConfig, Windows};

    use super::*;

    /// The brokers will not create the topics (no CREATE permission; neither Nisshi nor
    /// librdkafka's mock cluster can refuse, so the words are checked here): the run stops
    /// naming both topics, the settings to create them with, and what to grant.
    #[test]
    fn a_refusal_names_the_topics_their_settings_and_the_acl() {
        let refused = cannot_create(
            "sliq",
            Duration::from_secs(3600),
            "sliq.sliq-windows",
            &RDKafkaErrorCode::TopicAuthorizationFailed,
        )
        .to_string();
        for part in [
            "sliq.sliq-windows with 1 partition, cleanup.policy=delete, retention.ms=3600000",
            "sliq.sliq-ledger with 1 partition, cleanup.policy=compact",
            "Broker: Topic authorization failed",
            "CREATE on the cluster (or on topics prefixed sliq.sliq-)",
        ] {
            assert!(refused.contains(part), "{part:?} missing from: {refused}");
        }
    }

    const SPEC: &str = "
source:
  kafka: { brokers: 127.0.0.1:9092, topics: [logs], group_id: g, dead_letter_topic: dlq }
slos:
  - name: availability
    objective: 0.99
    dimensions: [service]
    sli: { availability: {} }
  - name: fast
    objective: 0.9
    dimensions: [model]
    sli: { latency: { threshold: 1s } }
";

    fn evaluator() -> Evaluator {
        let spec = sliq_config::parse(SPEC, "test.yaml", |_| None).expect("spec");
        Evaluator::new(spec.slos())
    }

    /// A reader and a ledger that interned the same series in different orders: the partial
    /// carries names, so the ledger counts each under its own id for the same series.
    #[test]
    fn a_partial_travels_by_name_between_processes() {
        let config = WindowConfig {
            size_ms: 60_000,
            allowed_lateness_ms: 0,
            max_out_of_orderness_ms: 0,
        };
        let mut reader_eval = evaluator();
        let chat = reader_eval
            .intern("availability", &[("service", "chat")])
            .expect("series");
        let small = reader_eval
            .intern("fast", &[("model", "small")])
            .expect("series");
        let mut reader = Windows::new(config);
        let source = SourceId(0);
        reader.add(
            source,
            10,
            1_000,
            &[(chat, Verdict::GOOD), (small, Verdict::BAD)],
            &[],
            None,
        );
        reader.add(source, 11, 2_000, &[(chat, Verdict::BAD)], &[], None);
        let taken = reader.take_parts(source);
        let mut latency = LatencySeries::default();
        let names = Names {
            evaluator: &mut reader_eval,
            latency: &mut latency,
            features: None,
        };
        let mut partial = Partial::empty(
            SourcePartition {
                topic: "logs".into(),
                partition: 3,
            },
            "reader-1",
            7,
            (10, 12),
            taken.newest_ts,
        );
        partial.parts = names.store_parts(&taken.parts);
        let wire = serde_json::to_vec(&WindowMessage {
            format: FORMAT.into(),
            body: Body::Partial(partial),
        })
        .expect("encode");
        let Body::Partial(received) = serde_json::from_slice::<WindowMessage>(&wire)
            .expect("decode")
            .body
        else {
            panic!("not a partial")
        };

        // The ledger met `fast` first: its ids differ from the reader's.
        let mut ledger_eval = evaluator();
        let small_there = ledger_eval
            .intern("fast", &[("model", "small")])
            .expect("series");
        let unknown = ledger_eval
            .intern("availability", &[("service", "search")])
            .expect("series");
        let mut ledger_latency = LatencySeries::default();
        let mut names = Names {
            evaluator: &mut ledger_eval,
            latency: &mut ledger_latency,
            features: None,
        };
        let (snapshot, dropped) = received.snapshot(&mut names);
        assert_eq!(dropped, 0);
        assert_eq!(snapshot.parts[0].records, 2);
        let mut ledger = Windows::new(config);
        assert!(ledger.apply_partial(SourceId(5), snapshot).is_empty());
        let closed = ledger.close_all();
        let chat_there = ledger_eval
            .intern("availability", &[("service", "chat")])
            .expect("series");
        let count = |series: SeriesId| {
            closed[0]
                .counts
                .iter()
                .find(|c| c.series == series)
                .map(|c| (c.good, c.bad))
        };
        assert_ne!(chat_there, chat);
        assert_eq!(count(chat_there), Some((1, 1)));
        assert_eq!(count(small_there), Some((0, 1)));
        assert_eq!(count(unknown), None);
    }
}
