#!/usr/bin/env bash
# A throw-away 3-node RabbitMQ cluster on loopback, with the AMQP 1.0 plugin, for the cluster
# soak (examples/tests/cluster_soak.rs); or one of its nodes stopped or started again.
#
#   scripts/rabbitmq-cluster.sh start DIR [QUEUE...] -> starts three nodes one after the other
#                                    (each joins the running ones as it boots), declares each
#                                    QUEUE as a quorum queue, prints "PORT1 PORT2 PORT3"
#   scripts/rabbitmq-cluster.sh stop-node DIR I      -> stops node I (1..3), by its PID
#   scripts/rabbitmq-cluster.sh start-node DIR I     -> starts node I again (same name, port,
#                                    data); returns once it is back in the cluster
#   scripts/rabbitmq-cluster.sh stop DIR             -> stops every node it started, by PID
#
# Each node has its own name (amqprs-cN@localhost), AMQP port, distribution port, data and
# log directories under DIR/nodeN; the three share an Erlang cookie and a private epmd port.
# Nothing listens beyond 127.0.0.1.
set -euo pipefail
cmd=${1:?start|stop|stop-node|start-node}
dir=${2:?directory}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rmq=/usr/lib/rabbitmq/bin

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Sets the environment of node $1 (ports chosen once, kept in DIR/nodeN/ports).
node_env() {
  local i=$1 nd="$dir/node$1"
  mkdir -p "$nd"
  [ -f "$dir/epmd_port" ] || free_port > "$dir/epmd_port"
  [ -f "$dir/cookie" ] || python3 -c 'import secrets; print(secrets.token_hex(16).upper())' > "$dir/cookie"
  [ -f "$nd/ports" ] || echo "$(free_port) $(free_port)" > "$nd/ports"
  read -r port dist < "$nd/ports"
  install -m 400 "$dir/cookie" "$nd/.erlang.cookie" 2>/dev/null || true
  export HOME="$nd"
  export RABBITMQ_NODENAME="amqprs-c$i@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$port
  export RABBITMQ_DIST_PORT=$dist
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=$(cat "$dir/epmd_port")
  export RABBITMQ_MNESIA_BASE="$nd/mnesia"
  export RABBITMQ_LOG_BASE="$nd/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$nd/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$nd/rabbitmq"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  cat > "$nd/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
loopback_users = none
default_user = guest
default_pass = guest
log.console = false
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = amqprs-c1@localhost
cluster_formation.classic_config.nodes.2 = amqprs-c2@localhost
cluster_formation.classic_config.nodes.3 = amqprs-c3@localhost
CONF
  # The first node has no one to join: one try, not ten 0.5 s apart.
  [ "$i" = 1 ] && echo "cluster_formation.discovery_retry_limit = 1" >> "$nd/rabbitmq.conf"
  return 0
}

ctl() { "$rmq/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }

start_node() {
  local i=$1
  node_env "$i"
  local nd="$dir/node$i"
  # The enabled-plugins file written directly: `rabbitmq-plugins --offline enable` would boot
  # an Erlang VM for it, seconds on a loaded machine, at every node start.
  echo '[rabbitmq_amqp1_0].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  setsid "$rmq/rabbitmq-server" >>"$nd/server.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$nd/pid"
  for _ in $(seq 1 240); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1',$RABBITMQ_NODE_PORT)))" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "node $i did not open port $RABBITMQ_NODE_PORT; see $nd/server.log" >&2
  tail -20 "$nd/server.log" >&2
  exit 1
}

stop_node() {
  local nd="$dir/node$1"
  [ -f "$nd/pid" ] || return 0
  local pid
  pid=$(cat "$nd/pid")
  # The node runs in its own session (setsid): end that process group, which holds only
  # what this script started (the server and its Erlang VM).
  kill -TERM -- -"$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- -"$pid" 2>/dev/null || true
  rm -f "$nd/pid"
}

case "$cmd" in
start)
  command -v "$rmq/rabbitmq-server" >/dev/null || { echo "rabbitmq-server is not installed" >&2; exit 2; }
  shift 2
  # One after the other: each new node finds the running ones in its configuration (classic
  # peer discovery) and joins them as it boots, with no rabbitmqctl round (each one boots an
  # Erlang VM, seconds apiece on a loaded machine).
  for i in 1 2 3; do start_node "$i"; done
  node_env 1
  # One rabbitmqctl round: the three nodes formed one cluster, and the quorum queues.
  declare="3 = length(rabbit_nodes:all_running())"
  for q in "$@"; do
    declare="$declare, {new, _} = rabbit_amqqueue:declare(rabbit_misc:r(<<\"/\">>, queue, <<\"$q\">>), true, false, [{<<\"x-queue-type\">>, longstr, <<\"quorum\">>}], none, <<\"cluster-soak\">>)"
  done
  ctl eval "$declare, ok." >>"$dir/node1/ctl.log" 2>&1 \
    || { echo "no cluster of three, or a queue not declared; see $dir/node1/ctl.log" >&2; exit 1; }
  ports=()
  for i in 1 2 3; do read -r p _ < "$dir/node$i/ports"; ports+=("$p"); done
  echo "${ports[*]}"
  ;;
stop-node)
  stop_node "${3:?node 1..3}"
  ;;
start-node)
  i=${3:?node 1..3}
  start_node "$i"
  ;;
stop)
  for i in 1 2 3; do stop_node "$i"; done
  # epmd daemonizes out of the process groups; ask the one on our private port to exit.
  if [ -f "$dir/epmd_port" ]; then
    epmd_bin=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -1)
    [ -n "$epmd_bin" ] && ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$(cat "$dir/epmd_port") "$epmd_bin" -kill >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: $0 start|stop|stop-node|start-node DIR ..." >&2; exit 2 ;;
esac
