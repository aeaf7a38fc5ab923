#!/usr/bin/env bash
# Starts a throw-away RabbitMQ node with the AMQP 1.0 plugin, bound to loopback only, for the
# interop tests; or stops it.
#
#   scripts/rabbitmq.sh start DIR [PORT] -> prints "PORT PID" once the AMQP port accepts
#                                           connections; with PORT (a restart after `stop DIR`),
#                                           the same node name, port and data (durable queues
#                                           and messages survive)
#   scripts/rabbitmq.sh stop DIR          -> stops the node started in DIR (by its PID)
#
# With RABBITMQ_TLS_DIR=D (holding ca.pem, cert.pem, key.pem), the node also listens for AMQP
# over TLS on a second loopback port, written to DIR/tls_port.
#
# Everything (data, logs, config, Erlang cookie) lives in DIR; nothing listens beyond 127.0.0.1.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

case "$cmd" in
start)
  # usage: start DIR [PORT]
  command -v /usr/lib/rabbitmq/bin/rabbitmq-server >/dev/null || { echo "rabbitmq-server is not installed" >&2; exit 2; }
  port=${3:-$(free_port)}; dist=$(free_port); epmd=$(free_port)
  export HOME="$dir"
  export RABBITMQ_NODENAME="amqprs$port@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$port
  export RABBITMQ_DIST_PORT=$dist
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=$epmd
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
loopback_users = none
default_user = guest
default_pass = guest
log.console = false
CONF
  if [ -n "${RABBITMQ_TLS_DIR:-}" ]; then
    tls_port=$(cat "$dir/tls_port" 2>/dev/null || free_port)
    echo "$tls_port" > "$dir/tls_port"
    cat >> "$dir/rabbitmq.conf" <<CONF
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $RABBITMQ_TLS_DIR/ca.pem
ssl_options.certfile = $RABBITMQ_TLS_DIR/cert.pem
ssl_options.keyfile = $RABBITMQ_TLS_DIR/key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
  fi
  /usr/lib/rabbitmq/bin/rabbitmq-plugins --offline enable rabbitmq_amqp1_0 >"$dir/plugins.log" 2>&1
  env > "$dir/env"
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/server.log" 2>&1 &
  pid=$!
  echo "$pid" > "$dir/pid"
  echo "$epmd" > "$dir/epmd_port"
  for _ in $(seq 1 120); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      echo "$port $pid"; exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "rabbitmq exited; see $dir/server.log" >&2; tail -20 "$dir/server.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "rabbitmq did not open port $port in 60 s" >&2
  kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  exit 1
  ;;
stop)
  [ -f "$dir/pid" ] || exit 0
  pid=$(cat "$dir/pid")
  # The node runs in its own session (setsid): end that process group, which holds only what
  # this script started (the server, its Erlang VM and its epmd).
  kill -TERM -- -"$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- -"$pid" 2>/dev/null || true
  rm -f "$dir/pid"
  # epmd daemonizes out of the process group; ask the one on our private port to exit.
  if [ -f "$dir/epmd_port" ]; then
    epmd_bin=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -1)
    [ -n "$epmd_bin" ] && ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$(cat "$dir/epmd_port") "$epmd_bin" -kill >/dev/null 2>&1 || true
    rm -f "$dir/epmd_port"
  fi
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
