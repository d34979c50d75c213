/**
 * The backward pass against finite differences of the forward pass, for every
 * kind of parameter (embedding, both RMSNorm gains, wq wk wv wo, w1 w2 w3,
 * final norm, separate classifier), with grouped-query attention.
 */
import { describe, expect, it } from 'vitest';
import { jsKernels, naiveKernels } from '../converter/train/kernels.js';
import { normalSampler, paramLayout } from '../converter/train/params.js';
import { TransformerPass } from '../converter/train/transformer.js';
import type { ModelConfig } from '../src/model.js';
import { seededRandom } from '../src/random.js';

function tinyConfig(sharedClassifier: boolean): ModelConfig {
  return { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 11, seqLen: 6, sharedClassifier, ropeTheta: 10000, normEps: 1e-5 };
}

/** Large random weights (norm gains around 1), so every gradient is far from zero. */
function randomParams(c: ModelConfig, seed: number): Float32Array {
  const { specs, offsets, total } = paramLayout(c);
  const p = new Float32Array(total);
  const normal = normalSampler(seed);
  specs.forEach((s, i) => {
    for (let j = 0; j < s.rows * s.cols; j++) p[offsets[i] + j] = s.kind === 'vector' ? 1 + 0.3 * normal() : 0.4 * normal();
  });
  return p;
}

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const r = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

for (const shared of [false, true]) {
  describe(`gradients, ${shared ? 'shared' : 'separate'} classifier, GQA (4 heads, 2 kv heads)`, () => {
    const c = tinyConfig(shared);
    const B = 2;
    const T = c.seqLen;
    const pass = new TransformerPass(c, B, T, jsKernels);
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
  it('the blocked kernel computes the same products as the naive one, edges included', () => {
    const r = seededRandom(3);
    for (const [M, N, K] of [[5, 7, 3], [8, 12, 16], [1, 1, 1], [3, 5, 9]]) {
      const A = Float32Array.from({ length: M * K }, () => r() - 0.5);
      const Bm = Float32Array.from({ length: N * K }, () => r() - 0.5);
      const C0 = Float32Array.from({ length: M * N }, () => r());
      const C1 = C0.slice();
      naiveKernels.gemmABt(C0, A, Bm, M, N, K, true);
      jsKernels.gemmABt(C1, A, Bm, M, N, K, true);
      for (let i = 0; i < M * N; i++) expect(C1[i]).toBeCloseTo(C0[i], 5);
    }
  });
});
