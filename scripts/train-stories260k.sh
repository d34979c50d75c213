#!/usr/bin/env bash
# The long training run (a script, not a test): llama2.c's stories260K shape
# (dim 64, 5 layers, 8 heads, 4 kv heads, hidden 172, tok512's 512 tokens)
# trained from scratch by lmflash on the train split of
# stories260K-samples.txt, then scored with `lmflash eval` on its test split
# (stories260K itself: perplexity 2.69 there). Writes the loss curve as SVG.
#   npm run train:stories260k [-- STEPS [THREADS]]
set -euo pipefail
cd "$(dirname "$0")/.."
# a fixed step count, not --minutes: the run is then the same on every machine
budget="--steps ${1:-1500} --threads ${2:-2}"
text=../shared/corpora/stories260K-samples.txt
tok=../shared/models/tok512.bin
out=out/train-stories260k
mkdir -p "$out"
start=$(date +%s)
node bin/lmflash.js train transformer "$text" --tokenizer "$tok" --config stories260k --seq 256 \
  $budget --batch 8 --lr 3e-3 --warmup 100 --eval-every 100 \
  -o "$out/model.blob" --llama2c "$out/model.bin" --log "$out/log.jsonl" --plot "$out/loss.svg"
trained=$(date +%s)
node bin/lmflash.js eval "$out/model.blob" --text "$text" --split test --reference "$out/model.bin" | tee "$out/eval.txt"
echo "training $((trained - start)) s, total $(( $(date +%s) - start )) s; loss curve: $out/loss.svg"
