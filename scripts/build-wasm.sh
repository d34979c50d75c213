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
  # each clang with the wasm-ld it links with (clang-16 runs wasm-ld-16)
  if command -v clang-16 >/dev/null && command -v wasm-ld-16 >/dev/null; then cc=clang-16
  elif command -v clang >/dev/null && command -v wasm-ld >/dev/null; then cc=clang
  fi
fi
if [ -z "$cc" ]; then
  echo "build:wasm needs clang with lld's wasm-ld for the wasm32 target (Debian: apt-get install clang-16 lld-16)" >&2
  exit 1
fi
mkdir -p build/wasm
out=build/wasm/train-kernels.wasm
"$cc" --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -Wl,--no-entry -Wl,--export=__heap_base \
  -o "$out.tmp" converter/train/wasm/kernels.c
mv "$out.tmp" "$out"
