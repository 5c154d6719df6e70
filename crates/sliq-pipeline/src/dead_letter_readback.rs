//! Reading the dead-letter topic back after a crash: letters acknowledged after the resumed
//! checkpoint was written are in the topic already, and their records are read again; their
//! `sliq.source.*` headers say which, so they are not sent twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::dead_letter::{SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC, SourceOffset};
use crate::kafka_client::{AccessWatch, WatchedContext};

type Reader = BaseConsumer<WatchedContext>;

/// How long reading back may go without a letter.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading back may take in all.
const WHOLE_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A consumer on the producer's connection settings, without its producer-only properties.
fn reader(config: &ClientConfig, watch: &Arc<AccessWatch>) -> Result<Reader, KafkaError> {
    let mut config = config.clone();
    for producer_only in [
        "enable.idempotence",
        "linger.ms",
        "queue.buffering.max.ms",
        "message.timeout.ms",
    ] {
        config.remove(producer_only);
    }
    config
        .set("group.id", "sliq-dead-letter-readback")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Letters that retention removed since are not there to find: start at the oldest left.
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10");
    config.create_with_context(WatchedContext::new(watch))
}

/// The topic's end offset per partition now.
pub(crate) fn topic_ends(
    config: &ClientConfig,
    watch: &Arc<AccessWatch>,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let consumer = reader(config, watch)?;
    Ok(watermarks(&consumer, topic)?
        .into_iter()
        .map(|(partition, (_, high))| (partition, high))
        .collect())
}

/// The oldest offset still there and the end, per partition.
fn watermarks(consumer: &Reader, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut marks = BTreeMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        marks.insert(p.id(), consumer.fetch_watermarks(topic, p.id(), TIMEOUT)?);
    }
    Ok(marks)
}

/// Why the letters already sent could not all be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadBackError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "reading stopped at offset {reached} of {end} in partition {partition} (it waits {} for a \
         letter, {} in all)",
        humantime::format_duration(TIMEOUT),
        humantime::format_duration(WHOLE_READ_TIMEOUT)
    )]
    Stalled {
        partition: i32,
        reached: i64,
        end: i64,
    },
}

/// Adds to `sent` the source positions named by the letters from `from` to the current end of
/// each partition. Reads as long as letters keep coming; stopping short is an error (what was
/// found stays in `sent`), since every letter it missed would be sent twice.
pub(crate) fn read_back(
    config: &ClientConfig,
    watch: &Arc<AccessWatch>,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    sent: &mut HashSet<SourceOffset>,
) -> Result<(), ReadBackError> {
    let consumer = reader(config, watch)?;
    let marks = watermarks(&consumer, topic)?;
    let ends: BTreeMap<i32, i64> = marks.iter().map(|(p, (_, high))| (*p, *high)).collect();
    let mut assignment = TopicPartitionList::new();
    // Per partition still to read, the next offset to see.
    let mut reading: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, (oldest, end)) in &marks {
        // Letters that retention removed are not there to find.
        let start = from.get(partition).copied().unwrap_or(0).max(*oldest);
        if start < *end {
            assignment.add_partition_offset(topic, *partition, Offset::Offset(start))?;
            reading.insert(*partition, start);
        }
    }
    if reading.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let mut deadline = started + TIMEOUT;
    while !reading.is_empty() {
        // It runs where partitions are handed over, which must not wait without end.
        if Instant::now() >= deadline || started.elapsed() >= WHOLE_READ_TIMEOUT {
            let (&partition, &reached) = reading.iter().next().unwrap_or((&0, &0));
            return Err(ReadBackError::Stalled {
                partition,
                reached,
                end: ends.get(&partition).copied().unwrap_or_default(),
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            // A partition may end in offsets that carry no letter (a transaction's marker).
            let positions = consumer.position()?;
            for e in positions.elements() {
                if let Offset::Offset(at) = e.offset()
                    && ends.get(&e.partition()).is_some_and(|end| at >= *end)
                {
                    reading.remove(&e.partition());
                }
            }
            continue;
        };
        let message = message?;
        let partition = message.partition();
        // Progress on a partition still to read; letters past an end do not count.
        if let Some(next) = reading.get_mut(&partition) {
            deadline = Instant::now() + TIMEOUT;
            *next = message.offset() + 1;
            if *next >= ends.get(&partition).copied().unwrap_or_default() {
                reading.remove(&partition);
            }
        }
        let Some(headers) = message.headers() else {
            continue;
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        let (Some(topic), Some(partition), Some(offset)) = (
            header(SOURCE_TOPIC),
            header(SOURCE_PARTITION).and_then(|p| p.parse().ok()),
            header(SOURCE_OFFSET).and_then(|o| o.parse().ok()),
        ) else {
            continue;
        };
        sent.insert(SourceOffset {
            topic,
            partition,
            offset,
        });
    }
    Ok(())
}
