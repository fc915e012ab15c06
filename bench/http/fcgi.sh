#!/usr/bin/env bash
# The hello app behind nginx three ways in one run, loaded with wrk on loopback:
#   rr alone (http.address), nginx -> FastCGI -> rr (http.fcgi.address, unix socket, kept-alive
#   upstream connections), nginx -> HTTP proxy -> rr (kept-alive upstream connections).
# Each rr: 2 workers, default settings. Rounds rotate the order; medians, markdown table.
# Usage: bench/http/fcgi.sh [rr binary, default dist/rr] [rounds] [seconds] [connections]
# (WARMUP=seconds per setup, default 2). Several rr binaries: FCGI_AB="old=/tmp/rr-old new=dist/rr"
# serves nginx -> FastCGI -> each of them beside the proxy path, in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
rr=$(realpath "${1:-dist/rr}"); runs=${2:-3}; secs=${3:-10}; conns=${4:-32}
work=$(mktemp -d /tmp/rr-bench-fcgi.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
[ -x "$rr" ] || { echo "no rr binary at $rr: cargo run -p velox-cli --release -- build -c velox.toml -o dist" >&2; exit 2; }

quiet="-o logs.mode=off"
(cd examples/hello && exec "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18401 -o rpc.listen=tcp://127.0.0.1:16401) &
(cd examples/hello && exec "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18402 -o rpc.listen=tcp://127.0.0.1:16402) &
(cd examples/hello && exec "$rr" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:18403 -o "http.fcgi.address=unix://$work/rr.sock" \
  -o rpc.listen=tcp://127.0.0.1:16403) &
# FCGI_AB: more rr binaries behind FastCGI, each on its own socket and nginx port (18410, 18411, ...).
ab_names=(); ab_upstreams=; ab_servers=; n_ab=0
for side in ${FCGI_AB:-}; do
  name=${side%%=*} bin=$(realpath "${side#*=}")
  (cd examples/hello && exec "$bin" serve -c .rr.yaml $quiet -o http.address=127.0.0.1:$((18420 + n_ab)) \
    -o "http.fcgi.address=unix://$work/rr-$name.sock" -o rpc.listen=tcp://127.0.0.1:$((16420 + n_ab))) &
  ab_upstreams+="  upstream rr_fcgi_$name { server unix:$work/rr-$name.sock; keepalive 32; }"$'\n'
  ab_servers+="  server { listen 127.0.0.1:$((18410 + n_ab)); location / { include /etc/nginx/fastcgi_params; fastcgi_pass rr_fcgi_$name; fastcgi_keep_conn on; } }"$'\n'
  ab_names+=("$name"); n_ab=$((n_ab + 1))
done
cat > "$work/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body; fastcgi_temp_path $work/fcgi; proxy_temp_path $work/proxy;
  uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  upstream rr_http { server 127.0.0.1:18402; keepalive 32; }
  upstream rr_fcgi { server unix:$work/rr.sock; keepalive 32; }
$ab_upstreams$ab_servers  server {
    listen 127.0.0.1:18404;
    location / { proxy_pass http://rr_http; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:18405;
    location / { include /etc/nginx/fastcgi_params; fastcgi_pass rr_fcgi; fastcgi_keep_conn on; }
  }
}
CONF
sleep 3
nginx -c "$work/nginx.conf" -g 'daemon off;' &
sleep 1
keys=(alone proxy fcgi)
declare -A label url
label[alone]="rr alone (http.address)"; url[alone]=http://127.0.0.1:18401/
label[proxy]="nginx -> HTTP proxy -> rr"; url[proxy]=http://127.0.0.1:18404/
label[fcgi]="nginx -> FastCGI (unix socket) -> rr"; url[fcgi]=http://127.0.0.1:18405/
for i in "${!ab_names[@]}"; do
  k=fcgi_${ab_names[$i]}; keys+=("$k")
  label[$k]="nginx -> FastCGI (unix socket) -> rr ${ab_names[$i]}"; url[$k]=http://127.0.0.1:$((18410 + i))/
done
for k in "${keys[@]}"; do curl -fsS "${url[$k]}" >/dev/null || { echo "not answering: ${url[$k]}"; exit 1; }; done

load() { wrk -t2 -c"$conns" -d"${secs}s" --latency "$1" | bench/http/wrk_summary.awk; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for k in "${keys[@]}"; do wrk -t2 -c"$conns" -d"${WARMUP:-2}s" "${url[$k]}" >/dev/null; done  # warm-up
declare -A runs_of p50_of p99_of
n=${#keys[@]}
for r in $(seq 0 $((runs - 1))); do
  for i in $(seq 0 $((n - 1))); do
    k=${keys[$(((i + r) % n))]}
    read -r rps p50 p99 < <(load "${url[$k]}")
    runs_of[$k]+=" $rps"; p50_of[$k]+=" $p50"; p99_of[$k]+=" $p99"
  done
done
echo "| setup | req/s (median of $runs rounds) | p50 ms | p99 ms | rounds |"
echo "|---|---|---|---|---|"
for k in "${keys[@]}"; do
  # shellcheck disable=SC2086 # the run lists are meant to split
  printf '| %s | %.0f | %s | %s | %s |\n' "${label[$k]}" "$(median ${runs_of[$k]})" "$(median ${p50_of[$k]})" "$(median ${p99_of[$k]})" "${runs_of[$k]# }"
done
