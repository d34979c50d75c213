/**
 * The trainer's kernels in WebAssembly SIMD (wasm/kernels.c, built by
 * `npm run build:wasm` into build/wasm/train-kernels.wasm). A pass that asks
 * for a workspace gets its own instance whose memory holds all its weights,
 * gradients and activations, and the kernels run on them in place; operands
 * from anywhere else are copied into the module's memory, the kernel runs,
 * the result is copied back.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../host/native.js';
import { LmflashError } from '../../src/errors.js';
import { attentionScratchFloats, type Kernels, type Workspace } from './kernels.js';

interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  gemm_abt(C: number, A: number, B: number, bt: number, M: number, N: number, K: number, acc: number): void;
  gemm_ab(C: number, A: number, B: number, M: number, N: number, K: number, acc: number): void;
  gemm_atb(C: number, A: number, B: number, M: number, N: number, K: number, acc: number): void;
  attn_fwd(q: number, k: number, v: number, p: number, att: number, T: number, H: number, KVH: number, hs: number, scale: number, scratch: number): void;
  peak_loop(n: number): number;
  attn_bwd(q: number, k: number, v: number, p: number, datt: number, dq: number, dk: number, dv: number, T: number, H: number, KVH: number, hs: number, scale: number, scratch: number): void;
  rmsnorm_fwd(out: number, inv: number, x: number, g: number, rows: number, dim: number, eps: number): void;
  rmsnorm_bwd(dx: number, dg: number, dy: number, x: number, inv: number, g: number, rows: number, dim: number): void;
  rope(m: number, rows: number, width: number, hs: number, T: number, cos: number, sin: number, inverse: number): void;
  swiglu_fwd(gate: number, h1: number, h3: number, n: number): void;
  swiglu_bwd(dh1: number, dh3: number, dgate: number, h1: number, h3: number, n: number): void;
  cross_entropy(logits: number, targets: number, rows: number, V: number, scale: number, toGrad: number, stats: number): void;
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

let compiled: WebAssembly.Module | null = null;

function instantiate(): Exports {
  if (!compiled) {
    const file = wasmKernelsPath();
    if (!existsSync(file)) throw new LmflashError(`the WebAssembly training kernels are not built (${file} is missing): run \`npm run build\``);
    compiled = new WebAssembly.Module(readFileSync(file));
  }
  return new WebAssembly.Instance(compiled, {}).exports as unknown as Exports;
}

/** fp32 flops per second one thread issues in WebAssembly SIMD (12 independent 4-lane multiply-adds per round, best of 5). */
export function measureWasmPeakFlops(rounds = 20_000_000): number {
  const ex = instantiate();
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    ex.peak_loop(rounds);
    best = Math.max(best, (rounds * 96) / ((performance.now() - t0) / 1000));
  }
  return best;
}

export function loadWasmKernels(): Kernels {
  const copying = copyingKernels(instantiate());
  return {
    ...copying,
    workspace(floats, scratch) {
      // past WebAssembly's 4 GB the pass keeps its arrays in JavaScript and the kernels copy operands in and out
      return 4 * (floats + scratch) + (64 << 20) < 2 ** 32 ? new WasmWorkspace(floats, scratch, copying) : null;
    },
  };
}

/** Kernels.name of these kernels. */
export const WASM_KERNELS_NAME = 'WebAssembly SIMD';

/** Kernels that copy their operands into the module's memory and the results back out. */
function copyingKernels(ex: Exports): Kernels {
  const arena = new Arena(ex);
  return {
    name: WASM_KERNELS_NAME,
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
      const scratch = arena.take(attentionScratchFloats(hs, T));
      ex.attn_fwd(qa, ka, va, pa, oa, T, H, KVH, hs, scale, scratch);
      p.set(arena.view(pa, H * T * T));
      att.set(arena.view(oa, T * H * hs));
    },
    attentionBackward(q, k, v, p, datt, dq, dk, dv, T, H, KVH, hs, scale) {
      arena.reset();
      const qa = arena.put(q), ka = arena.put(k), va = arena.put(v), pa = arena.put(p), ga = arena.put(datt);
      const dqa = arena.take(dq.length), dka = arena.take(dk.length), dva = arena.take(dv.length);
      const scratch = arena.take(attentionScratchFloats(hs, T));
      ex.attn_bwd(qa, ka, va, pa, ga, dqa, dka, dva, T, H, KVH, hs, scale, scratch);
      dq.set(arena.view(dqa, dq.length));
      dk.set(arena.view(dka, dk.length));
      dv.set(arena.view(dva, dv.length));
    },
  };
}

/**
 * One pass's own instance: its memory holds the pass's store (grown once,
 * here, so views into it stay valid) and the kernels' scratch; operands in
 * the store are passed by address.
 */
class WasmWorkspace implements Workspace {
  readonly kernels: Kernels;
  readonly store: Float32Array;

  constructor(floats: number, scratch: number, copying: Kernels) {
    const ex = instantiate();
    const base = ((ex.__heap_base.value as number) + 15) & ~15;
    const scratchAt = base;
    const storeAt = (scratchAt + 4 * scratch + 64 + 15) & ~15;
    const end = storeAt + 4 * floats + 64;
    const need = end - ex.memory.buffer.byteLength;
    if (need > 0) ex.memory.grow(Math.ceil(need / 65536));
    const mem = ex.memory.buffer;
    this.store = new Float32Array(mem, storeAt, floats);
    const inMem = (...arrays: (Float32Array | Int32Array)[]) => arrays.every((a) => a.buffer === mem);
    const at = (a: Float32Array | Int32Array) => {
      if (a.buffer !== mem) throw new Error('internal: an element-wise WebAssembly kernel got an array outside its workspace');
      return a.byteOffset;
    };
    const room = (n: number) => n <= scratch;
    const stats = new Float32Array(mem, scratchAt, scratch);
    this.kernels = {
      name: WASM_KERNELS_NAME,
      gemmABt(C, A, B, M, N, K, acc) {
        if (inMem(C, A, B) && room(K * N)) ex.gemm_abt(C.byteOffset, A.byteOffset, B.byteOffset, scratchAt, M, N, K, acc ? 1 : 0);
        else copying.gemmABt(C, A, B, M, N, K, acc);
      },
      gemmAB(C, A, B, M, N, K, acc) {
        if (inMem(C, A, B)) ex.gemm_ab(C.byteOffset, A.byteOffset, B.byteOffset, M, N, K, acc ? 1 : 0);
        else copying.gemmAB(C, A, B, M, N, K, acc);
      },
      gemmAtB(C, A, B, M, N, K, acc) {
        if (inMem(C, A, B)) ex.gemm_atb(C.byteOffset, A.byteOffset, B.byteOffset, M, N, K, acc ? 1 : 0);
        else copying.gemmAtB(C, A, B, M, N, K, acc);
      },
      attentionForward(q, k, v, p, att, T, H, KVH, hs, scale) {
        if (inMem(q, k, v, p, att) && room(attentionScratchFloats(hs, T))) ex.attn_fwd(q.byteOffset, k.byteOffset, v.byteOffset, p.byteOffset, att.byteOffset, T, H, KVH, hs, scale, scratchAt);
        else copying.attentionForward!(q, k, v, p, att, T, H, KVH, hs, scale);
      },
      attentionBackward(q, k, v, p, datt, dq, dk, dv, T, H, KVH, hs, scale) {
        if (inMem(q, k, v, p, datt, dq, dk, dv) && room(attentionScratchFloats(hs, T))) {
          ex.attn_bwd(q.byteOffset, k.byteOffset, v.byteOffset, p.byteOffset, datt.byteOffset, dq.byteOffset, dk.byteOffset, dv.byteOffset, T, H, KVH, hs, scale, scratchAt);
        } else copying.attentionBackward!(q, k, v, p, datt, dq, dk, dv, T, H, KVH, hs, scale);
      },
      rmsnormForward(out, inv, x, g, rows, dim, eps) {
        ex.rmsnorm_fwd(at(out), at(inv), at(x), at(g), rows, dim, eps);
      },
      rmsnormBackward(dx, dg, dy, x, inv, g, rows, dim) {
        ex.rmsnorm_bwd(at(dx), at(dg), at(dy), at(x), at(inv), at(g), rows, dim);
      },
      rope(m, rows, width, hs, T, cos, sin, inverse) {
        ex.rope(at(m), rows, width, hs, T, at(cos), at(sin), inverse ? 1 : 0);
      },
      swigluForward(gate, h1, h3) {
        ex.swiglu_fwd(at(gate), at(h1), at(h3), gate.length);
      },
      swigluBackward(dh1, dh3, dgate, h1, h3) {
        ex.swiglu_bwd(at(dh1), at(dh3), at(dgate), at(h1), at(h3), dgate.length);
      },
      crossEntropy(logits, targets, rows, V, scale, toGrad) {
        if (!room(2 * rows)) throw new Error("internal: crossEntropy has no room for its row statistics");
        ex.cross_entropy(at(logits), at(targets), rows, V, scale, toGrad ? 1 : 0, scratchAt);
        let total = 0;
        for (let r = 0; r < rows; r++) if (targets[r] >= 0) total += stats[2 * r] + Math.log(stats[2 * r + 1]);
        return total;
      },
    };
  }
}
