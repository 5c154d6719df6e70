//! `sliq replay`: a spec over the archived records, through the same core as `sliq run`, to the
//! spec's OTLP endpoint, an OTLP/JSON-lines file, or a what-if table against another spec.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sliq_archive::reader::ArchiveScan;
use sliq_config::{PipelineSpec, Temporality};
use sliq_otlp::MetricsBuilder;
use sliq_replay::{Attainment, Closed, Replay, compare_table};

use crate::time_range::TimeRange;

/// What a replay reads: a spec, and the archive over a range of event time.
#[derive(Debug, Args)]
pub struct ReplayInput {
    /// The pipeline spec (the run's own, or a changed one).
    #[arg(long)]
    pub config: PathBuf,
    /// The archive folder (archive.dir of the run).
    #[arg(long)]
    pub archive: PathBuf,
    #[command(flatten)]
    pub range: TimeRange,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    input: ReplayInput,
    /// Write OTLP/JSON lines to this file instead of sending to the spec's endpoint.
    #[arg(long, conflicts_with = "compare")]
    out: Option<PathBuf>,
    /// Send nothing: print each SLO's attainment under this (old) spec and under --config.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// `service.instance.id` of the replayed series: a series has one writer, so keep it apart
    /// from the live instances' ids.
    #[arg(long, default_value = "replay")]
    instance_id: String,
}

/// A progress bar over the archive's rows on a terminal; hidden otherwise (logs, tests).
fn progress_bar(rows: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(rows);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} replaying [{bar:40}] {human_pos}/{human_len} records ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Lists the archive, for a replay of `range`.
pub fn scan_archive(dir: &Path) -> anyhow::Result<ArchiveScan> {
    if !dir.is_dir() {
        bail!(
            "--archive {} is not a folder; give the archive.dir the run wrote to",
            dir.display()
        );
    }
    let scan = ArchiveScan::open(dir)?;
    if scan.files == 0 {
        bail!("--archive {} holds no archive file", dir.display());
    }
    Ok(scan)
}

/// Replays `spec` over the archive with a progress bar, handing every close to `on_closed`;
/// logs what the replay refused or could not tell.
pub fn replay_archive(
    spec: &PipelineSpec,
    scan: &ArchiveScan,
    range: &TimeRange,
    mut on_closed: impl FnMut(&Replay, &Closed) -> anyhow::Result<()>,
) -> anyhow::Result<Replay> {
    if let Some(redact) = &spec.archive.redact
        && redact.raw == sliq_redact::RawPolicy::Redact
    {
        tracing::warn!(
            "the spec has archive.redact with raw: redact, so the archive's raw column holds \
             redacted records: SLIs reading a redacted field judge the redacted text (write \
             raw: keep where the archive may hold the records as they arrived)"
        );
    }
    let mut replay = Replay::new(spec)?;
    let bar = progress_bar(scan.rows);
    replay.run(
        scan,
        range.bounds()?,
        |n| bar.inc(n),
        |replay, closed| on_closed(replay, closed),
    )?;
    bar.finish_and_clear();
    let counts = replay.counts();
    if counts.admission_unknown > 0 {
        tracing::warn!(
            records = counts.admission_unknown,
            "archive rows that do not say whether the run found them late (files from before \
             sliq recorded it, or rows archived again after a restart) were counted"
        );
    }
    for (code, (n, first)) in &counts.refused {
        tracing::warn!("{n} records refused by this spec as {code}; first: {first}");
    }
    Ok(replay)
}

pub fn run(args: ReplayArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let spec = sliq_config::load(&args.input.config)?;
    let scan = scan_archive(&args.input.archive)?;
    if let Some(old) = &args.compare {
        let old_spec = sliq_config::load(old)?;
        let attain = |spec: &PipelineSpec| -> anyhow::Result<Attainment> {
            let mut attainment = None;
            replay_archive(spec, &scan, &args.input.range, |replay, closed| {
                attainment
                    .get_or_insert_with(|| Attainment::new(replay.evaluator()))
                    .add(replay.evaluator(), closed);
                Ok(())
            })?;
            attainment.context("the archive holds no record in range")
        };
        let (before, after) = (attain(&old_spec)?, attain(&spec)?);
        println!(
            "what-if over {}{}: {} (old) against {} (new)\n",
            args.input.archive.display(),
            args.input.range.label(),
            old.display(),
            args.input.config.display()
        );
        print!("{}", compare_table(&before, &after));
        return Ok(());
    }
    let (mut exporter, destination) = match &args.out {
        Some(out) => (
            sliq_otlp::Exporter::file(&out.display().to_string())?,
            out.display().to_string(),
        ),
        None => {
            if !spec.export.enabled {
                bail!(
                    "{} has export.enabled: false; give --out FILE for OTLP/JSON lines, or \
                     --compare OLD_SPEC for a what-if table",
                    args.input.config.display()
                );
            }
            let settings = spec.export.otlp.resolve(|name| std::env::var(name).ok())?;
            let exporter = sliq_pipeline::open_exporter(true, &settings, rt.handle())?;
            (exporter, settings.endpoint.value)
        }
    };
    let temporality = match spec.export.otlp.temporality {
        Temporality::Cumulative => sliq_otlp::Temporality::Cumulative,
        Temporality::Delta => sliq_otlp::Temporality::Delta,
    };
    let mut builder: Option<MetricsBuilder> = None;
    let mut requests = 0u64;
    let replay = replay_archive(&spec, &scan, &args.input.range, |replay, closed| {
        // The lineage starts at the first window: the same archive gives the same points.
        let started = closed.windows.first().map_or(0, |w| w.start_ms);
        let builder = builder.get_or_insert_with(|| {
            MetricsBuilder::new(Some(&args.instance_id), temporality, started)
        });
        let folded = replay.folded();
        let request = builder.build(&replay.export_batch(closed, &folded), replay.evaluator());
        rt.block_on(exporter.export(&request)).with_context(|| {
            format!(
                "sending replayed metrics to {destination} ({requests} requests acknowledged \
                 before); a replay sends the same points again, so run it again once the \
                 collector answers"
            )
        })?;
        requests += 1;
        Ok(())
    })?;
    let r = replay.counts().records;
    tracing::info!(
        accepted = r.accepted,
        late = r.late,
        refused = r.dead_lettered,
        "replayed {} records of {} ({} accepted, {} late as the run found them, {} refused): {requests} requests to {destination}",
        r.accepted + r.late + r.dead_lettered,
        args.input.archive.display(),
        r.accepted,
        r.late,
        r.dead_lettered,
    );
    Ok(())
}
