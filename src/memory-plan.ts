/**
 * The RAM the C decoder carves from its arena, computed the same way as
 * firmware/core/src/model.c layout() and app.c (every buffer rounded up to 16
 * bytes). tests/native.test.ts checks it against `lmf-run --info`.
 */
import type { BlobConfig } from './blob.js';

const r16 = (n: number) => Math.ceil(n / 16) * 16;

export interface RamPlan {
  ctx: number;
  /** int8 keys and values plus one 4-byte scale per (layer, kv head, position) each. */
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
  const rows = c.nLayers * c.nKvHeads * ctx; // [layer][kv head][position] rows of hs int8
  const kvCacheBytes = 2 * r16(rows * hs) + 4 * r16(rows * 2); // int8 keys and values; u16 mantissa + i16 exponent of each row's scale
  const activationBytes =
    3 * r16(c.dim * 4) + // x, xb, xb2
    2 * r16(c.hiddenDim * 4) + // hb, hb2
    r16(c.dim * 4) + 2 * r16(kvDim * 4) + // q, k, v
    r16(c.vocabSize * 4) + // logits
    r16(r16(widest) * 2) + 2 * r16(Math.ceil(widest / c.groupSize) * 4) + // quantized activations (int16), group scales and sums
    r16(r16(c.dim) * 2) + 2 * r16(c.nHeads * 4) + // quantized query, per-head scale and sum
    r16(ctx * 4) + r16(Math.min(ctx, 512) * 2) + r16(hs * 4) + // scores, value weights, value sums
    3 * r16((hs / 2) * 4); // RoPE frequencies, cos, sin
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
