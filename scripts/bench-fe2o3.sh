#!/usr/bin/env bash
# fe2o3-amqp's clients (default settings) through our example broker and through Qpid Proton
# C's example broker, in the same run: a Markdown table and a throughput floor check.
#
#   scripts/bench-fe2o3.sh        # REPEAT=3 runs of each, medians
#
# Two shapes per broker, each on a fresh broker process:
#   live     the receiver attaches first, then the sender sends COUNT messages (fe2o3's
#            `Sender::send` awaits each outcome); msg/s = COUNT over the wall time from starting
#            the sender until both have exited;
#   backlog  the sender queues COUNT messages, then the receiver drains them (credit 200,
#            one disposition per accept); msg/s = the receiver's own figure (first message to
#            last accept). This is the shape that stalled on delayed ACKs (~40 ms per batch).
# Floors (the script exits 1 after printing the table when one is missed): backlog, our broker
# >= FLOOR (1.0) x Proton C's broker; live, >= LIVE_FLOOR (0.5) x (live is bound by the
# round trip per message and we are behind there: see examples/perf/README.md).
#
# Environment: COUNT (20000), BODY_SIZE (100), REPEAT (3), FLOOR (1.0), LIVE_FLOOR (0.5),
# RUN_TIMEOUT seconds per process (120), LOG=file for every run's output.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-20000}
BODY_SIZE=${BODY_SIZE:-100}
REPEAT=${REPEAT:-3}
FLOOR=${FLOOR:-1.0}
LIVE_FLOOR=${LIVE_FLOOR:-0.5}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
LOG=${LOG:-/dev/null}

log() { printf '=== %s\n' "$*" >&2; }

log "building: our broker (release), Proton C's examples, the fe2o3 peer"
cargo build -q --release -p amqp-examples --bin broker
our_broker=$(pwd)/target/release/broker
pc_dir=$(scripts/proton-c-examples.sh)
peer=$(scripts/fe2o3.sh)

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

BROKER_PID=
start_broker() { # ours|proton-c port
  if [ "$1" = ours ]; then
    timeout "$RUN_TIMEOUT" "$our_broker" -a "127.0.0.1:$2" >>"$LOG" 2>&1 &
  else
    (cd "$pc_dir" && exec timeout "$RUN_TIMEOUT" ./broker 127.0.0.1 "$2" >>"$LOG" 2>&1) &
  fi
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "broker $1 did not listen on $2" >&2
  exit 2
}
stop_broker() { kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }

peer_run() { # mode url address -> prints the peer's msg/s
  local out
  out=$(timeout "$RUN_TIMEOUT" "$peer" "$1" "$2" "$3" "$COUNT" "$BODY_SIZE")
  echo "$out" >>"$LOG"
  echo "$out" | awk '{print $(NF-1)}'
}

live() { # url -> msg/s over wall time
  local r t0 t1
  timeout "$RUN_TIMEOUT" "$peer" receive "$1" live "$COUNT" "$BODY_SIZE" >>"$LOG" &
  r=$!
  PIDS+=("$r")
  sleep 0.3
  t0=$(date +%s.%N)
  timeout "$RUN_TIMEOUT" "$peer" send "$1" live "$COUNT" "$BODY_SIZE" >>"$LOG"
  wait "$r"
  t1=$(date +%s.%N)
  awk -v n="$COUNT" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A results
for broker in ours proton-c; do
  live_runs=() backlog_runs=()
  for i in $(seq "$REPEAT"); do
    port=$(free_port)
    start_broker "$broker" "$port"
    url="amqp://127.0.0.1:$port"
    live_runs+=("$(live "$url")")
    peer_run send "$url" backlog >/dev/null
    backlog_runs+=("$(peer_run receive "$url" backlog)")
    stop_broker
    log "$broker run $i: live ${live_runs[-1]} msg/s, backlog ${backlog_runs[-1]} msg/s"
  done
  results[$broker-live]=$(printf '%s\n' "${live_runs[@]}" | median)
  results[$broker-backlog]=$(printf '%s\n' "${backlog_runs[@]}" | median)
done

fe2o3_version=$(awk '/name = "fe2o3-amqp"/ { getline; gsub(/[^0-9.]/, ""); print }' scripts/fe2o3-peer/Cargo.lock)
proton_version=$(dpkg-query -W -f '${Version}' libqpid-proton11-dev 2>/dev/null || echo '?')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
live_ratio=$(ratio "${results[ours-live]}" "${results[proton-c-live]}")
backlog_ratio=$(ratio "${results[ours-backlog]}" "${results[proton-c-backlog]}")

echo
echo "fe2o3-amqp $fe2o3_version clients, $COUNT messages of $BODY_SIZE B, median of $REPEAT; Proton C $proton_version; $(uptime | sed 's/.*load/load/')"
echo
echo "| fe2o3-amqp clients | our broker msg/s | Proton C broker msg/s | ours / Proton C |"
echo "|---|---:|---:|---:|"
echo "| live (receiver attached, sender awaits each outcome) | ${results[ours-live]} | ${results[proton-c-live]} | $live_ratio |"
echo "| backlog (receiver drains $COUNT queued) | ${results[ours-backlog]} | ${results[proton-c-backlog]} | $backlog_ratio |"
echo

below() { awk -v r="$1" -v f="$2" 'BEGIN { exit !(r < f) }'; }
fail=0
if below "$backlog_ratio" "$FLOOR"; then
  echo "FLOOR: backlog, our broker is below $FLOOR x Proton C's broker" >&2
  fail=1
fi
if below "$live_ratio" "$LIVE_FLOOR"; then
  echo "FLOOR: live, our broker is below $LIVE_FLOOR x Proton C's broker" >&2
  fail=1
fi
[ "$fail" = 0 ] || exit 1
echo "floors ok: backlog >= $FLOOR x, live >= $LIVE_FLOOR x Proton C's broker"
