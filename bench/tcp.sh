#!/usr/bin/env bash
# tcp echo round trips per second through the tcp plugin vs the same PHP loop over pipes, 2 workers.
# Usage: bench/tcp.sh [round-trips-per-worker] [runs]     (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
round_trips=${1:-20000}
runs=${2:-5}
cargo build --release -q -p rr-tcp --example tcp_bench
for connections in 2 32; do
  target/release/examples/tcp_bench "$round_trips" "$runs" "$connections"
  echo
done
