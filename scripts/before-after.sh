#!/usr/bin/env bash
# Two `ae` binaries on the same runs, alternated: epoch seconds (from metrics.json, epochs
# after the first) and whether model.safetensors is byte-identical. For refactors that must
# change neither results nor speed. Run it on a quiet machine.
# Usage: bash scripts/before-after.sh OLD_AE NEW_AE [OUT]   (MODELS="vanilla vae conv",
#        EPOCHS=3, ROUNDS=2)
set -euo pipefail
OLD="$1"
NEW="$2"
OUT="${3:-/tmp/ae-before-after}"
MODELS="${MODELS:-vanilla vae conv}"
EPOCHS="${EPOCHS:-3}"
ROUNDS="${ROUNDS:-2}"
mkdir -p "$OUT"
secs() {
    python3 - "$1/metrics.json" <<'PY'
import json, sys
epochs = json.load(open(sys.argv[1]))["epochs"][1:]
print(" ".join("%.2f" % e["seconds"] for e in epochs))
PY
}
for m in $MODELS; do
    for r in $(seq "$ROUNDS"); do
        for side in old new; do
            bin="$OLD"
            [ "$side" = new ] && bin="$NEW"
            dir="$OUT/$m-$side-$r"
            rm -rf "$dir"
            "$bin" train --model "$m" --epochs "$EPOCHS" --seed 0 --out "$dir" >/dev/null 2>&1
            echo "$m $side round $r: epoch seconds $(secs "$dir")"
        done
    done
    if cmp -s "$OUT/$m-old-1/model.safetensors" "$OUT/$m-new-1/model.safetensors"; then
        echo "$m: model.safetensors identical"
    else
        echo "$m: model.safetensors DIFFERS"
    fi
done
