#!/usr/bin/env bash
# gpu-bench.sh - ae against PyTorch on the same GPU: the dense seed model, the conv autoencoder
# and the 784-400-20 VAE (the work of ../shared/anchors/torch_gpu.py), epoch times side by side.
#
# usage: bash scripts/gpu-bench.sh PATH/TO/ae [EPOCHS]      (a `--features cuda` build of ae;
#        scripts/build-cuda.sh makes one)
# Runs ON the GPU machine (CUDA 13 driver; PyTorch with CUDA in python3 for the peer).
# Environment: ANCHORS (folder of torch_gpu.py and mnist_np.py) [../shared/anchors beside the
# repository], MNIST (folder of the four MNIST .gz files) [data/mnist], DEVICE [cuda],
# OUT (run folders) [/tmp/ae-gpu-bench], MODELS [vanilla conv vae], PEER_COMPILE (e.g. reduce-overhead: also time
# torch.compile with CUDA graphs, the fastest PyTorch), AE_FLAGS (more flags for `ae train`, e.g.
# --no-cuda-graph to launch every op of every step instead of replaying a recorded step), PEER=0
# (skip the PyTorch runs).
#
# Prints, per model: ae's epoch seconds (the training loop only, from the run's metrics.json),
# the peer's, and the ratio peer / ae over the epochs after the first (> 1: ae is faster), plus
# ae's peak GPU memory (nvidia-smi, sampled every 200 ms). Exit status 1 if a run failed.
set -u
BIN=${1:?usage: gpu-bench.sh PATH/TO/ae [EPOCHS]}
EPOCHS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
MNIST=${MNIST:-$ROOT/data/mnist}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/ae-gpu-bench}
rc=0
mkdir -p "$OUT"
[ "$EPOCHS" -ge 2 ] || { echo "EPOCHS must be at least 2 (the first epoch pays start-up)"; exit 2; }
# cuBLAS, cuRAND and NVRTC from the CUDA pip wheels next to PyTorch, if there are any.
if NV=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null); then
  export LD_LIBRARY_PATH=$(find "$NV/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# mean of the numbers on stdin after the first
mean_after_first() { awk 'NR > 1 { s += $1; n++ } END { if (n) printf "%.3f", s / n; else print "nan" }'; }

printf '\n%-8s %-28s %-28s %s\n' model "ae s/epoch (2nd..)" "PyTorch s/epoch (2nd..)" "ratio torch/ae"
for m in ${MODELS:-vanilla conv vae}; do
  log=$OUT/$m.log
  mem=$OUT/$m.mem
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$mem" & smi=$!
  else
    smi=
  fi
  NO_COLOR=1 "$BIN" train --model "$m" --device "$DEVICE" --epochs "$EPOCHS" --seed 0 --overwrite \
    --data-dir "$MNIST" --out "$OUT/$m" ${AE_FLAGS:-} > "$log" 2>&1 || { echo "ae train $m failed: $(tail -2 "$log")"; rc=1; }
  [ -n "$smi" ] && { kill "$smi"; wait "$smi" 2>/dev/null; }
  ours=$(python3 -c 'import json, sys; print("\n".join(str(e["seconds"]) for e in json.load(open(sys.argv[1]))["epochs"]))' \
    "$OUT/$m/metrics.json" 2>/dev/null)
  [ "${PEER:-1}" = 0 ] && theirs= || theirs=$(cd "$ANCHORS" && MNIST_DIR=$MNIST python3 torch_gpu.py "$m" "$EPOCHS" 2>"$OUT/$m.torch.err" \
    | grep -oE 'time [0-9.]+s' | grep -oE '[0-9.]+')
  a=$(echo "$ours" | mean_after_first)
  t=$(echo "$theirs" | mean_after_first)
  ratio=$(awk -v a="$a" -v t="$t" 'BEGIN { if (a > 0 && t > 0) printf "%.2fx", t / a; else print "-" }')
  peak=$( [ -s "$mem" ] && sort -n "$mem" | tail -1 || echo "?")
  printf '%-8s %-28s %-28s %s   (ae first epoch %s s, peak GPU %s MiB)\n' "$m" "$a" "$t" "$ratio" \
    "$(echo "$ours" | head -1)" "$peak"
  if [ -n "${PEER_COMPILE:-}" ]; then
    tc=$(cd "$ANCHORS" && COMPILE=$PEER_COMPILE MNIST_DIR=$MNIST python3 torch_gpu.py "$m" "$EPOCHS" 2>/dev/null \
      | grep -oE 'time [0-9.]+s' | grep -oE '[0-9.]+' | mean_after_first)
    printf '%-8s %-28s %-28s %s\n' "" "" "compile=$PEER_COMPILE: $tc" \
      "$(awk -v a="$a" -v t="$tc" 'BEGIN { if (a > 0 && t > 0) printf "%.2fx", t / a; else print "-" }')"
  fi
done
exit $rc
