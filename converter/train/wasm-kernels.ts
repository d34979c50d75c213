/**
 * The trainer's kernels in WebAssembly SIMD (wasm/kernels.c, built by
 * `npm run build:wasm` into build/wasm/train-kernels.wasm). Operands are
 * copied into the module's memory, the kernel runs, the result is copied
 * back: the copies are O(rows·cols) against the kernel's O(rows·cols·k).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../host/native.js';
import { LmflashError } from '../../src/errors.js';
import type { Kernels } from './kernels.js';

interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  gemm_abt(C: number, A: number, B: number, bt: number, M: number, N: number, K: number, acc: number): void;
  gemm_ab(C: number, A: number, B: number, M: number, N: number, K: number, acc: number): void;
  gemm_atb(C: number, A: number, B: number, M: number, N: number, K: number, acc: number): void;
  attn_fwd(q: number, k: number, v: number, p: number, att: number, T: number, H: number, KVH: number, hs: number, scale: number, scratch: number): void;
  peak_loop(n: number): number;
  attn_bwd(q: number, k: number, v: number, p: number, datt: number, dq: number, dk: number, dv: number, T: number, H: number, KVH: number, hs: number, scale: number, scratch: number): void;
}

export function wasmKernelsPath(): string {
  return path.join(projectRoot(), 'build', 'wasm', 'train-kernels.wasm');
}

export function wasmKernelsAvailable(): boolean {
  return existsSync(wasmKernelsPath());
}

/** Places arrays one after another (16-byte aligned) in the module's memory, growing it as needed. */
class Arena {
  private readonly base: number;
  private f32: Float32Array;
  private next = 0;
  constructor(private readonly ex: Exports) {
    this.base = ((ex.__heap_base.value as number) + 15) & ~15;
    this.f32 = new Float32Array(ex.memory.buffer);
  }
  /** Forget every placement (start of a kernel call). */
  reset(): void {
    this.next = this.base;
  }
  /** Room for n floats (and 64 bytes of slack the kernels may read past the end); returns its byte address. */
  take(n: number): number {
    const at = this.next;
    this.next = (at + 4 * n + 64 + 15) & ~15;
    const need = this.next - this.ex.memory.buffer.byteLength;
    if (need > 0) {
      this.ex.memory.grow(Math.ceil(need / 65536));
      this.f32 = new Float32Array(this.ex.memory.buffer);
    }
    return at;
  }
  /** Room for a's values, filled with them. */
  put(a: Float32Array): number {
    const at = this.take(a.length);
    this.f32.set(a, at >> 2);
    return at;
  }
  view(at: number, n: number): Float32Array {
    return this.f32.subarray(at >> 2, (at >> 2) + n);
  }
}

function instantiate(): Exports {
  const file = wasmKernelsPath();
  if (!existsSync(file)) throw new LmflashError(`the WebAssembly training kernels are not built (${file} is missing): run \`npm run build\``);
  return new WebAssembly.Instance(new WebAssembly.Module(readFileSync(file)), {}).exports as unknown as Exports;
}

/** fp32 flops per second one thread issues in WebAssembly SIMD (8 independent 4-lane multiply-adds per round, best of 5). */
export function measureWasmPeakFlops(rounds = 20_000_000): number {
  const ex = instantiate();
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    ex.peak_loop(rounds);
    best = Math.max(best, (rounds * 64) / ((performance.now() - t0) / 1000));
  }
  return best;
}

export function loadWasmKernels(): Kernels {
  const ex = instantiate();
  const arena = new Arena(ex);
  return {
    name: 'WebAssembly SIMD',
    gemmABt(C, A, B, M, N, K, accumulate) {
      arena.reset();
      const a = arena.put(A.subarray(0, M * K));
      const b = arena.put(B.subarray(0, N * K));
      const c = accumulate ? arena.put(C.subarray(0, M * N)) : arena.take(M * N);
      const bt = arena.take(K * N);
      ex.gemm_abt(c, a, b, bt, M, N, K, accumulate ? 1 : 0);
      C.set(arena.view(c, M * N));
    },
    gemmAB(C, A, B, M, N, K, accumulate) {
      arena.reset();
      const a = arena.put(A.subarray(0, M * K));
      const b = arena.put(B.subarray(0, K * N));
      const c = accumulate ? arena.put(C.subarray(0, M * N)) : arena.take(M * N);
      ex.gemm_ab(c, a, b, M, N, K, accumulate ? 1 : 0);
      C.set(arena.view(c, M * N));
    },
    gemmAtB(C, A, B, M, N, K, accumulate) {
      arena.reset();
      const a = arena.put(A.subarray(0, K * M));
      const b = arena.put(B.subarray(0, K * N));
      const c = accumulate ? arena.put(C.subarray(0, M * N)) : arena.take(M * N);
      ex.gemm_atb(c, a, b, M, N, K, accumulate ? 1 : 0);
      C.set(arena.view(c, M * N));
    },
    attentionForward(q, k, v, p, att, T, H, KVH, hs, scale) {
      arena.reset();
      const qa = arena.put(q), ka = arena.put(k), va = arena.put(v);
      const pa = arena.take(H * T * T), oa = arena.take(T * H * hs);
      const scratch = arena.take(2 * hs * ((T + 3) & ~3));
      ex.attn_fwd(qa, ka, va, pa, oa, T, H, KVH, hs, scale, scratch);
      p.set(arena.view(pa, H * T * T));
      att.set(arena.view(oa, T * H * hs));
    },
    attentionBackward(q, k, v, p, datt, dq, dk, dv, T, H, KVH, hs, scale) {
      arena.reset();
      const qa = arena.put(q), ka = arena.put(k), va = arena.put(v), pa = arena.put(p), ga = arena.put(datt);
      const dqa = arena.take(dq.length), dka = arena.take(dk.length), dva = arena.take(dv.length);
      const scratch = arena.take(4 * hs * ((T + 3) & ~3) + ((T + 3) & ~3));
      ex.attn_bwd(qa, ka, va, pa, ga, dqa, dka, dva, T, H, KVH, hs, scale, scratch);
      dq.set(arena.view(dqa, dq.length));
      dk.set(arena.view(dka, dk.length));
      dv.set(arena.view(dva, dv.length));
    },
  };
}
