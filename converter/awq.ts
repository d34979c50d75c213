/**
 * Activation-aware scaling for int4 (AWQ, Lin et al. 2023), applied before
 * the GPTQ rounding: input channels that carry large activations get their
 * weight columns scaled up by s (so int4 rounds them more finely relative to
 * what they contribute) and the op before them absorbs 1/s exactly in float:
 *   - wq/wk/wv read attnNorm ⊙ x̂: attnNorm /= s, columns of wq, wk, wv *= s;
 *   - w1/w3 read ffnNorm ⊙ x̂: ffnNorm /= s, columns of w1, w3 *= s;
 *   - w2 reads silu(w1 x) ⊙ (w3 x): rows of w3 /= s, columns of w2 *= s.
 * The model computes the same function in exact arithmetic; only which
 * weights int4 can represent changes, so the blob format and the C core are
 * untouched. s = rms(x)^alpha per channel, alpha chosen per layer and input
 * from a grid by the output error tr(ΔW H ΔWᵀ) of the calibrated rounding on
 * the calibration Hessian H (train-split text only, like the rest of
 * calibration).
 */
import type { FloatModel, LayerWeights } from '../src/model.js';
import { dequantizeMatrix4, quantizeMatrix4Calibrated } from '../src/quantize.js';

/** The alphas tried for each input (0 = no scaling). */
const ALPHAS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

interface Reader {
  name: keyof LayerWeights;
  rows: number;
}

/** Σ over the readers of tr(ΔW H ΔWᵀ): how far their outputs move on the calibration inputs. */
function outputError(w: Float32Array, dq: Float32Array, rows: number, cols: number, h: Float64Array): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = w[r * cols + c] - dq[r * cols + c];
    for (let i = 0; i < cols; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < cols; j++) s += h[i * cols + j] * d[j];
      total += d[i] * s;
    }
  }
  return total;
}

/** W · diag(s) for a row-major rows×cols matrix. */
function scaleColumns(w: Float32Array, rows: number, cols: number, s: Float64Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = w[r * cols + c] * s[c];
  return out;
}

/** diag(1/s) H diag(1/s): the Hessian of the inputs once they are divided by s. */
function scaleHessian(h: Float64Array, n: number, s: Float64Array): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = h[i * n + j] / (s[i] * s[j]);
  return out;
}

/** Per-channel s = rms^alpha, normalised to geometric mean 1 (a common factor changes nothing). */
function channelScales(h: Float64Array, n: number, alpha: number): Float64Array {
  const s = new Float64Array(n);
  let logSum = 0;
  for (let i = 0; i < n; i++) {
    const rms = Math.sqrt(Math.max(h[i * n + i], 1e-12));
    s[i] = Math.pow(rms, alpha);
    logSum += Math.log(s[i]);
  }
  const g = Math.exp(logSum / n);
  for (let i = 0; i < n; i++) s[i] /= g;
  return s;
}

/** The alpha (and its s) whose calibrated int4 rounding of the readers moves their outputs least. */
function bestScales(
  lw: LayerWeights,
  readers: Reader[],
  cols: number,
  h: Float64Array,
  groupSize: number,
): { s: Float64Array; alpha: number } {
  let best = { s: channelScales(h, cols, 0), alpha: 0 };
  let bestErr = Infinity;
  for (const alpha of ALPHAS) {
    const s = channelScales(h, cols, alpha);
    const hs = scaleHessian(h, cols, s);
    let err = 0;
    for (const { name, rows } of readers) {
      const ws = scaleColumns(lw[name], rows, cols, s);
      const dq = dequantizeMatrix4(quantizeMatrix4Calibrated(ws, rows, cols, groupSize, hs, name));
      err += outputError(ws, dq, rows, cols, hs);
    }
    if (err < bestErr) {
      bestErr = err;
      best = { s, alpha };
    }
  }
  return best;
}

export interface ActivationScaling {
  model: FloatModel;
  /** The Hessians of the scaled inputs, keyed like Calibration.hessians. */
  hessians: Map<string, Float64Array>;
  /** The alpha chosen per layer and input (`L.attn`, `L.ffn`, `L.down`). */
  alphas: Map<string, number>;
}

/** The model with each int4 layer input scaled as the module comment describes, and the Hessians to match. */
export function applyActivationScaling(model: FloatModel, hessians: Map<string, Float64Array>, groupSize: number): ActivationScaling {
  const c = model.config;
  const kvDim = (c.dim / c.nHeads) * c.nKvHeads;
  const out = new Map(hessians);
  const alphas = new Map<string, number>();
  const layers = model.weights.layers.map((src, l) => {
    const lw: LayerWeights = { ...src };
    const hAttn = hessians.get(`layers.${l}.wq`);
    if (hAttn) {
      const readers: Reader[] = [
        { name: 'wq', rows: c.dim },
        { name: 'wk', rows: kvDim },
        { name: 'wv', rows: kvDim },
      ];
      const { s, alpha } = bestScales(lw, readers, c.dim, hAttn, groupSize);
      alphas.set(`${l}.attn`, alpha);
      lw.attnNorm = lw.attnNorm.map((v, i) => v / s[i]);
      for (const { name, rows } of readers) lw[name] = scaleColumns(lw[name], rows, c.dim, s) as never;
      const hs = scaleHessian(hAttn, c.dim, s);
      for (const { name } of readers) out.set(`layers.${l}.${name}`, hs);
    }
    const hFfn = hessians.get(`layers.${l}.w1`);
    if (hFfn) {
      const readers: Reader[] = [
        { name: 'w1', rows: c.hiddenDim },
        { name: 'w3', rows: c.hiddenDim },
      ];
      const { s, alpha } = bestScales(lw, readers, c.dim, hFfn, groupSize);
      alphas.set(`${l}.ffn`, alpha);
      lw.ffnNorm = lw.ffnNorm.map((v, i) => v / s[i]);
      for (const { name, rows } of readers) lw[name] = scaleColumns(lw[name], rows, c.dim, s) as never;
      const hs = scaleHessian(hFfn, c.dim, s);
      for (const { name } of readers) out.set(`layers.${l}.${name}`, hs);
    }
    const hDown = hessians.get(`layers.${l}.w2`);
    if (hDown) {
      const { s, alpha } = bestScales(lw, [{ name: 'w2', rows: c.dim }], c.hiddenDim, hDown, groupSize);
      alphas.set(`${l}.down`, alpha);
      lw.w2 = scaleColumns(lw.w2, c.dim, c.hiddenDim, s);
      // w3's rows produce w2's inputs (silu(w1 x) ⊙ w3 x is linear in w3 x)
      const w3 = new Float32Array(lw.w3.length);
      for (let r = 0; r < c.hiddenDim; r++) for (let k = 0; k < c.dim; k++) w3[r * c.dim + k] = lw.w3[r * c.dim + k] / s[r];
      lw.w3 = w3;
      out.set(`layers.${l}.w2`, scaleHessian(hDown, c.hiddenDim, s));
    }
    return lw;
  });
  return { model: { ...model, weights: { ...model.weights, layers } }, hessians: out, alphas };
}
