#!/usr/bin/env bash
# Builds Qpid Proton C's examples (send, receive, broker, direct) from Debian's
# libqpid-proton11-dev-examples, for the interop suite (examples/tests/interop_suite.rs).
#
#   scripts/proton-c-examples.sh [OUTDIR]   -> prints OUTDIR (default: target/proton-c-examples)
#
# Installs libqpid-proton11-dev and libqpid-proton11-dev-examples with apt-get when they are
# missing. Idempotent: a binary is rebuilt only when its source is newer; when everything is
# built it only checks and prints the directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/proton-c-examples}
src=/usr/share/proton/examples/c
examples=(send receive broker direct)

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need=()
dpkg -s libqpid-proton11-dev >/dev/null 2>&1 || need+=(libqpid-proton11-dev)
dpkg -s libqpid-proton11-dev-examples >/dev/null 2>&1 || need+=(libqpid-proton11-dev-examples)
command -v gcc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "proton-c-examples: apt-get install ${need[*]}" >&2
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >/dev/null
fi

# Debian ships one pkg-config module, libqpid-proton, whose library holds core and proactor
# (upstream's Makefile.pkgconfig asks for libqpid-proton-core and -proactor, which Debian's
# -dev package does not provide as separate link names).
if pkg-config --exists libqpid-proton-core libqpid-proton-proactor 2>/dev/null; then
  flags=$(pkg-config --cflags --libs libqpid-proton-core libqpid-proton-proactor)
else
  flags=$(pkg-config --cflags --libs libqpid-proton)
fi

mkdir -p "$out"
for name in "${examples[@]}"; do
  if [ ! -x "$out/$name" ] || [ "$src/$name.c" -nt "$out/$name" ]; then
    # shellcheck disable=SC2086
    gcc -O1 -g -o "$out/$name.tmp" "$src/$name.c" -I"$src" $flags -lpthread
    mv "$out/$name.tmp" "$out/$name"
  fi
done
# broker.c loads its (optional) TLS credentials from ./ssl-certs: run it from $out.
if [ ! -d "$out/ssl-certs" ]; then
  cp -r "$src/ssl-certs" "$out/ssl-certs"
fi
echo "$out"
