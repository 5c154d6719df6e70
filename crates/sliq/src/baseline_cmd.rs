//! `sliq baseline`: a reviewable reference distribution for drift, from a JSON-lines file or from
//! the Parquet archive over an event-time range.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use sliq_core::drift::{BaselineBuilder, FeatureKind};

use crate::time_range::TimeRange;

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The pipeline spec: its `drift:` section says which features (and dimensions) to capture,
    /// its `fields:` how to read records.
    #[arg(long)]
    config: PathBuf,
    /// Records as JSON lines, one request/response per line (`-`: standard input).
    #[arg(long, required_unless_present = "archive", conflicts_with = "archive")]
    input: Option<PathBuf>,
    /// A sliq Parquet archive directory (archive.dir of a pipeline) to read records from.
    #[arg(long)]
    archive: Option<PathBuf>,
    #[command(flatten)]
    range: TimeRange,
    /// The baseline file to write (JSON; commit it next to the spec).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: BaselineArgs) -> anyhow::Result<()> {
    let spec = sliq_config::load(&args.config)?;
    let Some(drift) = &spec.drift else {
        bail!(
            "{} has no `drift:` section; declare the features to watch there first",
            args.config.display()
        );
    };
    let (from_ms, to_ms) = args.range.bounds()?;
    let decoder = spec.decoder(spec.source.kafka.max_record_bytes);
    let mut builder = BaselineBuilder::new(drift.features(), drift.dimensions());
    let mut used = 0u64;
    let mut refused: BTreeMap<&'static str, (u64, String)> = BTreeMap::new();
    let mut take = |bytes: &[u8], at: &dyn Fn() -> String| {
        let decoded = decoder.parse(bytes).and_then(|value| {
            let event = decoder.decode(&value)?;
            let in_range =
                from_ms.is_none_or(|f| event.ts_ms >= f) && to_ms.is_none_or(|t| event.ts_ms < t);
            if in_range {
                builder.add(&event);
                used += 1;
            }
            Ok(())
        });
        if let Err(reject) = decoded {
            let entry = refused.entry(reject.code()).or_insert((0, String::new()));
            if entry.0 == 0 {
                entry.1 = format!("{}: {reject}", at());
            }
            entry.0 += 1;
        }
    };
    let source = match (&args.input, &args.archive) {
        (Some(input), _) => {
            let reader: Box<dyn std::io::BufRead> = if input.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let file = std::fs::File::open(input)
                    .with_context(|| format!("cannot read --input {}", input.display()))?;
                Box::new(std::io::BufReader::new(file))
            };
            for (n, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", input.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                take(line.as_bytes(), &|| {
                    format!("{}:{}", input.display(), n + 1)
                });
            }
            input.display().to_string()
        }
        (None, Some(dir)) => {
            let summary = sliq_archive::reader::for_each_raw(dir, from_ms, to_ms, |ts, raw| {
                take(raw, &|| format!("{} (record at {ts} ms)", dir.display()));
            })?;
            eprintln!(
                "read {} records in range from {} archive files",
                summary.rows, summary.files
            );
            format!("archive {}", dir.display())
        }
        (None, None) => bail!("give --input <file.jsonl> or --archive <dir>"),
    };
    let range = args.range.label();
    if used == 0 {
        bail!("no record to build a baseline from ({source}{range})");
    }
    let baseline = builder.finish(format!("{source}{range}"));
    let text = serde_json::to_string_pretty(&baseline)? + "\n";
    let temp = args.out.with_extension("json.tmp");
    std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, &args.out)
        .with_context(|| format!("renaming {} to {}", temp.display(), args.out.display()))?;
    println!(
        "{}: baseline of {used} records from {source}",
        args.out.display()
    );
    for f in &baseline.features {
        let summary: Vec<String> = f.summary.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  {} ({}, {} dimension series): {}",
            f.name,
            match f.kind {
                FeatureKind::Numeric => "numeric",
                FeatureKind::Categorical => "categorical",
            },
            f.series.len(),
            summary.join(" ")
        );
    }
    for f in baseline.features.iter().filter(|f| f.all.count() == 0) {
        eprintln!(
            "warning: no record carries feature {:?} at {}: it cannot be judged; check its pointer",
            f.name, f.pointer
        );
    }
    for (code, (n, first)) in &refused {
        eprintln!("skipped {n} records refused as {code}; first: {first}");
    }
    Ok(())
}
