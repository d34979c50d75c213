#!/usr/bin/env bash
# What caching the teacher's top-k costs in quality and saves in time (issue
# 11): the half-size student of scripts/distill-stories260k.sh distilled for a
# short run (STEPS, default 200; on the first LINES lines of the corpus,
# default all of them) three ways that differ only in the teacher's
# distributions: the top-32 cached, the top-8 cached, and the full ones with
# the teacher run again on every step's batch (--teacher-logits live; the
# same numbers a full cache would hold, tests/distill-transformer.test.ts).
# Each int8 blob is scored on the test split.
#   bash scripts/distill-topk.sh [STEPS [LINES]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-200}
lines=${2:-all}
S=../shared
corpus=$S/corpora/stories260K-samples.txt
out=out/distill-topk-$steps-$lines
mkdir -p "$out"
text=$corpus
if [ "$lines" != all ]; then text=$out/text.txt; head -n "$lines" "$corpus" >"$text"; fi  # the same line indices: the same split
common=(--teacher $S/models/stories260K.bin -t $S/models/tok512.bin --layers 3 --hidden 104 --init teacher
  --text "$text" --steps "$steps" --lr 2e-3 --batch 8 --window 256 --eval-every 100 --alpha 0.5)
for v in top32:--top-k:32 top8:--top-k:8 live:--teacher-logits:live; do
  IFS=: read -r name opt val <<<"$v"
  start=$(date +%s)
  nice -n ${NICE:-10} node bin/lmflash.js distill "${common[@]}" "$opt" "$val" -o "$out/$name.blob" >"$out/$name.txt" 2>"$out/$name.err"
  echo "$name: $(( $(date +%s) - start )) s wall" >>"$out/$name.txt"
  node bin/lmflash.js eval "$out/$name.blob" --text "$corpus" --split test >"$out/$name.eval"
done
for n in top32 top8 live; do echo "== $n"; grep -v '^step' "$out/$n.err" || true; cat "$out/$n.txt" "$out/$n.eval"; done
