#!/usr/bin/env bash
# HTTP hello-world requests per second with tracing off and on, side by side in one run:
#   off      no `otel` section (what every server without tracing runs)
#   idle     `otel` configured, the middleware not listed (spans only from jobs/grpc/kv)
#   traced   `otel` in `http.middleware`, every request sampled and exported (OTLP/HTTP,
#            batched) to a local receiver that answers 200
# The sides alternate wrk runs so they share the machine's noise; prints each side's median.
#
# Usage: bench/otel.sh [runs] [seconds] [connections]     (default 5 5 32)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; secs=${2:-5}; conns=${3:-32}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build -q --release -p rr-otel --example rr_otel
bin=$PWD/target/release/examples/rr_otel
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

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

start() { # name port extra-options...
  local port=$2; shift 2
  (cd examples/hello && exec "$bin" serve -c .rr.yaml -o logs.mode=off -o "http.address=127.0.0.1:$port" -o http.codec=json "$@" >/dev/null 2>&1) &
}
otel=(-o otel.exporter=otlp -o otel.endpoint=127.0.0.1:18499 -o otel.insecure=true)
start off 18401
start idle 18402 "${otel[@]}"
start traced 18403 "${otel[@]}" -o http.middleware=otel
sleep 3
names=(off idle traced); ports=(18401 18402 18403)
declare -A results
for _ in $(seq "$runs"); do
  for i in "${!names[@]}"; do
    rps=$(wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:${ports[$i]}/" | awk '/Requests\/sec/ {printf "%d", $2}')
    results[$i]="${results[$i]:-} $rps"
  done
done
for i in "${!names[@]}"; do
  # shellcheck disable=SC2086
  median=$(printf '%s\n' ${results[$i]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "${names[$i]}: median $median req/s (runs:${results[$i]})"
done
