#!/usr/bin/env bash
# End-to-end throughput on the real rig, as a ratio measured in one run (machines are shared and
# noisy; absolute figures mean little). Produces N generated records into a 4-partition topic of a
# fresh Nisshi broker, then reads them (1) with a bare consumer that does nothing else and (2) with
# `sliq run` on pipelines/chatbot.yaml (decode, 8 SLOs, windows, budgets, OTLP/JSON file export,
# Parquet archive, commits). Prints both rates and their ratio.
#
#   scripts/bench-e2e.sh [RECORDS]        (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-300000}"
work="$(mktemp -d)"
trap 'kill "${broker_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet -p sliq
cargo build --release --quiet -p sliq-pipeline --example raw_consume
nisshi="$(scripts/broker.sh path)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="tcp://127.0.0.1:$port"
"$nisshi" broker --listener-url "$url" --advertised-listener-url "$url" \
  --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s --silent &
broker_pid=$!
sleep 1
"$nisshi" topic create --broker "$url" --partitions 4 bench >/dev/null
"$nisshi" topic create --broker "$url" --partitions 1 bench-dlq >/dev/null

./target/release/sliq gen --brokers "127.0.0.1:$port" --topic bench --count "$records" --events-per-second 500

raw="$(./target/release/examples/raw_consume "127.0.0.1:$port" bench "$records")"
echo "$raw"
raw_rate="$(echo "$raw" | sed -E 's/.*= ([0-9]+) records\/s/\1/')"

idle=2
start="$(date +%s.%N)"
KAFKA_BROKERS="127.0.0.1:$port" SLIQ_TOPIC=bench SLIQ_DLQ_TOPIC=bench-dlq SLIQ_GROUP=bench \
  OTLP_ENDPOINT="file://$work/metrics.jsonl" SLIQ_ARCHIVE_DIR="$work/archive" SLIQ_STATE_DIR="$work/state" \
  SLIQ_LOG=warn ./target/release/sliq run --config pipelines/chatbot.yaml --exit-on-idle "${idle}s" --instance-id bench
end="$(date +%s.%N)"
python3 - "$start" "$end" "$idle" "$records" "$raw_rate" <<'PY'
import sys
start, end, idle, records, raw = map(float, sys.argv[1:])
busy = end - start - idle
rate = records / busy
print(f"sliq run: {int(records)} records in {busy:.3f}s (wall time minus the {idle:.0f}s idle wait, "
      f"including start-up and the final flush) = {rate:.0f} records/s")
print(f"ratio sliq / bare consumer: {rate / raw:.2f}")
PY
