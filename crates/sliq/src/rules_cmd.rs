//! `sliq rules`: what Prometheus needs to watch a spec's SLOs, written from the spec alone.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// The pipeline spec (YAML) whose SLOs the rules watch.
    #[arg(long)]
    config: PathBuf,
    /// Where to write the rule file (default: standard output).
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
