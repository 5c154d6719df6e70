//! `sliq report`: one self-contained HTML page on the SLOs of a spec over the archive, for people
//! who do not read PromQL; computed by the replay engine, the core `sliq run` uses.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use sliq_replay::report::{ReportBuilder, render};

use crate::replay_cmd::{ReplayInput, replay_archive, scan_archive};

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    input: ReplayInput,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let spec = sliq_config::load(&args.input.config)?;
    let scan = scan_archive(&args.input.archive)?;
    let mut builder = ReportBuilder::default();
    let replay = replay_archive(&spec, &scan, &args.input.range, |replay, closed| {
        builder.add(replay, closed);
        Ok(())
    })?;
    let subject = format!(
        "{} over the archive {}{}",
        args.input.config.display(),
        args.input.archive.display(),
        args.input.range.label()
    );
    let report = builder.finish(&replay, subject);
    let temp = args.out.with_extension("html.tmp");
    std::fs::write(&temp, render(&report))
        .with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, &args.out)
        .with_context(|| format!("renaming {} to {}", temp.display(), args.out.display()))?;
    println!(
        "{}: {} SLOs over {} records",
        args.out.display(),
        report.slos.len(),
        report.records.accepted
    );
    Ok(())
}
