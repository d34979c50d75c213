#!/usr/bin/env bash
# Issue 11, "what must be shown" 1 (a script, not a test): a student with
# about half of stories260K's parameters (dim 64, 3 of its 5 layers, hidden
# 104 of 172: 129,984 of 260,032), initialised from the teacher by pruning
# (--init teacher), trained on the train split of stories260K-samples.txt
# twice with the same shape, init, windows, steps and schedule: once distilled
# (alpha 0.5, T, the teacher's top-32 cached) and once on the text alone
# (alpha 0: plain cross-entropy). Both int8 blobs are then scored on the test
# split with `lmflash eval` (the teacher: perplexity 2.6969 there).
#   bash scripts/distill-stories260k.sh [STEPS [INIT [T [SHAPE]]]]
# INIT: teacher or random; T: temperature (default 2); SHAPE: the student's
# shape options (default "--layers 3 --hidden 104"; "--dim 48 --hidden 98"
# is the same size by width: 5 layers, 6/3 heads, 130,224 parameters).
# The two runs go side by side (one thread each), as the machine has 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-1500}
init=${2:-teacher}
temp=${3:-2}
shape=${4:---layers 3 --hidden 104}
S=../shared
text=$S/corpora/stories260K-samples.txt
out=out/distill-stories260k-$init-$steps-T$temp-$(echo "$shape" | tr -d ' -')
mkdir -p "$out"
common=(--teacher $S/models/stories260K.bin -t $S/models/tok512.bin $shape --init "$init"
  --text "$text" --steps "$steps" --lr 2e-3 --batch 8 --window 256 --eval-every 100 --temperature "$temp")
run() { # name alpha
  local start=$(date +%s)
  nice -n 10 node bin/lmflash.js distill "${common[@]}" --alpha "$2" -o "$out/$1.blob" --log "$out/$1.jsonl" --plot "$out/$1.svg" \
    >"$out/$1.txt" 2>"$out/$1.err"
  echo "$1: $(( $(date +%s) - start )) s" >>"$out/$1.txt"
}
run distilled 0.5 &
run text-only 0 &
wait
for n in distilled text-only; do
  echo "== $n"; grep -v '^step' "$out/$n.err" || true; cat "$out/$n.txt"
  node bin/lmflash.js eval "$out/$n.blob" --text "$text" --split test | tee "$out/$n.eval"
done
