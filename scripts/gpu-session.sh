#!/usr/bin/env bash
# gpu-session.sh - every check that needs the GPU machine (an NVIDIA GPU with 16 CPU cores),
# in one call, in priority order, each part under its own time limit, so that a short lease
# brings back as much as it can. Writes everything to $OUT (default ./gpu-session-out):
# log.txt (what it prints) and runs.tar.gz (each run's log, metrics.json, memory samples).
#
# usage (on the GPU machine, from the repository root):
#     bash scripts/gpu-session.sh KIT
# KIT is a folder prepared on the build machine by scripts/gpu-kit.sh: bins.tar.xz (ae, a
# `--features cuda` build, also used for the CPU runs; the CUDA test binaries;
# step_profile-cuda; the CPU examples profile, step_profile and fused_profile),
# gpu/ and anchors/ (../shared's), and data/mnist (a link to the repository's).
#
# Parts (seconds each is allowed): 1 GPU epochs of ae (steps replayed from CUDA graphs) vs
# PyTorch eager and compiled, dense and VAE 4 epochs, conv 10 (memory sampled) [370], then ae
# without CUDA graphs, 3 epochs each [120]; 2 the CUDA tests (same gradients as the CPU, every
# model trains, no memory held across steps) [150]; 3 where a GPU step's time goes [60];
# 4 per-op CPU profiles at 2 and all cores (conv ops, the dense autograd phases, the fused
# dense step's layers) [150]; 5 CPU epochs of ae and PyTorch at 2 and all
# cores (../shared/gpu/cpu-scaling.sh) [200]; 6 dense CPU epochs on all cores with the GEMM
# thresholds swept (AE_GEMM_BLOCK_MIN_FLOPS) [120].
#
# PARTS (default "1 2 3 4 5 6") picks parts, e.g. PARTS="1 2" then PARTS="3 4 5 6" in a second call: one
# `run` call may take 600 s at most, and the parts together take longer. Part 0 always runs.
set -u
KIT=$(cd "${1:?usage: gpu-session.sh KIT}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/gpu-session-out}
RUNS=/tmp/gpu-session-runs
mkdir -p "$OUT" "$RUNS"
exec > >(tee -a "$OUT/log.txt") 2>&1
part() { printf '\n===== %s  [%s]\n' "$*" "$(date +%T)"; }
want() { case " ${PARTS:-1 2 3 4 5 6} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
ALL=$(nproc)

part 0 machine and binaries
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
lscpu | grep -E 'Model name|^CPU\(s\)' | tr -s ' '
BIN=$RUNS/bin
mkdir -p "$BIN"
[ -f "$KIT/bins.tar.xz" ] && xz -dc "$KIT/bins.tar.xz" | tar -C "$BIN" -xf -
for f in "$KIT"/*.xz "$KIT"/tests/*.xz; do   # kits packed before bins.tar.xz
  case $f in *bins.tar.xz) continue ;; esac
  [ -f "$f" ] && xz -dc -T0 "$f" > "$BIN/$(basename "$f" .xz)" && chmod +x "$BIN/$(basename "$f" .xz)"
done
ls -la "$BIN"
# cuBLAS, cuRAND, NVRTC and the runtime from the CUDA pip wheels beside PyTorch.
NV=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)/nvidia
[ -d "$NV" ] && export LD_LIBRARY_PATH=$(find "$NV" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ldd "$BIN/ae" | grep -E 'cuda|cublas|curand|nvrtc|not found'
export NO_COLOR=1

if want 1; then
part 1 GPU epochs: ae vs PyTorch eager, the same GPU
# The first ae run pays candle's PTX JIT (cached by the driver afterwards): its first epoch is
# the cold start-up.
# PEER_COMPILE also times torch.compile(mode="reduce-overhead") (CUDA graphs, the fastest
# peer of issue 13; 10-20 s of compiling per model, not counted in its epochs).
MODELS="vanilla vae" OUT=$RUNS/bench ANCHORS=$KIT/anchors MNIST=$ROOT/data/mnist \
  PEER_COMPILE=reduce-overhead timeout 200 bash "$ROOT/scripts/gpu-bench.sh" "$BIN/ae" 4
MODELS=conv OUT=$RUNS/bench ANCHORS=$KIT/anchors MNIST=$ROOT/data/mnist \
  PEER_COMPILE=reduce-overhead timeout 170 bash "$ROOT/scripts/gpu-bench.sh" "$BIN/ae" 10
# The same without CUDA graphs (every op of every step launched): what the recording buys.
MODELS="vanilla vae conv" AE_FLAGS=--no-cuda-graph PEER=0 OUT=$RUNS/bench-eager ANCHORS=$KIT/anchors \
  MNIST=$ROOT/data/mnist timeout 120 bash "$ROOT/scripts/gpu-bench.sh" "$BIN/ae" 3
grep -h "CUDA graph" "$RUNS"/bench/*.log | sort | uniq -c
for m in vanilla vae conv; do
  f=$RUNS/bench/$m.mem
  [ -s "$f" ] && echo "$m GPU memory (MiB), max per tenth of the run: $(awk '{ v[NR] = $1 } END {
    for (d = 0; d < 10; d++) { m = 0; for (i = int(d * NR / 10) + 1; i <= int((d + 1) * NR / 10); i++) if (v[i] > m) m = v[i]; printf "%d ", m } }' "$f")"
done

fi
if want 2; then
part 2 CUDA tests
for t in "$BIN"/cuda_ops "$BIN"/portable "$BIN"/devices "$BIN"/leak; do
  [ -x "$t" ] || continue
  echo "--- $(basename "$t")"
  case $(basename "$t") in
    leak|cuda_ops) timeout 120 "$t" --nocapture --test-threads 1 2>&1 | grep -vE '^\s*$' ;;
    *) timeout 120 "$t" cuda --test-threads 1 2>&1 | grep -vE '^\s*$' ;;
  esac
done

fi
if want 3; then
part 3 where a GPU training step goes
for m in vanilla vae conv; do
  timeout 20 "$BIN/step_profile-cuda" "$m" 200 cuda
done

fi
if want 4; then
part 4 per-op CPU profile at 2 and $ALL cores
for c in 2 "$ALL"; do
  echo "--- $c cores"
  RAYON_NUM_THREADS=$c timeout 60 taskset -c 0-$((c - 1)) "$BIN/profile" 3 tune-malloc new-only
  for m in vanilla vae; do
    RAYON_NUM_THREADS=$c timeout 20 taskset -c 0-$((c - 1)) "$BIN/step_profile" "$m" 100
    RAYON_NUM_THREADS=$c timeout 30 taskset -c 0-$((c - 1)) "$BIN/fused_profile" "$m" 50
  done
done

fi
if want 5; then
part 5 CPU epochs: ae and PyTorch at 2 and $ALL cores
timeout 200 bash "$KIT/gpu/cpu-scaling.sh" "$BIN/ae"

fi
if want 6; then
part 6 dense CPU epochs on $ALL cores, the GEMM thresholds swept
# AE_GEMM_BLOCK_MIN_FLOPS: the fewest multiply-adds per block of a GEMM cut on more than 4
# threads (65536 by default): larger values put the small layers on fewer threads. No bit of
# the weights changes (crates/ae-kernels/src/tuning.rs).
for b in 65536 262144 1048576 4194304; do
  for m in vanilla vae; do
    AE_GEMM_BLOCK_MIN_FLOPS=$b RAYON_NUM_THREADS=$ALL timeout 60 "$BIN/ae" train --model "$m" \
      --epochs 3 --seed 0 --device cpu --out "$RUNS/tune-$m-$b" --overwrite >/dev/null 2>&1
    python3 - "$RUNS/tune-$m-$b/metrics.json" "$m" "$b" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(sys.argv[2], "AE_GEMM_BLOCK_MIN_FLOPS", sys.argv[3], "epoch seconds:",
      " ".join("%.3f" % e["seconds"] for e in m["epochs"]))
PY
  done
done
for m in vanilla vae; do
  cmp "$RUNS/tune-$m-65536/model.safetensors" "$RUNS/tune-$m-4194304/model.safetensors" \
    && echo "$m: the same weights with every threshold"
done

fi
part done
tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude bin --exclude '*.safetensors' . 2>/dev/null
ls -la "$OUT"
