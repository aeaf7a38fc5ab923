#!/usr/bin/env bash
# Ours vs Qpid Proton C, measured in the same run, over loopback.
#
#   scripts/bench-proton-c.sh            # REPEAT=3 runs of each, medians in a table
#
# What it runs (every process is started in the background under `timeout`, remembered by PID,
# and stopped by that PID at the end or on error):
#   (a) Proton C's `direct` (listening receiver) + `send`, peer-to-peer;
#   (b) Proton C's `broker` + `receive` + `send` through it;
#   (c) our `amqp-perf` peer-to-peer, and through Proton C's broker, and through our own
#       example broker (`broker` of the `amqp-examples` package) when it is available.
# Proton C's examples are built twice from the packaged sources: as shipped (body: a small map
# {"sequence": n}; receivers print every message), and patched to be comparable with amqp-perf
# (a 100-byte `data` body; receivers decode but do not print). The broker is used as shipped
# (its incoming credit window is 5).
#
# Throughput is the message count over wall-clock time from starting the sending process(es)
# until every process of the run has exited, the same for Proton C and for amqp-perf;
# amqp-perf's own figure (first credit to last outcome) is shown next to it.
#
# Environment: PEER_COUNT (1000000), BROKER_COUNT (100000), REPEAT (3), BODY_SIZE (100),
# CREDIT (1000), RUN_TIMEOUT seconds per process (120), CARGO_TARGET_DIR,
# OUR_BROKER=/path/to/broker (else built from the workspace if it has `amqp-examples`, else
# skipped), LOG=file for every run's output.
set -euo pipefail
cd "$(dirname "$0")/.."

PEER_COUNT=${PEER_COUNT:-1000000}
BROKER_COUNT=${BROKER_COUNT:-100000}
REPEAT=${REPEAT:-3}
BODY_SIZE=${BODY_SIZE:-100}
CREDIT=${CREDIT:-1000}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
TARGET=${CARGO_TARGET_DIR:-target}

log() { printf '=== %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Proton C: install, find the example sources, build
# ---------------------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
pkgs=(libqpid-proton11-dev libqpid-proton11-dev-examples)
if ! dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
  log "apt-get install ${pkgs[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
src=$(dirname "$(dpkg -L libqpid-proton11-dev-examples | grep '/c/send\.c$' | head -n1)")
[ -f "$src/direct.c" ] || { echo "Proton C example sources not found" >&2; exit 2; }
proton_version=$(dpkg-query -W -f '${Version}' libqpid-proton11-dev)

work=$(mktemp -d /tmp/bench-proton-c.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Debian ships core and proactor together in libqpid-proton.so (the CMake build links
# Proton::core + Proton::proactor, which are that library's two halves).
cc_example() { # name source.c
  gcc -O2 -o "$work/$1" "$2" -I"$src" -lqpid-proton -lpthread
}
log "building Proton C $proton_version examples from $src"
for n in send receive direct broker; do cc_example "$n" "$src/$n.c"; done

# Patched copies: a BODY_SIZE-byte `data` body (inferred binary), and no per-message printing.
perl -0pe 's{pn_data_put_map\(body\);.*?pn_data_exit\(body\);}{pn_message_set_inferred(app->message, true); { static char perf_body[PERF_BODY_SIZE]; pn_data_put_binary(body, pn_bytes(sizeof perf_body, perf_body)); } /* PERF-PATCHED */}s' \
  "$src/send.c" >"$work/send-body.c"
unprint='s{pn_string_t \*s = pn_string\(NULL\);.*?pn_free\(s\);}{/* PERF-PATCHED: no printing */}s'
perl -0pe "$unprint" "$src/direct.c" >"$work/direct-quiet.c"
perl -0pe "$unprint" "$src/receive.c" >"$work/receive-quiet.c"
for f in send-body direct-quiet receive-quiet; do
  grep -q PERF-PATCHED "$work/$f.c" || { echo "patching $f.c failed" >&2; exit 2; }
done
gcc -O2 -DPERF_BODY_SIZE="$BODY_SIZE" -o "$work/send-body" "$work/send-body.c" -I"$src" -lqpid-proton -lpthread
cc_example direct-quiet "$work/direct-quiet.c"
cc_example receive-quiet "$work/receive-quiet.c"

# ---------------------------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------------------------
log "building amqp-perf (release)"
cargo build --release -q -p amqp-perf
PERF="$TARGET/release/amqp-perf"
OUR_BROKER=${OUR_BROKER:-}
our_broker_note=""
if [ -z "$OUR_BROKER" ]; then
  if cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"name":"amqp-examples"'; then
    log "building our example broker (release)"
    cargo build --release -q -p amqp-examples --bin broker
    OUR_BROKER="$TARGET/release/broker"
  else
    our_broker_note="skipped: no amqp-examples package in this workspace (set OUR_BROKER=path)"
  fi
fi
if [ -n "$OUR_BROKER" ] && [ ! -x "$OUR_BROKER" ]; then
  our_broker_note="skipped: $OUR_BROKER is not executable"
  OUR_BROKER=""
fi

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
LOG=${LOG:-$work/runs.log}
: >"$LOG"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
# start_bg OUTFILE CMD... : runs CMD under `timeout` in the background; sets BG to its PID.
start_bg() {
  local out=$1; shift
  timeout "$RUN_TIMEOUT" "$@" >"$out" 2>&1 &
  BG=$!
  PIDS+=("$BG")
}
# wait_line FILE PATTERN PID: until FILE has a line matching PATTERN (10 s at most).
wait_line() {
  local i
  for i in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  echo "no '$2' from $1:" >&2; cat "$1" >&2; return 1
}
# stop PID: stops a background process we started and reaps it.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rate() { echo "scale=1; $1 / ($3 - $2)" | bc; }
# child_cpu VAR: sets VAR to the user+sys seconds of the waited-for children of this (sub)shell
# so far. `times` is a builtin: called here, not in a $(...) subshell, it sees our children.
child_cpu() {
  local f="$work/times.$BASHPID" v
  times >"$f"
  v=$(awk 'NR==2 { t=0; for (i=1;i<=2;i++) { split($i,a,"m"); sub("s","",a[2]); t+=a[1]*60+a[2] } printf "%.6f", t }' "$f")
  rm -f "$f"
  printf -v "$1" '%s' "$v"
}
# cpu_us N C0 C1: CPU microseconds per message
cpu_us() { echo "scale=2; ($3 - $2) * 1000000 / $1" | bc; }
# median of the numbers in its input (failed runs, "-", are left out)
median() { tr ' ' '\n' | { grep -E '^[0-9.]+$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }
json_field() { grep '^{' | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

# Proton C peer-to-peer: RECEIVER SENDER N -> prints "msg/s cpu_us_per_msg"
proton_peer() {
  local recv=$1 send=$2 n=$3 port out t0 t1 c0 c1 rc=0
  port=$(free_port); out="$work/out.$RANDOM"
  start_bg "$out.recv" "$work/$recv" 127.0.0.1 "$port" perf "$n"
  local rpid=$BG
  wait_line "$out.recv" "listening on" "$rpid" || { stop "$rpid"; echo "- -"; return; }
  child_cpu c0; t0=$(now)
  timeout "$RUN_TIMEOUT" "$work/$send" 127.0.0.1 "$port" perf "$n" >"$out.send" 2>&1 || rc=$?
  wait "$rpid" || rc=$?
  t1=$(now); child_cpu c1
  { echo "--- proton peer $recv/$send n=$n rc=$rc"; tail -n2 "$out.recv" "$out.send"; } >>"$LOG"
  grep -q "^$n messages received" "$out.recv" && grep -q "^$n messages sent and acknowledged" "$out.send" && [ "$rc" = 0 ] \
    || { echo "proton peer run failed (see $LOG)" >&2; rm -f "$out".*; echo "- -"; return; }
  rm -f "$out".*
  echo "$(rate "$n" "$t0" "$t1") $(cpu_us "$n" "$c0" "$c1")"
}

# Proton C through a broker: PORT RECEIVER SENDER N -> prints "msg/s cpu_us_per_msg" (clients'
# CPU only: the broker runs throughout)
proton_via() {
  local port=$1 recv=$2 send=$3 n=$4 q="q$RANDOM$RANDOM" out t0 t1 c0 c1 rc=0
  out="$work/out.$RANDOM"
  child_cpu c0; t0=$(now)
  start_bg "$out.recv" "$work/$recv" 127.0.0.1 "$port" "$q" "$n"
  local rpid=$BG
  timeout "$RUN_TIMEOUT" "$work/$send" 127.0.0.1 "$port" "$q" "$n" >"$out.send" 2>&1 || rc=$?
  wait "$rpid" || rc=$?
  t1=$(now); child_cpu c1
  { echo "--- proton via :$port $recv/$send n=$n rc=$rc"; tail -n2 "$out.recv" "$out.send"; } >>"$LOG"
  grep -q "^$n messages received" "$out.recv" && grep -q "^$n messages sent and acknowledged" "$out.send" && [ "$rc" = 0 ] \
    || { echo "proton broker run failed (see $LOG)" >&2; rm -f "$out".*; echo "- -"; return; }
  rm -f "$out".*
  echo "$(rate "$n" "$t0" "$t1") $(cpu_us "$n" "$c0" "$c1")"
}

# amqp-perf N ARGS... -> prints "wall_msg_per_s own_msg_per_s cpu_us_per_msg"
ours() {
  local n=$1; shift
  local out="$work/out.$RANDOM" t0 t1 c0 c1 rc=0
  child_cpu c0; t0=$(now)
  timeout "$RUN_TIMEOUT" "$PERF" "$@" --count "$n" --body-size "$BODY_SIZE" --credit "$CREDIT" \
    --duration-max "$((RUN_TIMEOUT - 10))" >"$out" 2>&1 || rc=$?
  t1=$(now); child_cpu c1
  { echo "--- amqp-perf $* n=$n rc=$rc"; cat "$out"; } >>"$LOG"
  if [ "$rc" != 0 ] || ! grep -q '"complete":true' "$out"; then
    echo "amqp-perf run failed (see $LOG)" >&2; rm -f "$out"; echo "- - -"; return
  fi
  echo "$(rate "$n" "$t0" "$t1") $(json_field msg_per_s <"$out") $(cpu_us "$n" "$c0" "$c1")"
  rm -f "$out"
}

# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
declare -A WALL INTERNAL CPU
add() { WALL[$1]="${WALL[$1]:-} $2"; INTERNAL[$1]="${INTERNAL[$1]:-} ${3:-}"; CPU[$1]="${CPU[$1]:-} ${4:-}"; }
# proton KEY ARGS...: a Proton C run; ours KEY N ARGS...: an amqp-perf run
proton_run() { local key=$1 w c; shift; read -r w c < <("$@"); add "$key" "$w" "" "$c"; }
ours_run() { local key=$1 w i c; shift; read -r w i c < <(ours "$@"); add "$key" "$w" "$i" "$c"; }

# Interleave the contenders (run r of each, then run r+1) so background load hits them alike.
pbroker_port=$(free_port)
start_bg "$work/pbroker.out" "$work/broker" 127.0.0.1 "$pbroker_port"
PBROKER=$BG
wait_line "$work/pbroker.out" "listening on" "$PBROKER"
if [ -n "$OUR_BROKER" ]; then
  obroker_port=$(free_port)
  start_bg "$work/obroker.out" "$OUR_BROKER" -a "127.0.0.1:$obroker_port"
  OBROKER=$BG
  wait_line "$work/obroker.out" "istening" "$OBROKER"
fi

for r in $(seq 1 "$REPEAT"); do
  log "round $r/$REPEAT: peer-to-peer, $PEER_COUNT messages"
  proton_run p_c_shipped proton_peer direct send "$PEER_COUNT"
  proton_run p_c_patched proton_peer direct-quiet send-body "$PEER_COUNT"
  ours_run p_ours "$PEER_COUNT" peer
  ours_run p_ours_pre "$PEER_COUNT" peer --settle-mode presettled
  log "round $r/$REPEAT: through Proton C's broker, $BROKER_COUNT messages"
  proton_run b_c_shipped proton_via "$pbroker_port" receive send "$BROKER_COUNT"
  proton_run b_c_patched proton_via "$pbroker_port" receive-quiet send-body "$BROKER_COUNT"
  ours_run b_ours "$BROKER_COUNT" --url "amqp://127.0.0.1:$pbroker_port/perf$r"
  if [ -n "$OUR_BROKER" ]; then
    log "round $r/$REPEAT: through our broker, $BROKER_COUNT messages"
    proton_run o_c_patched proton_via "$obroker_port" receive-quiet send-body "$BROKER_COUNT"
    ours_run o_ours "$BROKER_COUNT" --url "amqp://127.0.0.1:$obroker_port/perf$r"
  fi
done
stop "$PBROKER"
[ -n "$OUR_BROKER" ] && stop "$OBROKER"

# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------
row() { # key label
  local runs med imed cmed
  runs=$(echo ${WALL[$1]:-} | tr ' ' '/')
  med=$(echo "${WALL[$1]:-}" | median)
  imed=$(echo "${INTERNAL[$1]:-}" | median)
  cmed=$(echo "${CPU[$1]:-}" | median)
  printf '| %-62s | %12s | %12s | %10s | %-32s |\n' "$2" "$med" "$imed" "$cmed" "$runs"
}
ratio() { # key base
  local a b
  a=$(echo "${WALL[$1]:-}" | median); b=$(echo "${WALL[$2]:-}" | median)
  if [[ "$a" =~ ^[0-9.]+$ && "$b" =~ ^[0-9.]+$ ]]; then echo "scale=2; $a / $b" | bc; else echo "-"; fi
}
echo
echo "Loopback, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), Proton C $proton_version, body $BODY_SIZE B, credit $CREDIT (amqp-perf)"
echo "msg/s: median of $REPEAT runs, wall clock from starting the sender(s) to the exit of every process;"
echo "CPU us/msg: median user+sys CPU of the run's processes per message (broker runs: the clients only)"
echo
printf '| %-62s | %12s | %12s | %10s | %-32s |\n' "run" "msg/s (wall)" "msg/s (own)" "CPU us/msg" "runs (wall msg/s)"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..34})"
row p_c_shipped "Proton C send -> direct, as shipped (map body, prints) $PEER_COUNT"
row p_c_patched "Proton C send -> direct, ${BODY_SIZE} B data, no print $PEER_COUNT"
row p_ours "amqp-perf peer, unsettled $PEER_COUNT"
row p_ours_pre "amqp-perf peer, presettled $PEER_COUNT"
row b_c_shipped "Proton C send/receive via Proton broker, as shipped $BROKER_COUNT"
row b_c_patched "Proton C send/receive via Proton broker, ${BODY_SIZE} B $BROKER_COUNT"
row b_ours "amqp-perf via Proton broker, unsettled $BROKER_COUNT"
if [ -n "$OUR_BROKER" ]; then
  row o_c_patched "Proton C send/receive via our broker, ${BODY_SIZE} B $BROKER_COUNT"
  row o_ours "amqp-perf via our broker, unsettled $BROKER_COUNT"
fi
echo
echo "peer-to-peer, amqp-perf unsettled / Proton C as shipped: $(ratio p_ours p_c_shipped)x; / Proton C ${BODY_SIZE} B no print: $(ratio p_ours p_c_patched)x"
echo "via Proton broker, amqp-perf / Proton C clients (${BODY_SIZE} B): $(ratio b_ours b_c_patched)x"
if [ -n "$OUR_BROKER" ]; then
  echo "our broker / Proton C broker, Proton C clients (${BODY_SIZE} B): $(ratio o_c_patched b_c_patched)x; amqp-perf clients: $(ratio o_ours b_ours)x"
else
  echo "our broker: $our_broker_note"
fi
[ "$LOG" != "$work/runs.log" ] && echo "every run's output: $LOG"
exit 0
