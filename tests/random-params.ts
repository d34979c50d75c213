/** Random parameters for the trainer's gradient checks (tests only). */
import { normalSampler, paramLayout } from '../converter/train/params.js';
import type { ModelConfig } from '../src/model.js';

/** Large random weights (norm gains around 1), so every gradient is far from zero. */
export function randomParams(c: ModelConfig, seed: number): Float32Array {
  const { specs, offsets, total } = paramLayout(c);
  const p = new Float32Array(total);
  const normal = normalSampler(seed);
  specs.forEach((s, i) => {
    for (let j = 0; j < s.rows * s.cols; j++) p[offsets[i] + j] = s.kind === 'vector' ? 1 + 0.3 * normal() : 0.4 * normal();
  });
  return p;
}
