//! `sliq demo`: the whole product in one process, on embedded defaults.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use sliq_gen::{GenConfig, Generator};
use sliq_pipeline::{ProduceReport, Progress, RunLimits, produce_generated};

use crate::table;

/// The spec the demo runs, also readable in the repository.
const DEMO_SPEC: &str = include_str!("../../../pipelines/demo.yaml");
const TOPIC: &str = "ai-requests";
const DEAD_LETTER_TOPIC: &str = "ai-requests-dlq";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Records to generate and process (about 1% malformed).
    #[arg(long, default_value_t = 50_000)]
    events: u64,
    /// Where the metrics file and the archive go.
    #[arg(long, default_value = "./sliq-demo")]
    out: PathBuf,
    /// Generator seed: the same seed gives the same traffic.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Records produced per second of wall clock while the pipeline consumes.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
}

pub fn run(args: DemoArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output folder {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let metrics = out.join("metrics.otlp.jsonl");
    let archive = out.join("archive");
    // A fresh run: earlier demo output would mix into the counts.
    let _ = std::fs::remove_file(&metrics);
    let _ = std::fs::remove_dir_all(&archive);
    let _ = std::fs::remove_dir_all(out.join("state"));

    let cluster: MockCluster<'static, DefaultProducerContext> =
        MockCluster::new(1).context("starting the in-process Kafka cluster")?;
    cluster
        .create_topic(TOPIC, 4, 1)
        .context("creating the demo topic")?;
    cluster
        .create_topic(DEAD_LETTER_TOPIC, 1, 1)
        .context("creating the dead-letter topic")?;
    let brokers = cluster.bootstrap_servers();
    let out_text = out.display().to_string();
    let spec = sliq_config::parse(
        DEMO_SPEC,
        "pipelines/demo.yaml (embedded)",
        |name| match name {
            "KAFKA_BROKERS" => Some(brokers.clone()),
            "SLIQ_OUT" => Some(out_text.clone()),
            _ => None,
        },
    )?;

    let events_per_second = 50.0;
    let span_ms = (args.events as f64 / events_per_second * 1000.0) as i64;
    let start_ms = chrono::Utc::now().timestamp_millis() - span_ms;
    // Traffic drifts 60% of the way through, so the drift SLO has something to catch.
    let generator = Generator::new(GenConfig {
        seed: args.seed,
        start_ms,
        events_per_second,
        drift_at_ms: Some(start_ms + span_ms * 6 / 10),
        ..GenConfig::default()
    });
    let (events, rate) = (args.events, args.rate);
    let progress = Arc::new(Progress::default());
    let producing = rt.spawn(produce_behind(
        brokers,
        generator,
        events,
        rate,
        Arc::clone(&progress),
    ));
    let drawing = rt.spawn(draw_live(Arc::clone(&progress)));
    let handle = rt.handle().clone();
    let pipeline_progress = Arc::clone(&progress);
    let stop = AtomicBool::new(false);
    let summary = rt
        .block_on(rt.spawn_blocking(move || {
            let limits = RunLimits {
                max_records: Some(events),
                ..RunLimits::default()
            };
            sliq_pipeline::run(
                &spec,
                Some("demo"),
                sliq_pipeline::Role::All,
                limits,
                &stop,
                Some(pipeline_progress),
                handle,
            )
        }))
        .context("the pipeline thread panicked")??;
    drawing.abort();
    let produced = rt.block_on(producing).context("the generator panicked")??;

    let (slos, records, dead, late) = progress.snapshot();
    println!(
        "{}",
        table::render(&slos, &progress.drift(), records, dead, late)
    );
    println!(
        "produced {} records ({} valid, {} malformed); pipeline accepted {}, dead-lettered {}, late {}",
        produced.valid + produced.malformed,
        produced.valid,
        produced.malformed,
        summary.accepted,
        summary.dead_lettered,
        summary.late
    );
    println!("metrics (OTLP/JSON lines): {}", metrics.display());
    println!("archive (Parquet, Hive-partitioned): {}", archive.display());
    // The spec as it ran, so the commands below work on this run alone.
    let spec_file = out.join("demo.yaml");
    std::fs::write(&spec_file, DEMO_SPEC)
        .with_context(|| format!("writing {}", spec_file.display()))?;
    let sliq = std::env::args().next().unwrap_or_else(|| "sliq".to_owned());
    let (spec_file, archive_dir) = (spec_file.display(), archive.display());
    println!("try:");
    println!(
        "  duckdb -c \"SELECT service, model, count(*) AS requests, round(quantile_cont(latency_ms, 0.95)) AS p95_ms FROM read_parquet('{archive_dir}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY requests DESC\""
    );
    println!(
        "next, from this run (a report for people, rules and a dashboard for Prometheus and Grafana):"
    );
    println!(
        "  {sliq} report --config {spec_file} --archive {archive_dir} --out {}",
        out.join("report.html").display()
    );
    println!(
        "  {sliq} rules --config {spec_file} --out {}",
        out.join("rules.yml").display()
    );
    println!(
        "  {sliq} dashboard --config {spec_file} --out {}",
        out.join("dashboard.json").display()
    );
    Ok(())
}

/// Records produced per call of the generator's producer.
const CHUNK: u64 = 2_000;
/// How far production may run ahead of the pipeline. librdkafka's mock cluster keeps only about
/// 5 MB per partition and drops older records, so the producer must never lead by more than that:
/// 10,000 records of ~1.2 KB over 4 partitions is ~3 MB each.
const MAX_LEAD: u64 = 8_000;

/// Produces `events` records at `rate` per second, pausing whenever the pipeline falls behind.
async fn produce_behind(
    brokers: String,
    mut generator: Generator,
    events: u64,
    rate: f64,
    progress: Arc<Progress>,
) -> Result<ProduceReport, sliq_pipeline::PipelineError> {
    let started = std::time::Instant::now();
    let (mut valid, mut malformed) = (0, 0);
    while valid + malformed < events {
        while valid + malformed > progress.records_read() + MAX_LEAD {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = CHUNK.min(events - valid - malformed);
        let report = produce_generated(&brokers, TOPIC, &mut generator, n, Some(rate)).await?;
        valid += report.valid;
        malformed += report.malformed;
    }
    Ok(ProduceReport {
        valid,
        malformed,
        elapsed: started.elapsed(),
    })
}

/// Redraws the table in place on a terminal, twice a second.
async fn draw_live(progress: Arc<Progress>) {
    if !std::io::stdout().is_terminal() {
        return;
    }
    let mut drawn_lines = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (slos, records, dead, late) = progress.snapshot();
        let text = table::render(&slos, &progress.drift(), records, dead, late);
        let mut stdout = std::io::stdout().lock();
        if drawn_lines > 0 {
            let _ = write!(stdout, "\x1b[{drawn_lines}A\x1b[J");
        }
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        drawn_lines = text.lines().count();
    }
}
