//! The integration rig, real parts only: a Kafka-compatible broker process (Nisshi) on loopback
//! (behind a proxy that requires client certificates, for mutual TLS), an OTLP receiver decoding
//! the official protobuf, and DuckDB reading the Parquet archive.

// A test rig reports to the person running the tests.
#![allow(clippy::print_stderr)]

pub mod admin;
pub mod broker;
pub mod chromium;
pub mod fault;
pub mod mtls_proxy;
pub mod otlp;
pub mod promtool;
pub mod python;
pub mod recount;
pub mod run;
pub mod tls;
pub mod traffic;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Runs one of the repository's idempotent installer scripts (`scripts/python-env.sh`,
/// `scripts/chromium.sh`) and returns the path it prints, or why it failed.
pub fn install(script: &str) -> Result<String, String> {
    let script = repo_root().join(script);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The `sliq` binary next to the running test (target/<profile>/sliq).
pub fn sliq_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|d| d.join("sliq"))
        .unwrap_or_default();
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p sliq)",
        bin.display()
    );
    bin
}
