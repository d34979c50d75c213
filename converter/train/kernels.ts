/**
 * The one matrix product the trainer needs, C (+)= A · Bᵀ, in swappable
 * implementations. Every linear layer's forward (Y = X Wᵀ), input gradient
 * (dX = dY W = dY (Wᵀ)ᵀ) and weight gradient (dW = dYᵀ X = (dYᵀ)(Xᵀ)ᵀ) is
 * this product once the operands are transposed where needed, so one tuned
 * kernel serves the whole pass. Transposes cost O(rows·cols), the product
 * O(rows·cols·tokens).
 */

export interface Kernels {
  readonly name: string;
  /**
   * C[m][n] = (accumulate ? C[m][n] : 0) + Σ_k A[m][k] · B[n][k], all
   * row-major (A is M×K, B is N×K, C is M×N).
   */
  gemmABt(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number, accumulate: boolean): void;
  /** C (+)= A · B with A M×K and B K×N (an input gradient dY · W). */
  gemmAB(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number, accumulate: boolean): void;
  /** C (+)= Aᵀ · B with A K×M and B K×N (a weight gradient dYᵀ · X summed over K tokens). */
  gemmAtB(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number, accumulate: boolean): void;
  /**
   * Causal attention of one window (q [T][H·hs], k and v [T][KVH·hs] after
   * RoPE): probabilities into p [H][T][T] (row t, columns 0..t), output into
   * att [T][H·hs]. Absent: the trainer's own loops run it.
   */
  attentionForward?(q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array, att: Float32Array, T: number, H: number, KVH: number, hs: number, scale: number): void;
  /** Gradient of attentionForward: dq, dk, dv (overwritten) from datt and the saved p. */
  attentionBackward?(
    q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array, datt: Float32Array,
    dq: Float32Array, dk: Float32Array, dv: Float32Array, T: number, H: number, KVH: number, hs: number, scale: number,
  ): void;
  /**
   * A private store of `floats` floats for one pass's weights, gradients and
   * activations, with kernels that work in place on arrays carved from it
   * (and have `scratch` floats of their own), so no operand is copied per
   * call. Absent or null (too large for it): the pass keeps plain Float32Arrays.
   */
  workspace?(floats: number, scratch: number): Workspace | null;
  /** out = g ⊙ x / rms(x) per row, inv[r] = 1/rms (absent: the trainer's loop). The element-wise kernels below run on a workspace's arrays only. */
  rmsnormForward?(out: Float32Array, inv: Float32Array, x: Float32Array, g: Float32Array, rows: number, dim: number, eps: number): void;
  /** dx += dL/dx, dg += dL/dg of rmsnormForward given dy. */
  rmsnormBackward?(dx: Float32Array, dg: Float32Array, dy: Float32Array, x: Float32Array, inv: Float32Array, g: Float32Array, rows: number, dim: number): void;
  /** RoPE in place on rows of `width` (heads of hs), row r at position r % T; cos, sin [T][hs/2]; inverse rotates back. */
  rope?(m: Float32Array, rows: number, width: number, hs: number, T: number, cos: Float32Array, sin: Float32Array, inverse: boolean): void;
  /** gate = silu(h1) ⊙ h3. */
  swigluForward?(gate: Float32Array, h1: Float32Array, h3: Float32Array): void;
  /** dh1, dh3 of swigluForward from dgate. */
  swigluBackward?(dh1: Float32Array, dh3: Float32Array, dgate: Float32Array, h1: Float32Array, h3: Float32Array): void;
  /**
   * Sum over rows with a target (>= 0, checked by the caller) of
   * -log softmax(logits)[target]; with toGrad, logits become
   * scale · (softmax - onehot) (rows without a target: zeros).
   */
  crossEntropy?(logits: Float32Array, targets: Int32Array, rows: number, V: number, scale: number, toGrad: boolean): number;
}

export interface Workspace {
  /** Kernels that run in place on `store`'s arrays (and copy anything else in, as the plain kernels do). */
  readonly kernels: Kernels;
  /** The pass's floats, 16-byte aligned. */
  readonly store: Float32Array;
}

/** out[j][i] = a[i][j] for a rows×cols matrix. */
export function transpose(out: Float32Array, a: Float32Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    const r = i * cols;
    for (let j = 0; j < cols; j++) out[j * rows + i] = a[r + j];
  }
}

type GemmABt = Kernels['gemmABt'];

/**
 * Floats of scratch the WebAssembly attention kernels need for a window of T
 * tokens and head size hs, forward or backward (the backward's blocked
 * layouts are the largest: converter/train/wasm/kernels.c, attn_bwd_blocked).
 */
export function attentionScratchFloats(hs: number, T: number): number {
  return (5 * hs + 8) * ((T + 3) & ~3) + 8 * hs;
}

/** gemmAB and gemmAtB from a gemmABt, by transposing operands into scratch first. */
function viaTransposes(name: string, gemmABt: GemmABt): Kernels {
  let ta: Float32Array = new Float32Array(0);
  let tb: Float32Array = new Float32Array(0);
  const room = (a: Float32Array, n: number) => (a.length >= n ? a : new Float32Array(n));
  return {
    name,
    gemmABt,
    gemmAB(C, A, B, M, N, K, accumulate) {
      tb = room(tb, K * N);
      transpose(tb, B, K, N);
      gemmABt(C, A, tb, M, N, K, accumulate);
    },
    gemmAtB(C, A, B, M, N, K, accumulate) {
      ta = room(ta, K * M);
      tb = room(tb, K * N);
      transpose(ta, A, K, M);
      transpose(tb, B, K, N);
      gemmABt(C, ta, tb, M, N, K, accumulate);
    },
  };
}

/** The plain triple loop, one sum at a time: the reference the others are measured against. */
export const naiveKernels: Kernels = viaTransposes('naive TypeScript', (C, A, B, M, N, K, accumulate) => {
  {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[m * K + k] * B[n * K + k];
        C[m * N + n] = accumulate ? C[m * N + n] + s : s;
      }
    }
  }
});

/**
 * Register-blocked Float32Array loops: 2 rows of A against 4 rows of B, eight
 * independent sums per pass over k, so each loaded value is used 2 or 4 times
 * and the add chains overlap.
 */
export const jsKernels: Kernels = viaTransposes('blocked TypeScript', (C, A, B, M, N, K, accumulate) => {
  {
    const M2 = M & ~1;
    const N4 = N & ~3;
    for (let m = 0; m < M2; m += 2) {
      const a0 = m * K;
      const a1 = a0 + K;
      let n = 0;
      for (; n < N4; n += 4) {
        const b0 = n * K;
        const b1 = b0 + K;
        const b2 = b1 + K;
        const b3 = b2 + K;
        let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
        for (let k = 0; k < K; k++) {
          const x0 = A[a0 + k];
          const x1 = A[a1 + k];
          const y0 = B[b0 + k];
          const y1 = B[b1 + k];
          const y2 = B[b2 + k];
          const y3 = B[b3 + k];
          s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
          s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        }
        const c0 = m * N + n;
        const c1 = c0 + N;
        if (accumulate) {
          C[c0] += s00; C[c0 + 1] += s01; C[c0 + 2] += s02; C[c0 + 3] += s03;
          C[c1] += s10; C[c1 + 1] += s11; C[c1 + 2] += s12; C[c1 + 3] += s13;
        } else {
          C[c0] = s00; C[c0 + 1] = s01; C[c0 + 2] = s02; C[c0 + 3] = s03;
          C[c1] = s10; C[c1 + 1] = s11; C[c1 + 2] = s12; C[c1 + 3] = s13;
        }
      }
      for (; n < N; n++) {
        const b0 = n * K;
        let s0 = 0, s1 = 0;
        for (let k = 0; k < K; k++) {
          s0 += A[a0 + k] * B[b0 + k];
          s1 += A[a1 + k] * B[b0 + k];
        }
        C[m * N + n] = accumulate ? C[m * N + n] + s0 : s0;
        C[(m + 1) * N + n] = accumulate ? C[(m + 1) * N + n] + s1 : s1;
      }
    }
    for (let m = M2; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[m * K + k] * B[n * K + k];
        C[m * N + n] = accumulate ? C[m * N + n] + s : s;
      }
    }
  }
});

/** Floats a carved array takes: rounded up to 16 bytes, plus 64 bytes the kernels may read past its end. */
function carvedSize(n: number): number {
  return ((n + 3) & ~3) + 16;
}

/**
 * The arrays `layout` asks for, carved from one workspace of `kernels` when
 * they offer one (then the returned kernels are the workspace's, which work
 * on them in place) or plain Float32Arrays. `layout` is called twice (once
 * to count), so it must do nothing but ask for arrays.
 */
export function carveArrays<T>(kernels: Kernels, scratch: number, layout: (floats: (n: number) => Float32Array) => T): { arrays: T; kernels: Kernels } {
  if (!kernels.workspace) return { arrays: layout((n) => new Float32Array(n)), kernels };
  let total = 0;
  const none = new Float32Array(0);
  layout((n) => {
    total += carvedSize(n);
    return none;
  });
  const ws = kernels.workspace(total, scratch);
  if (!ws) return { arrays: layout((n) => new Float32Array(n)), kernels };
  let at = 0;
  const arrays = layout((n) => {
    const a = ws.store.subarray(at, at + n);
    at += carvedSize(n);
    return a;
  });
  return { arrays, kernels: ws.kernels };
}
