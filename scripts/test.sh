#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (the Nisshi broker, built
# once from crates.io and cached under ~/.cache/sliq; DuckDB, pyarrow and Polars in .venv; Debian's
# chromium for the report test), checks
# formatting and lints, builds, and runs every test. Safe to run again: each step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build prerequisites: a C compiler, make, Perl (OpenSSL is built from source for Kafka TLS), and the openssl tool (the TLS tests encrypt a key with it)"
for tool in cc make perl openssl; do
  command -v "$tool" >/dev/null ||
    { echo "missing $tool; on Debian: apt-get install gcc make perl openssl" >&2; exit 1; }
done
perl -MIPC::Cmd -MFindBin -e 1 2>/dev/null ||
  { echo "Perl lacks IPC::Cmd and FindBin (only perl-base?); on Debian: apt-get install perl" >&2; exit 1; }
echo "== rig: Kafka-compatible broker (Nisshi)"
scripts/broker.sh install
echo "== rig: Python readers of the archive (DuckDB, pyarrow, Polars)"
scripts/python-env.sh
echo "== rig: headless Chromium and fonts (the report test's screenshots)"
scripts/chromium.sh >/dev/null
echo "== rig: promtool (checks and unit-tests the rules and dashboard queries sliq writes)"
scripts/sre-tools.sh
echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"
cargo build --workspace --locked
echo "== tests"
cargo test --workspace --locked
