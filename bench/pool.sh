#!/usr/bin/env bash
# Exec round trip through the pool vs the bare relay loop, Rust echo worker and PHP test worker.
# Usage: bench/pool.sh [requests-per-client] [runs]     (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
runs=${2:-5}
cargo build --release -q -p rr-echo-worker
cargo build --release -q -p rr-runtime --example pool_bench
for worker in "target/release/rr-echo-worker" "php tests/php/workers/echo.php"; do
  target/release/examples/pool_bench "$worker" "$requests" "$runs"
  echo
done
