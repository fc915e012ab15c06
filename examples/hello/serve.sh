#!/usr/bin/env bash
# README command 1: build a small rr with velox (examples/hello/velox.toml: the runtime and the
# http plugin) and serve this app on http://127.0.0.1:8080. What a fresh Debian machine lacks for
# it (php-cli, a C compiler) is installed first when run as root, as tests/run.sh does; otherwise
# it stops at once with the command to run. Extra arguments go to `rr serve`.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v php >/dev/null 2>&1 || need+=(php-cli)   # the workers
command -v cc >/dev/null 2>&1 || need+=(gcc)        # cargo's linker, and C code in ring and mimalloc
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "error: this needs ${need[*]}, which this machine lacks; install it and run this again:" >&2
    echo "  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
command -v cargo >/dev/null 2>&1 || {
  echo "error: cargo is not installed; install Rust with https://rustup.rs and run this again" >&2
  exit 1
}

cargo run -p velox-cli -- build -c examples/hello/velox.toml -o dist/hello
exec ./dist/hello/rr serve -c examples/hello/.rr.yaml "$@"
