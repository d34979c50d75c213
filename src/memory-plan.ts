/**
 * The RAM the C decoder carves from its arena, computed the same way as
 * firmware/core/src/model.c layout() and app.c (every buffer rounded up to 16
 * bytes). tests/native.test.ts checks it against `lmf-run --info`.
 */
import type { BlobConfig } from './blob.js';

const r16 = (n: number) => Math.ceil(n / 16) * 16;

export interface RamPlan {
  ctx: number;
  /** int8 keys and values plus one f32 scale per (layer, position, kv head) each. */
  kvCacheBytes: number;
  /** Activations, quantized activations, attention scratch, RoPE tables. */
  activationBytes: number;
  /** Sampler scratch (probabilities and candidate ids). */
  samplerBytes: number;
  /** The prompt and generated token ids. */
  tokenBytes: number;
  totalBytes: number;
}

export function ramPlan(c: BlobConfig, ctx: number): RamPlan {
  const hs = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * hs;
  const widest = Math.max(c.dim, c.hiddenDim);
  const cache = c.nLayers * ctx;
  const kvCacheBytes = 2 * r16(cache * kvDim) + 2 * r16(cache * c.nKvHeads * 4);
  const activationBytes =
    3 * r16(c.dim * 4) + // x, xb, xb2
    2 * r16(c.hiddenDim * 4) + // hb, hb2
    r16(c.dim * 4) + 2 * r16(kvDim * 4) + // q, k, v
    r16(ctx * 4) + // att
    r16(c.vocabSize * 4) + // logits
    r16(widest) + r16(hs) + // xq, qq
    r16(Math.ceil(widest / c.groupSize) * 4) + // xq scales
    r16(ctx * 4) + r16(hs * 4) + // att_q, att_acc
    3 * r16((hs / 2) * 4); // rope freq, cos, sin
  const samplerBytes = r16(c.vocabSize * 8);
  const tokenBytes = r16((ctx + 2) * 4);
  return { ctx, kvCacheBytes, activationBytes, samplerBytes, tokenBytes, totalBytes: kvCacheBytes + activationBytes + samplerBytes + tokenBytes };
}

/** Parameters: every weight, counting a shared classifier once. */
export function parameterCount(c: BlobConfig): number {
  const hs = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * hs;
  const perLayer = 2 * c.dim + c.dim * c.dim * 2 + 2 * kvDim * c.dim + 3 * c.dim * c.hiddenDim;
  return c.vocabSize * c.dim + c.nLayers * perLayer + c.dim + (c.sharedClassifier ? 0 : c.vocabSize * c.dim);
}
