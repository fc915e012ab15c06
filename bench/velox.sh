#!/usr/bin/env bash
# velox's own overhead: each velox build beside a plain `cargo build` of the same generated
# project, in one run: a cold build, a repeat build with nothing changed, and a build after
# adding one plugin. Dev profile, fresh target directories per side.
# Usage: bench/velox.sh            (prints a markdown table; copy it to docs/BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/velox-bench.XXXX)
trap 'rm -rf "$work"' EXIT
cargo build -q --release -p velox-cli
velox=$root/target/release/velox
export VELOX_CACHE=$work/cache

recipe() {  # plugins...
  { printf '[binary]\nname = "rr"\nversion = "bench"\n\n[runtime]\npath = "%s/runtime"\n' "$root"
    for p in "$@"; do printf '\n[plugins.%s]\npath = "%s/plugins/%s"\n' "$p" "$root" "$p"; done; } > "$work/velox.toml"
}
secs() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
vbuild() { secs "$velox" build -c "$work/velox.toml" --debug -o "$work/dist" --target-dir "$work/t-velox"; }
cbuild() { "$velox" generate -c "$work/velox.toml" -o "$work/gen" >/dev/null 2>&1; secs cargo build --manifest-path "$work/gen/Cargo.toml" --target-dir "$work/t-cargo"; }

echo "| build | velox s | plain cargo s | velox overhead |"
echo "|---|---|---|---|"
row() { printf '| %s | %.2f | %.2f | %+.2f s (%+.1f%%) |\n' "$1" "$2" "$3" "$(echo "$2 - $3" | bc)" "$(echo "($2 - $3) * 100 / $3" | bc -l)"; }
recipe http rpc
v=$(vbuild); c=$(cbuild); row "cold (runtime + http + rpc)" "$v" "$c"
v=$(vbuild); c=$(cbuild); row "repeat, nothing changed" "$v" "$c"
recipe http rpc status
v=$(vbuild); c=$(cbuild); row "after adding the status plugin" "$v" "$c"
