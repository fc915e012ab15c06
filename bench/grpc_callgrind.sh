#!/usr/bin/env bash
# Instructions per call in the server process (valgrind callgrind: exact counts even on a loaded
# machine, where perf has no hardware counters) for the gRPC benchmark's three network paths:
# grpc, http over h2c and http over HTTP/1.1, each driven by h2load with the same PHP work.
# Usage: bench/grpc_callgrind.sh [calls] [grpc_bench binary ...]
#   With binaries (e.g. the example built before and after a change), each is measured in turn in
#   the same run; without, the example is built from this tree. Profiles are kept for
#   `callgrind_annotate` (the path is printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-2000}
shift || true
for tool in valgrind:valgrind h2load:nghttp2-client; do
  command -v ${tool%%:*} >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${tool#*:} >/dev/null; }
done
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q -p rr-grpc --example grpc_bench
  bins=("${CARGO_TARGET_DIR:-target}/release/examples/grpc_bench")
fi
out=$(mktemp -d /tmp/rr-grpc-cg.XXXX)
printf '\0\0\0\0\007\012\005hello' > "$out/grpc"; printf 'hello' > "$out/body"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
n=0
for bin in "${bins[@]}"; do
  n=$((n + 1))
  gport=$((20000 + RANDOM % 10000)); hport=$((gport + 1))
  rm -f "$out/stdin"; mkfifo "$out/stdin"   # the server stops when its stdin closes
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/cg.$n.%p" \
    "$bin" serve "$gport" "$hport" <"$out/stdin" 2>"$out/valgrind.$n.log" &
  exec 3>"$out/stdin"
  until (exec 4<>/dev/tcp/127.0.0.1/$gport) 2>/dev/null && (exec 4<>/dev/tcp/127.0.0.1/$hport) 2>/dev/null; do sleep 0.5; done
  pid=$(pgrep -f "grpc_bench.* serve $gport" | head -1)
  grpc=(-d "$out/grpc" -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$gport/service.Echo/Ping")
  h2c=(-d "$out/body" "http://127.0.0.1:$hport/")
  h1=(--h1 -d "$out/body" "http://127.0.0.1:$hport/")
  echo "== $bin"
  for path in grpc h2c h1; do
    declare -n args=$path
    h2load -n 200 -c 2 -m 4 "${args[@]}" >/dev/null            # warm-up, not counted
    callgrind_control -i on "$pid" >/dev/null 2>&1
    ok=$(h2load -n "$calls" -c 2 -m 4 "${args[@]}" | grep -E "^requests:")
    callgrind_control -d "$path" "$pid" >/dev/null 2>&1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    file=$(ls -t "$out"/cg.$n.* | head -1)
    total=$(awk '/^totals:/{print $2}' "$file")
    echo "$path: $((total / calls)) instructions per call in the server ($ok)"
  done
  exec 3>&-
  wait
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "profiles (callgrind_annotate): $out"
