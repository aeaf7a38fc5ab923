#!/usr/bin/env bash
# Builds the fe2o3-amqp test peer (scripts/fe2o3-peer, not a workspace member) in release.
#
#   scripts/fe2o3.sh [OUTDIR]   -> prints the binary's path (default OUTDIR: target/fe2o3-peer)
#
# Idempotent: cargo rebuilds only what changed; when it is built it only checks and prints.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/fe2o3-peer}
cargo build -q --release --manifest-path "$root/scripts/fe2o3-peer/Cargo.toml" --target-dir "$out"
echo "$out/release/fe2o3-peer"
