//! Prometheus's own rule checker and rule unit tester (`promtool`, from Debian's `prometheus`
//! package, installed by `scripts/sre-tools.sh`).

use std::path::Path;
use std::process::Command;

/// Runs `promtool` with `args` in `dir`; returns (success, stdout and stderr together).
pub fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool does not run ({e}): install it with scripts/sre-tools.sh")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
