/**
 * Calibration for int4 (`convert --bits 4 --calibrate text.txt`): the float
 * model runs over text and, for each layer matrix, sums x xᵀ of the inputs it
 * sees (the Hessian of its output error), which quantizeMatrix4Calibrated
 * uses to spread each weight's rounding error where the inputs hide it.
 */
import type { FloatModel } from '../src/model.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer, type TokenizerData } from '../src/tokenizer.js';

/** The matrices that read each input the reference reports. */
const READERS = { wq: ['wq', 'wk', 'wv'], wo: ['wo'], w1: ['w1', 'w3'], w2: ['w2'] } as const;

export interface Calibration {
  /** Σ x xᵀ per tensor name (layers.L.wq …), cols × cols float64. */
  hessians: Map<string, Float64Array>;
  tokens: number;
}

/** Runs documents (each from BOS, at most the model's context) until maxTokens positions have run. */
export function calibrate(model: FloatModel, tokenizerData: TokenizerData, documents: string[], maxTokens = 4096): Calibration {
  const c = model.config;
  const sums = new Map<string, Float64Array>(); // keyed by `${layer}.${reader}`
  const onMatrixInput = (layer: number, reader: keyof typeof READERS, x: Float32Array) => {
    const key = `${layer}.${reader}`;
    const n = x.length;
    let h = sums.get(key);
    if (!h) sums.set(key, (h = new Float64Array(n * n)));
    for (let i = 0; i < n; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * n;
      for (let j = 0; j < n; j++) h[row + j] += xi * x[j];
    }
  };
  const tok = new Tokenizer(tokenizerData);
  let tokens = 0;
  for (const doc of documents) {
    if (tokens >= maxTokens) break;
    const ids = tok.encode(Buffer.from(doc, 'utf8')).slice(0, Math.min(c.seqLen, maxTokens - tokens));
    const rm = new ReferenceModel(model, { maxPositions: ids.length, onMatrixInput });
    ids.forEach((id, pos) => rm.forward(id, pos));
    tokens += ids.length;
  }
  const hessians = new Map<string, Float64Array>();
  for (const [key, h] of sums) {
    const [layer, reader] = key.split('.') as [string, keyof typeof READERS];
    for (const m of READERS[reader]) hessians.set(`layers.${layer}.${m}`, h);
  }
  return { hessians, tokens };
}
