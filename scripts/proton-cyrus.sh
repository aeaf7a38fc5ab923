#!/usr/bin/env bash
# Builds (once) a Python venv holding python-qpid-proton compiled from source against Cyrus
# SASL, for the SCRAM/PLAIN and GSSAPI interop tests (adapters/tokio/tests/sasl_cyrus.rs,
# sasl_cyrus_gssapi.rs); prints the venv's python path on stdout, and nothing else on stdout.
#
#   scripts/proton-cyrus.sh            -> /root/.cache/amqp-rs/proton-cyrus-0.40.0/bin/python
#   PROTON_CYRUS_PYTHON=$(scripts/proton-cyrus.sh) cargo test -p amqp-tokio --test sasl_cyrus
#
# The wheel on PyPI is built without Cyrus (proton.SASL.extended() is False: only ANONYMOUS,
# EXTERNAL and client PLAIN), so the sdist is compiled here; its build (cffi, bundled
# proton-c) picks up Cyrus through `pkg-config libsasl2`. Needs: libsasl2-dev (headers and
# .pc), libsasl2-modules (PLAIN, SCRAM plugins), libsasl2-modules-gssapi-mit (GSSAPI plugin),
# libsasl2-modules-db (sasldb auxprop), sasl2-bin (saslpasswd2), a C compiler, pkg-config,
# libssl-dev, Python headers.
#
# Idempotent: once the venv exists and answers proton.SASL.extended() == True (recorded in a
# stamp file), a run only checks the stamp and prints the path (well under a second).
# Location: $PROTON_CYRUS_VENV, else ${XDG_CACHE_HOME:-$HOME/.cache}/amqp-rs/proton-cyrus-VERSION
# (outside the work tree: shared by clones and worktrees, never committed).
set -euo pipefail

VERSION=0.40.0 # the python-qpid-proton the rest of the tests use (proton.VERSION)
VENV=${PROTON_CYRUS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/amqp-rs/proton-cyrus-$VERSION}
PY=$VENV/bin/python
STAMP=$VENV/.amqp-rs-cyrus-ok

log() { printf '[proton-cyrus] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# --- Debian packages --------------------------------------------------------------------------
need=()
for p in libsasl2-dev libsasl2-modules libsasl2-modules-db libsasl2-modules-gssapi-mit sasl2-bin build-essential pkg-config libssl-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
BASE_PY=${PROTON_CYRUS_BASE_PYTHON:-python3}
if ! "$BASE_PY" -c 'import venv, ensurepip, sysconfig, os, sys; h = sysconfig.get_paths()["include"]; sys.exit(0 if os.path.exists(os.path.join(h, "Python.h")) else 1)' 2>/dev/null; then
  # A Debian python3 needs its venv and headers packages; a pyenv build has both already.
  need+=(python3-dev python3-venv)
  BASE_PY=/usr/bin/python3
fi
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  # sasl2-bin ships saslauthd: never let a package start a system service here.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$made_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
pkg-config --exists libsasl2 || { log "pkg-config cannot find libsasl2 (libsasl2-dev)"; exit 1; }

# --- The venv ------------------------------------------------------------------------------
extended() { "$PY" -c 'import proton, sys; sys.exit(0 if proton.SASL.extended() else 1)' 2>/dev/null; }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ] && extended; then
  echo "$PY"
  exit 0
fi
# Missing, half-built, or built without Cyrus: start over.
log "creating venv $VENV (from $BASE_PY)"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$BASE_PY" -m venv "$VENV"
log "building python-qpid-proton==$VERSION from source against Cyrus SASL (about 30 s)"
# --no-cache-dir: pip would otherwise reuse a wheel it built earlier, maybe without Cyrus.
# --no-binary only for proton: its build dependencies (cffi, setuptools) come as wheels.
"$PY" -m pip install -q --no-cache-dir --no-binary python-qpid-proton \
  "python-qpid-proton==$VERSION" >&2

got=$("$PY" -c 'import proton; print("%d.%d.%d" % proton.VERSION, proton.SASL.extended())')
if [ "$got" != "$VERSION True" ]; then
  log "built proton reports '$got', wanted '$VERSION True' (is libsasl2-dev installed?)"
  exit 1
fi
echo "$VERSION" >"$STAMP"
log "ok: proton $VERSION with Cyrus SASL in $VENV"
echo "$PY"
