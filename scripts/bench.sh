#!/usr/bin/env bash
# Every row of the end-to-end performance table in one run, over loopback: amqp-perf, Qpid
# Proton C's examples, fe2o3-amqp's clients and RabbitMQ, written as one Markdown table headed
# by the date, the machine's load and the command.
#
#   scripts/bench.sh                    # REPEAT=3 runs of each row, medians; OUT=file to keep it
#
# Rows (msg/s: the message count over the wall-clock time from starting the sending
# process(es) until every process of the run has exited, process start included; amqp-perf's
# own figure, first credit to last outcome, beside it; every outcome awaited):
#   peer-to-peer   amqp-perf -> amqp-perf in two processes (100 B and 1 KiB); amqp-perf `peer`
#                  in one process; Proton C `send` -> `direct` (100 B and 1 KiB data bodies,
#                  receivers do not print); Proton C `send` -> amqp-perf receiver;
#   brokers        Proton C clients through our example broker and through Proton C's example
#                  broker; amqp-perf through both (100 B; 1 KiB through ours); fe2o3-amqp's
#                  clients through both (scripts/bench-fe2o3.sh's live and backlog shapes);
#                  amqp-perf and Proton C clients through RabbitMQ (scripts/rabbitmq.sh);
#   latency        amqp-perf paced at RATE msg/s, peer-to-peer and through our broker.
# amqp-perf rows also give allocations per message (its counting allocator, steady state).
#
# Every process runs under `timeout`, is remembered by PID and stopped by that PID; RabbitMQ is
# started and stopped by scripts/rabbitmq.sh in a temporary directory.
#
# Environment: COUNT (200000), RABBIT_COUNT (100000), FE2O3_COUNT (20000), REPEAT (3),
# RATE (100000), CREDIT (1000), RUN_TIMEOUT seconds per process (120), SKIP_RABBITMQ=1,
# SKIP_FE2O3=1, LOG=file for every run's output, OUT=file for the table (also on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
command_line="scripts/bench.sh${*:+ $*}"
for v in COUNT RABBIT_COUNT FE2O3_COUNT REPEAT RATE CREDIT SKIP_RABBITMQ SKIP_FE2O3; do
  [ -n "${!v:-}" ] && command_line="$v=${!v} $command_line"
done

COUNT=${COUNT:-200000}
RABBIT_COUNT=${RABBIT_COUNT:-100000}
FE2O3_COUNT=${FE2O3_COUNT:-20000}
REPEAT=${REPEAT:-3}
RATE=${RATE:-100000}
CREDIT=${CREDIT:-1000}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
TARGET=${CARGO_TARGET_DIR:-target}
started=$(date -u +%Y-%m-%dT%H:%MZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '=== %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Build: ours, Proton C's examples (as shipped and with a data body), fe2o3's peer
# ---------------------------------------------------------------------------------------------
log "building amqp-perf and our broker (release)"
cargo build --release -q -p amqp-perf -p amqp-examples --bin amqp-perf --bin broker
PERF="$TARGET/release/amqp-perf"
OUR_BROKER="$TARGET/release/broker"
pc_dir=$(scripts/proton-c-examples.sh)
src=/usr/share/proton/examples/c
proton_version=$(dpkg-query -W -f '${Version}' libqpid-proton11-dev)

work=$(mktemp -d /tmp/bench.XXXXXX)
PIDS=()
RABBIT_DIR=""
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$RABBIT_DIR" ] && scripts/rabbitmq.sh stop "$RABBIT_DIR" || true
  rm -rf "$work"
}
trap cleanup EXIT

# Patched copies: a BODY-byte `data` body (inferred binary) and no per-message printing, so
# Proton C moves the same messages as amqp-perf and does not time its terminal.
perl -0pe 's{pn_data_put_map\(body\);.*?pn_data_exit\(body\);}{pn_message_set_inferred(app->message, true); { static char perf_body[PERF_BODY_SIZE]; pn_data_put_binary(body, pn_bytes(sizeof perf_body, perf_body)); } /* PERF-PATCHED */}s' \
  "$src/send.c" >"$work/send-body.c"
unprint='s{pn_string_t \*s = pn_string\(NULL\);.*?pn_free\(s\);}{/* PERF-PATCHED: no printing */}s'
perl -0pe "$unprint" "$src/direct.c" >"$work/direct-quiet.c"
perl -0pe "$unprint" "$src/receive.c" >"$work/receive-quiet.c"
for f in send-body direct-quiet receive-quiet; do
  grep -q PERF-PATCHED "$work/$f.c" || { echo "patching $f.c failed" >&2; exit 2; }
done
cc_example() { gcc -O2 "$@" -I"$src" -lqpid-proton -lpthread; }
cc_example -DPERF_BODY_SIZE=100 -o "$work/send-100" "$work/send-body.c"
cc_example -DPERF_BODY_SIZE=1024 -o "$work/send-1024" "$work/send-body.c"
cc_example -o "$work/direct-quiet" "$work/direct-quiet.c"
cc_example -o "$work/receive-quiet" "$work/receive-quiet.c"
cp "$pc_dir/broker" "$work/broker"

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
LOG=${LOG:-$work/runs.log}
: >"$LOG"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
start_bg() { # OUTFILE CMD...: CMD under `timeout` in the background; BG is its PID
  local out=$1; shift
  timeout "$RUN_TIMEOUT" "$@" >"$out" 2>&1 &
  BG=$!
  PIDS+=("$BG")
}
wait_port() { # PORT PID: until PORT accepts connections (10 s at most)
  local i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}
wait_line() { # FILE PATTERN PID: until FILE has a line matching PATTERN (10 s at most); for
  # single-connection listeners, which a probing connect would use up
  local i
  for i in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  echo "no '$2' in $1" >&2; return 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rate() { echo "scale=1; $1 / ($3 - $2)" | bc; }
child_cpu() { # VAR: user+sys seconds of this shell's waited-for children so far
  local f="$work/times.$BASHPID" v
  times >"$f"
  v=$(awk 'NR==2 { t=0; for (i=1;i<=2;i++) { split($i,a,"m"); sub("s","",a[2]); t+=a[1]*60+a[2] } printf "%.6f", t }' "$f")
  rm -f "$f"
  printf -v "$1" '%s' "$v"
}
cpu_us() { echo "scale=2; ($3 - $2) * 1000000 / $1" | bc; }
median() { tr ' ' '\n' | { grep -E '^[0-9.]+$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }
# perf_json FILE: "own p50 p99 p99.9 allocs" from amqp-perf's JSON line ("-" where absent)
perf_json() {
  python3 - "$1" <<'PY'
import json, sys
line = next((l for l in open(sys.argv[1]) if l.startswith('{')), None)
if line is None:
    print('- - - - -'); sys.exit()
j = json.loads(line)
lat = j.get('latency_ms') or {}
al = j.get('allocations') or {}
f = lambda v, fmt: (fmt % v) if v is not None else '-'
print(f(j.get('msg_per_s'), '%.0f'), f(lat.get('p50'), '%.3f'), f(lat.get('p99'), '%.3f'),
      f(lat.get('p99_9'), '%.3f'), f(al.get('per_msg'), '%.3f'))
PY
}
perf_ok() { grep -q '"complete":true' "$1"; }

# Each run prints "wall own cpu p50 p99 p99.9 allocs" ("-" where it has no such figure).
FAIL="- - - - - - -"

# amqp-perf, one process (peer or through a broker): N ARGS...
ours_one() {
  local n=$1; shift
  local out="$work/out.$RANDOM" t0 t1 c0 c1 rc=0
  child_cpu c0; t0=$(now)
  timeout "$RUN_TIMEOUT" "$PERF" "$@" --count "$n" --credit "$CREDIT" \
    --duration-max "$((RUN_TIMEOUT - 10))" >"$out" 2>&1 || rc=$?
  t1=$(now); child_cpu c1
  { echo "--- amqp-perf $* n=$n rc=$rc"; cat "$out"; } >>"$LOG"
  if [ "$rc" != 0 ] || ! perf_ok "$out"; then echo "amqp-perf $* failed (see $LOG)" >&2; echo "$FAIL"; return; fi
  local own p50 p99 p999 al
  read -r own p50 p99 p999 al < <(perf_json "$out")
  echo "$(rate "$n" "$t0" "$t1") $own $(cpu_us "$n" "$c0" "$c1") $p50 $p99 $p999 $al"
  rm -f "$out"
}

# A listening receiver (amqp-perf --role receiver, or Proton C `direct`) and a sender process
# (amqp-perf --role sender, or Proton C `send`): RECEIVER SENDER N BODY
pair() {
  local recv=$1 send=$2 n=$3 body=$4 port out t0 t1 c0 c1 rc=0 rpid
  port=$(free_port); out="$work/out.$RANDOM"
  case "$recv" in
    ours) start_bg "$out.recv" "$PERF" peer --role receiver --url "amqp://127.0.0.1:$port" \
            --count "$n" --credit "$CREDIT" --duration-max "$((RUN_TIMEOUT - 10))" ;;
    proton) start_bg "$out.recv" "$work/direct-quiet" 127.0.0.1 "$port" perf "$n" ;;
  esac
  rpid=$BG
  wait_line "$out.recv" "listening on" "$rpid" || { stop "$rpid"; echo "$FAIL"; return; }
  child_cpu c0; t0=$(now)
  case "$send" in
    ours) timeout "$RUN_TIMEOUT" "$PERF" peer --role sender --url "amqp://127.0.0.1:$port" \
            --count "$n" --body-size "$body" --duration-max "$((RUN_TIMEOUT - 10))" >"$out.send" 2>&1 || rc=$? ;;
    proton) timeout "$RUN_TIMEOUT" "$work/send-$body" 127.0.0.1 "$port" perf "$n" >"$out.send" 2>&1 || rc=$? ;;
  esac
  wait "$rpid" || rc=$?
  t1=$(now); child_cpu c1
  { echo "--- pair $recv <- $send n=$n body=$body rc=$rc"; tail -n3 "$out.recv" "$out.send"; } >>"$LOG"
  local ok=1
  [ "$rc" = 0 ] || ok=0
  if [ "$recv" = proton ]; then grep -q "^$n messages received" "$out.recv" || ok=0; else perf_ok "$out.recv" || ok=0; fi
  if [ "$send" = proton ]; then grep -q "^$n messages sent and acknowledged" "$out.send" || ok=0; else perf_ok "$out.send" || ok=0; fi
  if [ "$ok" = 0 ]; then echo "pair $recv <- $send failed (see $LOG)" >&2; rm -f "$out".*; echo "$FAIL"; return; fi
  local own="-" al="-" x
  if [ "$send" = ours ]; then read -r own x x x al < <(perf_json "$out.send"); fi
  if [ "$recv" = ours ]; then
    local rown ral
    read -r rown x x x ral < <(perf_json "$out.recv")
    [ "$own" = "-" ] && own=$rown
    al="${al}/${ral}"
  fi
  rm -f "$out".*
  echo "$(rate "$n" "$t0" "$t1") $own $(cpu_us "$n" "$c0" "$c1") - - - $al"
}

# Proton C's `send` and `receive` (quiet) through a broker: HOST_PORT ADDRESS N
proton_via() {
  local port=$1 q=$2 n=$3 out t0 t1 c0 c1 rc=0 rpid
  out="$work/out.$RANDOM"
  child_cpu c0; t0=$(now)
  start_bg "$out.recv" "$work/receive-quiet" 127.0.0.1 "$port" "$q" "$n"
  rpid=$BG
  timeout "$RUN_TIMEOUT" "$work/send-100" 127.0.0.1 "$port" "$q" "$n" >"$out.send" 2>&1 || rc=$?
  wait "$rpid" || rc=$?
  t1=$(now); child_cpu c1
  { echo "--- proton via :$port $q n=$n rc=$rc"; tail -n2 "$out.recv" "$out.send"; } >>"$LOG"
  grep -q "^$n messages received" "$out.recv" && grep -q "^$n messages sent and acknowledged" "$out.send" && [ "$rc" = 0 ] \
    || { echo "proton via $port failed (see $LOG)" >&2; rm -f "$out".*; echo "$FAIL"; return; }
  rm -f "$out".*
  echo "$(rate "$n" "$t0" "$t1") - $(cpu_us "$n" "$c0" "$c1") - - - -"
}

declare -A WALL OWN CPU P50 P99 P999 ALLOC LABEL
ORDER=()
add() { # KEY LABEL CMD...: runs CMD (a function above) and files its figures under KEY
  local key=$1 label=$2 w o c a b d al; shift 2
  read -r w o c a b d al < <("$@")
  [ -n "${LABEL[$key]:-}" ] || ORDER+=("$key")
  LABEL[$key]=$label
  WALL[$key]="${WALL[$key]:-} $w"; OWN[$key]="${OWN[$key]:-} $o"; CPU[$key]="${CPU[$key]:-} $c"
  P50[$key]="${P50[$key]:-} $a"; P99[$key]="${P99[$key]:-} $b"; P999[$key]="${P999[$key]:-} $d"
  ALLOC[$key]="${ALLOC[$key]:-} $al"
}

# ---------------------------------------------------------------------------------------------
# Brokers
# ---------------------------------------------------------------------------------------------
pb_port=$(free_port)
# The brokers serve every round: bounded by the whole run's time, not one run's.
BROKER_TIMEOUT=$((RUN_TIMEOUT * 20 * REPEAT))
timeout "$BROKER_TIMEOUT" "$work/broker" 127.0.0.1 "$pb_port" >"$work/pbroker.out" 2>&1 &
PBROKER=$!
PIDS+=("$PBROKER")
wait_port "$pb_port" "$PBROKER"
ob_port=$(free_port)
timeout "$BROKER_TIMEOUT" "$OUR_BROKER" -a "127.0.0.1:$ob_port" >"$work/obroker.out" 2>&1 &
OBROKER=$!
PIDS+=("$OBROKER")
wait_port "$ob_port" "$OBROKER"
rabbit_port=""
if [ "${SKIP_RABBITMQ:-}" != 1 ]; then
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    RABBIT_DIR="$work/rabbitmq"
    read -r rabbit_port _ < <(scripts/rabbitmq.sh start "$RABBIT_DIR") || rabbit_port=""
  else
    log "RabbitMQ is not installed: its rows are skipped"
  fi
fi

# ---------------------------------------------------------------------------------------------
# Runs, interleaved (round r of every row, then round r+1) so background load hits all alike
# ---------------------------------------------------------------------------------------------
K=$((COUNT / 1000))k
for r in $(seq 1 "$REPEAT"); do
  log "round $r/$REPEAT: peer-to-peer, $COUNT messages"
  add p_ours2 "amqp-perf -> amqp-perf, two processes, 100 B" pair ours ours "$COUNT" 100
  add p_ours2_1k "amqp-perf -> amqp-perf, two processes, 1 KiB" pair ours ours "$COUNT" 1024
  add p_ours1 "amqp-perf \`peer\`, one process, 100 B" ours_one "$COUNT" peer --body-size 100
  add p_ours1_1k "amqp-perf \`peer\`, one process, 1 KiB" ours_one "$COUNT" peer --body-size 1024
  add p_pc "Proton C \`send\` -> \`direct\`, 100 B" pair proton proton "$COUNT" 100
  add p_pc_1k "Proton C \`send\` -> \`direct\`, 1 KiB" pair proton proton "$COUNT" 1024
  add p_pc_ours "Proton C \`send\` -> amqp-perf receiver, 100 B" pair ours proton "$COUNT" 100
  log "round $r/$REPEAT: brokers, $COUNT messages"
  add b_pc_ob "Proton C clients through our broker" proton_via "$ob_port" "pc$r" "$COUNT"
  add b_pc_pb "Proton C clients through Proton C's broker" proton_via "$pb_port" "pc$r" "$COUNT"
  add b_ours_ob "amqp-perf through our broker, 100 B" ours_one "$COUNT" --url "amqp://127.0.0.1:$ob_port/o$r" --body-size 100
  add b_ours_ob_1k "amqp-perf through our broker, 1 KiB" ours_one "$COUNT" --url "amqp://127.0.0.1:$ob_port/k$r" --body-size 1024
  add b_ours_pb "amqp-perf through Proton C's broker, 100 B" ours_one "$COUNT" --url "amqp://127.0.0.1:$pb_port/o$r" --body-size 100
  if [ -n "$rabbit_port" ]; then
    log "round $r/$REPEAT: RabbitMQ, $RABBIT_COUNT messages"
    add r_ours "amqp-perf through RabbitMQ ($RABBIT_COUNT msgs)" ours_one "$RABBIT_COUNT" --url "amqp://127.0.0.1:$rabbit_port//queue/bench-ours-$r" --body-size 100
    add r_pc "Proton C clients through RabbitMQ ($RABBIT_COUNT msgs)" proton_via "$rabbit_port" "/queue/bench-pc-$r" "$RABBIT_COUNT"
  fi
  log "round $r/$REPEAT: latency, paced at $RATE msg/s"
  add l_p "latency: amqp-perf \`peer\` paced at $RATE msg/s" ours_one "$COUNT" peer --body-size 100 --rate "$RATE"
  add l_ob "latency: amqp-perf through our broker paced at $RATE msg/s" ours_one "$COUNT" --url "amqp://127.0.0.1:$ob_port/l$r" --body-size 100 --rate "$RATE"
done
stop "$PBROKER"
stop "$OBROKER"
if [ -n "$RABBIT_DIR" ]; then scripts/rabbitmq.sh stop "$RABBIT_DIR" || true; RABBIT_DIR=""; fi

fe2o3_table=""
if [ "${SKIP_FE2O3:-}" != 1 ]; then
  log "fe2o3-amqp clients through both brokers (scripts/bench-fe2o3.sh), $FE2O3_COUNT messages"
  fe2o3_table=$(COUNT=$FE2O3_COUNT REPEAT=$REPEAT LOG="$LOG" RUN_TIMEOUT=$RUN_TIMEOUT scripts/bench-fe2o3.sh 2>>"$LOG" | grep '^| \(live\|backlog\)' || true)
fi

# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------
med() { echo "${1:-}" | median; }
ratio() { # KEY BASE
  local a b
  a=$(med "${WALL[$1]:-}"); b=$(med "${WALL[$2]:-}")
  if [[ "$a" =~ ^[0-9.]+$ && "$b" =~ ^[0-9.]+$ ]]; then echo "scale=2; $a / $b" | bc; else echo "-"; fi
}
{
  echo "Measured $started (UTC) with \`$command_line\`: $(nproc) CPUs, load average $load_before at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end; rustc $(rustc --version | cut -d' ' -f2), Proton C $proton_version, loopback TCP, every outcome awaited, median of $REPEAT."
  echo
  echo "| path | msg/s (wall) | msg/s (own) | CPU µs/msg | latency p50 / p99 / p99.9 ms | allocs/msg | runs (wall msg/s) |"
  echo "|---|---:|---:|---:|---|---|---|"
  for k in "${ORDER[@]}"; do
    lat="-"
    p50=$(med "${P50[$k]}")
    [ "$p50" != "-" ] && lat="$p50 / $(med "${P99[$k]}") / $(med "${P999[$k]}")"
    al=$(echo "${ALLOC[$k]}" | tr ' ' '\n' | grep -v '^$' | head -n1)
    [ -n "$al" ] || al="-"
    w=$(med "${WALL[$k]}")
    [[ "$w" =~ ^[0-9.]+$ ]] && w=$(printf '%.0f' "$w")
    runs=$(for x in ${WALL[$k]}; do [[ "$x" =~ ^[0-9.]+$ ]] && printf '%.0f\n' "$x" || echo "$x"; done | paste -sd/)
    echo "| ${LABEL[$k]} | $w | $(med "${OWN[$k]}") | $(med "${CPU[$k]}") | $lat | $al | $runs |"
  done
  if [ -n "$fe2o3_table" ]; then
    echo
    echo "fe2o3-amqp clients ($FE2O3_COUNT messages, scripts/bench-fe2o3.sh):"
    echo
    echo "| fe2o3-amqp clients | our broker msg/s | Proton C broker msg/s | ours / Proton C |"
    echo "|---|---:|---:|---:|"
    echo "$fe2o3_table"
  fi
  echo
  echo "Ratios (medians, wall): peer-to-peer amqp-perf two processes / Proton C: $(ratio p_ours2 p_pc)x (1 KiB $(ratio p_ours2_1k p_pc_1k)x);" \
    "our broker / Proton C's broker with Proton C clients: $(ratio b_pc_ob b_pc_pb)x;" \
    "amqp-perf / Proton C clients through RabbitMQ: $(ratio r_ours r_pc)x."
  echo
  echo "allocs/msg: amqp-perf's counting allocator over messages 10-90 % of the run, per process (two processes: sender/receiver)."
} | tee "${OUT:-/dev/null}"
[ "$LOG" != "$work/runs.log" ] && echo "every run's output: $LOG" >&2
exit 0
