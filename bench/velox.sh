#!/usr/bin/env bash
# velox's own overhead: each velox build beside a plain `cargo build` of the same generated
# project, in one run: a cold build, a repeat build with nothing changed, and a build after
# adding one plugin. Dev profile, fresh target directories per side and per run. The two sides
# take turns going first (the first cold build warms the OS file cache for the second), and
# each figure is the median over the runs.
# Usage: bench/velox.sh [runs]     (prints a markdown table; copy it to docs/BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
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
vbuild() { secs "$velox" build -c "$work/velox.toml" --debug -o "$work/dist" --target-dir "$work/t-velox-$run"; }
cbuild() { "$velox" generate -c "$work/velox.toml" -o "$work/gen" >/dev/null 2>&1; secs cargo build --manifest-path "$work/gen/Cargo.toml" --target-dir "$work/t-cargo-$run"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A v c
for run in $(seq 1 "$runs"); do
  recipe http rpc
  for step in cold repeat; do
    if (( run % 2 )); then v[$step]+="$(vbuild) "; c[$step]+="$(cbuild) "; else c[$step]+="$(cbuild) "; v[$step]+="$(vbuild) "; fi
  done
  recipe http rpc status
  if (( run % 2 )); then v[add]+="$(vbuild) "; c[add]+="$(cbuild) "; else c[add]+="$(cbuild) "; v[add]+="$(vbuild) "; fi
  rm -rf "$work"/t-*-"$run"
done

echo "| build | velox s | plain cargo s | velox overhead |"
echo "|---|---|---|---|"
for step in cold repeat add; do
  vm=$(tr ' ' '\n' <<<"${v[$step]}" | grep . | median); cm=$(tr ' ' '\n' <<<"${c[$step]}" | grep . | median)
  label=${step/cold/cold (runtime + http + rpc)}; label=${label/repeat/repeat, nothing changed}; label=${label/add/after adding the status plugin}
  printf '| %s | %.2f | %.2f | %+.2f s (%+.1f%%) |\n' "$label" "$vm" "$cm" "$(echo "$vm - $cm" | bc)" "$(echo "($vm - $cm) * 100 / $cm" | bc -l)"
done
echo
echo "raw seconds (velox / cargo): cold ${v[cold]}/ ${c[cold]}; repeat ${v[repeat]}/ ${c[repeat]}; add ${v[add]}/ ${c[add]}"
