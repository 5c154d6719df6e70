#!/usr/bin/env bash
# Fuzzes the decoder: arbitrary bytes through parse, decode, the wall-clock guard, SLI evaluation
# and the windows (fuzz/fuzz_targets/decode.rs), for SECONDS (default 180). Not run by CI.
#
#   scripts/fuzz.sh [SECONDS]
#
# Installs cargo-fuzz if missing. Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# pass its nightly-only flags. Built with debug assertions and overflow checks (-a) and without a
# sanitizer (the code forbids `unsafe`; ASan would only slow it down). New inputs go to
# fuzz/corpus/decode (ignored by git), seeded from fuzz/seeds/decode (committed); a crash is saved
# under fuzz/artifacts/decode/ and reproduced with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a decode fuzz/artifacts/decode/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

mkdir -p fuzz/corpus/decode
# -rss_limit_mb: a record is at most 1 MiB, the process should stay far below 2 GiB.
nice -n 10 cargo fuzz run --sanitizer none --debug-assertions decode \
    fuzz/corpus/decode fuzz/seeds/decode -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
