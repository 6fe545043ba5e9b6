#!/usr/bin/env bash
# build-cuda.sh - build a release `ae` binary with `--features cuda` on a Linux x86-64 machine
# that has NO GPU and NO CUDA toolkit, using NVIDIA's CUDA 13.0 pip wheels as the toolkit.
#
# From any directory (it works in the checkout it belongs to):
#     bash scripts/build-cuda.sh
# It prints the path of the built binary on its last line. The first run takes 12-15 minutes on
# 2 cores (candle-kernels' nvcc work); CI runs it as a compile check (.github/workflows/cuda.yml).
#
# Needs: python3 + pip with access to PyPI, gcc (host compiler for nvcc and for the libcuda
# stub), cargo/rustc at the project's rust-version, and the crate registry (or a filled ~/.cargo registry).
#
# Optional environment:
#   CUDA13_PREFIX     where the wheels, the merged CUDA root and the libcuda stub go  [/tmp/cuda13]
#   CUDA_COMPUTE_CAP  GPU the kernels are compiled for; cudaforge (candle-kernels' build.rs)
#                     turns "90" into sm_90a / compute_90a (Hopper: H100, H200)        [90]
#   CARGO_TARGET_DIR  cargo's target dir; default keeps it apart from CPU builds   [<checkout>/target/cuda13]
#   CARGO_BUILD_JOBS  cargo's -j (cargo's own default if unset)
#   NVCC_CCBIN        another host compiler for nvcc (cudaforge then adds -allow-unsupported-compiler)
#   FATBIN_COMPRESS   nvcc --compress-mode for the cubins of candle's static libmoe.a  [size]
#                     "size" shrinks them ~4x (the fatbin is 33 MB of a 61 MB binary with nvcc's
#                     default); these compressed modes need a CUDA 13 driver >= 580. "default"
#                     leaves nvcc's default. Cargo does not watch this variable: after changing it
#                     run `cargo clean --release -p candle-kernels` (with the same CARGO_TARGET_DIR).
#   STRIP             1: link a stripped binary (CARGO_PROFILE_RELEASE_STRIP=symbols); 0: don't [1]
#   SKIP_BUILD=1      prepare the toolkit only, print the environment, do not run cargo
#   CUDA_TESTS=1      also compile (not run) the test binaries of ae-kernels, ae-models and
#                     ae-train with their `cuda` feature: the CUDA variants of the device tests
#
# What it does:
#   1. pip-installs the CUDA 13.0 compiler, headers and libraries into $CUDA13_PREFIX/py
#      (CUDA 13 wheels all land in $CUDA13_PREFIX/py/nvidia/cu13/{bin,include,nvvm,lib}).
#   2. merges them (symlinks) into one CUDA root $CUDA13_PREFIX/root with bin/, include/, nvvm/
#      and lib64/ (plus the unversioned libfoo.so links the linker wants), and checks that nvcc
#      runs and compiles a kernel to sm_90 PTX.
#   3. builds a link-time stub libcuda.so (soname libcuda.so.1) in root/lib64/stubs: the driver
#      library is in no wheel. Every cu* entry point the project could reference (cudarc's driver
#      bindings + cuda.h) is defined and returns CUDA_ERROR_STUB_LIBRARY (34). At run time the GPU
#      machine's real libcuda.so.1 is loaded instead; nothing puts an rpath into the binary.
#   4. runs `cargo build --release -p ae-cli --features cuda --locked` with CUDA_ROOT, PATH and
#      CUDA_COMPUTE_CAP set. cudarc (dynamic-linking, cuda-version-from-build-system) reads the
#      version from `nvcc --version` and links -lcuda -lcublas -lcublasLt -lcurand -lnvrtc from
#      $CUDA_ROOT/lib64{,/stubs}; candle-kernels compiles its PTX and libmoe.a with nvcc and links
#      -lcudart. candle-kernels is the slow part (about 10 of the 15 minutes on 2 cores).
set -euo pipefail

# ---- versions: CUDA 13.0 Update 2 (keep nvcc at 13.0 so its PTX (ISA 9.0) loads on a CUDA 13.0
# driver, e.g. 580.xx; a newer nvcc emits PTX an older driver refuses) ----
WHEELS=(
  nvidia-cuda-nvcc==13.0.88     # nvcc, ptxas, fatbinary, cudafe++, nvlink, bin2c
  nvidia-cuda-crt==13.0.88      # include/crt (host/device runtime headers nvcc needs)
  nvidia-nvvm==13.0.88          # nvvm/bin/cicc, nvvm/libdevice
  nvidia-cuda-runtime==13.0.96  # cuda_runtime.h etc., libcudart.so.13
  nvidia-cuda-cccl==13.0.85     # include/cccl (cub, thrust, libcu++)
  nvidia-cuda-nvrtc==13.0.88    # libnvrtc.so.13
  nvidia-curand==10.4.0.35      # libcurand.so.10
  nvidia-cublas==13.1.0.3       # libcublas.so.13, libcublasLt.so.13 (the 13.0 U2 release's cuBLAS)
)

PREFIX="${CUDA13_PREFIX:-/tmp/cuda13}"
PY="$PREFIX/py"
ROOT="$PREFIX/root"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'build-cuda.sh: %s\n' "$*" >&2; exit 1; }

# ---- 0. preflight ----
cd "$(dirname "$0")/.."
[ -f Cargo.toml ] && [ -f crates/ae-cli/Cargo.toml ] || die "run me from the project root (no crates/ae-cli here)"
CHECKOUT="$(pwd -P)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CHECKOUT/target/cuda13}"
for tool in python3 gcc cargo; do command -v "$tool" >/dev/null || die "$tool not found"; done
python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip does not work"
[ "$(uname -m)" = x86_64 ] || die "only x86-64 Linux is handled (the wheels are manylinux x86_64)"

# ---- 1. CUDA 13.0 wheels -> $PREFIX/py (skipped when this exact set is already there) ----
stamp="$PY/.wheels-$(printf '%s\n' "${WHEELS[@]}" | tr -d ' ' | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  say "1. wheels already in $PY"
else
  say "1. pip install CUDA 13.0 wheels into $PY"
  mkdir -p "$PY"
  # --no-deps: exactly these versions, nothing pulled in; --upgrade: replace an older set
  python3 -m pip install --quiet --no-deps --upgrade --target "$PY" "${WHEELS[@]}"
  touch "$stamp"
fi
[ -d "$PY/nvidia" ] || die "no $PY/nvidia after pip install"

# ---- 2. merged CUDA root: symlink trees of every wheel root (nvidia/cu13 for CUDA 13 wheels) ----
say "2. merged CUDA root $ROOT"
rm -rf "$ROOT"
mkdir -p "$ROOT/lib64/stubs"
found_nvcc=0
for d in "$PY"/nvidia/*/; do
  d="${d%/}"
  for sub in bin include nvvm; do
    [ -d "$d/$sub" ] && cp -rsf "$d/$sub" "$ROOT/"   # cp -s: a tree of symlinks, merged
  done
  [ -d "$d/lib" ] && cp -rsf "$d/lib/." "$ROOT/lib64/"
  [ -x "$d/bin/nvcc" ] && found_nvcc=1
done
[ "$found_nvcc" = 1 ] || die "no bin/nvcc in any $PY/nvidia/*/"
# unversioned names for the linker: libcublas.so -> libcublas.so.13, ...
( cd "$ROOT/lib64"
  for f in lib*.so.[0-9]*; do
    [ -e "$f" ] || continue
    base="${f%%.so.*}.so"
    [ -e "$base" ] || ln -s "$f" "$base"
  done )
for lib in cublas cublasLt curand nvrtc cudart; do
  [ -e "$ROOT/lib64/lib$lib.so" ] || die "lib$lib.so missing in $ROOT/lib64"
done

# nvcc must run and make sm_90 PTX (nvcc takes bin/.. as its root, so the merged include/ and
# nvvm/ are the ones it uses)
nvcc_version="$("$ROOT/bin/nvcc" --version)" || die "nvcc does not run"
grep -q 'release 13\.0' <<<"$nvcc_version" || die "expected nvcc 13.0, got: $nvcc_version"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/t.cu" <<'EOF'
#include <cuda_fp16.h>
extern "C" __global__ void axpy(float a, const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += a * x[i];
}
EOF
ccbin=(); [ -n "${NVCC_CCBIN:-}" ] && ccbin=(-allow-unsupported-compiler -ccbin "$NVCC_CCBIN")
"$ROOT/bin/nvcc" "${ccbin[@]}" -arch=sm_90 --ptx "$tmp/t.cu" -o "$tmp/t.ptx" \
  || die "nvcc cannot compile a trivial kernel (host compiler too new? set NVCC_CCBIN, or NVCC_APPEND_FLAGS=-allow-unsupported-compiler)"
grep -q '^\.target sm_90' "$tmp/t.ptx" || die "nvcc made no sm_90 PTX"
echo "nvcc: $(sed -n 4p <<<"$nvcc_version")" >&2

# ---- 3. link-time stub libcuda.so ----
say "3. libcuda.so stub in $ROOT/lib64/stubs"
# cudarc's driver bindings name every cu* function the binary can reference; find them through
# cargo (this also downloads the crates the cuda build needs).
cudarc_dir="$(cargo metadata --format-version 1 --locked --features ae-cli/cuda 2>/dev/null | python3 -c '
import json, os, sys
pk = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"]
print(os.path.dirname(pk[0]["manifest_path"]) if pk else "")')" || true
syms="$tmp/syms"
: >"$syms"
if [ -n "$cudarc_dir" ] && [ -f "$cudarc_dir/src/driver/sys/mod.rs" ]; then
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$cudarc_dir/src/driver/sys/mod.rs" | awk '{print $4}' >>"$syms"
  echo "cudarc: $cudarc_dir" >&2
else
  echo "warning: cudarc's driver bindings not found; the stub uses cuda.h's names only" >&2
fi
# ... and every cu* name in cuda.h (the _v2/_v3 names its macros point at included)
grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$ROOT/include/cuda.h" >>"$syms"
sort -u "$syms" -o "$syms"
{
  echo '/* link-time stand-in for libcuda.so.1; never used at run time on a GPU machine */'
  while read -r s; do echo "int $s(void) { return 34; /* CUDA_ERROR_STUB_LIBRARY */ }"; done <"$syms"
} >"$tmp/libcuda_stub.c"
gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$ROOT/lib64/stubs/libcuda.so" "$tmp/libcuda_stub.c"
ln -sf libcuda.so "$ROOT/lib64/stubs/libcuda.so.1"   # only for smoke runs here (LD_LIBRARY_PATH)
echo "stub: $(wc -l <"$syms") symbols" >&2

# ---- 4. build ----
# Only our root is visible: other CUDA_* roots would add their lib dirs to cudarc's search path.
unset CUDA_HOME CUDA_PATH CUDA_TOOLKIT_ROOT_DIR CUDNN_LIB NVCC
export CUDA_ROOT="$ROOT"
export PATH="$ROOT/bin:$PATH"
FATBIN_COMPRESS="${FATBIN_COMPRESS:-size}"
if [ "$FATBIN_COMPRESS" != default ]; then
  # nvcc reads NVCC_APPEND_FLAGS on every call; for --ptx the PTX is unchanged
  export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:+$NVCC_APPEND_FLAGS }--compress-mode=$FATBIN_COMPRESS"
fi
if [ "${STRIP:-1}" = 1 ]; then export CARGO_PROFILE_RELEASE_STRIP=symbols; fi
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  say "toolkit ready; build with:"
  echo "CUDA_ROOT=$CUDA_ROOT PATH=$ROOT/bin:\$PATH CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP NVCC_APPEND_FLAGS='${NVCC_APPEND_FLAGS:-}' CARGO_PROFILE_RELEASE_STRIP=${CARGO_PROFILE_RELEASE_STRIP:-none} CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -p ae-cli --features cuda --locked" >&2
  exit 0
fi
say "4. cargo build --release -p ae-cli --features cuda --locked (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, NVCC_APPEND_FLAGS='${NVCC_APPEND_FLAGS:-}', target $CARGO_TARGET_DIR)"
start=$SECONDS
cargo build --release -p ae-cli --features cuda --locked
bin="$CARGO_TARGET_DIR/release/ae"
[ -x "$bin" ] || die "no binary at $bin"
echo "built in $((SECONDS - start)) s; $(du -h "$bin" | cut -f1) ($(stat -c %s "$bin") bytes)" >&2
if [ "${CUDA_TESTS:-0}" = 1 ]; then
  say "4b. cargo test --release --no-run (ae-kernels, ae-models, ae-train with cuda)"
  cargo test --release --no-run --locked -p ae-kernels -p ae-models -p ae-train \
    --features ae-kernels/cuda,ae-models/cuda,ae-train/cuda
fi
# Expected NEEDED: libcuda.so.1 libcurand.so.10 libcublas.so.13 libcudart.so.13 (libcublas.so.13
# pulls in libcublasLt.so.13; -lnvrtc is dropped by --as-needed) and no rpath/runpath.
readelf -d "$bin" | grep -E 'NEEDED|RPATH|RUNPATH' >&2 || true
if readelf -d "$bin" | grep -qE 'RPATH|RUNPATH'; then echo "warning: the binary has an rpath" >&2; fi
echo "$bin"
