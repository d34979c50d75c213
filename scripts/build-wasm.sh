#!/usr/bin/env bash
# npm run build:wasm: the trainer's WebAssembly SIMD kernels
# (converter/train/wasm/kernels.c -> build/wasm/train-kernels.wasm).
#
# clang 16 first (Debian: clang-16 lld-16): its kernels make a training pass
# about 5 % faster than clang 14's (it folds more constant offsets into the
# loads' addresses, which V8 then computes with no separate add); any clang
# with the wasm32 target and lld's wasm-ld builds kernels with bit-identical
# results (no fast-math, no relaxed SIMD). LMFLASH_WASM_CC picks another.
set -euo pipefail
cd "$(dirname "$0")/.."
cc=${LMFLASH_WASM_CC:-}
if [ -z "$cc" ]; then
  for candidate in clang-16 clang; do
    if command -v "$candidate" >/dev/null; then cc=$candidate; break; fi
  done
fi
if [ -z "$cc" ]; then
  echo "build:wasm needs clang with lld for the wasm32 target (Debian: apt-get install clang-16 lld-16)" >&2
  exit 1
fi
mkdir -p build/wasm
out=build/wasm/train-kernels.wasm
"$cc" --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -Wl,--no-entry -Wl,--export=__heap_base \
  -o "$out.tmp" converter/train/wasm/kernels.c
mv "$out.tmp" "$out"
