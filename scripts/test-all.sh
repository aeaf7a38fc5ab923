#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need
# (Debian packages, PyPI packages), then runs the Rust test suites, lints, and the
# interop suites. Used by .ci/run; run it yourself with `./scripts/test-all.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

# ---------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
[ -d /usr/share/amqp/specs/1-0 ] || need_apt+=(amqp-specs)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  # Packages must not start system services (RabbitMQ would listen on every interface):
  # the tests start their own loopback-only nodes.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null
  [ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

if ! python3 -c 'import proton' 2>/dev/null; then
  log "pip install python-qpid-proton"
  python3 -m pip install -q python-qpid-proton
fi

log "Kerberos: MIT KDC, krb5 headers, libclang (GSSAPI feature and its test realms)"
scripts/krb5-realm.sh install

log "interop peers: Proton C examples (Debian), rhea (npm)"
scripts/proton-c-examples.sh >/dev/null
scripts/rhea.sh >/dev/null

log "python-qpid-proton built against Cyrus SASL (SCRAM and GSSAPI interop tests)"
PROTON_CYRUS_PYTHON=$(scripts/proton-cyrus.sh)
export PROTON_CYRUS_PYTHON

# ---------------------------------------------------------------------------
# Rust: format, lints, tests
# ---------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
# Libraries, binaries and examples: every lint, including missing docs, with and without the
# optional features (gssapi, fuzzing, sim).
cargo clippy --workspace --lib --bins --examples -q -- -D warnings
cargo clippy --workspace --all-features --lib --bins --examples -q -- -D warnings
# Tests and benches: the same, except docs and pub-visibility lints that only make sense for APIs.
cargo clippy --workspace --tests --benches -q -- -D warnings -A missing_docs -A unreachable_pub

log "cargo test"
cargo test --workspace --all-targets -q 2>&1 | tail -n 400
cargo test --workspace --doc -q 2>&1 | tail -n 50

log "golden vectors are what python-qpid-proton produces"
python3 amqp-proto/tests/golden/gen_vectors.py --check

log "all tests passed"
