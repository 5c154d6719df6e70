#!/usr/bin/env bash
# End-to-end throughput on the real rig, as ratios measured in one run (machines are shared and
# noisy; absolute figures mean little). For records of about 1 KB and 16 KB it produces generated
# records into a 4-partition topic of a fresh Nisshi broker, then reads the same topic
#   1. with a bare librdkafka consumer that does nothing else (examples/raw_consume),
#   2. with `sliq run` on pipelines/chatbot.yaml (decode, 8 SLOs, windows, budgets, drift-free
#      export over OTLP to a file, zstd Parquet archive, dead letters, checkpoints, commits),
#   3. with `sliq run` on the same spec without archive and without export (what judging costs),
#   4. with two `sliq run` in one group, and with two readers and a ledger (`--role`),
# and prints one Markdown table per size: records/s, ratio to bare, CPU µs per record (user + sys
# from getrusage, via GNU time), the broker's CPU µs per record over the same stretch (it shares
# the cores: the two together bound the rate) and peak RSS, with the machine, commit and date.
#
#   scripts/bench-e2e.sh [RECORDS_1KB] [RECORDS_16KB]     (defaults 500000 and 50000)
#
# COMPARE_BINARY=path (and COMPARE_LABEL=text) adds a row for another build of sliq on the full
# spec (another allocator or release profile), measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
records_small="${1:-500000}"
records_large="${2:-50000}"
work="$(mktemp -d)"
trap 'kill "${broker_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet -p sliq
cargo build --release --quiet -p sliq-pipeline --example raw_consume
nisshi="$(scripts/broker.sh path)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="tcp://127.0.0.1:$port"
brokers="127.0.0.1:$port"
"$nisshi" broker --listener-url "$url" --advertised-listener-url "$url" \
  --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s --silent &
broker_pid=$!
sleep 1

# The spec without archive and without export: same SLOs, windows and budgets.
lean="$work/lean.yaml"
python3 - pipelines/chatbot.yaml "$lean" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
# Replace the export and archive sections (top-level keys) with disabled ones.
out, skip = [], False
for line in text.splitlines():
    if re.match(r"^(export|archive):", line):
        skip = True
        continue
    if skip and (line.startswith(" ") or not line.strip()):
        continue
    skip = False
    out.append(line)
out += ["export:", "  enabled: false", "archive:", "  enabled: false", "  dir: ${SLIQ_ARCHIVE_DIR}"]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY

# The broker's CPU time so far (user + sys, seconds).
broker_cpu() {
  awk -v tick="$(getconf CLK_TCK)" '{print ($14 + $15) / tick}' "/proc/$broker_pid/stat"
}

# measure NAME RECORDS IDLE_SECONDS COMMAND...: one row of the table.
measure() {
  local name="$1" records="$2" idle="$3" broker_before
  shift 3
  broker_before="$(broker_cpu)"
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    cat "$work/err" >&2
    return 1
  }
  python3 - "$name" "$records" "$idle" "$(cat "$work/time")" "${bare_rate:-0}" "$work/err" \
    "$broker_before" "$(broker_cpu)" "$work/costs" <<'PY'
import re, sys
name, records, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
wall, user, sys_, rss_kb = map(float, sys.argv[4].split())
bare = float(sys.argv[5])
broker = (float(sys.argv[8]) - float(sys.argv[7])) / records * 1e6
busy = wall - idle
rate = records / busy
ratio = f"{rate / bare:.2f}" if bare else "1.00"
# sliq logs its longest pause between polls once per checkpoint interval (at debug).
pauses = [int(m) for m in re.findall(r"longest_pause_ms=(\d+)", open(sys.argv[6]).read())]
pause = f"{max(pauses)} ms" if pauses else "–"
print(f"| {name} | {rate:,.0f} | {ratio} | {(user + sys_) / records * 1e6:.1f} | {broker:.1f} | "
      f"{rss_kb / 1024:.0f} MB | {pause} |")
# For the ceiling under the table: this reader's and the broker's CPU per record.
with open(sys.argv[9], "a") as costs:
    costs.write(f"{name}\t{(user + sys_) / records * 1e6}\t{broker}\n")
PY
}

table() {
  local size="$1" records="$2" answer_bytes="$3"
  local topic="bench-${size// /}"
  "$nisshi" topic create --broker "$url" --partitions 4 "$topic" >/dev/null
  "$nisshi" topic create --broker "$url" --partitions 1 "$topic-dlq" >/dev/null
  ./target/release/sliq gen --brokers "$brokers" --topic "$topic" --count "$records" \
    --events-per-second 500 --answer-bytes "$answer_bytes" >/dev/null
  echo
  echo "### Records of about $size ($records records, 4 partitions)"
  echo
  echo "| reader | records/s | ratio to bare | CPU µs/record | broker CPU µs/record | peak RSS | longest pause between polls |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  bare_rate=""
  local row
  row="$(measure "bare librdkafka consumer" "$records" 0 \
    ./target/release/examples/raw_consume "$brokers" "$topic" "$records")"
  echo "$row"
  bare_own="$(sed -E 's/.*= ([0-9]+) records\/s/\1/' "$work/out")"
  # The bare consumer's own clock starts at its first record; use its wall time like the others.
  bare_rate="$(echo "$row" | awk -F'|' '{gsub(/[ ,]/, "", $3); print $3}')"
  local idle=2
  for variant in full lean ${COMPARE_BINARY:+compare}; do
    local spec=pipelines/chatbot.yaml label="sliq run, full spec" binary=./target/release/sliq
    if [ "$variant" = lean ]; then spec="$lean" label="sliq run, no archive, no export"; fi
    if [ "$variant" = compare ]; then
      binary="$COMPARE_BINARY" label="sliq run, full spec, ${COMPARE_LABEL:-$COMPARE_BINARY}"
    fi
    rm -rf "$work/archive" "$work/state"
    measure "$label" "$records" "$idle" env KAFKA_BROKERS="$brokers" SLIQ_TOPIC="$topic" \
      SLIQ_DLQ_TOPIC="$topic-dlq" SLIQ_GROUP="bench-${size// /}-$variant" \
      OTLP_ENDPOINT="file://$work/metrics.jsonl" SLIQ_ARCHIVE_DIR="$work/archive" \
      SLIQ_STATE_DIR="$work/state" SLIQ_LOG=warn,sliq_pipeline::run=debug \
      "$binary" run --config "$spec" --exit-on-idle "${idle}s" --instance-id "bench-${size// /}-$variant"
  done
  # Two instances in one group share the partitions: per-process CPU per record should stay flat.
  rm -rf "$work/archive" "$work"/state-*
  local t0 t1 b0 pair=()
  b0="$(broker_cpu)"
  t0="$(date +%s.%N)"
  for i in 1 2; do
    env KAFKA_BROKERS="$brokers" SLIQ_TOPIC="$topic" SLIQ_DLQ_TOPIC="$topic-dlq" \
      SLIQ_GROUP="bench-${size// /}-pair" OTLP_ENDPOINT="file://$work/metrics-$i.jsonl" \
      SLIQ_ARCHIVE_DIR="$work/archive" SLIQ_STATE_DIR="$work/state-$i" SLIQ_LOG=warn \
      /usr/bin/time -f "%e %U %S %M" -o "$work/time-$i" \
      ./target/release/sliq run --config pipelines/chatbot.yaml --exit-on-idle "${idle}s" \
      --instance-id "bench-${size// /}-pair-$i" >/dev/null 2>"$work/err-$i" &
    pair+=($!)
  done
  wait "${pair[@]}"
  t1="$(date +%s.%N)"
  python3 - "$records" "$idle" "$t0" "$t1" "$bare_rate" "$b0" "$(broker_cpu)" \
    "$work/time-1" "$work/time-2" <<'PY'
import sys
records, idle, t0, t1, bare = int(sys.argv[1]), float(sys.argv[2]), *map(float, sys.argv[3:6])
broker = (float(sys.argv[7]) - float(sys.argv[6])) / records * 1e6
runs = [list(map(float, open(f).read().split())) for f in sys.argv[8:10]]
rate = records / (t1 - t0 - idle)
cpu = sum(u + s for _, u, s, _ in runs)
rss = max(kb for *_, kb in runs)
print(f"| 2 × sliq run in one group, full spec | {rate:,.0f} | {rate / bare:.2f} | "
      f"{cpu / records * 1e6:.1f} | {broker:.1f} | {rss / 1024:.0f} MB each at most | – |")
PY
  # Scaled out: two readers hand their counts to one ledger (the ledger's CPU is counted too;
  # the rate runs until both readers are done, the ledger finishing beside them).
  rm -rf "$work/archive" "$work"/state-*
  local scaled=()
  b0="$(broker_cpu)"
  t0="$(date +%s.%N)"
  for role in reader-1 reader-2 ledger; do
    env KAFKA_BROKERS="$brokers" SLIQ_TOPIC="$topic" SLIQ_DLQ_TOPIC="$topic-dlq" \
      SLIQ_GROUP="bench-${size// /}-roles" OTLP_ENDPOINT="file://$work/metrics-$role.jsonl" \
      SLIQ_ARCHIVE_DIR="$work/archive" SLIQ_STATE_DIR="$work/state-$role" SLIQ_LOG=warn \
      /usr/bin/time -f "%e %U %S %M" -o "$work/time-$role" \
      ./target/release/sliq run --config pipelines/chatbot.yaml --exit-on-idle "${idle}s" \
      --role "${role%-*}" --instance-id "bench-${size// /}-$role" >/dev/null 2>"$work/err-$role" &
    scaled+=($!)
  done
  wait "${scaled[0]}" "${scaled[1]}"
  t1="$(date +%s.%N)"
  # The ledger stops by itself once every partition is counted to its end; should it not within
  # a minute, stop it (it exports what it judged and stops cleanly) and say so under the table.
  if ! timeout 60 tail --pid="${scaled[2]}" -f /dev/null; then
    pkill -TERM -x sliq || true
    ledger_stopped="yes"
  fi
  wait "${scaled[2]}"
  python3 - "$records" "$idle" "$t0" "$t1" "$bare_rate" "$b0" "$(broker_cpu)" \
    "$work/time-reader-1" "$work/time-reader-2" "$work/time-ledger" <<'PY'
import sys
records, idle, t0, t1, bare = int(sys.argv[1]), float(sys.argv[2]), *map(float, sys.argv[3:6])
broker = (float(sys.argv[7]) - float(sys.argv[6])) / records * 1e6
runs = [list(map(float, open(f).read().split())) for f in sys.argv[8:11]]
rate = records / (t1 - t0 - idle)
cpu = sum(u + s for _, u, s, _ in runs)
ledger = runs[2][1] + runs[2][2]
rss = max(kb for *_, kb in runs)
print(f"| 2 × sliq run --role reader + 1 --role ledger, full spec | {rate:,.0f} | {rate / bare:.2f} | "
      f"{cpu / records * 1e6:.1f} (ledger {ledger / records * 1e6:.2f}) | {broker:.1f} | {rss / 1024:.0f} MB each at most | – |")
PY
  if [ -n "${ledger_stopped:-}" ]; then
    echo
    echo "The ledger did not stop by itself within a minute of the readers: stopped with SIGTERM."
    ledger_stopped=""
  fi
  # What the cores allow: with every core busy on sliq and the broker alone, no reader of this
  # spec can go faster than cores / (its CPU + the broker's CPU) per record.
  python3 - "$work/costs" "$(nproc)" "$bare_rate" <<'PY'
import sys
costs = {name: (float(cpu), float(broker)) for name, cpu, broker in
         (line.rstrip("\n").split("\t") for line in open(sys.argv[1]))}
cores, bare = int(sys.argv[2]), float(sys.argv[3])
for name in ("sliq run, full spec", "sliq run, no archive, no export"):
    cpu, broker = costs[name]
    most = cores / ((cpu + broker) / 1e6)
    print(f"\n{name}: {cores} cores / ({cpu:.1f} + {broker:.1f} µs per record, sliq + broker) = "
          f"at most {most:,.0f} records/s = {most / bare:.2f} of bare, with every core busy.", end="")
print()
PY
  rm -f "$work/costs"
  echo
  echo "Rates include start-up (joining the group: the same for every reader). The bare consumer's"
  echo "own rate from its first record to its last: $bare_own records/s."
}

echo "## End to end: $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), \
$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); broker: Nisshi (memory storage) on loopback."
echo "Wall time of sliq runs excludes the 2 s idle wait before exit; it includes start-up and the final flush."
table "1 KB" "$records_small" 0
table "16 KB" "$records_large" 16000
