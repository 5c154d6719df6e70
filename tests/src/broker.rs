//! A Nisshi broker process for one test, killed on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::mtls_proxy::MtlsProxy;

/// A running broker on 127.0.0.1.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    /// The port Nisshi listens on.
    port: u16,
    /// The port Nisshi tells clients to use: its own, or the mTLS proxy's in front of it.
    advertised: u16,
    binary: String,
    /// The working directory of a broker on sqlite storage (`nisshi.db` lives there).
    sqlite_dir: Option<PathBuf>,
    /// Set on a broker started with [`Broker::start_secured`] or [`Broker::start_mtls`].
    secured: Option<Secured>,
    /// The proxy that requires client certificates, for [`Broker::start_mtls`].
    proxy: Option<MtlsProxy>,
}

/// How a secured broker listens, and the properties its own helper clients connect with.
#[derive(Debug, Clone)]
struct Secured {
    /// Nisshi's own TLS listener (certificate, key); `None` behind the mTLS proxy, where Nisshi
    /// listens in plaintext on loopback.
    listener_tls: Option<(PathBuf, PathBuf)>,
    /// Nisshi requires a SCRAM login.
    authentication: bool,
    /// librdkafka properties of a client that gets in (TLS, client certificate, SASL).
    client: Vec<(String, String)>,
}

/// A SCRAM user of a secured broker.
#[derive(Debug, Clone, Copy)]
pub struct ScramUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// `scram512` or `scram256`, as `nisshi user create --mechanism` takes it.
    pub mechanism: &'a str,
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

/// The broker binary (scripts/broker.sh builds it once and caches it).
fn binary() -> anyhow::Result<String> {
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
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Sends `signal` (e.g. `STOP`, `CONT`, `KILL`) to process `pid`.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

impl Broker {
    /// Builds the broker once (scripts/broker.sh caches it), starts it on memory storage, waits
    /// until it answers.
    pub fn start() -> anyhow::Result<Broker> {
        Broker::launch(binary()?, crate::free_port()?, None)
    }

    /// Starts a broker on sqlite storage in `dir` (`dir/nisshi.db`): topics, records and committed
    /// offsets survive [`Broker::kill`] and [`Broker::restart`].
    pub fn start_sqlite(dir: &Path) -> anyhow::Result<Broker> {
        std::fs::create_dir_all(dir)?;
        Broker::launch(binary()?, crate::free_port()?, Some(dir.to_path_buf()))
    }

    /// A broker whose listener speaks only TLS (the server certificate of `ca`) and requires a
    /// SCRAM login, on sqlite storage in `dir`, holding `topics` (name, partitions) and `users`;
    /// its helper clients (reading topics back, offsets) log in as the first user. Nisshi keeps
    /// users only in persistent storage and creates them only for a logged-in client, so the
    /// broker starts plaintext first, gets its topics and users, and restarts on the same db
    /// secured (rig-notes.md, "Nisshi with TLS and SCRAM").
    pub async fn start_secured(
        dir: &Path,
        ca: &crate::tls::TestCa,
        users: &[ScramUser<'_>],
        topics: &[(&str, i32)],
    ) -> anyhow::Result<Broker> {
        let first = users.first().context("a secured broker needs a user")?;
        let mut broker = Broker::provisioned(dir, users, topics).await?;
        let mut client = vec![
            ("security.protocol", "SASL_SSL".to_owned()),
            ("ssl.ca.location", ca.ca_cert.display().to_string()),
        ];
        client.extend(login(first));
        broker.secured = Some(Secured {
            listener_tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
            authentication: true,
            client: owned(client),
        });
        broker.restart()?;
        Ok(broker)
    }

    /// A broker that requires a client certificate signed by `ca` (mutual TLS) and, when `users`
    /// are given, a SCRAM login as well, on sqlite storage in `dir`, holding `topics`. Nisshi
    /// cannot ask for client certificates, so it listens in plaintext on loopback behind an
    /// [`MtlsProxy`] that does, and advertises the proxy's port: every client connection, the
    /// helper clients' too (they present `ca`'s client certificate), goes through the proxy.
    pub async fn start_mtls(
        dir: &Path,
        ca: &crate::tls::TestCa,
        users: &[ScramUser<'_>],
        topics: &[(&str, i32)],
    ) -> anyhow::Result<Broker> {
        let mut broker = Broker::provisioned(dir, users, topics).await?;
        let proxy = MtlsProxy::start(ca, broker.port)?;
        broker.advertised = proxy.port();
        broker.proxy = Some(proxy);
        let protocol = if users.is_empty() { "SSL" } else { "SASL_SSL" };
        let mut client = vec![
            ("security.protocol", protocol.to_owned()),
            ("ssl.ca.location", ca.ca_cert.display().to_string()),
            (
                "ssl.certificate.location",
                ca.client_cert.display().to_string(),
            ),
            ("ssl.key.location", ca.client_key.display().to_string()),
        ];
        client.extend(users.first().map(login).into_iter().flatten());
        broker.secured = Some(Secured {
            listener_tls: None,
            authentication: !users.is_empty(),
            client: owned(client),
        });
        broker.restart()?;
        Ok(broker)
    }

    /// A plaintext broker on sqlite storage in `dir` with `topics` and `users` created, then
    /// stopped: ready to restart secured on the same db.
    async fn provisioned(
        dir: &Path,
        users: &[ScramUser<'_>],
        topics: &[(&str, i32)],
    ) -> anyhow::Result<Broker> {
        let mut broker = Broker::start_sqlite(dir)?;
        for (name, partitions) in topics {
            broker.create_topic(name, *partitions).await?;
        }
        let url = format!("tcp://{}", broker.bootstrap());
        for user in users {
            let out = Command::new(&broker.binary)
                .args([
                    "user",
                    "create",
                    "--broker",
                    &url,
                    "--mechanism",
                    user.mechanism,
                ])
                .args([user.name, user.password])
                .output()
                .context("running nisshi user create")?;
            if !out.status.success() {
                bail!(
                    "nisshi user create {}: {}",
                    user.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        broker.kill()?;
        Ok(broker)
    }

    /// The proxy in front of a broker made by [`Broker::start_mtls`].
    pub fn proxy(&self) -> Option<&MtlsProxy> {
        self.proxy.as_ref()
    }

    fn launch(binary: String, port: u16, sqlite_dir: Option<PathBuf>) -> anyhow::Result<Broker> {
        let child = Broker::spawn(&binary, (port, port), sqlite_dir.as_deref(), None)?;
        let mut broker = Broker {
            child,
            port,
            advertised: port,
            binary,
            sqlite_dir,
            secured: None,
            proxy: None,
        };
        broker.wait_ready(Duration::from_secs(30))?;
        Ok(broker)
    }

    /// Starts Nisshi listening on `ports.0` and advertising `ports.1`.
    fn spawn(
        binary: &str,
        ports: (u16, u16),
        sqlite_dir: Option<&Path>,
        secured: Option<&Secured>,
    ) -> anyhow::Result<Child> {
        let mut cmd = Command::new(binary);
        cmd.args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{}", ports.0),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{}", ports.1),
        ]);
        match sqlite_dir {
            // Relative to the working directory (an absolute path needs four slashes).
            Some(dir) => cmd
                .args(["--storage-engine", "sqlite://nisshi.db"])
                .current_dir(dir),
            None => cmd.args(["--storage-engine", "memory://nisshi/"]),
        };
        if let Some((cert, key)) = secured.and_then(|s| s.listener_tls.as_ref()) {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if secured.is_some_and(|s| s.authentication) {
            cmd.arg("--authentication");
        }
        cmd.args(["--group-initial-rebalance-delay", "0s", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}"))
    }

    /// Waits until the broker answers a metadata request.
    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let admin = self.admin()?;
        let deadline = Instant::now() + timeout;
        loop {
            if admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(1))
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the broker on port {} exited: {status}", self.port);
            }
            if Instant::now() > deadline {
                bail!(
                    "the broker on port {} did not answer within {timeout:?}",
                    self.port
                );
            }
        }
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) -> anyhow::Result<()> {
        signal(self.pid(), "STOP")
    }

    /// Thaws a frozen broker (SIGCONT).
    pub fn thaw(&self) -> anyhow::Result<()> {
        signal(self.pid(), "CONT")
    }

    /// SIGKILLs the broker and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts the broker again on the same port and the same sqlite db (after [`Broker::kill`]),
    /// and waits until it answers. Retries while the port is not yet free.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let Some(dir) = self.sqlite_dir.clone() else {
            bail!("only a broker on sqlite storage keeps its data through a restart");
        };
        if self.child.try_wait()?.is_none() {
            self.kill()?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.child = Broker::spawn(
                &self.binary,
                (self.port, self.advertised),
                Some(&dir),
                self.secured.as_ref(),
            )?;
            match self.wait_ready(Duration::from_secs(15)) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("broker restart on port {}: {e}; again", self.port);
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where clients connect: the advertised port (the proxy's, for an mTLS broker).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// A client configuration for this broker (logged in, on a secured one).
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        for (key, value) in self.secured.iter().flat_map(|s| &s.client) {
            config.set(key, value);
        }
        config
    }

    fn admin(&self) -> anyhow::Result<AdminClient<DefaultClientContext>> {
        Ok(self.client().create()?)
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

    fn reader(&self, topic: &str) -> anyhow::Result<(BaseConsumer, Vec<i32>)> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", format!("reader-{topic}-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut tpl = TopicPartitionList::new();
        let mut partitions = Vec::new();
        for p in md.topics().first().context("topic metadata")?.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            partitions.push(p.id());
        }
        consumer.assign(&tpl)?;
        Ok((consumer, partitions))
    }

    /// Reads a topic from the beginning until `expected` records arrived (or the timeout).
    pub fn consume_all(
        &self,
        topic: &str,
        expected: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ConsumedRecord>> {
        let (consumer, _) = self.reader(topic)?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < expected && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                out.push(consumed(&m?));
            }
        }
        Ok(out)
    }

    /// Reads every partition of a topic from the beginning up to its high-water mark at the call:
    /// every record the topic holds, duplicates included. Fails at the timeout.
    pub fn consume_to_end(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ConsumedRecord>> {
        let ends = self.end_offsets(topic)?;
        let (consumer, _) = self.reader(topic)?;
        let deadline = Instant::now() + timeout;
        let mut next: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
        let mut out = Vec::new();
        while ends.iter().any(|(p, end)| next[p] < *end) {
            if Instant::now() > deadline {
                bail!("read {next:?} of {topic} up to {ends:?} in {timeout:?}");
            }
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let r = consumed(&m?);
                next.insert(r.partition, r.offset + 1);
                if r.offset < ends[&r.partition] {
                    out.push(r);
                }
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
        let consumer: BaseConsumer = self.client().set("group.id", group).create()?;
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
        let consumer: BaseConsumer = self.client().create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut out = BTreeMap::new();
        for p in md.topics().first().context("topic metadata")?.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?;
            out.insert(p.id(), high);
        }
        Ok(out)
    }
}

/// The SCRAM-SHA-512 login of `user`, as librdkafka properties.
fn login(user: &ScramUser<'_>) -> [(&'static str, String); 3] {
    [
        ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
        ("sasl.username", user.name.to_owned()),
        ("sasl.password", user.password.to_owned()),
    ]
}

fn owned(properties: Vec<(&str, String)>) -> Vec<(String, String)> {
    properties
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn consumed(m: &rdkafka::message::BorrowedMessage<'_>) -> ConsumedRecord {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumedRecord {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().unwrap_or_default().to_vec(),
        payload_null: m.payload().is_none(),
        headers,
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A frozen process dies of SIGKILL too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
