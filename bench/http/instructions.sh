#!/usr/bin/env bash
# Instructions rr executes per request (valgrind's callgrind counts instructions, not seconds, so
# the figure repeats on a noisy machine): rr under callgrind serves examples/hello to wrk for a
# while; its total instructions, start-up included, are divided by the requests served.
#
# Usage: bench/http/instructions.sh [codec] BIN...    e.g. bench/http/instructions.sh proto /tmp/rr-old dist/rr
# RR_OPTS="-o key=value ..." adds serve options (bench/otel.sh's tracing, for one).
# BROWSER=1 sends the headers a browser sends (wrk alone sends only Host).
# VIA=fcgi or VIA=proxy puts nginx (1 worker process) in front: wrk loads nginx, which passes each
# request to rr over FastCGI (unix socket) or as an HTTP proxy, both with kept-alive upstreams.
set -euo pipefail
cd "$(dirname "$0")/../.."
codec=proto
case ${1:-} in proto | json) codec=$1; shift ;; esac
[ $# -ge 1 ] || { echo "usage: $0 [proto|json] BIN..." >&2; exit 2; }
for tool in valgrind wrk; do
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tool >/dev/null; }
done
headers=()
if [ -n "${BROWSER:-}" ]; then
  for h in 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' 'Accept-Encoding: gzip, deflate, br' \
    'Accept-Language: en-US,en;q=0.5' 'Cache-Control: no-cache' 'Connection: keep-alive' 'Pragma: no-cache' \
    'Cookie: session=8f2a61c4e0b9d7a3; theme=dark; _ga=GA1.1.123456789.1700000000' 'Referer: http://127.0.0.1/' \
    'Sec-Fetch-Dest: document' 'Sec-Fetch-Mode: navigate' 'Upgrade-Insecure-Requests: 1' \
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0'; do
    headers+=(-H "$h")
  done
fi
out=$(mktemp -d /tmp/rr-instr.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
for bin in "$@"; do
  [[ $bin == /* ]] || bin=$PWD/$bin
  (cd examples/hello && exec valgrind --tool=callgrind --callgrind-out-file="${CG_OUT:-$out/cg}" "$bin" serve -c .rr.yaml \
    -o logs.mode=off -o http.address=127.0.0.1:18399 -o rpc.listen=tcp://127.0.0.1:18398 -o "http.codec=$codec" \
    -o "http.fcgi.address=unix://$out/fcgi.sock" ${RR_OPTS:-} >"$out/log" 2>&1) &
  for _ in $(seq 60); do curl -fs -o /dev/null http://127.0.0.1:18399/ && break; sleep 0.5; done
  url=http://127.0.0.1:18399/
  if [ -n "${VIA:-}" ]; then
    case $VIA in
      fcgi) pass="include /etc/nginx/fastcgi_params; fastcgi_pass rr; fastcgi_keep_conn on;"; upstream="unix:$out/fcgi.sock" ;;
      proxy) pass="proxy_pass http://rr; proxy_http_version 1.1; proxy_set_header Connection \"\";"; upstream=127.0.0.1:18399 ;;
      *) echo "VIA is fcgi or proxy" >&2; exit 2 ;;
    esac
    cat > "$out/nginx.conf" <<CONF
user root; worker_processes 1; pid $out/nginx.pid; error_log $out/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $out/body; fastcgi_temp_path $out/fcgi; proxy_temp_path $out/proxy;
  uwsgi_temp_path $out/uwsgi; scgi_temp_path $out/scgi;
  upstream rr { server $upstream; keepalive 32; }
  server { listen 127.0.0.1:18397; location / { $pass } } }
CONF
    nginx -c "$out/nginx.conf" -g 'daemon off;' &
    url=http://127.0.0.1:18397/
    for _ in $(seq 20); do curl -fs -o /dev/null $url && break; sleep 0.5; done
  fi
  requests=$(wrk -t1 -c8 -d10s "${headers[@]}" $url | awk '/requests in/ {print $1}')
  pkill -INT -f "callgrind-out-file=${CG_OUT:-$out/cg}"
  [ -z "${VIA:-}" ] || kill "$(cat "$out/nginx.pid")"
  wait
  total=$(awk '/Collected/ {print $4}' "$out/log")
  echo "$bin ($codec${VIA:+, via nginx $VIA}): $((total / requests)) instructions per request ($requests requests)"
done
