#!/usr/bin/env bash
# Hostile cases of docs/reliability.md: runs each, prints "exit code | first line of stderr".
# Usage: docs/hostile.sh path/to/ae   (from the repository root; writes into a temp folder)
set -u
AE=${1:-target/release/ae}
AE=$(realpath "$AE")
M=$(realpath data/mnist)
T=$(mktemp -d)
cd "$T"
export RUST_LOG=warn
n=0
case_() {
  n=$((n + 1))
  local what=$1
  shift
  timeout 60 "$@" >/dev/null 2>err.txt
  local rc=$?
  local msg
  msg=$(grep -v WARN err.txt | head -1 | cut -c1-160)
  printf '| %d | %s | %s | %s |\n' "$n" "$what" "$rc" "${msg//|/\\|}"
}
$AE train --out R --train-limit 256 --test-limit 64 --epochs 1 --hidden 32 --latent-dim 8 >/dev/null 2>&1
$AE train --model vae --out V --train-limit 256 --test-limit 64 --epochs 1 >/dev/null 2>&1
S="--train-limit 64 --test-limit 16 --epochs 1"
case_ "--device cuda on a CPU build" $AE train --out X1 $S --device cuda
case_ "--device cuda:99" $AE train --out X2 $S --device cuda:99
case_ "--device metal" $AE train --out X3 $S --device metal
case_ "--device tpu" $AE eval --checkpoint R --device tpu
case_ "--device ''" $AE eval --checkpoint R --device ''
case_ "--epochs 0" $AE train --out X4 --train-limit 64 --test-limit 16 --epochs 0
case_ "--epochs -1" $AE train --out X5 $S --epochs -1
case_ "--epochs 1e3" $AE train --out X5 $S --epochs 1e3
case_ "--batch-size 0" $AE train --out X6 $S --batch-size 0
case_ "--batch-size 10^18" $AE train --out X7 $S --batch-size 1000000000000000000
case_ "--lr NaN" $AE train --out X8 $S --lr NaN
case_ "--lr -1" $AE train --out X8 $S --lr -1
case_ "--lr inf" $AE train --out X8 $S --lr inf
case_ "--train-limit 0" $AE train --out X9 --train-limit 0 --test-limit 16 --epochs 1
case_ "--test-limit 0" $AE train --out X10 --train-limit 64 --test-limit 0 --epochs 1
case_ "--train-limit 10^19 (beyond usize)" $AE train --out X11 --train-limit 10000000000000000000 --test-limit 16 --epochs 1
case_ "--hidden 0" $AE train --out X12 $S --hidden 0
case_ "--hidden ''" $AE train --out X12 $S --hidden ''
case_ "--hidden 1000000000" $AE train --out X13 $S --hidden 1000000000
case_ "--hidden 3000000 (fits per layer, not in total)" $AE train --out X13 $S --hidden 3000000
case_ "--latent-dim 10^12" $AE train --out X14 $S --latent-dim 1000000000000
case_ "--model conv --channels 100000000" $AE train --out X15 $S --model conv --channels 100000000
case_ "--model conv --channels 8,8,8,8,8 (28 not divisible by 32)" $AE train --out X16 $S --model conv --channels 8,8,8,8,8
case_ "--schedule cosine:-1" $AE train --out X17 $S --schedule cosine:-1
case_ "--schedule step:0:0.5" $AE train --out X17 $S --schedule step:0:0.5
case_ "--noise gaussian:NaN" $AE train --out X18 $S --model denoising --noise gaussian:NaN
case_ "--beta -1" $AE train --out X19 $S --model vae --beta -1
case_ "--max-epochs-this-call 0" $AE train --out X20 $S --max-epochs-this-call 0
case_ "--max-model-bytes 1000 (default model)" $AE train --out X21 $S --max-model-bytes 1000
case_ "--dataset custom without files" $AE train --out X22 --dataset custom $S
case_ "--train-images a directory" $AE train --out X23 --dataset custom --train-images . --test-images $M/t10k-images-idx3-ubyte.gz $S
case_ "--data-dir /nonexistent" $AE train --out X24 --data-dir /nonexistent $S
case_ "--data-dir pointing at a file" $AE train --out X24 --data-dir $M/t10k-images-idx3-ubyte.gz $S
case_ "labels file given as images" $AE train --out X25 --dataset custom --train-images $M/t10k-labels-idx1-ubyte.gz --test-images $M/t10k-images-idx3-ubyte.gz $S
case_ "--out in a read-only folder" bash -c "mkdir -p ro && chmod 555 ro && $AE train --out ro/run $S"
case_ "--out is an existing file" bash -c "touch afile && $AE train --out afile $S"
case_ "--out with a newline and spaces in its name" $AE train --out "we ird
name" $S
case_ "--out through a symlink to a run (a second writer)" bash -c "ln -sfn R Rlink && $AE train --out Rlink $S"
case_ "--checkpoint is a symlink loop" bash -c "ln -sfn loop loop; $AE eval --checkpoint loop"
case_ "--checkpoint /" $AE eval --checkpoint /
case_ "config.json unreadable (chmod 000)" bash -c "cp -r R R2 && chmod 000 R2/config.json && $AE eval --checkpoint R2"
case_ "config.json with epochs 10^30" bash -c "cp -r R R3 && sed -i 's/\"epochs\": 1/\"epochs\": 1000000000000000000000000000000/' R3/config.json && $AE eval --checkpoint R3"
case_ "config.json with hidden [-5]" bash -c "cp -r R R4 && python3 -c \"import json;c=json.load(open('R4/config.json'));c['model']['hidden']=[-5];json.dump(c,open('R4/config.json','w'))\" && $AE eval --checkpoint R4"
case_ "config.json with input 1e9x1e9" bash -c "cp -r R R5 && python3 -c \"import json;c=json.load(open('R5/config.json'));c['model']['input']['height']=10**9;c['model']['input']['width']=10**9;json.dump(c,open('R5/config.json','w'))\" && $AE eval --checkpoint R5"
case_ "config.json is /dev/zero (symlink)" bash -c "cp -r R R6 && ln -sf /dev/zero R6/config.json && $AE eval --checkpoint R6"
case_ "model.safetensors is a FIFO" bash -c "cp -r R R7 && rm R7/model.safetensors && mkfifo R7/model.safetensors && $AE eval --checkpoint R7"
case_ "model.safetensors empty" bash -c "cp -r R R8 && : > R8/model.safetensors && $AE eval --checkpoint R8"
case_ "checkpoints/LATEST names ../../etc" bash -c "cp -r R R9 && echo ../../etc > R9/checkpoints/LATEST && $AE train --out R9 --resume --epochs 2"
case_ "checkpoints/LATEST is a directory" bash -c "cp -r R R10 && rm R10/checkpoints/LATEST && mkdir R10/checkpoints/LATEST && $AE train --out R10 --resume --epochs 2"
case_ "state.json epochs_done 10^18" bash -c "cp -r R R11 && sed -i 's/\"epochs_done\": 1/\"epochs_done\": 1000000000000000000/' R11/checkpoints/epoch-0001/state.json && $AE train --out R11 --resume --epochs 2"
case_ "--resume --model vae --lr 0.1 on a vanilla run" $AE train --out R --resume --epochs 2 --model vae --lr 0.1
case_ "encode --out /dev/full (disk full)" $AE encode --checkpoint R --out /dev/full --limit 8
case_ "encode --out into a read-only folder" $AE encode --checkpoint R --out ro/codes.csv --limit 8
case_ "encode --out .txt (unknown format)" $AE encode --checkpoint R --out codes.txt --limit 8
case_ "reconstruct -n 0" $AE reconstruct --checkpoint R --out r.png -n 0
case_ "reconstruct -n 10^9" $AE reconstruct --checkpoint R --out r.png -n 1000000000
case_ "sample -n 10^6" $AE sample --checkpoint V --out s.png -n 1000000
case_ "iwae -k 0" $AE iwae --checkpoint V -k 0 --limit 4
case_ "iwae -k 2000000" $AE iwae --checkpoint V -k 2000000 --limit 4
case_ "iwae -k 1e9" $AE iwae --checkpoint V -k 1e9 --limit 4
case_ "iwae --batch-size 0" $AE iwae --checkpoint V --batch-size 0 --limit 4 -k 2
case_ "compress --bits 0" $AE compress --checkpoint R $M/t10k-images-idx3-ubyte.gz o.aez --bits 0
case_ "compress --bits 9" $AE compress --checkpoint R $M/t10k-images-idx3-ubyte.gz o.aez --bits 9
case_ "compress /dev/zero" $AE compress --checkpoint R /dev/zero o.aez
case_ "compress a FIFO with no writer" bash -c "mkfifo f1; $AE compress --checkpoint R f1 o.aez"
case_ "decompress /dev/urandom" $AE decompress --checkpoint R /dev/urandom o.idx
case_ "decompress an empty file" bash -c ": > e.aez; $AE decompress --checkpoint R e.aez o.idx"
case_ "decompress to a missing folder" bash -c "$AE compress --checkpoint R $M/t10k-labels-idx1-ubyte.gz l.aez; head -c 100 /dev/urandom > r.aez; $AE decompress --checkpoint R r.aez nodir/o.idx"
case_ "data inspect /dev/zero" $AE data inspect /dev/zero
case_ "data inspect /proc/self/status" $AE data inspect /proc/self/status
case_ "data inspect a socket-less path with NUL-free junk" bash -c "printf '\\0\\0\\x08\\x03\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff' > big.idx; $AE data inspect big.idx"
case_ "anomaly score --images /dev/zero" $AE anomaly score --checkpoint R --images /dev/zero
case_ "anomaly fit --percentile 100" $AE anomaly fit --out A1 --percentile 100 $S
case_ "anomaly fit --normal-class 12" $AE anomaly fit --out A2 --normal-class 12 $S
case_ "plot on a folder that is not a run" $AE plot --checkpoint /tmp --out P
cd /
rm -rf "$T"
