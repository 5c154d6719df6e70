//! A Nisshi broker process for one test, killed on drop.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// A running broker on 127.0.0.1.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The record has no payload at all (a tombstone), not an empty one.
    pub payload_null: bool,
    pub headers: BTreeMap<String, String>,
}

impl Broker {
    /// Builds the broker once (scripts/broker.sh caches it), starts it, waits until it answers.
    pub fn start() -> anyhow::Result<Broker> {
        let script = crate::repo_root().join("scripts/broker.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("path")
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!("{} failed; run it by hand to see why", script.display());
        }
        let binary = String::from_utf8(out.stdout)?.trim().to_owned();
        let port = crate::free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args([
                "--storage-engine",
                "memory://nisshi/",
                "--group-initial-rebalance-delay",
                "0s",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let broker = Broker { child, port };
        let admin = broker.admin()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(1))
                .is_ok()
            {
                return Ok(broker);
            }
            if Instant::now() > deadline {
                bail!("the broker on port {port} did not answer within 30 s");
            }
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn admin(&self) -> anyhow::Result<AdminClient<DefaultClientContext>> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?)
    }

    /// Creates a topic and waits until its partitions show in the metadata.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        let admin = self.admin()?;
        let results = admin
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await?;
        for r in results {
            r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let md = admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(2))?;
            if md
                .topics()
                .first()
                .is_some_and(|t| t.partitions().len() == partitions as usize)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("topic {name} did not show {partitions} partitions");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads a topic from the beginning until `expected` records arrived (or the timeout).
    pub fn consume_all(
        &self,
        topic: &str,
        expected: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ConsumedRecord>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", format!("reader-{topic}-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut tpl = TopicPartitionList::new();
        for p in md.topics().first().context("topic metadata")?.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < expected && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m?;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(ConsumedRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    payload_null: m.payload().is_none(),
                    headers,
                });
            }
        }
        Ok(out)
    }

    /// The group's committed offset per partition of `topic`.
    pub fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .create()?;
        let ends = self.end_offsets(topic)?;
        let mut tpl = TopicPartitionList::new();
        for p in ends.keys() {
            tpl.add_partition(topic, *p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
            .collect())
    }

    /// The high-water mark per partition.
    pub fn end_offsets(&self, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut out = BTreeMap::new();
        for p in md.topics().first().context("topic metadata")?.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?;
            out.insert(p.id(), high);
        }
        Ok(out)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
