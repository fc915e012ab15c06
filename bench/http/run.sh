#!/usr/bin/env bash
# Serve the same PHP apps three ways in one run and load them with wrk on loopback:
#   rr (built by velox from velox.toml, 2 workers, codec proto and json)
#   nginx + PHP-FPM (pm static, 2 children, same PHP)
#   a plain hyper hello world (the ceiling, no PHP)
# Usage: bench/http/run.sh [rounds] [seconds] [connections]   Results: medians, markdown table.
# RR=path serves with that rr binary instead of dist/rr (bench/all.sh passes a smaller build);
# NO_RSS=1 skips the closing worker-memory run; NO_BUILD=1 uses the hyper_hello built already; WARMUP=seconds per server (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}; secs=${2:-10}; conns=${3:-32}   # runs: rounds, each server once per round
root=$PWD
work=$(mktemp -d /tmp/rr-bench.XXXX)
chmod 755 "$work"   # nginx and PHP-FPM workers run as other users
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need+=(php-fpm)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
fpm=$(ls /usr/sbin/php-fpm* | head -1)

rr=${RR:-$root/dist/rr}
[ -n "${RR:-}" ] || [ -x dist/rr ] || cargo run -q -p velox-cli --release -- build -c velox.toml -o dist
[ -n "${NO_BUILD:-}" ] || cargo build -q --release -p rr-http --example hyper_hello
hyper_bin=${CARGO_TARGET_DIR:-target}/release/examples/hyper_hello

# PHP-FPM: static pool of 2, behind nginx on a unix socket.
cat > "$work/fpm.conf" <<CONF
[global]
error_log = $work/fpm.log
daemonize = no
[bench]
listen = $work/fpm.sock
pm = static
pm.max_children = 2
user = www-data
group = www-data
listen.owner = www-data
listen.group = www-data
listen.mode = 0666
CONF
"$fpm" -R -y "$work/fpm.conf" -F &
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18081;
    location = /hello { include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $root/examples/hello/fpm.php; fastcgi_pass unix:$work/fpm.sock; }
    location / { include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $root/examples/framework/fpm.php; fastcgi_pass unix:$work/fpm.sock; }
  }
}
CONF
nginx -c "$work/nginx.conf" -g 'daemon off;' &
"$hyper_bin" 127.0.0.1:18084 &
quiet="-o logs.mode=off"
(cd examples/hello && exec env "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18082 -o http.codec=proto) &
# Default settings: `http.codec: auto` picks by the app's spiral/roadrunner-http (docs/HTTP.md).
(cd examples/hello && exec env "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18088 -o rpc.listen=tcp://127.0.0.1:16003) &
(cd examples/hello && exec env "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18085 -o http.codec=json -o rpc.listen=tcp://127.0.0.1:16001) &
# The same on one I/O thread for all workers (GOMAXPROCS=1) instead of a thread per core (docs/HTTP.md).
(cd examples/hello && exec env GOMAXPROCS=1 "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18087 -o http.codec=proto -o rpc.listen=tcp://127.0.0.1:16002) &
(cd examples/framework && exec env "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18083 -o http.codec=proto) &
(cd examples/framework && exec env "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18086 -o http.codec=json) &
sleep 3
for url in http://127.0.0.1:18081/hello http://127.0.0.1:18082/ http://127.0.0.1:18083/ http://127.0.0.1:18084/ http://127.0.0.1:18085/ http://127.0.0.1:18086/ http://127.0.0.1:18087/ http://127.0.0.1:18088/; do
  curl -fsS "$url" >/dev/null || { echo "not answering: $url"; exit 1; }
done

# Rounds: every server once per round, the order rotating, so that the machine's drift (large on
# this shared VM) hits all of them alike; each rr row's ratio to FPM is taken within its round.
keys=(fpm_hello rr_default rr_proto rr_json rr_proto_one_thread hyper fpm_fw rr_fw_proto rr_fw_json)
declare -A app label url base
add() { app[$1]=$2; label[$1]=$3; url[$1]=$4; base[$1]=$5; }
add fpm_hello hello "nginx + PHP-FPM (2 children)" http://127.0.0.1:18081/hello fpm_hello
add rr_default hello "rr, default settings (codec auto; 2 workers)" http://127.0.0.1:18088/ fpm_hello
add rr_proto hello "rr, codec proto (2 workers)" http://127.0.0.1:18082/ fpm_hello
add rr_json hello "rr, codec json (2 workers)" http://127.0.0.1:18085/ fpm_hello
add rr_proto_one_thread hello "rr, codec proto, GOMAXPROCS=1 (one I/O thread)" http://127.0.0.1:18087/ fpm_hello
add hyper hello "hyper hello, no PHP (ceiling)" http://127.0.0.1:18084/ fpm_hello
add fpm_fw framework "nginx + PHP-FPM (2 children)" http://127.0.0.1:18081/ fpm_fw
add rr_fw_proto framework "rr, codec proto (2 workers)" http://127.0.0.1:18083/ fpm_fw
add rr_fw_json framework "rr, codec json (2 workers)" http://127.0.0.1:18086/ fpm_fw

# One wrk run: requests/s, p50 and p99 in ms.
load() { wrk -t2 -c"$conns" -d"${secs}s" --latency "$1" | bench/http/wrk_summary.awk; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for k in "${keys[@]}"; do wrk -t2 -c"$conns" -d"${WARMUP:-2}s" "${url[$k]}" >/dev/null; done  # warm-up
declare -A rps_runs p50_runs p99_runs ratio_runs
n=${#keys[@]}
for r in $(seq 0 $((runs - 1))); do
  unset round; declare -A round
  for i in $(seq 0 $((n - 1))); do
    k=${keys[$(((i + r) % n))]}
    read -r rps p50 p99 < <(load "${url[$k]}")
    round[$k]=$rps; rps_runs[$k]+=" $rps"; p50_runs[$k]+=" $p50"; p99_runs[$k]+=" $p99"
  done
  for k in "${keys[@]}"; do ratio_runs[$k]+=" $(echo "${round[$k]} / ${round[${base[$k]}]}" | bc -l)"; done
done

echo "| app | server | req/s (median of $runs rounds) | p50 ms | p99 ms | vs FPM, median of rounds | vs FPM, each round |"
echo "|---|---|---|---|---|---|---|"
for k in "${keys[@]}"; do
  # shellcheck disable=SC2086 # the run lists are meant to split
  each=$(printf '%.2fx ' ${ratio_runs[$k]})
  # shellcheck disable=SC2086
  printf '| %s | %s | %.0f | %s | %s | %.2fx | %s|\n' "${app[$k]}" "${label[$k]}" "$(median ${rps_runs[$k]})" \
    "$(median ${p50_runs[$k]})" "$(median ${p99_runs[$k]})" "$(median ${ratio_runs[$k]})" "$each"
done
[ -z "${NO_RSS:-}" ] || exit 0

# Worker memory across at least 100,000 requests (hello, json codec).
rr_pid=$(pgrep -f 'http.address=127.0.0.1:18085' | tail -1)
rss() { for p in $(pgrep -P "$rr_pid" -f 'worker.php'); do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done | paste -sd+ | bc; }
before=$(rss)
total=0
while [ "$total" -lt 100000 ]; do
  n=$(wrk -t2 -c"$conns" -d10s http://127.0.0.1:18085/ | awk '/requests in/ {print $1}')
  total=$((total + n))
done
after=$(rss)
echo
echo "worker RSS, 2 hello workers: ${before} KiB before, ${after} KiB after ${total} requests"
