#!/usr/bin/env bash
# Cold first-contact timings (docs/BENCHMARKS.md, "Build times"): a fresh clone of this checkout,
# empty CARGO_TARGET_DIR and VELOX_CACHE, then
#   quick: README command 1 (examples/hello/serve.sh) until the first "Hello, World!" answer;
#   full:  the full recipe as the README has it (cargo run -p velox-cli -- build -c velox.toml).
# Prints wall and CPU seconds (GNU time) with the load average before and after.
# Usage: bench/first_contact.sh quick|full [work dir, default /tmp/rr-first-contact]
set -euo pipefail
mode=${1:?quick or full}; work=${2:-/tmp/rr-first-contact}
src=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work"; mkdir -p "$work"
export CARGO_TARGET_DIR=$work/target VELOX_CACHE=$work/cache
git clone -q "$src" "$work/clone"
cd "$work/clone"
echo "start $(date -u +%T), load: $(cut -d' ' -f1-3 /proc/loadavg)"
case $mode in
  quick)
    start=$(date +%s.%N)
    /usr/bin/time -f "wall %e s, user %U s, sys %S s (until rr was stopped)" -o "$work/time" \
      examples/hello/serve.sh -o http.address=127.0.0.1:18080 > "$work/log" 2>&1 &
    pid=$!
    until curl -fs 127.0.0.1:18080 > "$work/answer" 2>/dev/null; do
      kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; exit 1; }
      sleep 1
    done
    echo "first answer after $(echo "$(date +%s.%N) - $start" | bc) s: $(cat "$work/answer")"
    kill -TERM "$(pgrep -P $pid)"   # serve.sh execs rr, the child of time
    wait $pid || true
    ;;
  full)
    /usr/bin/time -f "wall %e s, user %U s, sys %S s" -o "$work/time" \
      cargo run -p velox-cli -- build -c velox.toml -o dist > "$work/log" 2>&1
    grep -E "Finished|compiled " "$work/log"
    ;;
  *) echo "usage: $0 quick|full" >&2; exit 2 ;;
esac
cat "$work/time"
echo "end $(date -u +%T), load: $(cut -d' ' -f1-3 /proc/loadavg)"
