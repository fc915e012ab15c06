#!/usr/bin/env bash
# Every transport's benchmark in one run, each beside its ceiling or peer measured in the same run,
# 2 PHP workers everywhere, short runs (about 5 minutes on 2 cores): one table of rates, p50/p99 and
# ratios, with the load average at the start and the end. It reuses the per-transport scripts and
# bench examples with short durations and reads their markdown tables.
#
#   http hello, framework   rr beside nginx + PHP-FPM (2 children) and a bare hyper (bench/http/run.sh)
#   FastCGI                 nginx -> FastCGI -> rr beside nginx -> HTTP proxy -> rr (bench/http/fcgi.sh)
#   h2, h3                  HTTP/3 beside HTTP/2 over TLS (h3_bench); h2c beside HTTP/1.1 (grpc_bench)
#   gRPC                    grpc plugin beside HTTP/1.1 with the same PHP work and the bare relay (grpc_bench)
#   tcp                     tcp plugin beside the same PHP loop over pipes (tcp_bench)
#   RPC, lock               PHP client processes beside Rust clients (rpc_bench, lock_bench)
#   jobs                    amqp, nats, beanstalk, kafka, sqs beside the memory driver (jobs_bench, kafka_sqs_bench)
#   kv                      redis, memcached, boltdb beside the memory driver (kv_bench)
#   otel                    every request traced beside tracing off (bench/otel.sh)
#
# Usage: bench/all.sh [--force] [--write] [--secs N] [--no-build]
#   --force   run even when the 1-minute load average is above 1.5 (the table says so)
#   --write   append the table as a dated section to docs/BENCHMARKS.md
#   --secs N  seconds per measured run of the wrk-driven paths (default 3)
#   --no-build  use the release binaries already in $CARGO_TARGET_DIR (or target/)
# Needs the brokers tests/run.sh starts (RabbitMQ, NATS, beanstalkd, tansu, moto, Redis, memcached);
# installs wrk, h2load, nginx and PHP-FPM when missing.
set -uo pipefail
cd "$(dirname "$0")/.."
force=; write=; secs=3; build=1; args="$*"
while [ $# -gt 0 ]; do
  case $1 in
    --force) force=1 ;;
    --write) write=1 ;;
    --secs) secs=$2; shift ;;
    --no-build) build= ;;
    *) echo "usage: $0 [--force] [--write] [--secs N] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done

read -r load_start _ < /proc/loadavg
busy=$(awk -v l="$load_start" 'BEGIN {print (l > 1.5) ? 1 : 0}')
if [ "$busy" = 1 ] && [ -z "$force" ]; then
  echo "the 1-minute load average is $load_start (above 1.5): figures would measure the other load." >&2
  echo "Wait for a quiet machine, or run with --force (the table then says so)." >&2
  exit 1
fi
started=$(date -u '+%Y-%m-%d %H:%M UTC'); t0=$(date +%s)
uptime_start=$(uptime)

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v nginx >/dev/null || need+=(nginx-light)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need+=(php-fpm)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi

# Everything is built once, in release mode.
[ -z "$build" ] || echo "building the bench binaries (release)..." >&2
[ -z "$build" ] || cargo build -q --release -p rr-otel --example rr_otel -p rr-http --example hyper_hello --example h3_bench \
  -p rr-grpc --example grpc_bench -p rr-tcp --example tcp_bench -p rr-rpc --example rpc_bench \
  -p rr-lock --example lock_bench -p rr-kv --example kv_bench -p rr-jobs --example jobs_bench \
  -p rr-jobs-kafka --example kafka_sqs_bench || exit 1
bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release/examples
work=$(mktemp -d /tmp/rr-bench-all.XXXX)
rows=$work/rows   # group | path | rate | unit | p50 ms | p99 ms | compared with | ratio | note
: > "$rows"

# Run one part with a time limit, its whole output kept in $work/NAME.out.
part() {
  local name=$1 limit=$2; shift 2
  echo "[$(date -u +%T)] $name: $*" >&2
  if ! timeout "$limit" "$@" > "$work/$name.out" 2> "$work/$name.err"; then
    echo "| $name | failed or timed out (see below) | | | | | | | |" >> "$rows"
    { echo "$name failed:"; tail -5 "$work/$name.err"; } >> "$work/failures"
  fi
}
# The rows of the markdown tables in a part's output, fields trimmed and separated by tabs.
cells() { awk -F'|' '!/^\|/ {body = 0; next} /^\|[- |]*$/ {body = 1; next}
  body { out = ""; for (i = 2; i < NF; i++) { f = $i; gsub(/^ +| +$/, "", f); out = out (i > 2 ? "\t" : "") f }; print out }' "$work/$1.out"; }
# Append a row; the ratio is rate / base rate when a base is given.
row() {  # group path rate unit p50 p99 base-label base-rate note
  local ratio="–"
  [[ ${8:-} =~ ^[0-9.]+$ && $3 =~ ^[0-9.]+$ && ${8:-0} != 0 ]] && ratio=$(awk -v a="$3" -v b="$8" 'BEGIN {printf "%.2fx", a / b}')
  local rate=$3; [[ $rate =~ ^[0-9.]+$ ]] && rate=$(printf '%.0f' "$rate")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$rate" "$4" "${5:-–}" "${6:-–}" "${7:-–}" "$ratio" "${9:-}" >> "$rows"
}
us2ms() { [[ ${1:-} =~ ^[0-9.]+$ ]] && awk -v v="$1" 'BEGIN {printf "%.2f", v / 1000}' || echo "–"; }

# --- HTTP hello and framework: rr beside nginx + PHP-FPM and a bare hyper (wrk, 32 connections).
part http 300 env RR="$bin/rr_otel" NO_BUILD=1 NO_RSS=1 WARMUP=1 bench/http/run.sh 1 "$secs" 32
declare -A fpm
while IFS=$'\t' read -r app label rate p50 p99 _; do
  [[ $label == nginx* ]] && fpm[$app]=$rate
  base="nginx + PHP-FPM"; [[ $label == nginx* ]] && base="–"
  row "HTTP/1.1 $app (wrk)" "$label" "$rate" req/s "$p50" "$p99" "$base" "${fpm[$app]:-0}"
done < <(cells http)

# --- FastCGI and the HTTP proxy behind the same nginx (2 worker processes).
part fcgi 200 env WARMUP=1 bench/http/fcgi.sh "$bin/rr_otel" 1 "$secs" 32
proxy=$(cells fcgi | awk -F'\t' '/HTTP proxy/ {print $2}')
while IFS=$'\t' read -r label rate p50 p99 _; do
  base="nginx -> HTTP proxy -> rr"; [[ $label == *"HTTP proxy"* ]] && base="–"
  row "behind nginx (wrk)" "$label" "$rate" req/s "$p50" "$p99" "$base" "${proxy:-0}"
done < <(cells fcgi)

# --- HTTP/3 beside HTTP/2 over TLS, the same server and PHP workers.
part h3 120 "$bin/h3_bench" "$secs" 1 4 8
h2=$(cells h3 | awk -F'\t' '/HTTP\/2/ {print $2}')
while IFS=$'\t' read -r label rate _; do
  base="HTTP/2 over TLS"; [[ $label == *HTTP/2* ]] && base="–"
  row "h2, h3 (own Rust clients)" "$label" "$rate" req/s "" "" "$base" "${h2:-0}"
done < <(cells h3)

# --- gRPC and h2c beside HTTP/1.1 for the same PHP work (h2load), and the bare relay.
part grpc 300 "$bin/grpc_bench" 1000 1 8
h1=$(cells grpc | awk -F'\t' '$1 == "http plugin, HTTP/1.1, h2load" {print $2}')
relay=$(cells grpc | awk -F'\t' '$1 ~ /bare relay/ {print $2}')
while IFS=$'\t' read -r label rate p50 p99 _ _ server_cpu; do
  if [[ $label == *bare* ]]; then base=–; b=0
  elif [[ $label == *HTTP/1.1* ]]; then base="bare relay (ceiling)"; b=$relay
  else base="HTTP/1.1, h2load"; b=$h1; fi
  row "gRPC, h2c (8 clients)" "$label" "$rate" calls/s "$(us2ms "$p50")" "$(us2ms "$p99")" "$base" "$b" "rr CPU ${server_cpu} µs/call"
done < <(cells grpc)

# --- tcp echo beside the same PHP loop over pipes.
for conns in 2 32; do
  part "tcp$conns" 120 "$bin/tcp_bench" 10000 1 "$conns"
  pipes=$(cells "tcp$conns" | awk -F'\t' '$1 == "PHP loop over pipes" {print $2}')
  http=$(cells "tcp$conns" | awk -F'\t' '/HTTP\/1.1 hello/ {print $2}')
  while IFS=$'\t' read -r label rate p50 p99 cpu; do
    [[ $label == *" / "* ]] && continue
    base="PHP loop over pipes"; [[ $label == *pipes* ]] && base="–"
    note=; [[ $cpu =~ [0-9] ]] && note="server CPU $cpu µs per round trip"
    [[ $label == "tcp plugin" && -n $http ]] && note="$note; $(awk -v a="$rate" -v b="$http" 'BEGIN {printf "%.2fx", a / b}') of HTTP/1.1 hello"
    row "tcp echo, HTTP/1.1 hello ($conns connections, blocking clients)" "$label" "$rate" "round trips/s" "$(us2ms "$p50")" "$(us2ms "$p99")" "$base" "${pipes:-0}" "$note"
  done < <(cells "tcp$conns")
done

# --- RPC and lock: PHP client processes beside Rust clients on the same server.
part rpc 120 "$bin/rpc_bench" 1 1
while IFS=$'\t' read -r clients label rate; do
  b=$(cells rpc | awk -F'\t' -v c="$clients" '$1 == c && $2 ~ /goridge RPC over TCP/ {print $3}')
  base="Rust goridge client over TCP"; [[ $label == *goridge* ]] && base="–" b=0
  row "RPC rpc.Version ($clients clients)" "$label" "$rate" calls/s "" "" "$base" "$b"
done < <(cells rpc)
part lock 120 "$bin/lock_bench" 1 1
while IFS=$'\t' read -r clients resource client rate; do
  b=$(cells lock | awk -F'\t' -v c="$clients" -v r="$resource" '$1 == c && $2 == r && $3 ~ /Rust/ {print $4}')
  base="Rust client"; [[ $client == *Rust* ]] && base="–" b=0
  row "lock/release ($clients clients, $resource)" "$client" "$rate" pairs/s "" "" "$base" "$b"
done < <(cells lock)

# --- kv: each storage beside the memory driver.
part kv 120 "$bin/kv_bench" 1 1 8
mem=$(cells kv | awk -F'\t' '$1 == "memory" {print $2}')
while IFS=$'\t' read -r storage rate p50 p99; do
  base="memory driver"; [[ $storage == memory ]] && base="–"
  row "kv set+get (8 clients)" "$storage" "$rate" pairs/s "$(us2ms "$p50")" "$(us2ms "$p99")" "$base" "${mem:-0}"
done < <(cells kv)

# --- jobs: every driver on its broker beside the memory driver, pushed and consumed end to end.
part jobs 300 "$bin/jobs_bench" 2000 1
mem=$(cells jobs | awk -F'\t' '$1 == "memory" {print $2}')
while IFS=$'\t' read -r pipeline rate pushed; do
  base="memory driver"; [[ $pipeline == memory ]] && base="–"
  row "jobs end to end" "$pipeline" "$rate" jobs/s "" "" "$base" "${mem:-0}" "pushed alone $pushed/s"
done < <(cells jobs)
part kafka 300 "$bin/kafka_sqs_bench" 1000 1
mem=$(awk '$1 == "memory:" {print $3}' "$work/kafka.out")
while read -r pipeline _ rate _; do
  base="memory driver"; [[ $pipeline == memory: ]] && base="–"
  row "jobs end to end (kafka_sqs_bench)" "${pipeline%:}" "$rate" jobs/s "" "" "$base" "${mem:-0}"
done < <(awk '$2 == "median" && $1 ~ /:$/' "$work/kafka.out")

# --- otel: tracing off, configured but idle, every request traced.
part otel 200 env NO_BUILD=1 bench/otel.sh -r 1 -s "$secs" -c 32
off=$(awk '$1 == "off:" {print $3}' "$work/otel.out")
while read -r side _ rate _ _ p50 _ _ p99 _; do
  base="tracing off"; [[ $side == off: ]] && base="–"
  row "HTTP hello with otel (wrk)" "${side%:}" "$rate" req/s "$p50" "${p99}" "$base" "${off:-0}"
done < <(awk '$2 == "median"' "$work/otel.out")

read -r load_end _ < /proc/loadavg
elapsed=$(( $(date +%s) - t0 ))
report=$work/report.md
{
  echo "Started $started at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)'), $(nproc) cores, 2 PHP workers per server."
  echo "Load average at the start: ${uptime_start##*load average: }; at the end: $(cut -d' ' -f1-3 /proc/loadavg). Took ${elapsed} s."
  [ "$busy" = 1 ] && echo "**Forced (\`--force\`) on a busy machine: the 1-minute load average was $load_start at the start, above 1.5; compare the ratios, not the rates.**"
  echo
  echo "| path | server or driver | rate | unit | p50 ms | p99 ms | compared with (same run) | ratio | note |"
  echo "|---|---|---|---|---|---|---|---|---|"
  cat "$rows"
  if [ -s "$work/failures" ]; then echo; echo '```'; cat "$work/failures"; echo '```'; fi
} > "$report"
cat "$report"
if [ -n "$write" ]; then
  { echo; echo "## All transports in one run (\`bench/all.sh\`), $started"; echo
    echo "Command: \`bench/all.sh $args\`; one round per path, so single runs, not medians."
    echo; cat "$report"; } >> docs/BENCHMARKS.md
  echo "appended to docs/BENCHMARKS.md" >&2
fi
echo "raw outputs: $work" >&2
