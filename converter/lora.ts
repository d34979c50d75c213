/**
 * Low-rank adapters (LoRA, Hu et al. 2021) on a transformer's projections:
 * each targeted matrix W (out × in) of every layer is used as
 *   W' = W + (alpha / r) · B · A,   A: r × in, B: out × r,
 * with W frozen and only A and B trained. A starts random and small, B at
 * zero, so step 0 is exactly the base model. The adapters live in one flat
 * Float32Array (AdamW is one loop over it); merging writes W' into a copy of
 * the base's flat parameters, which is both how the trainer runs the adapted
 * model and what the blob is written from.
 *
 * Gradients: W' is linear in A and B, so from the gradient dW' of the loss
 * with respect to the merged matrix (the training engine's ordinary backward
 * pass) the adapters' gradients are exactly
 *   dA = (alpha / r) · Bᵀ · dW',   dB = (alpha / r) · dW' · Aᵀ.
 * At these model sizes the full dW' costs no more than a training step does.
 */
import { LmflashError } from '../src/errors.js';
import { layerTensorShape, type ModelConfig } from '../src/model.js';
import { normalSampler, paramLayout } from './train/params.js';

export const LORA_TARGETS = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/** Where one adapted matrix and its A and B are. */
export interface AdaptedMatrix {
  layer: number;
  key: LoraTarget;
  rows: number; // out
  cols: number; // in
  /** offset of W in the model's flat parameters (params.ts layout) */
  weightOffset: number;
  /** offsets of A (r × cols) and B (rows × r) in the flat adapter buffer */
  aOffset: number;
  bOffset: number;
}

export interface LoraLayout {
  rank: number;
  alpha: number;
  /** alpha / rank: the factor B·A is added with */
  scale: number;
  targets: LoraTarget[];
  matrices: AdaptedMatrix[];
  /** floats in the adapter buffer: the trainable parameter count */
  total: number;
}

/** "wq,wv" → ['wq', 'wv'], in the model's tensor order; an unknown or repeated name is refused. */
export function parseTargets(list: string): LoraTarget[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new LmflashError(`--targets is empty: name some of ${LORA_TARGETS.join(',')}`);
  const seen = new Set<string>();
  for (const n of names) {
    if (!(LORA_TARGETS as readonly string[]).includes(n)) throw new LmflashError(`--targets: unknown projection "${n}": choose from ${LORA_TARGETS.join(',')}`);
    if (seen.has(n)) throw new LmflashError(`--targets names ${n} twice`);
    seen.add(n);
  }
  return LORA_TARGETS.filter((t) => seen.has(t));
}

/** The largest rank the targets allow: the smallest dimension of any targeted matrix. */
export function maxRank(c: ModelConfig, targets: readonly LoraTarget[]): number {
  return Math.min(...targets.map((t) => Math.min(...layerTensorShape(c, t))));
}

export function loraLayout(c: ModelConfig, rank: number, alpha: number, targets: readonly LoraTarget[]): LoraLayout {
  const limit = maxRank(c, targets);
  if (!(Number.isInteger(rank) && rank >= 1 && rank <= limit)) {
    throw new LmflashError(`--lora ${rank}: the rank must be a whole number from 1 to ${limit} (the smallest dimension of the targeted matrices ${targets.join(',')})`);
  }
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new LmflashError(`--alpha must be a positive number, not ${alpha}`);
  const { specs, offsets } = paramLayout(c);
  const matrices: AdaptedMatrix[] = [];
  let total = 0;
  specs.forEach((s, i) => {
    if (s.layer === null || !(targets as readonly string[]).includes(s.key)) return;
    const aOffset = total;
    const bOffset = aOffset + rank * s.cols;
    total = bOffset + s.rows * rank;
    matrices.push({ layer: s.layer, key: s.key as LoraTarget, rows: s.rows, cols: s.cols, weightOffset: offsets[i], aOffset, bOffset });
  });
  return { rank, alpha, scale: alpha / rank, targets: [...targets], matrices, total };
}

/**
 * Fresh adapters: A ~ N(0, 1/in) (so A·x keeps the size of x), B = 0, so the
 * adapted model starts as the base bit for bit.
 */
export function initAdapters(layout: LoraLayout, seed: number): Float32Array {
  const ad = new Float32Array(layout.total);
  const normal = normalSampler(seed);
  for (const m of layout.matrices) {
    const std = 1 / Math.sqrt(m.cols);
    for (let i = 0; i < layout.rank * m.cols; i++) ad[m.aOffset + i] = std * normal();
  }
  return ad;
}

/**
 * merged = base with scale · B · A added to every adapted matrix (the other
 * tensors copied unchanged). Sums in float64, one rounding per weight.
 */
export function mergeAdapters(merged: Float32Array, base: Float32Array, adapters: Float32Array, layout: LoraLayout): void {
  merged.set(base);
  const r = layout.rank;
  const s = layout.scale;
  for (const m of layout.matrices) {
    for (let i = 0; i < m.rows; i++) {
      const bRow = m.bOffset + i * r;
      const wRow = m.weightOffset + i * m.cols;
      for (let j = 0; j < m.cols; j++) {
        let sum = 0;
        for (let k = 0; k < r; k++) sum += adapters[bRow + k] * adapters[m.aOffset + k * m.cols + j];
        if (sum !== 0) merged[wRow + j] = base[wRow + j] + s * sum;
      }
    }
  }
}

/**
 * The adapters' gradient from the gradient of the merged parameters
 * (`mergedGrads`, the params.ts layout): dA = scale · Bᵀ · dW, dB = scale · dW · Aᵀ.
 * Overwrites `out`.
 */
export function adapterGradients(out: Float32Array, mergedGrads: Float32Array, adapters: Float32Array, layout: LoraLayout): void {
  const r = layout.rank;
  const s = layout.scale;
  for (const m of layout.matrices) {
    const { rows, cols } = m;
    // dB[i][k] = s Σ_j dW[i][j] A[k][j]
    for (let i = 0; i < rows; i++) {
      const dw = m.weightOffset + i * cols;
      for (let k = 0; k < r; k++) {
        const a = m.aOffset + k * cols;
        let sum = 0;
        for (let j = 0; j < cols; j++) sum += mergedGrads[dw + j] * adapters[a + j];
        out[m.bOffset + i * r + k] = s * sum;
      }
    }
    // dA[k][j] = s Σ_i B[i][k] dW[i][j]
    const acc = new Float64Array(cols);
    for (let k = 0; k < r; k++) {
      acc.fill(0);
      for (let i = 0; i < rows; i++) {
        const b = adapters[m.bOffset + i * r + k];
        if (b === 0) continue;
        const dw = m.weightOffset + i * cols;
        for (let j = 0; j < cols; j++) acc[j] += b * mergedGrads[dw + j];
      }
      const a = m.aOffset + k * cols;
      for (let j = 0; j < cols; j++) out[a + j] = s * acc[j];
    }
  }
}
