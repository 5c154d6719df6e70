#!/usr/bin/env bash
# The test rig's Kafka-compatible broker: Nisshi, built from crates.io and cached by version and
# features. Idempotent: a cached binary is reused.
#
#   scripts/broker.sh install          build (or reuse) the binary; prints its path
#   scripts/broker.sh path             prints the binary's path (installs first when missing)
#
# The tests start their own broker processes on free loopback ports (tests/src/broker.rs).
set -euo pipefail

NISSHI_VERSION="0.8.1"
NISSHI_FEATURES="dynostore,libsql"
CACHE_ROOT="${SLIQ_CACHE_DIR:-$HOME/.cache/sliq}/nisshi-${NISSHI_VERSION}-${NISSHI_FEATURES}"
BIN="$CACHE_ROOT/bin/nisshi"

install() {
  if [ -x "$BIN" ]; then
    return 0
  fi
  echo "broker: building nisshi $NISSHI_VERSION (features: $NISSHI_FEATURES) into $CACHE_ROOT; about 10 minutes on 2 cores, once" >&2
  # --ignore-rust-version: a dependency declares a newer rustc than needed; it builds and runs fine.
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
    --no-default-features --features "$NISSHI_FEATURES" --root "$CACHE_ROOT" >&2
}

case "${1:-install}" in
  install) install; echo "$BIN" ;;
  path) install; echo "$BIN" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
