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

const TIMEOUT: Duration = Duration::from_secs(10);

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
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut ends = BTreeMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), TIMEOUT)?;
        ends.insert(p.id(), high);
    }
    Ok(ends)
}

/// The source positions named by the letters from `from` to the current end of each partition.
pub(crate) fn read_back(
    config: &ClientConfig,
    watch: &Arc<AccessWatch>,
    topic: &str,
    from: &BTreeMap<i32, i64>,
) -> Result<HashSet<SourceOffset>, KafkaError> {
    let consumer = reader(config, watch)?;
    let now = topic_ends(config, watch, topic)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for (partition, end) in &now {
        let start = from.get(partition).copied().unwrap_or(0);
        if start < *end {
            assignment.add_partition_offset(topic, *partition, Offset::Offset(start))?;
            remaining += 1;
        }
    }
    let mut sent = HashSet::new();
    if remaining == 0 {
        return Ok(sent);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut done: BTreeMap<i32, bool> = BTreeMap::new();
    while done.len() < remaining && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        if message.offset() + 1 >= now[&message.partition()] {
            done.insert(message.partition(), true);
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
    Ok(sent)
}
