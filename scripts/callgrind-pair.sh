#!/usr/bin/env bash
# Instructions per message of the in-memory engine pair, measured with callgrind: the example
# runs twice (SMALL and SMALL+DELTA messages) and the difference in instructions is divided by
# DELTA, so set-up costs cancel out. Usage: scripts/callgrind-pair.sh [SCENARIO] [DELTA]
# Scenarios: unsettled/message (default), unsettled/bytes, presettled/message, presettled/bytes.
# Leaves the larger run's profile in $OUT/<scenario>.out for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
SCEN=${1:-unsettled/message}
DELTA=${2:-100000}
SMALL=20000
OUT=${OUT:-/tmp/callgrind-pair}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p amqp-engine --example pair_throughput
BIN=$CARGO_TARGET_DIR/release/examples/pair_throughput
mkdir -p "$OUT"
name=${SCEN//\//-}
ir() {
  valgrind --tool=callgrind --callgrind-out-file="$2" "$BIN" "$1" "$SCEN" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
a=$(ir "$SMALL" "$OUT/$name.small.out")
b=$(ir "$((SMALL + DELTA))" "$OUT/$name.out")
echo "$SCEN: $(( (b - a) / DELTA )) instructions/message (callgrind, $DELTA messages)"
