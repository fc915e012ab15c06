#!/usr/bin/env bash
# Temporal end to end: rr's temporal plugin with 2 PHP activity workers beside Temporal's Python
# SDK worker, one dev server, the same no-op work: workflows/s and activity tasks/s (bench/temporal.py).
# Needs php and the Temporal CLI (tests/run.sh installs it; TEMPORAL_CLI names it); installs
# temporalio into a venv under ~/.cache/rr-tests.
# Usage: bench/temporal.sh [runs] [workflows] [concurrency]     (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$HOME/.cache/rr-tests/temporal-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import temporalio' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q temporalio==1.35.0
fi
cargo build --release -q -p rr-temporal --example rr_temporal
"$venv/bin/python" bench/temporal.py "${CARGO_TARGET_DIR:-target}/release/examples/rr_temporal" "$venv/bin/python" "${1:-3}" "${2:-300}" "${3:-50}"
