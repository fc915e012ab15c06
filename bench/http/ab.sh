#!/usr/bin/env bash
# A/B two rr builds (or one build under two environments) on the same app, alternating wrk runs
# so that both sides see the same machine noise. Prints each side's runs and their median.
#
# Usage: bench/http/ab.sh [-a app] [-r runs] [-s seconds] [-c connections] 'NAME=BIN [VAR=value...] [-- serve options]' ...
#   bench/http/ab.sh old=/tmp/rr-old new=dist/rr          # two binaries, examples/hello
#   bench/http/ab.sh -a framework 'one=dist/rr GOMAXPROCS=1' 'two=dist/rr GOMAXPROCS=2'
#   bench/http/ab.sh plain=dist/rr 'gzip=dist/rr -- -o http.middleware=gzip'
set -euo pipefail
cd "$(dirname "$0")/../.."
app=hello; runs=5; secs=5; conns=32
while getopts a:r:s:c: opt; do
  case $opt in a) app=$OPTARG ;; r) runs=$OPTARG ;; s) secs=$OPTARG ;; c) conns=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-a app] [-r runs] [-s secs] [-c conns] SIDE SIDE..." >&2; exit 2; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

names=(); ports=()
port=18300
for side in "$@"; do
  read -r first rest <<<"$side"
  vars=${rest%%--*} opts=
  [[ $rest == *--* ]] && opts=${rest#*--}
  name=${first%%=*} bin=${first#*=}
  [[ $bin == /* ]] || bin=$PWD/$bin
  [ -x "$bin" ] || { echo "$name: no executable at $bin" >&2; exit 2; }
  port=$((port + 1))
  # shellcheck disable=SC2086 # VAR=value words and options are meant to split
  (cd "examples/$app" && exec env $vars "$bin" serve -c .rr.yaml -o logs.mode=off -o "http.address=127.0.0.1:$port" \
    -o http.codec=json -o "rpc.listen=tcp://127.0.0.1:$((port + 1000))" $opts >/dev/null 2>&1) &
  names+=("$name"); ports+=("$port")
done
# Every side answers before the first round (startup takes longer on a loaded machine).
for port in "${ports[@]}"; do
  for _ in $(seq 120); do curl -fs -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.25; done
done
declare -A results p50s p99s
for _ in $(seq "$runs"); do
  for i in "${!names[@]}"; do
    read -r rps p50 p99 < <(wrk -t2 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:${ports[$i]}/" | bench/http/wrk_summary.awk)
    results[$i]="${results[$i]:-} ${rps%.*}"; p50s[$i]="${p50s[$i]:-} $p50"; p99s[$i]="${p99s[$i]:-} $p99"
  done
done
for i in "${!names[@]}"; do
  # shellcheck disable=SC2086
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  # shellcheck disable=SC2086
  echo "${names[$i]}: median $(median ${results[$i]}) req/s, p50 $(median ${p50s[$i]}) ms, p99 $(median ${p99s[$i]}) ms (runs:${results[$i]})"
done
