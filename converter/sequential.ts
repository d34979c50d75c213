/**
 * Layer-by-layer int4 calibration: layer l's Hessians are measured with
 * layers 0..l-1 already int4 (their dequantized weights in the float
 * reference), so each layer's rounding also corrects the error the layers
 * before it left in its inputs (as GPTQ and AWQ do on large models). Each
 * layer is first rescaled (converter/awq.ts), then rounded with error
 * feedback and refitted scales (quantizeMatrix4Calibrated).
 */
import type { FloatModel, LayerWeights } from '../src/model.js';
import { dequantizeMatrix4, quantizeMatrix4Calibrated, type QuantizedMatrix4 } from '../src/quantize.js';
import type { TokenizerData } from '../src/tokenizer.js';
import { applyActivationScaling } from './awq.js';
import { calibrate } from './calibrate.js';

const MATRICES = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;

export interface SequentialCalibration {
  /** The rescaled float model (norms and matrices as the blob stores them before rounding). */
  model: FloatModel;
  /** The int4 form of every layer matrix, by tensor name (layers.L.wq …). */
  quantized: Map<string, QuantizedMatrix4>;
  tokens: number;
}

export function calibrateSequentially(
  model: FloatModel,
  tokenizer: TokenizerData,
  documents: string[],
  maxTokens: number | undefined,
  groupSize: number,
  activationScaling = true,
): SequentialCalibration {
  const c = model.config;
  const kvDim = (c.dim / c.nHeads) * c.nKvHeads;
  const shape = { wq: [c.dim, c.dim], wk: [kvDim, c.dim], wv: [kvDim, c.dim], wo: [c.dim, c.dim], w1: [c.hiddenDim, c.dim], w2: [c.dim, c.hiddenDim], w3: [c.hiddenDim, c.dim] };
  let scaled = model; // float, rescaled layer by layer
  let running = model; // what calibration runs: layers before l hold their int4 values
  const quantized = new Map<string, QuantizedMatrix4>();
  let tokens = 0;
  for (let l = 0; l < c.nLayers; l++) {
    const cal = calibrate(running, tokenizer, documents, maxTokens);
    tokens = cal.tokens;
    if (tokens === 0) return { model, quantized, tokens };
    const mine = new Map([...cal.hessians].filter(([name]) => name.startsWith(`layers.${l}.`)));
    // the running model's layer l is still float, so scaling it equals scaling the float layer
    const s = activationScaling ? applyActivationScaling(running, mine, groupSize) : { model: running, hessians: mine };
    const lw: LayerWeights = s.model.weights.layers[l];
    const rounded: LayerWeights = { ...lw };
    for (const m of MATRICES) {
      const [rows, cols] = shape[m];
      const q = quantizeMatrix4Calibrated(lw[m], rows, cols, groupSize, s.hessians.get(`layers.${l}.${m}`)!, `layers.${l}.${m}`);
      quantized.set(`layers.${l}.${m}`, q);
      rounded[m] = dequantizeMatrix4(q);
    }
    const withLayer = (base: FloatModel, layer: LayerWeights): FloatModel => ({
      ...base,
      weights: { ...base.weights, layers: base.weights.layers.map((x, i) => (i === l ? layer : x)) },
    });
    scaled = withLayer(scaled, lw);
    running = withLayer(running, rounded);
  }
  return { model: scaled, quantized, tokens };
}
