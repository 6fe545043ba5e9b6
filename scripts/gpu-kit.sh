#!/usr/bin/env bash
# gpu-kit.sh - packs what scripts/gpu-session.sh needs on a GPU machine that has no Rust, into
# one folder of the checkout that git ignores (so the device tool can carry it).
#
# usage (on the build machine, from anywhere in the checkout):
#     bash scripts/gpu-kit.sh [KIT]                      (default KIT: .gpu-kit)
# Builds, then packs into one bins.tar.xz:
#   ae                     `ae --features cuda` (scripts/build-cuda.sh, CUDA_TESTS=1)
#   portable, devices, leak, cuda_ops   the CUDA test binaries of ae-kernels, ae-models
#                          and ae-train
#   step_profile-cuda      benches/examples/step_profile with --features ae-benches/cuda
#   profile, step_profile, fused_profile   the CPU per-op, per-phase and per-layer (fused
#                          dense step) profiles
# One archive with a dictionary larger than all of them: the CUDA binaries each hold the
# same few MB of candle's PTX, stored once (15 MB instead of 57 MB of separate .xz files;
# the device tool carries 64 MiB with the working tree).
# and copies ../shared/gpu and ../shared/anchors beside them, with data/mnist linked to the
# repository's. Environment: CUDA_TARGET_DIR [<checkout>/target/cuda13], CARGO_TARGET_DIR
# for the CPU examples [cargo's default], SHARED [<checkout>/../shared].
# The kit is about 45 MB; the device tool carries at most 64 MiB with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
KIT=${1:-.gpu-kit}
SHARED=${SHARED:-$ROOT/../shared}
CUDA_TARGET_DIR=${CUDA_TARGET_DIR:-$ROOT/target/cuda13}
CPU_TARGET_DIR=${CARGO_TARGET_DIR:-}
grep -qxF "/$KIT/" .git/info/exclude 2>/dev/null || echo "/$KIT/" >> .git/info/exclude
rm -rf "$KIT" && mkdir -p "$KIT/data"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

# 1. the CUDA binary and test binaries
CARGO_TARGET_DIR=$CUDA_TARGET_DIR CUDA_TESTS=1 bash scripts/build-cuda.sh >&2
eval "$(SKIP_BUILD=1 CARGO_TARGET_DIR=$CUDA_TARGET_DIR bash scripts/build-cuda.sh 2>&1 \
  | grep '^CUDA_ROOT=' | sed -E 's/ cargo build.*//; s/^/export /')"
tests=$(cargo test --release --no-run --locked -p ae-kernels -p ae-models -p ae-train \
  --features ae-kernels/cuda,ae-models/cuda,ae-train/cuda --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("portable", "devices", "leak", "cuda_ops"):
        print(m["target"]["name"], m["executable"])')
[ "$(echo "$tests" | wc -l)" -eq 4 ] || { echo "gpu-kit.sh: expected 4 test binaries, got: $tests" >&2; exit 1; }
while read -r name exe; do cp "$exe" "$STAGE/$name"; done <<< "$tests"
cargo build --release --locked -p ae-benches --example step_profile --features ae-benches/cuda >&2
cp "$CUDA_TARGET_DIR/release/ae" "$STAGE/ae"
cp "$CUDA_TARGET_DIR/release/examples/step_profile" "$STAGE/step_profile-cuda"

# 2. the CPU examples (the CPU target dir)
unset CUDA_ROOT CUDA_COMPUTE_CAP NVCC_APPEND_FLAGS CARGO_PROFILE_RELEASE_STRIP CARGO_TARGET_DIR
[ -n "$CPU_TARGET_DIR" ] && export CARGO_TARGET_DIR=$CPU_TARGET_DIR
cargo build --release --locked -p ae-kernels --example profile >&2
cargo build --release --locked -p ae-benches --example step_profile --example fused_profile >&2
CPU_TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
for e in profile step_profile fused_profile; do cp "$CPU_TARGET/release/examples/$e" "$STAGE/$e"; done
(cd "$STAGE" && tar -cf - -- *) | xz -9e --lzma2=dict=256MiB -T1 > "$KIT/bins.tar.xz"

# 3. the peers' scripts and the data link
cp -r "$SHARED/gpu" "$SHARED/anchors" "$KIT/"
rm -rf "$KIT/anchors/.venv" "$KIT/anchors/__pycache__"
ln -s ../../data/mnist "$KIT/data/mnist"
du -sh "$KIT"
echo "$KIT"
