#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (the Nisshi broker, built
# once from crates.io and cached under ~/.cache/sliq; DuckDB, pyarrow and Polars in .venv), checks
# formatting and lints, builds, and runs every test. Safe to run again: each step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== rig: Kafka-compatible broker (Nisshi)"
scripts/broker.sh install
echo "== rig: Python readers of the archive (DuckDB, pyarrow, Polars)"
scripts/python-env.sh
echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"
cargo build --workspace --locked
echo "== tests"
cargo test --workspace --locked
