#!/usr/bin/env bash
# The fault tests (tests/tests/faults.rs, and the readers-and-ledger ones in tests/tests/ledger.rs)
# run longer than CI can afford: more SIGKILLs of sliq and of readers, a longer collector outage,
# a longer broker freeze and broker outage. Not run by CI.
#
#   scripts/fault-loop.sh [KILLS] [OUTAGE_SECONDS] [TEST_FILTER]
#
# KILLS (default 50) SIGKILLs of sliq, and as many of readers beside a ledger, under live traffic; OUTAGE_SECONDS (default 600) of
# collector outage; TEST_FILTER (default: every fault test) picks tests by name. The freeze and the
# broker outage scale with the outage (a tenth of it, at least their CI sizes). Other knobs:
# SLIQ_FAULT_SEED (the kill moments), SLIQ_FAULT_RATE (records per second). Prints each test's
# figures (recounted vs exported, archive duplicates and gaps, dead letters, commits).
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS="${1:-50}"
OUTAGE="${2:-600}"
FILTER="${3:-}"
TENTH=$(( OUTAGE / 10 ))
export SLIQ_FAULT_KILLS="$KILLS"
export SLIQ_FAULT_READER_KILLS="$KILLS"
export SLIQ_FAULT_OUTAGE_SECS="$OUTAGE"
export SLIQ_FAULT_FREEZE_SECS="${SLIQ_FAULT_FREEZE_SECS:-$(( TENTH > 25 ? TENTH : 25 ))}"
export SLIQ_FAULT_BROKER_DOWN_SECS="${SLIQ_FAULT_BROKER_DOWN_SECS:-$(( TENTH > 10 ? TENTH : 10 ))}"
export SLIQ_FAULT_SEED="${SLIQ_FAULT_SEED:-$(date +%s)}"

scripts/broker.sh install >/dev/null
scripts/python-env.sh >/dev/null
cargo build -p sliq
echo "fault loop: $SLIQ_FAULT_KILLS kills, outage ${SLIQ_FAULT_OUTAGE_SECS}s, freeze ${SLIQ_FAULT_FREEZE_SECS}s, broker down ${SLIQ_FAULT_BROKER_DOWN_SECS}s, seed $SLIQ_FAULT_SEED"
log="$(mktemp -t sliq-fault-loop.XXXXXX)"
status=0
# One test at a time: each starts its own broker, receiver and sliq processes.
cargo test -p sliq-tests --test faults --test ledger -- --test-threads 1 --nocapture $FILTER 2>&1 | tee "$log" || status=$?
echo
echo "== figures"
grep -E '^\[[a-z-]+\] ' "$log" || true
echo "== result: $( [ "$status" = 0 ] && echo PASS || echo "FAIL ($status)" ); full log: $log"
exit "$status"
