#!/usr/bin/env bash
# serial-share.sh - how much of a training epoch's CPU work no other thread can share.
#
# A fused training step runs its parallel work on rayon's workers while the training loop's
# thread (the main thread) sleeps; whatever the main thread itself computes is serial. So the
# main thread's share of the CPU samples of the training epochs is the serial fraction s, and
# 1 / (s + (1 - s) / N) bounds the speed-up on N cores (Amdahl). Serial work grows with the
# thread count (per-task accumulators to sum, more blocks), so run it with the thread count
# of the machine in question: RAYON_NUM_THREADS=16 on a 2-core machine finds what a 16-core
# machine would wait on. Work that one worker does while the others wait (inside a parallel
# region) is not counted: the figure is a lower bound of the serial time.
#
# usage: bash scripts/serial-share.sh MODEL [EPOCHS] [THREADS] [EXTRA ae train FLAGS...]
#   e.g. bash scripts/serial-share.sh vanilla 2 16
#        bash scripts/serial-share.sh conv 1 16 --train-limit 15000
# Needs `perf` (linux-tools) and python3; builds the release binary; MNIST from data/mnist.
set -eu
MODEL=${1:?usage: serial-share.sh MODEL [EPOCHS] [THREADS] [FLAGS...]}
EPOCHS=${2:-2}
THREADS=${3:-16}
shift $(($# < 3 ? $# : 3))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/ae-serial.XXXXXX)
trap 'rm -rf "$W"' EXIT
cargo build --release --locked -q -p ae-cli --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ae
RAYON_NUM_THREADS=$THREADS perf record -q -e cpu-clock:u -F 1000 --call-graph dwarf,32768 \
    -o "$W/perf.data" -- "$BIN" train --model "$MODEL" --epochs "$EPOCHS" --seed 0 \
    --data-dir "$ROOT/data/mnist" --out "$W/run" "$@" >/dev/null 2>&1
perf script -i "$W/perf.data" -F tid,time,ip,sym 2>/dev/null >"$W/samples.txt"
echo "$MODEL, $EPOCHS epochs, RAYON_NUM_THREADS=$THREADS on $(nproc) cores:"
python3 "$ROOT/scripts/serial_share.py" "$W/samples.txt" 12
