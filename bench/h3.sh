#!/usr/bin/env bash
# Hello-world req/s over HTTP/3 beside HTTP/2 over TLS: one rr-http server (2 PHP workers) with
# both listeners, loaded alternately in the same run; medians and the ratio, as a markdown table.
# Usage: bench/h3.sh [seconds per round] [rounds] [connections] [streams per connection]
# (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rr-http --example h3_bench
target/release/examples/h3_bench "${1:-5}" "${2:-5}" "${3:-4}" "${4:-8}"
