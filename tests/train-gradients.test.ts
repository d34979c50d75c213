/**
 * The backward pass against finite differences of the forward pass, for every
 * kind of parameter (embedding, both RMSNorm gains, wq wk wv wo, w1 w2 w3,
 * final norm, separate classifier), with grouped-query attention.
 */
import { describe, expect, it } from 'vitest';
import { jsKernels, naiveKernels, type Kernels } from '../converter/train/kernels.js';
import { loadWasmKernels } from '../converter/train/wasm-kernels.js';
import { paramLayout } from '../converter/train/params.js';
import { softenInPlace, TransformerPass } from '../converter/train/transformer.js';
import type { ModelConfig } from '../src/model.js';
import { seededRandom } from '../src/random.js';
import { randomParams } from './random-params.js';

function tinyConfig(sharedClassifier: boolean): ModelConfig {
  return { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 11, seqLen: 6, sharedClassifier, ropeTheta: 10000, normEps: 1e-5 };
}

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const r = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

const wasmKernels = loadWasmKernels();
const cases: [boolean, Kernels][] = [[false, jsKernels], [true, jsKernels], [false, wasmKernels], [true, wasmKernels]];

for (const [shared, kernels] of cases) {
  describe(`gradients (${kernels.name}), ${shared ? 'shared' : 'separate'} classifier, GQA (4 heads, 2 kv heads)`, () => {
    const c = tinyConfig(shared);
    const B = 2;
    const T = c.seqLen;
    const pass = new TransformerPass(c, B, T, kernels);
    const params = randomParams(c, 7);
    const inputs = randomTokens(B * T, c.vocabSize, 1);
    const targets = randomTokens(B * T, c.vocabSize, 2);
    targets[3] = -1; // an unscored position must not contribute
    const grads = new Float32Array(params.length);
    pass.run(params, inputs, targets, grads);
    const layout = paramLayout(c);

    for (const [si, spec] of layout.specs.entries()) {
      it(`${spec.name} matches central differences`, () => {
        const size = spec.rows * spec.cols;
        const pick = seededRandom(100 + si);
        let checked = 0;
        for (let trial = 0; trial < 6; trial++) {
          const idx = layout.offsets[si] + Math.floor(pick() * size);
          const orig = params[idx];
          const h = 1e-2;
          params[idx] = orig + h;
          const up = pass.run(params, inputs, targets, null);
          params[idx] = orig - h;
          const down = pass.run(params, inputs, targets, null);
          params[idx] = orig;
          const numeric = (up - down) / (2 * h);
          expect(Math.abs(numeric - grads[idx]), `${spec.name}[${idx - layout.offsets[si]}]: numeric ${numeric}, analytic ${grads[idx]}`).toBeLessThanOrEqual(2e-4 + 2e-2 * Math.abs(numeric));
          if (Math.abs(grads[idx]) > 1e-4) checked++;
        }
        // an all-zero gradient would pass trivially: most picks must be non-zero
        expect(checked).toBeGreaterThanOrEqual(3);
      });
    }
  });
}

describe('kernels', () => {
  for (const k of [jsKernels, wasmKernels]) {
    it(`${k.name} computes the same three products as the naive loops, edges included`, () => {
      const r = seededRandom(3);
      for (const [M, N, K] of [[5, 7, 3], [8, 12, 16], [1, 1, 1], [3, 5, 9], [9, 33, 17]]) {
        const A = Float32Array.from({ length: M * K }, () => r() - 0.5);
        const Bm = Float32Array.from({ length: N * K }, () => r() - 0.5);
        for (const op of ['gemmABt', 'gemmAB', 'gemmAtB'] as const) {
          for (const acc of [false, true]) {
            const C0 = Float32Array.from({ length: M * N }, () => r());
            const C1 = C0.slice();
            naiveKernels[op](C0, A, Bm, M, N, K, acc);
            k[op](C1, A, Bm, M, N, K, acc);
            for (let i = 0; i < M * N; i++) expect(C1[i], `${op} ${M}x${N}x${K}`).toBeCloseTo(C0[i], 5);
          }
        }
      }
    });
  }

  // head sizes 2 (the generic loops), 4, 8 and 16 (tiled over 4 query rows); window lengths that end in a block of 4, 3, 1 and 2 rows
  for (const [dim, heads, kvHeads, T] of [[8, 4, 2, 7], [16, 4, 2, 9], [32, 4, 2, 7], [32, 4, 2, 12], [64, 8, 4, 10], [32, 2, 1, 9]]) {
    it(`the WebAssembly pass gives the loss and gradients of the TypeScript loops (head size ${dim / heads}, window ${T})`, () => {
      const c = { ...tinyConfig(true), dim, nHeads: heads, nKvHeads: kvHeads, hiddenDim: 2 * dim - 4, seqLen: T };
      const params = randomParams(c, 9);
      for (let i = 0; i < params.length; i++) params[i] *= 0.5; // softmax rows neither flat nor one-hot
      const inputs = randomTokens(2 * T, c.vocabSize, 4);
      const targets = randomTokens(2 * T, c.vocabSize, 5);
      targets[1] = -1;
      const g0 = new Float32Array(params.length);
      const g1 = new Float32Array(params.length);
      const l0 = new TransformerPass(c, 2, T, jsKernels).run(params, inputs, targets, g0);
      const l1 = new TransformerPass(c, 2, T, wasmKernels).run(params, inputs, targets, g1);
      expect(l1).toBeCloseTo(l0, 5);
      let big = 0;
      for (let i = 0; i < g0.length; i++) {
        expect(g1[i], `gradient ${i}`).toBeCloseTo(g0[i], 5);
        if (Math.abs(g0[i]) > 1e-3) big++;
      }
      expect(big).toBeGreaterThan(g0.length / 4); // the comparison is not between zeros
    });
  }
});

/** Teacher distributions for `rows` rows: softmax of random logits. */
function randomTeacher(rows: number, V: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  const p = Float32Array.from({ length: rows * V }, () => 3 * (r() - 0.5));
  softenInPlace(p, rows, V, 1);
  return p;
}

/** Every element of `got` within `rel` of `want`, relative to want's largest magnitude; and `want` not all (near) zero. */
function expectCloseArrays(got: Float32Array, want: Float32Array, rel: number): void {
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  expect(scale).toBeGreaterThan(1e-3);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst / scale).toBeLessThanOrEqual(rel);
}

describe('micro-batches', () => {
  const c = { ...tinyConfig(false), seqLen: 9 };
  const B = 4;
  const T = c.seqLen;
  const params = randomParams(c, 11);
  for (let i = 0; i < params.length; i++) params[i] *= 0.5;
  const inputs = randomTokens(B * T, c.vocabSize, 6);
  const targets = randomTokens(B * T, c.vocabSize, 7);
  // windows scored unevenly (9, 2, 9, 0 targets): a mean per micro-batch instead of over the batch would weigh them wrongly
  targets.fill(-1, T, 2 * T - 2);
  targets.fill(-1, 3 * T, 4 * T);
  const teacher = randomTeacher(B * T, c.vocabSize, 8);

  for (const kernels of [jsKernels, wasmKernels]) {
    for (const distill of [false, true]) {
      it(`of 1 and 2 windows give the loss and gradients of the whole batch of ${B} in one (${kernels.name}, ${distill ? 'distillation' : 'cross-entropy'})`, () => {
        const result = (m: number) => {
          const pass = new TransformerPass(c, B, T, kernels, { microBatch: m });
          if (distill) pass.setDistillation({ teacherProbs: teacher, temperature: 2, alpha: 0.7 });
          const grads = new Float32Array(params.length).fill(NaN); // run() overwrites, whatever was there
          return { loss: pass.run(params, inputs, targets, grads), grads, lossOnly: pass.run(params, inputs, targets, null) };
        };
        const whole = result(B);
        for (const m of [1, 2]) {
          const r = result(m);
          expect(Math.abs(r.loss - whole.loss) / whole.loss).toBeLessThan(1e-6);
          expect(r.lossOnly).toBe(r.loss);
          expectCloseArrays(r.grads, whole.grads, 1e-5);
        }
      });
    }
  }

  it('leave the last run\'s activations readable only when the batch runs in one', () => {
    const split = new TransformerPass(c, B, T, jsKernels, { microBatch: 1 });
    split.run(params, inputs, targets, null);
    expect(() => split.logitsOfLastRun).toThrow(/microBatch 4/);
    expect(() => split.ffnGateOfLastRun(0)).toThrow(/microBatch 4/);
    const whole = new TransformerPass(c, B, T, jsKernels, { microBatch: B });
    whole.run(params, inputs, targets, null);
    expect(whole.logitsOfLastRun).toHaveLength(B * T * c.vocabSize);
    expect(() => new TransformerPass(c, B, T, jsKernels, { microBatch: 3 })).toThrow(/does not divide/);
  });
});
