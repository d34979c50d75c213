/**
 * Structured FFN pruning: remove whole hidden neurons of every layer's
 * SwiGLU feed-forward, so hidden_dim shrinks and the blob and the compute
 * with it. Neuron i of a layer is row i of w1 (gate) and w3 (up) and column
 * i of w2 (down); its output contribution is w2[:, i] · silu(w1_i x)(w3_i x),
 * so dropping it is exactly zeroing it.
 *
 * Importance (per layer, the lowest ranked are removed, the same count in
 * every layer since the blob has one hidden_dim):
 * - magnitude (baseline, needs no data): ||w1_i|| · ||w3_i|| · ||w2[:, i]||,
 *   a bound on how large the neuron's output can be for a unit input;
 * - activation (NVIDIA Minitron's activation-based importance, applied to the
 *   output it actually produces): mean over calibration tokens of
 *   |silu(w1_i x) · (w3_i x)|, times ||w2[:, i]||.
 * Kept neurons keep their order.
 */
import { LmflashError } from '../src/errors.js';
import type { FloatModel, LayerWeights } from '../src/model.js';
import type { TokenizerData } from '../src/tokenizer.js';
import { packDocuments, validationWindows } from './train/data.js';
import type { Kernels } from './train/kernels.js';
import { paramLayout, weightViews } from './train/params.js';
import { TransformerPass } from './train/transformer.js';

export type FfnImportance = 'magnitude' | 'activation';

export interface FfnPruneStats {
  importance: FfnImportance;
  fraction: number;
  originalHidden: number;
  keptHidden: number;
  /** calibration tokens the activation importance averaged over (0 for magnitude) */
  calibrationTokens: number;
}

export interface FfnPruneResult {
  model: FloatModel;
  /** per layer, the original indices of the kept neurons (ascending) */
  kept: Uint32Array[];
  stats: FfnPruneStats;
}

function rowNorm(m: Float32Array, cols: number, r: number): number {
  let s = 0;
  for (let j = 0; j < cols; j++) s += m[r * cols + j] * m[r * cols + j];
  return Math.sqrt(s);
}

/** ||w2[:, i]|| for every hidden neuron i (w2 is [dim][hidden]). */
export function downColumnNorms(w2: Float32Array, dim: number, hidden: number): Float64Array {
  const out = new Float64Array(hidden);
  for (let r = 0; r < dim; r++) for (let i = 0; i < hidden; i++) out[i] += w2[r * hidden + i] * w2[r * hidden + i];
  return out.map(Math.sqrt);
}

export function magnitudeImportance(model: FloatModel): Float64Array[] {
  const { dim, hiddenDim } = model.config;
  return model.weights.layers.map((lw) => {
    const down = downColumnNorms(lw.w2, dim, hiddenDim);
    return down.map((d, i) => rowNorm(lw.w1, dim, i) * rowNorm(lw.w3, dim, i) * d);
  });
}

/** The flat parameter buffer of a float model (the trainer's layout). */
export function flatParams(model: FloatModel): Float32Array {
  const c = model.config;
  const flat = new Float32Array(paramLayout(c).total);
  const v = weightViews(c, flat);
  v.tokenEmbedding.set(model.weights.tokenEmbedding);
  v.finalNorm.set(model.weights.finalNorm);
  if (v.classifier && model.weights.classifier) v.classifier.set(model.weights.classifier);
  model.weights.layers.forEach((lw, l) => {
    for (const key of Object.keys(lw) as (keyof LayerWeights)[]) v.layers[l][key].set(lw[key]);
  });
  return flat;
}

/**
 * Activation importance over the calibration lines, packed as training does
 * and cut into windows of `seq` tokens (at most `maxWindows`).
 */
export function activationImportance(
  model: FloatModel, tokenizer: TokenizerData, lines: string[], kernels: Kernels, seq: number, maxWindows: number,
): { importance: Float64Array[]; tokens: number } {
  const c = model.config;
  const stream = packDocuments(lines, tokenizer);
  const T = Math.min(seq, c.seqLen, stream.length - 1);
  if (T < 1) throw new LmflashError('the --calibrate text is too short: it must encode to at least 2 tokens');
  const windows = validationWindows(stream, 1, T, maxWindows);
  const pass = new TransformerPass(c, 1, T, kernels);
  const params = flatParams(model);
  const sums = Array.from({ length: c.nLayers }, () => new Float64Array(c.hiddenDim));
  let tokens = 0;
  for (const w of windows) {
    pass.run(params, w.inputs, w.targets, null);
    for (let l = 0; l < c.nLayers; l++) {
      const g = pass.ffnGateOfLastRun(l);
      for (let r = 0; r < T; r++) for (let i = 0; i < c.hiddenDim; i++) sums[l][i] += Math.abs(g[r * c.hiddenDim + i]);
    }
    tokens += T;
  }
  const importance = model.weights.layers.map((lw, l) => {
    const down = downColumnNorms(lw.w2, c.dim, c.hiddenDim);
    return sums[l].map((s, i) => (s / tokens) * down[i]);
  });
  return { importance, tokens };
}

/** Indices of the `keep` largest scores, ascending (ties: the lower index is kept). */
export function topIndices(scores: Float64Array, keep: number): Uint32Array {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  return Uint32Array.from(order.slice(0, keep)).sort();
}

/** How many neurons remain when `fraction` of `hidden` go (at least one stays). */
export function keptCount(hidden: number, fraction: number): number {
  if (!(fraction > 0 && fraction < 1)) throw new LmflashError(`--ffn must be a fraction strictly between 0 and 1 (e.g. 0.3), not ${fraction}`);
  return Math.max(1, hidden - Math.round(fraction * hidden));
}

/** The model with only the neurons `kept[l]` of each layer's FFN. */
export function removeNeurons(model: FloatModel, kept: Uint32Array[]): FloatModel {
  const c = model.config;
  const H = c.hiddenDim;
  const h = kept[0].length;
  if (kept.some((k) => k.length !== h)) throw new Error('internal error: every layer must keep the same number of neurons');
  const layers = model.weights.layers.map((lw, l) => {
    const ids = kept[l];
    const w1 = new Float32Array(h * c.dim);
    const w3 = new Float32Array(h * c.dim);
    const w2 = new Float32Array(c.dim * h);
    ids.forEach((id, r) => {
      w1.set(lw.w1.subarray(id * c.dim, (id + 1) * c.dim), r * c.dim);
      w3.set(lw.w3.subarray(id * c.dim, (id + 1) * c.dim), r * c.dim);
      for (let d = 0; d < c.dim; d++) w2[d * h + r] = lw.w2[d * H + id];
    });
    return { ...lw, w1, w2, w3 };
  });
  return { config: { ...c, hiddenDim: h }, weights: { ...model.weights, layers } };
}

export function pruneFfn(model: FloatModel, fraction: number, importance: Float64Array[], kind: FfnImportance, calibrationTokens: number): FfnPruneResult {
  const keep = keptCount(model.config.hiddenDim, fraction);
  const kept = importance.map((s) => topIndices(s, keep));
  return {
    model: removeNeurons(model, kept),
    kept,
    stats: { importance: kind, fraction, originalHidden: model.config.hiddenDim, keptHidden: keep, calibrationTokens },
  };
}
