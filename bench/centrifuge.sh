#!/usr/bin/env bash
# The embedded Centrifuge hub's fan-out: N WebSocket clients on one channel, PHP publishing
# through RPC; deliveries/s, publish-to-receive p50/p99, server CPU per delivery and RSS per idle
# connection, side by side in one run with a minimal tokio-tungstenite broadcast server (the
# ceiling). Usage: bench/centrifuge.sh [clients,clients...] [runs] [burst]
# (defaults 1000,10000 3 50; results go to docs/BENCHMARKS.md by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rr-centrifuge --example hub_bench
echo "load: $(uptime)"
"${CARGO_TARGET_DIR:-target}"/release/examples/hub_bench "${1:-1000,10000}" "${2:-3}" "${3:-50}"
echo "load: $(uptime)"
