#!/usr/bin/env bash
# Installs rhea (the npm AMQP 1.0 library) into a git-ignored directory, for the interop suite
# (examples/tests/interop_suite.rs and examples/tests/interop/rhea_*.js).
#
#   scripts/rhea.sh [PREFIX]   -> prints PREFIX (default: target/rhea); rhea is then in
#                                 PREFIX/node_modules/rhea
#
# Idempotent: does nothing but check when rhea is already there. Needs node and npm (installs
# Debian's nodejs and npm with apt-get when they are missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-$root/target/rhea}
version=${RHEA_VERSION:-3}

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "rhea: apt-get install ${need[*]}" >&2
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >/dev/null
fi

mkdir -p "$prefix"
if ! (cd "$prefix" && node -e 'require("rhea")') >/dev/null 2>&1; then
  echo "rhea: npm install rhea@$version into $prefix" >&2
  npm install --prefix "$prefix" --no-audit --no-fund --silent "rhea@$version" >&2
fi
echo "$prefix"
