//! `sliq gen`: synthetic traffic into a real topic.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sliq_config::KafkaConnection;
use sliq_gen::{GenConfig, Generator};
use sliq_pipeline::produce_generated;

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Take the brokers, TLS, SASL and options from this spec's source.kafka (over --brokers),
    /// to produce into a secured cluster.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "ai-requests")]
    topic: String,
    /// How many records to produce.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Wall-clock rate limit, records per second (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Same seed, same records, byte for byte.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Event-time spacing: generated requests per second of event time.
    #[arg(long, default_value_t = 100.0)]
    events_per_second: f64,
    /// Event time of the first record (RFC 3339); default: so that the last one is about now.
    #[arg(long)]
    start: Option<String>,
    /// Share of malformed records (dead-letter material).
    #[arg(long)]
    malformed_ratio: Option<f64>,
    /// Share of valid records sent ~10 minutes of event time back (late for their window).
    #[arg(long)]
    late_ratio: Option<f64>,
    /// Inject a distribution drift from this event time on (RFC 3339), or this long after the start
    /// (e.g. `+5m`).
    #[arg(long)]
    drift_at: Option<String>,
    /// Pad answers to at least this many bytes (records of a chosen size, for benchmarks).
    #[arg(long, default_value_t = 0)]
    answer_bytes: usize,
}

pub fn run(args: GenArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let spec = args.config.as_deref().map(sliq_config::load).transpose()?;
    let connection = match &spec {
        Some(spec) => spec.source.kafka.connection(),
        None => KafkaConnection::plaintext(&args.brokers),
    };
    let config = gen_config(&args)?;
    let mut generator = Generator::new(config);
    let report = rt.block_on(produce_generated(
        connection,
        &args.topic,
        &mut generator,
        args.count,
        args.rate,
    ))?;
    println!(
        "produced {} records to {} ({} valid, {} malformed) in {:.1?}",
        report.valid + report.malformed,
        args.topic,
        report.valid,
        report.malformed,
        report.elapsed
    );
    Ok(())
}

fn gen_config(args: &GenArgs) -> anyhow::Result<GenConfig> {
    let defaults = GenConfig::default();
    let span_ms = (args.count as f64 / args.events_per_second * 1000.0) as i64;
    let start_ms = match &args.start {
        Some(s) => parse_time(s).with_context(|| format!("--start {s:?}"))?,
        None => chrono::Utc::now().timestamp_millis() - span_ms,
    };
    let drift_at_ms = match &args.drift_at {
        None => None,
        Some(s) => Some(match s.strip_prefix('+') {
            Some(offset) => {
                let d: Duration = humantime::parse_duration(offset)
                    .with_context(|| format!("--drift-at {s:?}: write +5m or an RFC 3339 time"))?;
                start_ms + i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            }
            None => parse_time(s).with_context(|| format!("--drift-at {s:?}"))?,
        }),
    };
    Ok(GenConfig {
        seed: args.seed,
        start_ms,
        events_per_second: args.events_per_second,
        malformed_ratio: args.malformed_ratio.unwrap_or(defaults.malformed_ratio),
        late_ratio: args.late_ratio.unwrap_or(defaults.late_ratio),
        drift_at_ms,
        answer_bytes: args.answer_bytes,
        ..defaults
    })
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(s)
        .context("expected an RFC 3339 time such as 2026-01-01T00:00:00Z")?
        .timestamp_millis())
}
