#!/usr/bin/env bash
# A real llama2.c model end to end, as `npm run demo` does with the N-gram:
# convert llama2.c's stories260K to an int8 blob, inspect it, then chat with it
# on the virtual board (the same C core the board runs). Ctrl-C stops a reply,
# twice quits.
#   npm run stories260k [-- MODEL.bin TOKENIZER.bin]
# The blob goes to ./out (or $LMFLASH_OUT).
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
out=${LMFLASH_OUT:-out}
mkdir -p "$out"
node bin/lmflash.js convert "$model" --tokenizer "$tok" -o "$out/stories260K.blob"
node bin/lmflash.js inspect "$out/stories260K.blob" --context 256
echo
echo 'Type a beginning like "Once upon a time"; Ctrl-C stops a reply, twice quits.'
exec node bin/lmflash.js chat --sim --model "$out/stories260K.blob"
