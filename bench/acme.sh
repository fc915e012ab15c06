#!/usr/bin/env bash
# HTTPS with an ACME certificate from Pebble beside certificate files, one run: start time (new
# order, from cache_dir) and full TLS handshakes per second. Needs `pebble` (tests/run.sh installs it).
# Usage: bench/acme.sh [handshakes-per-run] [runs]     (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rr-http --example acme_bench
target/release/examples/acme_bench "${1:-2000}" "${2:-5}"
