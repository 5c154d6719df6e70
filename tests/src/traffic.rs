//! Live traffic: generated records (see [`crate::run::gen_config`], ~1% malformed) produced at a
//! steady rate in the background while a test kills things, and afterwards exactly what the topic
//! holds, for the recount.
//!
//! The truth is the topic, read back to its end once traffic stopped: a send whose acknowledgement
//! was lost in a broker fault may or may not have landed, and a resend may land twice, so the
//! recount is made from the records the topic holds at their (partition, offset), each matched to
//! the generated record it came from (by key, payload compared byte for byte). Every acknowledged
//! delivery must be among them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use sliq_gen::{GeneratedRecord, Generator};

use crate::broker::Broker;

/// One record as the topic holds it.
#[derive(Debug, Clone)]
pub struct Landed {
    pub partition: i32,
    pub offset: i64,
    pub record: GeneratedRecord,
}

/// Produces one hand-made valid record (JSON `record`, keyed by its `id`) to `partition` of
/// `logs` and returns where it landed.
pub async fn send_to_partition(
    producer: &FutureProducer,
    partition: i32,
    record: &serde_json::Value,
) -> Landed {
    let key = record["id"]
        .as_str()
        .expect("the record has an id")
        .to_owned();
    let payload = serde_json::to_vec(record).expect("json");
    let delivered = producer
        .send(
            FutureRecord::to("logs")
                .partition(partition)
                .key(&key)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("hand-made record produced");
    Landed {
        partition: delivered.partition,
        offset: delivered.offset,
        record: GeneratedRecord {
            key,
            payload,
            kind: sliq_gen::RecordKind::Valid,
        },
    }
}

/// What a [`Traffic`] run put into its topic.
#[derive(Debug, Clone)]
pub struct TrafficReport {
    /// Records generated and handed to the producer (resends not counted).
    pub generated: u64,
    /// Acknowledged deliveries.
    pub acknowledged: u64,
    /// Deliveries that failed and were sent again.
    pub resent: u64,
    /// Every record of the topic, in (partition, offset) order.
    pub landed: Vec<Landed>,
}

impl TrafficReport {
    /// The landed records, for [`crate::recount::expected`].
    pub fn records(&self) -> Vec<GeneratedRecord> {
        self.landed.iter().map(|l| l.record.clone()).collect()
    }

    /// Positions the topic holds more than one copy of a generated record at.
    pub fn duplicates(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.landed
            .iter()
            .filter(|l| !seen.insert(l.record.key.as_str()))
            .count()
    }
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    generated: AtomicU64,
    acknowledged: AtomicU64,
    resent: AtomicU64,
}

/// A background producer of generated records at a steady rate.
#[derive(Debug)]
pub struct Traffic {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<(i32, i64, usize)>>>,
    seed: u64,
    topic: String,
}

impl Traffic {
    /// Starts producing the records of `seed` to `topic` at `rate` records per second. The
    /// producer retries through broker outages (no idempotence: Nisshi may forget producer ids
    /// in a restart; a duplicate that results is part of the topic's truth).
    pub fn start(broker: &Broker, topic: &str, seed: u64, rate: f64) -> anyhow::Result<Traffic> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("client.id", "sliq-tests-traffic")
            .set("enable.idempotence", "false")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .set("request.timeout.ms", "10000")
            .set("reconnect.backoff.max.ms", "1000")
            .create()
            .context("creating the traffic producer")?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(produce(
            producer,
            topic.to_owned(),
            seed,
            rate,
            Arc::clone(&shared),
        ));
        Ok(Traffic {
            shared,
            task,
            seed,
            topic: topic.to_owned(),
        })
    }

    /// Acknowledged deliveries so far.
    pub fn acknowledged(&self) -> u64 {
        self.shared.acknowledged.load(Ordering::SeqCst)
    }

    /// Records generated so far.
    pub fn generated(&self) -> u64 {
        self.shared.generated.load(Ordering::SeqCst)
    }

    /// Stops producing, waits (at most 150 s) until every record sent is acknowledged, and reads
    /// the topic back to its end.
    pub async fn stop(self, broker: &Broker) -> anyhow::Result<TrafficReport> {
        self.stop_beside(broker, &[]).await
    }

    /// [`Traffic::stop`] on a topic that also holds `others`, records the test produced itself:
    /// they are left out of the report.
    pub async fn stop_beside(
        self,
        broker: &Broker,
        others: &[Landed],
    ) -> anyhow::Result<TrafficReport> {
        let others: std::collections::HashSet<(i32, i64)> =
            others.iter().map(|l| (l.partition, l.offset)).collect();
        self.shared.stop.store(true, Ordering::SeqCst);
        let acked = tokio::time::timeout(Duration::from_secs(150), self.task)
            .await
            .context("the traffic producer did not settle within 150 s")???;
        let generated = self.shared.generated.load(Ordering::SeqCst);
        let records: Vec<GeneratedRecord> = Generator::new(crate::run::gen_config(self.seed))
            .take(generated as usize)
            .collect();
        let by_key: HashMap<&[u8], &GeneratedRecord> =
            records.iter().map(|r| (r.key.as_bytes(), r)).collect();
        let topic = self.topic.clone();
        let read = broker.consume_to_end(&topic, Duration::from_secs(120))?;
        let mut landed = Vec::with_capacity(read.len());
        for r in read {
            if others.contains(&(r.partition, r.offset)) {
                continue;
            }
            let key = r.key.as_deref().context("a record without key")?;
            let Some(g) = by_key.get(key) else {
                bail!(
                    "{topic} p{} o{}: a key not generated",
                    r.partition,
                    r.offset
                );
            };
            if g.payload != r.payload {
                bail!(
                    "{topic} p{} o{}: payload differs from the generated one",
                    r.partition,
                    r.offset
                );
            }
            landed.push(Landed {
                partition: r.partition,
                offset: r.offset,
                record: (*g).clone(),
            });
        }
        landed.sort_by_key(|l| (l.partition, l.offset));
        let at: BTreeMap<(i32, i64), &str> = landed
            .iter()
            .map(|l| ((l.partition, l.offset), l.record.key.as_str()))
            .collect();
        for (partition, offset, index) in &acked {
            match at.get(&(*partition, *offset)) {
                Some(k) if *k == records[*index].key => {}
                other => bail!(
                    "acknowledged {} at p{partition} o{offset}, the topic holds {other:?}",
                    records[*index].key
                ),
            }
        }
        Ok(TrafficReport {
            generated,
            acknowledged: acked.len() as u64,
            resent: self.shared.resent.load(Ordering::SeqCst),
            landed,
        })
    }
}

async fn produce(
    producer: FutureProducer,
    topic: String,
    seed: u64,
    rate: f64,
    shared: Arc<Shared>,
) -> anyhow::Result<Vec<(i32, i64, usize)>> {
    let mut generator = Generator::new(crate::run::gen_config(seed));
    let mut generated: Vec<GeneratedRecord> = Vec::new();
    let mut to_send: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut acked = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        if stopping && to_send.is_empty() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                if !stopping {
                    let due = (started.elapsed().as_secs_f64() * rate) as usize;
                    while generated.len() < due {
                        to_send.push_back(generated.len());
                        generated.push(generator.next_record());
                        shared.generated.fetch_add(1, Ordering::SeqCst);
                    }
                }
                while let Some(i) = to_send.pop_front() {
                    let r = &generated[i];
                    let record = FutureRecord::to(&topic)
                        .key(r.key.as_str())
                        .payload(r.payload.as_slice());
                    match producer.send_result(record) {
                        Ok(delivery) => in_flight.push(async move { (i, delivery.await) }),
                        Err(_) => {
                            // The local queue is full (broker away): again at the next tick.
                            to_send.push_front(i);
                            break;
                        }
                    }
                }
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let (i, result) = done;
                match result {
                    Ok(Ok(d)) => {
                        acked.push((d.partition, d.offset, i));
                        shared.acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        shared.resent.fetch_add(1, Ordering::SeqCst);
                        to_send.push_back(i);
                    }
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the traffic producer")?;
    Ok(acked)
}
