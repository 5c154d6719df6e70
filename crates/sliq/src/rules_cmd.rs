//! `sliq rules` and `sliq dashboard`: what Prometheus and Grafana need to watch a spec's SLOs,
//! written from the spec alone.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// The pipeline spec (YAML) whose SLOs are watched.
    #[arg(long)]
    config: PathBuf,
    /// Where to write the file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn rules(args: &RulesArgs) -> anyhow::Result<()> {
    let spec = sliq_config::load(&args.config)?;
    let text = sliq_rules::RuleFile::new(&spec.slos())
        .to_yaml(&args.config.display().to_string())
        .context("writing the rules as YAML")?;
    write(&text, args.out.as_deref())
}

pub fn dashboard(args: &RulesArgs) -> anyhow::Result<()> {
    let spec = sliq_config::load(&args.config)?;
    let name = args
        .config
        .file_stem()
        .map_or_else(|| "spec".into(), |s| s.to_string_lossy());
    let dashboard = sliq_rules::dashboard(
        &spec.slos(),
        sliq_rules::DashboardOptions {
            name: &name,
            drift: spec.drift.is_some(),
        },
    );
    let text = serde_json::to_string_pretty(&dashboard).context("writing the dashboard as JSON")?;
    write(&format!("{text}\n"), args.out.as_deref())
}

/// Writes to `out`, or prints when there is none.
fn write(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(path) => std::fs::write(path, text).with_context(|| {
            format!(
                "writing {}: check the folder exists and is writable",
                path.display()
            )
        }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
