#!/usr/bin/env bash
# Memory under sustained traffic: `sliq run` on pipelines/chatbot.yaml reads a 16-partition topic of
# ~16 KB records while they are produced at RATE records/s for MINUTES minutes (event time = wall
# time), on a Nisshi broker with sqlite storage (memory storage would hold every record in RAM).
# Samples sliq's resident memory every second and prints the peak, and the spread after the first
# minute (flat means within ±10% of its mean).
#
#   scripts/soak-memory.sh [MINUTES] [RATE]      (defaults 10 and 500)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
rate="${2:-500}"
work="$(mktemp -d)"
trap 'kill "${gen_pid:-0}" "${sliq_pid:-0}" "${broker_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet -p sliq
nisshi="$(realpath "$(scripts/broker.sh path)")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="tcp://127.0.0.1:$port"
brokers="127.0.0.1:$port"
(cd "$work" && exec "$nisshi" broker --listener-url "$url" --advertised-listener-url "$url" \
  --storage-engine sqlite://nisshi.db --group-initial-rebalance-delay 0s --silent) &
broker_pid=$!
sleep 1
"$nisshi" topic create --broker "$url" --partitions 16 soak >/dev/null
"$nisshi" topic create --broker "$url" --partitions 1 soak-dlq >/dev/null

count=$((rate * 60 * minutes))
./target/release/sliq gen --brokers "$brokers" --topic soak --count "$count" --rate "$rate" \
  --events-per-second "$rate" --start "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --answer-bytes 16000 \
  >"$work/gen.log" &
gen_pid=$!
KAFKA_BROKERS="$brokers" SLIQ_TOPIC=soak SLIQ_DLQ_TOPIC=soak-dlq SLIQ_GROUP=soak \
  OTLP_ENDPOINT="file://$work/metrics.jsonl" SLIQ_ARCHIVE_DIR="$work/archive" \
  SLIQ_STATE_DIR="$work/state" SLIQ_LOG=warn \
  ./target/release/sliq run --config pipelines/chatbot.yaml --exit-on-idle 10s --instance-id soak \
  >"$work/sliq.log" 2>&1 &
sliq_pid=$!

start="$(date +%s)"
: >"$work/rss"
while kill -0 "$sliq_pid" 2>/dev/null; do
  rss="$(awk '/VmRSS/ {print $2}' "/proc/$sliq_pid/status" 2>/dev/null || true)"
  [ -n "$rss" ] && echo "$(($(date +%s) - start)) $rss" >>"$work/rss"
  sleep 1
done
# The broker on sqlite can refuse the generator's writes after a while ("database is locked": seen after 11 and 21 minutes at 500 records/s); sliq then
# idles out early. Say so, and still print what was sampled while records flowed.
gen_ok=1
wait "$gen_pid" || gen_ok=0
wait "$sliq_pid" || { echo "sliq run failed:"; tail -20 "$work/sliq.log"; exit 1; }
cat "$work/gen.log"
if [ "$gen_ok" = 0 ]; then
  echo "the generator stopped early, after $(($(tail -1 "$work/rss" | cut -d' ' -f1) - 10)) s: the broker refused its writes (its error is above); the figures cover that time"
fi
python3 - "$work/rss" "$count" "$rate" "$minutes" "$gen_ok" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
count, rate, minutes, gen_ok = map(int, sys.argv[2:6])
# Records flow until the generator's end: its planned end, or (stopped early) the last sample
# less the 10 s sliq idles before it exits.
flow_end = minutes * 60 if gen_ok else rows[-1][0] - 10
peak = max(kb for _, kb in rows)


def spread(samples):
    if not samples:
        return "no samples"
    mean = sum(samples) / len(samples)
    lo, hi = min(samples), max(samples)
    return (f"min {lo / 1024:.0f} MB, max {hi / 1024:.0f} MB, mean {mean / 1024:.0f} MB, "
            f"spread {(lo / mean - 1) * 100:+.1f}% / {(hi / mean - 1) * 100:+.1f}% of the mean")


print(f"{count} records of ~16 KB at {rate}/s over {minutes} min, 16 partitions, {len(rows)} samples")
print(f"peak RSS {peak / 1024:.0f} MB; after the first minute: "
      + spread([kb for t, kb in rows if t >= 60]))
# After the generator stops, sliq idles for 10 s and closes its files: memory falls then.
print("while records flow (from the first minute to the generator's end): "
      + spread([kb for t, kb in rows if 60 <= t < flow_end]))
by_minute = ([kb for t, kb in rows if t // 60 == i] for i in range(minutes + 1))
print("mean RSS minute by minute: "
      + ", ".join(f"{sum(m) / len(m) / 1024:.0f}" for m in by_minute if m) + " MB")
PY
[ "$gen_ok" = 1 ]
