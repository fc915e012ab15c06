#!/usr/bin/env bash
# HTTP hello-world requests per second with tracing off and on, side by side in one run
# (bench/http/ab.sh alternates the sides' wrk runs and prints each side's median):
#   off      no `otel` section (what every server without tracing runs)
#   idle     `otel` configured, the middleware not listed (spans only from jobs/grpc/kv)
#   traced   `otel` in `http.middleware`: every request sampled and exported (OTLP/HTTP,
#            batched) to a local receiver that answers 200
#
# Usage: bench/otel.sh [ab.sh options: -r runs -s seconds -c connections]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || cargo build -q --release -p rr-otel --example rr_otel
bin=${CARGO_TARGET_DIR:-target}/release/examples/rr_otel

# The collector: accepts every POST (an OTLP/HTTP export) with an empty 200.
python3 - 18499 <<'PY' >/dev/null 2>&1 &
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
collector=$!
trap 'kill $collector 2>/dev/null || true' EXIT

otel="-o otel.endpoint=127.0.0.1:18499 -o otel.insecure=true"
bench/http/ab.sh "$@" "off=$bin" "idle=$bin -- $otel" "traced=$bin -- $otel -o http.middleware=otel"
