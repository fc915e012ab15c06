#!/usr/bin/env bash
# Downtime of `kill -USR2` (in-place re-exec) vs SIGTERM + start, with PHP HTTP workers.
# Usage: bench/restart.sh [runs]     (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rr-integration-tests --bin rr-integrations
python3 bench/restart.py target/release/rr-integrations "${1:-7}"
