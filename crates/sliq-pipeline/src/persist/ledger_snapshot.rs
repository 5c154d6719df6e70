//! The ledger's state in Kafka: snapshots in the compacted topic `<group>.sliq-ledger`, so a
//! ledger needs no local disk and never reads the window topic from its beginning
//! (ARCHITECTURE.md, "The ledger").
//!
//! A snapshot is JSON cut into chunks (a Kafka message has a size limit) written under one
//! *generation*, then a manifest naming the generation and the window-topic offset it covers.
//! Generations alternate between two sets of chunk keys, so compaction can never leave the
//! manifest pointing at chunks half overwritten by a snapshot that did not finish. The books
//! alone (small) go under their own key too: a reader taking a partition over starts its scan
//! of the window topic from them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sliq_core::drift::ReferenceState;

use crate::error::PipelineError;
use crate::persist::checkpoint::{
    SeriesName, StoredBadRequest, StoredLatencyTotal, StoredPart, StoredRecords, StoredTotal,
};
use crate::window_topic::{SourceBook, SourcePartition, ledger_topic};

/// The format of snapshots and books; another is refused by name (the ledger then rebuilds from
/// the window topic).
pub(crate) const FORMAT: &str = "sliq-ledger-snapshot/1";

/// Bytes per chunk: well under Kafka's default message limit of 1 MB.
const CHUNK_BYTES: usize = 256 * 1024;

const MANIFEST_KEY: &str = "manifest";
const BOOKS_KEY: &str = "books";
const GENERATION_HEADER: &str = "sliq.generation";

/// Everything the active ledger holds, by name (ids are per process).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LedgerSnapshot {
    pub(crate) format: String,
    /// The next window-topic offset to read: a restored ledger goes on from here.
    pub(crate) covers: i64,
    pub(crate) lineage_started_ms: i64,
    pub(crate) closed_before: i64,
    pub(crate) records: StoredRecords,
    pub(crate) series: Vec<StoredTotal>,
    pub(crate) latency: Vec<StoredLatencyTotal>,
    pub(crate) partitions: Vec<StoredPartition>,
    pub(crate) bad_requests: Vec<StoredBadRequest>,
    pub(crate) rollups: Vec<StoredRollup>,
    pub(crate) budget_now_ms: Option<i64>,
    pub(crate) drift_reference: Option<ReferenceState>,
    pub(crate) refused: u64,
}

/// One source partition in the ledger: its book, whether its reader said it read everything,
/// and its share of the open windows.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredPartition {
    pub(crate) source: SourcePartition,
    pub(crate) book: SourceBook,
    pub(crate) idle: bool,
    pub(crate) parts: Vec<StoredPart>,
}

/// One budget rollup bucket of one series.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredRollup {
    pub(crate) series: SeriesName,
    /// An hour bucket (else a minute).
    pub(crate) hour: bool,
    pub(crate) start_ms: i64,
    pub(crate) good: u64,
    pub(crate) bad: u64,
}

/// The books alone: where each source partition's counting stood at `covers`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct BookSnapshot {
    pub(crate) format: String,
    pub(crate) covers: i64,
    pub(crate) books: Vec<(SourcePartition, SourceBook)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    generation: u64,
    chunks: usize,
    covers: i64,
}

fn chunk_key(generation: u64, index: usize) -> String {
    format!("slot{}/chunk{index}", generation % 2)
}

/// Writes snapshots to the compacted topic, acknowledged.
pub(crate) struct SnapshotWriter {
    producer: FutureProducer,
    topic: String,
    /// The generation the next snapshot is written under.
    generation: u64,
}

impl SnapshotWriter {
    /// `after` is the generation of the snapshot restored from (the next one is newer).
    pub(crate) fn new(
        client: &ClientConfig,
        group: &str,
        after: Option<u64>,
    ) -> Result<Self, PipelineError> {
        let mut config = client.clone();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "zstd")
            .set("message.max.bytes", (2 * CHUNK_BYTES).to_string());
        Ok(SnapshotWriter {
            producer: config.create().map_err(PipelineError::kafka(
                "creating the ledger-snapshot producer",
            ))?,
            topic: ledger_topic(group),
            generation: after.map_or(0, |g| g + 1),
        })
    }

    /// Writes `snapshot` and then `books`; the snapshot counts only once its manifest is
    /// acknowledged.
    pub(crate) async fn write(
        &mut self,
        snapshot: &LedgerSnapshot,
        books: &BookSnapshot,
    ) -> Result<(), PipelineError> {
        let encode = |what: &str, e: serde_json::Error| {
            PipelineError::KafkaClient(format!("encoding the ledger {what}: {e}"))
        };
        let bytes = serde_json::to_vec(snapshot).map_err(|e| encode("snapshot", e))?;
        let generation = self.generation;
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        for (index, chunk) in chunks.iter().enumerate() {
            self.send(&chunk_key(generation, index), chunk, Some(generation))
                .await?;
        }
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            generation,
            chunks: chunks.len(),
            covers: snapshot.covers,
        };
        let manifest = serde_json::to_vec(&manifest).map_err(|e| encode("manifest", e))?;
        self.send(MANIFEST_KEY, &manifest, None).await?;
        let books = serde_json::to_vec(books).map_err(|e| encode("books", e))?;
        self.send(BOOKS_KEY, &books, None).await?;
        self.generation += 1;
        Ok(())
    }

    async fn send(
        &self,
        key: &str,
        payload: &[u8],
        generation: Option<u64>,
    ) -> Result<(), PipelineError> {
        let mut record = FutureRecord::to(&self.topic).key(key).payload(payload);
        if let Some(generation) = generation {
            let value = generation.to_string();
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: GENERATION_HEADER,
                value: Some(&value),
            }));
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(source, _)| PipelineError::Kafka {
                context: format!("writing a ledger snapshot to {}", self.topic),
                source,
            })
    }
}

/// What the compacted topic holds now: the newest message per key.
struct Latest {
    /// Key → (payload, generation header).
    messages: HashMap<String, (Vec<u8>, Option<u64>)>,
}

/// Reads the compacted topic to its end (it holds a few messages per key).
fn read_latest(
    client: &ClientConfig,
    group: &str,
    timeout: Duration,
) -> Result<Latest, PipelineError> {
    let topic = ledger_topic(group);
    let mut config = client.clone();
    config
        .set("group.id", format!("{group}.sliq-snapshot-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer = config
        .create()
        .map_err(PipelineError::kafka("creating the ledger-snapshot reader"))?;
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, timeout)
        .map_err(PipelineError::kafka(format!("asking where {topic} ends")))?;
    let mut latest = Latest {
        messages: HashMap::new(),
    };
    if high <= low {
        return Ok(latest);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .map_err(PipelineError::kafka(format!("assigning {topic}")))?;
    consumer
        .assign(&assignment)
        .map_err(PipelineError::kafka(format!("assigning {topic}")))?;
    let deadline = Instant::now() + timeout;
    let mut next = low;
    while next < high {
        if Instant::now() >= deadline {
            return Err(PipelineError::KafkaClient(format!(
                "reading {topic} to its end (offset {high}) took longer than {}: stopped at {next}",
                humantime::format_duration(timeout)
            )));
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = polled.map_err(PipelineError::kafka(format!("reading {topic}")))?;
        next = message.offset() + 1;
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        let generation = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == GENERATION_HEADER)
                .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
        });
        let payload = message.payload().unwrap_or_default().to_vec();
        latest
            .messages
            .insert(key.to_owned(), (payload, generation));
    }
    Ok(latest)
}

/// A snapshot read back, with the generation it was written under.
pub(crate) struct Restored {
    pub(crate) snapshot: LedgerSnapshot,
    pub(crate) generation: u64,
}

/// The newest complete snapshot, if any. A snapshot of another format, or whose chunks do not
/// add up, is a reason given back: the ledger then rebuilds from the window topic.
pub(crate) fn read_snapshot(
    client: &ClientConfig,
    group: &str,
    timeout: Duration,
) -> Result<Result<Option<Restored>, String>, PipelineError> {
    let latest = read_latest(client, group, timeout)?;
    let Some((manifest, _)) = latest.messages.get(MANIFEST_KEY) else {
        return Ok(Ok(None));
    };
    let manifest: Manifest = match serde_json::from_slice(manifest) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("its manifest does not parse ({e})"))),
    };
    if manifest.format != FORMAT {
        return Ok(Err(format!(
            "it has format {:?}, this sliq reads {FORMAT:?}",
            manifest.format
        )));
    }
    let mut bytes = Vec::new();
    for index in 0..manifest.chunks {
        match latest.messages.get(&chunk_key(manifest.generation, index)) {
            Some((chunk, Some(g))) if *g == manifest.generation => bytes.extend_from_slice(chunk),
            _ => {
                return Ok(Err(format!(
                    "chunk {index} of generation {} is missing",
                    manifest.generation
                )));
            }
        }
    }
    match serde_json::from_slice::<LedgerSnapshot>(&bytes) {
        Ok(snapshot) if snapshot.covers == manifest.covers => Ok(Ok(Some(Restored {
            snapshot,
            generation: manifest.generation,
        }))),
        Ok(_) => Ok(Err("its chunks do not match its manifest".to_owned())),
        Err(e) => Ok(Err(format!("it does not parse ({e})"))),
    }
}

/// The newest books, if any (of this format): where a takeover scan of the window topic starts.
pub(crate) fn read_books_snapshot(
    client: &ClientConfig,
    group: &str,
    timeout: Duration,
) -> Result<Option<BookSnapshot>, PipelineError> {
    let latest = read_latest(client, group, timeout)?;
    Ok(latest
        .messages
        .get(BOOKS_KEY)
        .and_then(|(payload, _)| serde_json::from_slice::<BookSnapshot>(payload).ok())
        .filter(|b| b.format == FORMAT))
}
