#!/usr/bin/env bash
# Issue 12's measured examples on data that is not MNIST (docs/results.md, "Your own data"):
#   * RGB: 32x32 patches of scikit-learn's two sample photos as PNG folders; test PSNR of a
#     dense and a conv autoencoder with a 64-number code against PCA-64.
#   * table: the breast-cancer table as one-class data; ROC-AUC of `ae anomaly fit` (alone
#     and as a 3-seed ensemble) against IsolationForest and PCA reconstruction error.
# Usage: bash scripts/own-data-examples.sh [OUT]   (default /tmp/ae-own-data)
# Needs a Python with numpy, scikit-learn and pillow: $PY, else /tmp/skl/bin/python
# (python3 -m venv /tmp/skl && /tmp/skl/bin/pip install numpy scikit-learn pillow).
# Builds the release `ae` first. SEEDS (default "0 1 2") picks the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/ae-own-data}"
PY="${PY:-/tmp/skl/bin/python}"
SEEDS="${SEEDS:-0 1 2}"
HERE="$PWD/scripts/own_data_examples.py"
cargo build --release -q -p ae-cli
AE="${CARGO_TARGET_DIR:-target}/release/ae"
AE="$(realpath "$AE")"
rm -rf "$OUT"
"$PY" "$HERE" prepare "$OUT"
cd "$OUT"

echo "== RGB patches: test PSNR (dB), code of 64 numbers"
"$PY" "$HERE" rgb-pca . 64
psnr() { grep -o '"psnr": [0-9.]*' | cut -d' ' -f2 | xargs printf '%.2f'; }
for spec in "vanilla --loss mse --latent-dim 64 --epochs 30" \
    "conv --dense-code 64 --epochs 20"; do
    line=""
    for seed in $SEEDS; do
        # shellcheck disable=SC2086
        p=$("$AE" train --model $spec --data rgb/train --test-data rgb/test --seed "$seed" \
            --out "runs/rgb-$seed" --overwrite --json 2>/dev/null | psnr)
        line="$line $p"
    done
    echo "ae $spec, seeds $SEEDS:$line"
done

echo "== breast-cancer table, one-class: test ROC-AUC"
"$PY" "$HERE" table-baselines .
line=""
for seed in $SEEDS; do
    "$AE" anomaly fit --data table/train.csv --label-column label --seed "$seed" \
        --out "runs/det-$seed" --overwrite >/dev/null 2>&1
    "$AE" anomaly score --checkpoint "runs/det-$seed" --data table/test.csv \
        --label-column label --out "scores-$seed.csv" >/dev/null 2>&1
    line="$line $("$PY" "$HERE" auc "scores-$seed.csv")"
done
echo "ae anomaly fit (defaults), seeds $SEEDS:$line"
set -- $SEEDS
with=()
for seed in "${@:2}"; do with+=(--with "runs/det-$seed"); done
"$AE" anomaly eval --checkpoint "runs/det-$1" "${with[@]}" --data table/test.csv \
    --label-column label | grep -E 'roc-auc|score' | sed 's/^/ensemble of seeds '"$SEEDS"': /'
