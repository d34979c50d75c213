/**
 * Trainable parameters of the Llama-style model as one flat Float32Array, in
 * the blob's canonical tensor order (src/model.ts modelTensorSpecs). One flat
 * buffer makes AdamW one loop, a checkpoint one write, and gradients the same
 * layout as the weights.
 */
import { seededRandom } from '../../src/random.js';
import { modelTensorSpecs, type FloatModel, type LayerWeights, type ModelConfig, type ModelWeights, type TensorSpec } from '../../src/model.js';

export interface ParamLayout {
  specs: TensorSpec[];
  /** Start of each spec's values in the flat buffer. */
  offsets: number[];
  total: number;
}

export function paramLayout(c: ModelConfig): ParamLayout {
  const specs = modelTensorSpecs(c);
  const offsets: number[] = [];
  let total = 0;
  for (const s of specs) {
    offsets.push(total);
    total += s.rows * s.cols;
  }
  return { specs, offsets, total };
}

/** The tensors of a flat buffer as a ModelWeights whose arrays are views into it (no copy). */
export function weightViews(c: ModelConfig, flat: Float32Array): ModelWeights {
  const { specs, offsets } = paramLayout(c);
  const layers: LayerWeights[] = Array.from({ length: c.nLayers }, () => ({}) as LayerWeights);
  const w: ModelWeights = { tokenEmbedding: new Float32Array(0), layers, finalNorm: new Float32Array(0), classifier: null };
  specs.forEach((s, i) => {
    const v = flat.subarray(offsets[i], offsets[i] + s.rows * s.cols);
    if (s.layer !== null) (layers[s.layer] as unknown as Record<string, Float32Array>)[s.key] = v;
    else if (s.key === 'tokenEmbedding') w.tokenEmbedding = v;
    else if (s.key === 'finalNorm') w.finalNorm = v;
    else w.classifier = v;
  });
  return w;
}

/** A standalone float model (its own copy of the weights) for the blob writer, the reference forward and exporters. */
export function toFloatModel(c: ModelConfig, flat: Float32Array): FloatModel {
  return { config: { ...c }, weights: weightViews(c, flat.slice()) };
}

/** Standard normal deviates from the project's PRNG (Box-Muller). */
export function normalSampler(seed: number): () => number {
  const rand = seededRandom(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = 1 - rand(); // (0, 1]: log is finite
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/**
 * GPT-2 / llama2.c's train.py initialisation: matrices N(0, 0.02), the
 * projections back into the residual stream (wo, w2) N(0, 0.02/sqrt(2 L)) so
 * the residual does not grow with depth, RMSNorm weights 1.
 */
export function initParams(c: ModelConfig, seed: number): Float32Array {
  const { specs, offsets, total } = paramLayout(c);
  const flat = new Float32Array(total);
  const normal = normalSampler(seed);
  const residualStd = 0.02 / Math.sqrt(2 * c.nLayers);
  specs.forEach((s, i) => {
    const n = s.rows * s.cols;
    const o = offsets[i];
    if (s.kind === 'vector') flat.fill(1, o, o + n);
    else {
      const std = s.key === 'wo' || s.key === 'w2' ? residualStd : 0.02;
      for (let j = 0; j < n; j++) flat[o + j] = std * normal();
    }
  });
  return flat;
}

/** Whether AdamW's weight decay applies: matrices yes, RMSNorm gains no (as train.py). */
export function decayMask(c: ModelConfig): Uint8Array {
  const { specs, offsets, total } = paramLayout(c);
  const m = new Uint8Array(total);
  specs.forEach((s, i) => {
    if (s.kind === 'matrix') m.fill(1, offsets[i], offsets[i] + s.rows * s.cols);
  });
  return m;
}
