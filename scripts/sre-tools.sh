#!/usr/bin/env bash
# promtool, which the tests of `sliq rules` and `sliq dashboard` run (`promtool check rules`,
# `promtool test rules`): Debian's `prometheus` package (2.42 on bookworm) carries it.
# Idempotent: does nothing when promtool is already on the PATH. Needs root or sudo for apt-get.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "sre-tools: promtool is missing and this user cannot install packages; as root run:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends prometheus" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "sre-tools: promtool is missing and there is no apt-get here; install Prometheus's promtool" \
    "(https://prometheus.io/download/) and put it on the PATH" >&2
  exit 1
fi
echo "sre-tools: installing promtool (Debian package prometheus), once" >&2
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >&2
command -v promtool >/dev/null || { echo "sre-tools: prometheus installed but promtool is not on the PATH" >&2; exit 1; }
