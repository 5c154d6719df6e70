//! Refused records go to the dead-letter topic with their original bytes, key and headers, plus
//! headers saying why and where from. A dead letter is never lost and never committed past:
//!
//! - every letter is kept until the broker acknowledges it; a failed delivery is produced again
//!   with backoff (100 ms doubling to 10 s), whatever the error, except:
//! - a letter that can never be delivered as it is (too large for the producer or the topic, or
//!   refused as an invalid record) is first written whole to the quarantine folder
//!   (`<state.dir>/quarantine/<topic>.p<partition>.o<offset>.bin` and `.json`, fsynced), then sent
//!   with its payload truncated and headers `sliq.truncated` (the original size) and
//!   `sliq.quarantine` (the file);
//! - [`DeadLetters::pending_floor`] is the lowest source offset of a partition whose letter is not
//!   acknowledged yet, so a commit can stay below it;
//! - [`DeadLetters::settle_until`] waits until every letter queued so far is acknowledged, at most
//!   until a deadline (short for a regular checkpoint, the shutdown timeout for a stop).
//!
//! While deliveries fail, one warning per [`LOG_EVERY`] says what fails, since when and how many
//! letters wait; one line says when they flow again.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use sliq_core::Reject;
use tokio::runtime::Handle;
use tracing::{error, info, warn};

use crate::error::PipelineError;
use crate::kafka_client::{AccessWatch, WatchedContext};

type Producer = FutureProducer<WatchedContext>;
use crate::admin::Telemetry;
use crate::outage::{failing, human};

/// Header names on every dead letter (also documented in the README).
pub const REASON: &str = "sliq.reason";
pub const ERROR: &str = "sliq.error";
pub const SOURCE_TOPIC: &str = "sliq.source.topic";
pub const SOURCE_PARTITION: &str = "sliq.source.partition";
pub const SOURCE_OFFSET: &str = "sliq.source.offset";
/// On a letter sent truncated: the original payload's size in bytes.
pub const TRUNCATED: &str = "sliq.truncated";
/// On a letter sent truncated: the file holding the original payload (`.bin`, next to its `.json`).
pub const QUARANTINE: &str = "sliq.quarantine";

/// The first retry delay of a failed delivery; it doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);
/// How often, at most, a failing delivery is logged.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);
/// The largest payload a truncated letter carries, whatever `message.max.bytes` allows.
const MAX_TRUNCATED_PAYLOAD: usize = 900 * 1024;
/// Room kept for the record's framing besides its key and headers.
const RECORD_OVERHEAD: usize = 1024;
/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// librdkafka holds a failing message this long before reporting it (its default is 5 minutes,
/// which would hide an outage); set `message.timeout.ms` in `source.kafka.options` to change it.
const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "30000";

/// A source record's position: the dead letter of which is not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SourceOffset {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// What [`DeadLetters::settle_until`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Every letter queued so far is acknowledged (whole or, quarantined, truncated).
    All,
    /// The deadline passed first: these source records' letters are not acknowledged (sorted).
    Undelivered(Vec<SourceOffset>),
}

type Delivery = BoxFuture<
    'static,
    (
        u64,
        Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
    ),
>;

/// One dead letter until the broker acknowledges it.
struct Letter {
    source: SourceOffset,
    key: Option<Vec<u8>>,
    /// `None` for a tombstone: the letter is sent with a null payload too.
    payload: Option<Vec<u8>>,
    /// The original headers, then sliq's.
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// How many of `headers` are the original ones (dropped when even an empty payload is too large).
    original_headers: usize,
    /// `None` while in flight, else when to produce it again.
    retry_at: Option<Instant>,
    delay: Duration,
    /// The payload limit applied once quarantined.
    truncated_to: Option<usize>,
    /// "Too large" refusals of a letter small enough to fit (its batch may have been too large).
    refusals_that_fit: u32,
}

impl Letter {
    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        self.payload.as_ref().map_or(0, Vec::len) + self.key.as_ref().map_or(0, Vec::len) + headers
    }
}

/// How a failed attempt is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Sending it again as it is would fail again: quarantine and truncate.
    TooLarge,
    /// The producer is unusable: make a new one, then retry.
    Fatal,
    /// Retry with backoff (broker down, topic missing, timeouts, queue full, not authorized, …).
    Transient,
}

fn classify(e: &KafkaError) -> Failure {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessageSize,
        ) => Failure::TooLarge,
        Some(RDKafkaErrorCode::Fatal) => Failure::Fatal,
        _ => Failure::Transient,
    }
}

/// What a person can do about a failure.
fn hint(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => "the producer may not write to the topic: grant it Write (and IdempotentWrite)",
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition,
        ) => "the topic does not exist: create it",
        Some(RDKafkaErrorCode::MessageTimedOut) => {
            "the broker did not acknowledge in time: check it is reachable"
        }
        Some(RDKafkaErrorCode::QueueFull) => "the producer's queue is full",
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessageSize,
        ) => "the topic refuses it as it is: refused again, it is quarantined and sent truncated",
        _ => "check the brokers and the topic",
    }
}

/// Since when deliveries fail, and when that was last said.
#[derive(Debug, Default)]
struct Outage {
    since: Option<Instant>,
    logged_at: Option<Instant>,
    failures: u64,
}

/// The dead-letter producer and every letter not yet acknowledged.
pub(crate) struct DeadLetters {
    config: ClientConfig,
    watch: Arc<AccessWatch>,
    producer: Producer,
    topic: String,
    quarantine_dir: PathBuf,
    message_max_bytes: usize,
    rt: Handle,
    next_id: u64,
    letters: BTreeMap<u64, Letter>,
    in_flight: FuturesUnordered<Delivery>,
    /// Per source partition: offset → letters not acknowledged.
    pending: HashMap<(String, i32), BTreeMap<i64, u32>>,
    outage: Outage,
    /// Per dead-letter partition, the offset after the last letter acknowledged (or the end at
    /// start): a checkpoint keeps it, so a resumed run can read back what was sent after it.
    ends: BTreeMap<i32, i64>,
    telemetry: std::sync::Arc<Telemetry>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .field("pending", &self.letters.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// `config` is the client configuration (`kafka_client::client_config`); the producer
    /// settings of dead letters are added here. Its clients report librdkafka's errors to `watch`.
    /// Quarantined payloads go under `<state_dir>/quarantine`.
    pub(crate) fn new(
        mut config: ClientConfig,
        watch: &Arc<AccessWatch>,
        topic: String,
        state_dir: &Path,
        rt: Handle,
        telemetry: std::sync::Arc<Telemetry>,
    ) -> Result<Self, PipelineError> {
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        if config.get("message.timeout.ms").is_none() {
            config.set("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS);
        }
        let message_max_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let producer = crate::kafka_client::create(&config, WatchedContext::new(watch))?;
        Ok(DeadLetters {
            config,
            watch: Arc::clone(watch),
            producer,
            topic,
            quarantine_dir: state_dir.join("quarantine"),
            message_max_bytes,
            rt,
            next_id: 0,
            letters: BTreeMap::new(),
            in_flight: FuturesUnordered::new(),
            pending: HashMap::new(),
            outage: Outage::default(),
            ends: BTreeMap::new(),
            telemetry,
        })
    }

    /// The topic's end per partition as of the last acknowledgement, for the checkpoint.
    pub(crate) fn ends(&self) -> Vec<(i32, i64)> {
        self.ends.iter().map(|(p, o)| (*p, *o)).collect()
    }

    /// Starts from the ends a resumed checkpoint recorded, or from the topic's current ends.
    pub(crate) fn start_from(&mut self, resumed: Option<&[(i32, i64)]>) {
        match resumed {
            Some(ends) => self.ends = ends.iter().copied().collect(),
            None => match crate::dead_letter_readback::topic_ends(
                &self.config,
                &self.watch,
                &self.topic,
            ) {
                Ok(ends) => self.ends = ends,
                Err(e) => warn!(
                    topic = %self.topic,
                    "cannot read the dead-letter topic's end offsets ({e}); a crash before the \
                     first checkpoint may send some dead letters twice"
                ),
            },
        }
    }

    /// The source records whose letters reached the topic after the recorded ends: sent after the
    /// resumed checkpoint, before the crash, so not to be sent again.
    pub(crate) fn sent_after_checkpoint(&self) -> std::collections::HashSet<SourceOffset> {
        if self.ends.is_empty() {
            return std::collections::HashSet::new();
        }
        self.sent_since(&self.ends)
    }

    /// The source records whose letters lie in the topic from `from` (partition → offset) on.
    pub(crate) fn sent_since(
        &self,
        from: &BTreeMap<i32, i64>,
    ) -> std::collections::HashSet<SourceOffset> {
        let mut sent = std::collections::HashSet::new();
        if let Err(e) = crate::dead_letter_readback::read_back(
            &self.config,
            &self.watch,
            &self.topic,
            from,
            &mut sent,
        ) {
            warn!(
                topic = %self.topic,
                found = sent.len(),
                "cannot read back every dead letter already sent ({e}); the records read again \
                 whose letters were not found are sent again, so some may be in the topic twice"
            );
        }
        sent
    }

    /// Queues one refused record (a copy of its key, payload and headers); it is acknowledged by
    /// [`DeadLetters::settle_until`]. Never blocks and never fails: a failed attempt is retried
    /// there.
    pub(crate) fn send(
        &mut self,
        msg: &BorrowedMessage<'_>,
        reject: &Reject,
    ) -> Result<(), PipelineError> {
        let mut headers: Vec<(String, Option<Vec<u8>>)> = msg
            .headers()
            .map(|original| {
                original
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let original_headers = headers.len();
        for (k, v) in [
            (REASON, reject.code().to_owned()),
            (ERROR, reject.to_string()),
            (SOURCE_TOPIC, msg.topic().to_owned()),
            (SOURCE_PARTITION, msg.partition().to_string()),
            (SOURCE_OFFSET, msg.offset().to_string()),
        ] {
            headers.push((k.to_owned(), Some(v.into_bytes())));
        }
        let source = SourceOffset {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
        };
        *self
            .pending
            .entry((source.topic.clone(), source.partition))
            .or_default()
            .entry(source.offset)
            .or_default() += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.letters.insert(
            id,
            Letter {
                source,
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().map(<[u8]>::to_vec),
                headers,
                original_headers,
                retry_at: None,
                delay: FIRST_RETRY_DELAY,
                truncated_to: None,
                refusals_that_fit: 0,
            },
        );
        self.attempt(id, Instant::now());
        Ok(())
    }

    /// The lowest offset of `topic`/`partition` whose dead letter is not acknowledged yet: a
    /// commit of that partition must not pass it.
    pub(crate) fn pending_floor(&self, topic: &str, partition: i32) -> Option<i64> {
        self.pending
            .get(&(topic.to_owned(), partition))
            .and_then(|offsets| offsets.keys().next().copied())
    }

    /// How many dead letters are not acknowledged yet.
    pub(crate) fn pending(&self) -> usize {
        self.letters.len()
    }

    /// Waits until every dead letter queued so far is acknowledged, retrying failed deliveries, or
    /// until `deadline`: then returns the source offsets whose letters are still not acknowledged
    /// (they stay queued and are retried by later calls).
    pub(crate) fn settle_until(&mut self, deadline: Instant) -> Result<Settled, PipelineError> {
        loop {
            let now = Instant::now();
            let due: Vec<u64> = self
                .letters
                .iter()
                .filter(|(_, l)| l.retry_at.is_some_and(|at| at <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                self.attempt(id, now);
            }
            if self.letters.is_empty() {
                return Ok(Settled::All);
            }
            if now >= deadline {
                let mut left: Vec<SourceOffset> =
                    self.letters.values().map(|l| l.source.clone()).collect();
                left.sort();
                left.dedup();
                return Ok(Settled::Undelivered(left));
            }
            // Wake for the next retry, the deadline, or at least every second (for the log).
            let wake = self
                .letters
                .values()
                .filter_map(|l| l.retry_at)
                .chain([deadline])
                .chain([now + Duration::from_secs(1)])
                .min()
                .unwrap_or(now);
            let results = self.wait(wake);
            for (id, result) in results {
                let outcome = match result {
                    Ok(Ok(delivery)) => {
                        let end = self.ends.entry(delivery.partition).or_default();
                        *end = (*end).max(delivery.offset + 1);
                        Ok(())
                    }
                    Ok(Err((e, _))) => Err(e),
                    // The producer went away with the message (a replaced producer): send again.
                    Err(_) => Err(KafkaError::Canceled),
                };
                match outcome {
                    Ok(()) => self.delivered(id),
                    Err(e) => self.failed(id, &e)?,
                }
            }
        }
    }

    /// Waits until a delivery completes or `wake`; returns every completed delivery.
    fn wait(
        &mut self,
        wake: Instant,
    ) -> Vec<(
        u64,
        Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
    )> {
        let rt = self.rt.clone();
        let in_flight = &mut self.in_flight;
        let wake = tokio::time::Instant::from_std(wake);
        rt.block_on(async move {
            let mut out = Vec::new();
            if in_flight.is_empty() {
                tokio::time::sleep_until(wake).await;
                return out;
            }
            if let Ok(Some(first)) = tokio::time::timeout_at(wake, in_flight.next()).await {
                out.push(first);
                while let Some(Some(more)) = in_flight.next().now_or_never() {
                    out.push(more);
                }
            }
            out
        })
    }

    /// Produces letter `id` (again); a refusal by the producer is handled as a failed delivery.
    fn attempt(&mut self, id: u64, now: Instant) {
        let Some(letter) = self.letters.get_mut(&id) else {
            return;
        };
        letter.retry_at = None;
        let headers = letter
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key: key.as_str(),
                    value: value.as_deref(),
                })
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(payload) = &letter.payload {
            record = record.payload(payload);
        }
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        let sent = self.producer.send_result(record).map_err(|(e, _)| e);
        match sent {
            Ok(delivery) => self.in_flight.push(delivery.map(move |r| (id, r)).boxed()),
            Err(e) => {
                if let Err(fatal) = self.failed(id, &e) {
                    // Making a new producer failed: leave it for the next settle to try again.
                    error!("{fatal}");
                    if let Some(letter) = self.letters.get_mut(&id) {
                        letter.retry_at = Some(now + MAX_RETRY_DELAY);
                    }
                }
            }
        }
    }

    fn delivered(&mut self, id: u64) {
        let Some(letter) = self.letters.remove(&id) else {
            return;
        };
        let key = (letter.source.topic, letter.source.partition);
        if let Some(offsets) = self.pending.get_mut(&key) {
            if let Some(n) = offsets.get_mut(&letter.source.offset) {
                *n -= 1;
                if *n == 0 {
                    offsets.remove(&letter.source.offset);
                }
            }
            if offsets.is_empty() {
                self.pending.remove(&key);
            }
        }
        if let Some(since) = self.outage.since
            && self.letters.values().all(|l| l.retry_at.is_none())
        {
            info!(
                topic = %self.topic,
                "dead letters are delivered again after failing for {}; {} failed attempts were retried; {} dead letters in flight",
                human(since.elapsed()),
                self.outage.failures,
                self.letters.len(),
            );
            self.outage = Outage::default();
            self.telemetry.health.dead_letters(None);
        }
    }

    /// A failed attempt: schedule the retry (after quarantining a letter too large to send).
    fn failed(&mut self, id: u64, e: &KafkaError) -> Result<(), PipelineError> {
        let now = Instant::now();
        let failure = classify(e);
        if failure == Failure::Fatal && self.producer.client().fatal_error().is_some() {
            warn!(topic = %self.topic, "the dead-letter producer failed for good ({e}); making a new one");
            // Dropping the old producer purges its queue: the letters still in it come back as
            // failed deliveries and are retried on the new one.
            self.producer =
                crate::kafka_client::create(&self.config, WatchedContext::new(&self.watch))?;
        }
        let mut what = e.to_string();
        let mut retry_now = false;
        // A letter that fits is given one more chance whole: the refusal may have been its batch's.
        let fits = failure == Failure::TooLarge
            && self.letters.get_mut(&id).is_some_and(|l| {
                let fits = l.truncated_to.is_none()
                    && l.size() + RECORD_OVERHEAD
                        <= self.message_max_bytes.min(MAX_TRUNCATED_PAYLOAD)
                    && l.refusals_that_fit == 0;
                l.refusals_that_fit += u32::from(fits);
                fits
            });
        if failure == Failure::TooLarge && !fits {
            match self.quarantine(id) {
                Ok(true) => retry_now = true,
                Ok(false) => what = format!("{what}, even with no payload"),
                Err(detail) => what = format!("{what}, and {detail}"),
            }
        }
        let Some(letter) = self.letters.get_mut(&id) else {
            return Ok(());
        };
        if retry_now {
            letter.retry_at = Some(now);
            return Ok(());
        }
        letter.retry_at = Some(now + letter.delay);
        letter.delay = (letter.delay * 2).min(MAX_RETRY_DELAY);
        let since = *self.outage.since.get_or_insert(now);
        self.outage.failures += 1;
        self.telemetry.metrics.dead_letter_failed();
        self.telemetry.health.dead_letters(Some(since));
        if self
            .outage
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            self.outage.logged_at = Some(now);
            let hint = match e.rdkafka_error_code() {
                Some(
                    RDKafkaErrorCode::MessageTimedOut
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownTopicOrPartition,
                ) => self.diagnose(),
                _ => hint(e).to_owned(),
            };
            warn!(
                topic = %self.topic,
                "dead-letter delivery {}: {what}; {hint}; {} dead letters wait, retried with backoff; offsets are not committed past them",
                failing(now.duration_since(since)),
                self.letters.len(),
            );
        }
        Ok(())
    }

    /// Why deliveries time out, asked of the broker (at most 2 s, once per logged failure): the
    /// topic missing and the broker unreachable both show as a timeout to the producer.
    fn diagnose(&self) -> String {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(2));
        match metadata {
            Err(e) => format!("the brokers do not answer ({e}): check they are up and reachable"),
            Ok(md) => match md.topics().first().and_then(|t| t.error()) {
                None => "the broker did not acknowledge in time".to_owned(),
                Some(err) => match RDKafkaErrorCode::from(err) {
                    RDKafkaErrorCode::UnknownTopicOrPartition => {
                        "the topic does not exist: create it".to_owned()
                    }
                    code => format!(
                        "the broker says of the topic: {code}; {}",
                        hint(&KafkaError::MessageProduction(code))
                    ),
                },
            },
        }
    }

    /// Letter `id` is too large to ever be accepted: write it whole to the quarantine folder (the
    /// first time), then cut its payload to what the topic takes and say so in its headers. An
    /// already truncated letter is cut to half; below 2 KiB its payload goes, then its original
    /// headers. Returns whether the letter changed (if not, sending it again is pointless).
    fn quarantine(&mut self, id: u64) -> Result<bool, String> {
        let Some(letter) = self.letters.get_mut(&id) else {
            return Ok(false);
        };
        let limit = match letter.truncated_to {
            None => {
                let s = &letter.source;
                let name = format!("{}.p{}.o{}", s.topic, s.partition, s.offset);
                let bin = self.quarantine_dir.join(format!("{name}.bin"));
                let meta = self.quarantine_dir.join(format!("{name}.json"));
                let payload = letter.payload.as_deref().unwrap_or_default();
                sliq_archive::write_atomically(&bin, payload)
                    .and_then(|()| {
                        sliq_archive::write_atomically(
                            &meta,
                            quarantine_meta(letter, &self.topic).as_bytes(),
                        )
                    })
                    .map_err(|e| format!("the quarantine file could not be written: {e}"))?;
                let original = letter.payload.as_ref().map_or(0, Vec::len);
                warn!(
                    topic = %self.topic,
                    "the dead letter of {name} ({original} bytes) is too large for the topic: kept whole in {}, sent truncated",
                    bin.display()
                );
                letter.headers.push((
                    TRUNCATED.to_owned(),
                    Some(original.to_string().into_bytes()),
                ));
                letter.headers.push((
                    QUARANTINE.to_owned(),
                    Some(bin.display().to_string().into_bytes()),
                ));
                let others = letter.size() - original;
                let safe = self
                    .message_max_bytes
                    .saturating_sub(others + RECORD_OVERHEAD)
                    .min(MAX_TRUNCATED_PAYLOAD);
                // Within the producer's limit yet refused: the topic takes less, so halve at once.
                if original <= safe { original / 2 } else { safe }
            }
            Some(0) if letter.original_headers == 0 => return Ok(false),
            Some(0) => {
                letter.headers.drain(..letter.original_headers);
                letter.original_headers = 0;
                0
            }
            Some(n) if n < 2048 => 0,
            Some(n) => n / 2,
        };
        letter.truncated_to = Some(limit);
        if let Some(payload) = &mut letter.payload {
            payload.truncate(limit);
        }
        Ok(true)
    }
}

/// The `.json` next to a quarantined payload: where it came from, its key and headers, its size.
fn quarantine_meta(letter: &Letter, dead_letter_topic: &str) -> String {
    let bytes = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(s) => serde_json::json!({ "utf8": s }),
        Err(_) => serde_json::json!({ "hex": hex(b) }),
    };
    let headers: Vec<serde_json::Value> = letter
        .headers
        .iter()
        .map(|(k, v)| serde_json::json!({ "key": k, "value": v.as_deref().map(bytes) }))
        .collect();
    serde_json::json!({
        "format": "sliq-quarantine/1",
        "dead_letter_topic": dead_letter_topic,
        "source": {
            "topic": letter.source.topic,
            "partition": letter.source.partition,
            "offset": letter.source.offset,
        },
        "payload_bytes": letter.payload.as_ref().map(Vec::len),
        "payload_null": letter.payload.is_none(),
        "key": letter.key.as_deref().map(bytes),
        "headers": headers,
    })
    .to_string()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_records_are_quarantined_and_the_rest_retried() {
        let code = KafkaError::MessageProduction;
        assert_eq!(
            classify(&code(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::TooLarge
        );
        assert_eq!(
            classify(&code(RDKafkaErrorCode::MessageBatchTooLarge)),
            Failure::TooLarge
        );
        assert_eq!(
            classify(&code(RDKafkaErrorCode::InvalidRecord)),
            Failure::TooLarge
        );
        for transient in [
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::NotEnoughReplicas,
        ] {
            assert_eq!(
                classify(&code(transient)),
                Failure::Transient,
                "{transient:?}"
            );
        }
        assert_eq!(classify(&KafkaError::Canceled), Failure::Transient);
        assert_eq!(classify(&code(RDKafkaErrorCode::Fatal)), Failure::Fatal);
    }

    #[test]
    fn quarantine_metadata_keeps_key_and_headers_readable() {
        let letter = Letter {
            source: SourceOffset {
                topic: "logs".into(),
                partition: 3,
                offset: 17,
            },
            key: Some(vec![0xff, 0x00]),
            payload: None,
            headers: vec![
                ("trace".into(), Some(b"abc".to_vec())),
                ("empty".into(), None),
            ],
            original_headers: 2,
            retry_at: None,
            delay: FIRST_RETRY_DELAY,
            truncated_to: None,
            refusals_that_fit: 0,
        };
        let meta: serde_json::Value =
            serde_json::from_str(&quarantine_meta(&letter, "logs-dlq")).expect("json");
        assert_eq!(meta["key"]["hex"], "ff00");
        assert_eq!(meta["payload_null"], true);
        assert_eq!(meta["headers"][0]["value"]["utf8"], "abc");
        assert!(meta["headers"][1]["value"].is_null());
        assert_eq!(meta["source"]["offset"], 17);
    }
}
