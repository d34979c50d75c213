#!/usr/bin/env bash
# A real llama2.c model end to end: convert llama2.c's
# stories260K to an int8 blob, inspect it and generate a story on the same C
# core the board runs.
#   npm run stories260k [-- MODEL.bin TOKENIZER.bin]
# Without arguments it looks for ../shared/models (this workplace) and then
# ./models; stories260K.bin and tok512.bin are published with karpathy/llama2.c
# (Hugging Face: karpathy/tinyllamas, folder stories260K).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-}
tok=${2:-}
if [ -z "$model" ]; then
  for dir in ../shared/models models; do
    if [ -f "$dir/stories260K.bin" ] && [ -f "$dir/tok512.bin" ]; then model=$dir/stories260K.bin; tok=$dir/tok512.bin; break; fi
  done
fi
if [ -z "$model" ] || [ -z "$tok" ]; then
  echo "demo: put stories260K.bin and tok512.bin (from karpathy/tinyllamas on Hugging Face, folder stories260K) in ./models, or run: npm run stories260k -- MODEL.bin TOKENIZER.bin" >&2
  exit 1
fi
mkdir -p out
node bin/lmflash.js convert "$model" --tokenizer "$tok" -o out/stories260K.blob
node bin/lmflash.js inspect out/stories260K.blob --context 256
echo
node bin/lmflash.js generate --model out/stories260K.blob -p "Once upon a time" -n 200 --seed 42
