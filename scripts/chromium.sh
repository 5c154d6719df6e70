#!/usr/bin/env bash
# Headless Chromium for the report test (tests/tests/report.rs opens the HTML report and takes a
# screenshot), with the DejaVu fonts it renders text in. Debian packages only; idempotent: an
# installed chromium is reused. Prints the path of the chromium binary.
set -euo pipefail
if ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/truetype/dejavu ]; then
  echo "chromium.sh: installing chromium and fonts-dejavu-core from Debian's packages (once)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Another installer (scripts for promtool) may hold dpkg's lock: wait for it rather than fail.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends chromium fonts-dejavu-core >&2
fi
command -v chromium
