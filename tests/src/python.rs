//! The project's Python venv: DuckDB (the independent reader of the Parquet archive) and the
//! numpy/scipy scripts that compute expected values independently.

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

fn python() -> anyhow::Result<&'static str> {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| crate::install("scripts/python-env.sh"));
    found.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs one of the repository's Python scripts in the venv and parses what it prints as JSON.
pub fn script_json(script: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<serde_json::Value> {
    let path = crate::repo_root().join(script);
    let out = Command::new(python()?)
        .arg(&path)
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{} printed no JSON", path.display()))
}

/// The errors Python's `jsonschema` (the draft the schema names) finds in each of `documents`, in
/// order: empty for a valid one.
pub fn json_schema_errors(
    schema: &std::path::Path,
    documents: &[serde_json::Value],
) -> anyhow::Result<Vec<Vec<String>>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("documents.json");
    std::fs::write(&path, serde_json::to_vec(documents)?)?;
    let verdicts = script_json(
        "scripts/check_json_schema.py",
        &[schema.as_os_str(), path.as_os_str()],
    )?;
    Ok(serde_json::from_value(verdicts)?)
}

/// Runs a Python snippet (with `duckdb` imported and `q(sql)` returning rows as dicts) and parses
/// what it prints as JSON.
pub fn duckdb_json(body: &str) -> anyhow::Result<serde_json::Value> {
    let program = format!(
        "import duckdb, json, hashlib\n\
         def q(sql):\n    rel = duckdb.sql(sql)\n    cols = rel.columns\n    return [dict(zip(cols, r)) for r in rel.fetchall()]\n\
         {body}\n"
    );
    let out = Command::new(python()?)
        .arg("-c")
        .arg(&program)
        .output()
        .context("running python")?;
    if !out.status.success() {
        bail!(
            "python failed: {}\n{program}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("python printed no JSON")
}
