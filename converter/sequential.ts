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
import { applyActivationScaling } from './awq.js';
import { calibrate } from './calibrate.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer, type TokenizerData } from '../src/tokenizer.js';

const MATRICES = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;

export interface SequentialCalibration {
  /** The rescaled float model (norms and matrices as the blob stores them before rounding). */
  model: FloatModel;
  /** The int4 form of every layer matrix, by tensor name (layers.L.wq …). */
  quantized: Map<string, QuantizedMatrix4>;
  tokens: number;
  /** The factor finalNorm was scaled by (fitLogitScale). */
  logitScale: number;
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
    if (tokens === 0) return { model, quantized, tokens, logitScale: 1 };
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
  const logitScale = fitLogitScale(model, running, tokenizer, documents, maxTokens);
  const finalNorm = scaled.weights.finalNorm.map((v) => v * logitScale);
  return { model: { ...scaled, weights: { ...scaled.weights, finalNorm } }, quantized, tokens, logitScale };
}

/** The logit scales tried, 0.8 to 1.5 in steps of 0.01. */
const LOGIT_SCALES = Array.from({ length: 71 }, (_, k) => 0.8 + k / 100);

/**
 * int4 noise leaves the model less sure of itself than the float one. The
 * logits are linear in finalNorm (logits = classifier · (finalNorm ⊙ x̂)), so
 * scaling that f32 vector by t scales them by t: this picks the t whose
 * softmax is closest to the float model's, mean KL(float || int4) over the
 * calibration text, with int4 layers in the reference.
 */
function fitLogitScale(float: FloatModel, int4: FloatModel, tokenizer: TokenizerData, documents: string[], maxTokens = 4096): number {
  const tok = new Tokenizer(tokenizer);
  // KL to the float model, not the text's own NLL: the NLL's best t (about
  // 1.15) also sharpens the float model and so buys perplexity while moving
  // further from float (stories260K, group 16: perplexity 1.0405 but KL
  // 0.0605 instead of 0.0452), which is tuning the model, not quantizing it
  const kl = new Float64Array(LOGIT_SCALES.length);
  let tokens = 0;
  for (const doc of documents) {
    if (tokens >= maxTokens) break;
    const ids = tok.encode(Buffer.from(doc, 'utf8')).slice(0, Math.min(float.config.seqLen, maxTokens - tokens));
    const rf = new ReferenceModel(float, { maxPositions: ids.length });
    const rq = new ReferenceModel(int4, { maxPositions: ids.length });
    ids.forEach((id, pos) => {
      const p = softmax(rf.forward(id, pos), 1);
      const z = rq.forward(id, pos);
      LOGIT_SCALES.forEach((t, k) => {
        const q = softmax(z, t);
        let d = 0;
        for (let i = 0; i < p.length; i++) if (p[i] > 0) d += p[i] * (Math.log(p[i]) - Math.log(Math.max(q[i], 1e-300)));
        kl[k] += d;
      });
    });
    tokens += ids.length;
  }
  let best = LOGIT_SCALES.indexOf(1);
  for (let k = 0; k < kl.length; k++) if (kl[k] < kl[best]) best = k;
  return Math.fround(LOGIT_SCALES[best]);
}

/** softmax(t · z) in float64. */
function softmax(z: Float32Array, t: number): Float64Array {
  let mx = -Infinity;
  for (const v of z) mx = Math.max(mx, t * v);
  const out = new Float64Array(z.length);
  let sum = 0;
  for (let i = 0; i < z.length; i++) sum += out[i] = Math.exp(t * z[i] - mx);
  for (let i = 0; i < z.length; i++) out[i] /= sum;
  return out;
}
