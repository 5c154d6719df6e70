//! The `sliq` command: a thin shell over the library crates.

// The binary talks to a person on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod baseline_cmd;
mod demo;
mod gen_cmd;
mod replay_cmd;
mod report_cmd;
mod rules_cmd;
mod table;
mod time_range;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sliq_pipeline::{Role, RunLimits, run};

/// jemalloc, set at build time (`.cargo/config.toml`) to keep the pages it was given instead of
/// handing freed ones back: resident memory then stays at the level the byte bounds allow rather
/// than dipping and refilling as row groups come and go (BENCHMARKS.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Turns AI request/response logs on Kafka into quality SLIs and error budgets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// How log lines go to stderr: `text` for people, `json` (one object a line) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "SLIQ_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    All,
    Reader,
    Ledger,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::All => Role::All,
            RoleArg::Reader => Role::Reader,
            RoleArg::Ledger => Role::Ledger,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: an in-process Kafka cluster, generated traffic, the real
    /// pipeline, OTLP/JSON metrics and a Parquet archive under --out.
    Demo(demo::DemoArgs),
    /// Runs a pipeline spec as a service: joins the consumer group, exports, archives, commits.
    Run {
        /// The pipeline spec (YAML), e.g. pipelines/chatbot.yaml.
        #[arg(long)]
        config: PathBuf,
        /// Stop cleanly once no record arrived for this long (e.g. 10s): catch-up runs, backfills.
        #[arg(long, value_parser = humantime::parse_duration)]
        exit_on_idle: Option<Duration>,
        /// This instance's `service.instance.id` (default: one generated once and kept in state.dir).
        #[arg(long, env = "SLIQ_INSTANCE_ID")]
        instance_id: Option<String>,
        /// Serve /healthz, /readyz and /metrics on this address (e.g. 127.0.0.1:9464); overrides
        /// the spec's admin.listen.
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// `all`: one process does everything. Scaled out: `reader`s count their partitions and
        /// hand the counts to one `ledger`, which judges budgets, alerts and drift over all of
        /// them (through the topics `<group_id>.sliq-windows` and `.sliq-ledger`).
        #[arg(long, value_enum, default_value_t = RoleArg::All, env = "SLIQ_ROLE")]
        role: RoleArg,
    },
    /// Checks a pipeline spec without running it.
    Validate {
        #[arg(long)]
        config: PathBuf,
        /// Also log in to the brokers with the spec's credentials and ask for metadata.
        #[arg(long)]
        connect: bool,
    },
    /// Produces realistic synthetic traffic to a Kafka topic.
    Gen(gen_cmd::GenArgs),
    /// Writes a drift baseline (the reference distributions of a spec's drift features) from a
    /// JSON-lines file or from the Parquet archive.
    Baseline(baseline_cmd::BaselineArgs),
    /// Re-runs a spec (the run's own, or a changed one) over the archived records: to the spec's
    /// OTLP endpoint (a backfill), to an OTLP/JSON-lines file, or as a what-if table.
    Replay(replay_cmd::ReplayArgs),
    /// Writes one self-contained HTML page on a spec's SLOs over the archive: attainment, budget
    /// left and its burn-down, the worst dimension values, policy changes, drift.
    Report(report_cmd::ReportArgs),
    /// Prints the JSON Schema of pipeline specs, for editors; schemas/pipeline.schema.json is
    /// this output (`cargo run -p sliq -- schema > schemas/pipeline.schema.json`).
    Schema,
    /// Writes Prometheus recording and alerting rules for every SLO of a spec (burn rates over
    /// the exported counters summed over instances, page and ticket alerts).
    Rules(rules_cmd::RulesArgs),
    /// Writes a Grafana dashboard (JSON) with one row per SLO: SLI, budget remaining, burn
    /// rates, policy state and drift, from the series `sliq rules` records.
    Dashboard(rules_cmd::RulesArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    let log_format = cli.log_format;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIQ_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr);
    match log_format {
        // Colour codes only for a person at a terminal, never into files or log collectors.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            match log_format {
                LogFormat::Text => eprintln!("error: {e:#}"),
                // A shipper reads every stderr line as JSON, the last one too.
                LogFormat::Json => tracing::error!("{e:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sliq_config::pipeline_schema())?
            );
            Ok(())
        }
        Command::Validate { config, connect } => {
            let spec = sliq_config::load(&config)?;
            // librdkafka loads the certificates and keys when it makes a client.
            sliq_pipeline::check_kafka_client(&spec.source.kafka)?;
            if let Some(drift) = &spec.drift {
                // Opening the monitor reads and checks a baseline file, if the reference is one.
                drift
                    .monitor(spec.drift_slo())
                    .map_err(anyhow::Error::msg)?;
            }
            let export = if spec.export.enabled {
                let settings = spec.export.otlp.resolve(|name| std::env::var(name).ok())?;
                // Opening the exporter reads and checks the TLS files; a file endpoint is not
                // opened, since that would create it (and its folder) where validate runs.
                if settings.protocol != sliq_config::Protocol::File {
                    sliq_pipeline::open_exporter(true, &settings, rt.handle())?;
                }
                format!("export {}", settings.summary())
            } else {
                "export disabled".to_owned()
            };
            println!(
                "{}: ok ({} SLOs, topics {}, {export})",
                config.display(),
                spec.slos.len(),
                spec.source.kafka.topics.join(", "),
            );
            if let Some(redact) = &spec.archive.redact {
                println!(
                    "archive.redact: {} rules, raw column {}",
                    redact.rules.len(),
                    match redact.raw {
                        sliq_redact::RawPolicy::Keep => "kept as it arrived",
                        sliq_redact::RawPolicy::Redact => "redacted",
                        sliq_redact::RawPolicy::Drop => "dropped",
                    }
                );
            }
            if let Some(drift) = &spec.drift {
                println!(
                    "drift: {} features, reference {}",
                    drift.features.len(),
                    drift.reference_label()
                );
            }
            let kafka = &spec.source.kafka;
            if connect {
                if !sliq_pipeline::check_kafka_connection(kafka)? {
                    anyhow::bail!(
                        "Kafka at {} did not answer within 10s: check source.kafka.brokers and \
                         that this machine can reach them",
                        kafka.brokers
                    );
                }
                println!("kafka: {} answered", kafka.brokers);
            }
            Ok(())
        }
        Command::Run {
            config,
            exit_on_idle,
            instance_id,
            admin_listen,
            role,
        } => {
            let mut spec = sliq_config::load(&config)?;
            if admin_listen.is_some() {
                spec.admin.listen = admin_listen;
            }
            let stop = stop_on_signals(&rt);
            let limits = RunLimits {
                exit_on_idle,
                ..RunLimits::default()
            };
            let handle = rt.handle().clone();
            let summary = rt
                .block_on(rt.spawn_blocking(move || {
                    run(
                        &spec,
                        instance_id.as_deref(),
                        role.into(),
                        limits,
                        &stop,
                        None,
                        handle,
                    )
                }))
                .context("the pipeline thread panicked")??;
            // A log line (not a bare print) so that a JSON log stream stays JSON to its end.
            tracing::info!(
                accepted = summary.accepted,
                dead_lettered = summary.dead_lettered,
                late = summary.late,
                "{} stopped cleanly: {} accepted, {} dead-lettered, {} late, {} replayed; {} archive files, {} exports",
                summary.instance_id,
                summary.accepted,
                summary.dead_lettered,
                summary.late,
                summary.replayed,
                summary.archive_files,
                summary.exports
            );
            Ok(())
        }
        Command::Demo(args) => demo::run(args, &rt),
        Command::Gen(args) => gen_cmd::run(args, &rt),
        Command::Baseline(args) => baseline_cmd::run(args),
        Command::Replay(args) => replay_cmd::run(args, &rt),
        Command::Report(args) => report_cmd::run(args),
        Command::Rules(args) => rules_cmd::rules(&args),
        Command::Dashboard(args) => rules_cmd::dashboard(&args),
    }
}

/// A flag set on SIGTERM or Ctrl-C; the pipeline then flushes, exports and commits before exiting.
fn stop_on_signals(rt: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    rt.spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("cannot listen for SIGTERM: {e}");
                        let _ = ctrl_c.await;
                        flag.store(true, Ordering::Relaxed);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stop requested: flushing, exporting, committing");
        flag.store(true, Ordering::Relaxed);
    });
    stop
}
