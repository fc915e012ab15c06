#!/usr/bin/env bash
# Release a tailored server with velox: one script holds all the logic; the GitHub Actions
# workflow, the GitLab CI template and the Dockerfile only call it.
#
#   ci/release.sh [TARGET...]          (default: the host target)
#
# Environment:
#   VELOX_TOML       recipe (default: velox.toml)
#   DIST             output directory (default: dist)
#   VELOX_CACHE      velox's cache: git checkouts, tarballs (default: .cache/velox)  — cache it in CI
#   CARGO_TARGET_DIR cargo's target directory (default: .cache/target)               — cache it in CI
#   RELEASE_PROFILE  release (default) or debug
#   VELOX            a velox binary to use (default: build velox-cli from this repository,
#                    or `cargo install --locked velox-cli`)
#
# For each target it writes DIST/<name>-<version>-<target>/ with the binary, its manifest
# (<name>.manifest.json), velox.lock, a CycloneDX SBOM (<name>.cdx.json) and SHA256SUMS.
set -euo pipefail

die() { echo "release: $*" >&2; exit 1; }

recipe=${VELOX_TOML:-velox.toml}
dist=${DIST:-dist}
profile=${RELEASE_PROFILE:-release}
export VELOX_CACHE=${VELOX_CACHE:-$PWD/.cache/velox}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/.cache/target}

[ -f "$recipe" ] || die "no $recipe here; run from the directory that holds it or set VELOX_TOML"
lock="$(dirname "$recipe")/velox.lock"
[ -f "$lock" ] || die "$lock is missing: run \`velox build -c $recipe\` once and commit velox.lock"

# velox itself.
if [ -n "${VELOX:-}" ]; then
  velox=$VELOX
elif [ -d velox-cli ]; then
  cargo build -q --release -p velox-cli
  velox=$CARGO_TARGET_DIR/release/velox
else
  command -v velox >/dev/null || cargo install --locked velox-cli
  velox=velox
fi

# The SBOM tool (a maintained CycloneDX generator for cargo projects).
command -v cargo-cyclonedx >/dev/null || cargo install --locked cargo-cyclonedx

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("$(rustc -vV | awk '/^host:/ {print $2}')")
profile_flag=()
[ "$profile" = debug ] && profile_flag=(--debug)

for target in "${targets[@]}"; do
  echo "release: building for $target ($profile)"
  out=$(mktemp -d)
  if ! "$velox" build -c "$recipe" --locked --target "$target" "${profile_flag[@]}" -o "$out" >"$out/velox.log" 2>&1; then
    if grep -q -- "--locked" "$out/velox.log"; then
      cat "$out/velox.log" >&2
      die "velox.lock is out of date for $recipe: run \`velox build -c $recipe\` and commit the new velox.lock"
    fi
    cat "$out/velox.log" >&2
    die "velox build failed for $target"
  fi
  manifest=$(ls "$out"/*.manifest.json)
  name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$manifest")
  version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$manifest")
  artifact="$dist/$name-$version-$target"
  rm -rf "$artifact"
  mkdir -p "$artifact"
  cp "$out/$name" "$manifest" "$lock" "$artifact/"

  # SBOM of exactly the crates linked into this binary: the generated project's dependency graph.
  gen=$(mktemp -d)
  "$velox" generate -c "$recipe" -o "$gen" >/dev/null
  (cd "$gen" && cargo cyclonedx --format json --target "$target" >/dev/null 2>&1 || cargo cyclonedx --format json >/dev/null)
  sbom=$(ls "$gen"/*.cdx.json 2>/dev/null | head -1)
  [ -n "$sbom" ] || die "cargo-cyclonedx produced no SBOM"
  cp "$sbom" "$artifact/$name.cdx.json"
  rm -rf "$gen" "$out"

  (cd "$artifact" && sha256sum -- * | grep -v ' SHA256SUMS$' > SHA256SUMS)
  echo "release: $artifact"
done
