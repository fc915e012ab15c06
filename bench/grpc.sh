#!/usr/bin/env bash
# Unary gRPC calls/s and p50/p99 with 2 PHP workers, side by side in one run with the same PHP
# work over the bare worker pipes (the ceiling) and through the http plugin (h2c and HTTP/1.1),
# each loaded by our Rust clients and by h2load, with the CPU each side spends per call.
# Usage: bench/grpc.sh [calls-per-client] [runs] [clients]   (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; } || true
cargo build --release -q -p rr-grpc --example grpc_bench
target/release/examples/grpc_bench "${1:-5000}" "${2:-3}" "${3:-8}"
