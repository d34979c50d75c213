/**
 * Float32 reference forward pass with llama2.c run.c semantics. It is the
 * yardstick for everything else: it must reproduce run.c's logits, and it
 * scores quantized models (dequantized back to float) over many thousands of
 * positions, so it allocates nothing per token and works on typed arrays.
 *
 * Sums are accumulated in JS doubles and stored as float32; run.c sums in
 * float32, and the difference stays far below the 1e-4 the tests allow.
 */
import { checkModelShapes, headSize, kvDim, type FloatModel, type ModelConfig, type ModelWeights } from './model.js';

/**
 * out[outOff + i] = Σ_j w[i*n + j] · x[j] for i < d (llama2.c matmul: W is
 * d×n, row-major). Four independent sums break the floating-point add
 * dependency chain: about 1.6× faster in V8, and still double precision.
 */
function matmul(out: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number, outOff = 0): void {
  const n4 = n & ~3;
  for (let i = 0, row = 0; i < d; i++, row += n) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let j = 0;
    for (; j < n4; j += 4) {
      s0 += w[row + j] * x[j];
      s1 += w[row + j + 1] * x[j + 1];
      s2 += w[row + j + 2] * x[j + 2];
      s3 += w[row + j + 3] * x[j + 3];
    }
    for (; j < n; j++) s0 += w[row + j] * x[j];
    out[outOff + i] = s0 + s1 + (s2 + s3);
  }
}

/**
 * One head's attention over positions 0..pos: scores q·k/sqrt(hs) into
 * att[ao..], softmax, then the weighted sum of values into out[qo..].
 * kvOff is the head's first key/value element in the layer's cache rows.
 */
function attendHead(
  q: Float32Array,
  qo: number,
  keys: Float32Array,
  values: Float32Array,
  kvOff: number,
  kvStride: number,
  att: Float32Array,
  ao: number,
  pos: number,
  hs: number,
  scale: number,
  out: Float32Array,
): void {
  for (let t = 0; t <= pos; t++) {
    const kt = kvOff + t * kvStride;
    let s = 0;
    for (let i = 0; i < hs; i++) s += q[qo + i] * keys[kt + i];
    att[ao + t] = s * scale;
  }
  softmax(att, ao, pos + 1);
  // Weighted sum of values, walking the cache row by row (contiguous reads).
  out.fill(0, qo, qo + hs);
  for (let t = 0; t <= pos; t++) {
    const a = att[ao + t];
    const vt = kvOff + t * kvStride;
    for (let i = 0; i < hs; i++) out[qo + i] += a * values[vt + i];
  }
}

/** out = weight ⊙ x / sqrt(mean(x²) + eps); `out` may be `x`. */
function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, size: number, eps: number): void {
  let ss = 0;
  for (let j = 0; j < size; j++) ss += x[j] * x[j];
  const inv = 1 / Math.sqrt(ss / size + eps);
  for (let j = 0; j < size; j++) out[j] = weight[j] * (inv * x[j]);
}

/** In-place softmax of x[0, size). */
function softmax(x: Float32Array, offset: number, size: number): void {
  let max = x[offset];
  for (let i = 1; i < size; i++) if (x[offset + i] > max) max = x[offset + i];
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const e = Math.exp(x[offset + i] - max);
    x[offset + i] = e;
    sum += e;
  }
  for (let i = 0; i < size; i++) x[offset + i] /= sum;
}

/** Index of the largest value (the first one on ties, like run.c's sample_argmax). */
export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

export interface ReferenceOptions {
  /** Positions the KV cache holds (default: the model's seq_len). */
  maxPositions?: number;
  /**
   * Round keys and values through int8 (one scale per position and kv head,
   * as the C core stores them) to measure what the int8 KV cache alone costs.
   */
  int8KvCache?: boolean;
  /**
   * Called with the input of each layer's matrix products, named by the
   * first matrix that reads it (wq: also wk and wv; w1: also w3): what the
   * converter's int4 calibration collects. The array is reused: copy it.
   */
  onMatrixInput?: (layer: number, reader: 'wq' | 'wo' | 'w1' | 'w2', x: Float32Array) => void;
}

/** Quantizes v[off, off+n) to int8 with one symmetric scale and back, in place. */
function roundTripInt8(v: Float32Array, off: number, n: number): void {
  let max = 0;
  for (let i = off; i < off + n; i++) max = Math.max(max, Math.abs(v[i]));
  if (max === 0) return;
  const scale = max / 127;
  for (let i = off; i < off + n; i++) v[i] = Math.round(v[i] / scale) * scale;
}

/** A model plus its run state (activations and KV cache). Not reentrant. */
export class ReferenceModel {
  readonly config: ModelConfig;
  readonly maxPositions: number;
  private readonly int8KvCache: boolean;
  private readonly onMatrixInput: ReferenceOptions['onMatrixInput'];
  private readonly w: ModelWeights;
  private readonly classifier: Float32Array;
  private readonly x: Float32Array;
  private readonly xb: Float32Array;
  private readonly xb2: Float32Array;
  private readonly hb: Float32Array;
  private readonly hb2: Float32Array;
  private readonly q: Float32Array;
  private readonly att: Float32Array;
  private readonly logits: Float32Array;
  private readonly keyCache: Float32Array; // [layer][pos][kvDim]
  private readonly valueCache: Float32Array;
  /** cos/sin of pos·freq for each position and pair, computed once as run.c does per token. */
  private readonly ropeCos: Float32Array; // [pos][hs/2]
  private readonly ropeSin: Float32Array;

  constructor(model: FloatModel, opts: ReferenceOptions = {}) {
    checkModelShapes(model);
    const c = model.config;
    this.config = c;
    this.w = model.weights;
    this.classifier = model.weights.classifier ?? model.weights.tokenEmbedding;
    this.maxPositions = opts.maxPositions ?? c.seqLen;
    this.int8KvCache = opts.int8KvCache ?? false;
    this.onMatrixInput = opts.onMatrixInput;
    const kv = kvDim(c);
    this.x = new Float32Array(c.dim);
    this.xb = new Float32Array(c.dim);
    this.xb2 = new Float32Array(c.dim);
    this.hb = new Float32Array(c.hiddenDim);
    this.hb2 = new Float32Array(c.hiddenDim);
    this.q = new Float32Array(c.dim);
    this.att = new Float32Array(c.nHeads * this.maxPositions);
    this.logits = new Float32Array(c.vocabSize);
    this.keyCache = new Float32Array(c.nLayers * this.maxPositions * kv);
    this.valueCache = new Float32Array(c.nLayers * this.maxPositions * kv);
    const hs = headSize(c);
    const half = hs / 2;
    this.ropeCos = new Float32Array(this.maxPositions * half);
    this.ropeSin = new Float32Array(this.maxPositions * half);
    const f = Math.fround;
    for (let i = 0; i < half; i++) {
      // run.c: freq = 1.0f / powf(10000.0f, head_dim / (float)head_size), val = pos * freq, all float32.
      const freq = f(1 / f(Math.pow(c.ropeTheta, f((2 * i) / hs))));
      for (let pos = 0; pos < this.maxPositions; pos++) {
        const val = f(pos * freq);
        this.ropeCos[pos * half + i] = Math.cos(val);
        this.ropeSin[pos * half + i] = Math.sin(val);
      }
    }
  }

  /**
   * Runs token `token` at position `pos` (positions before it must have been
   * run already, in order, since this call) and returns the logits. The
   * returned array is reused by the next call: copy it to keep it.
   */
  forward(token: number, pos: number): Float32Array {
    const c = this.config;
    const w = this.w;
    if (!(Number.isInteger(token) && token >= 0 && token < c.vocabSize)) {
      throw new RangeError(`token ${token} is outside the vocabulary (0..${c.vocabSize - 1})`);
    }
    if (!(Number.isInteger(pos) && pos >= 0 && pos < this.maxPositions)) {
      throw new RangeError(`position ${pos} is outside the context (0..${this.maxPositions - 1})`);
    }
    const { x, xb, xb2, hb, hb2, q, att, keyCache, valueCache } = this;
    const dim = c.dim;
    const hidden = c.hiddenDim;
    const hs = headSize(c);
    const half = hs / 2;
    const kv = kvDim(c);
    const kvMul = c.nHeads / c.nKvHeads;
    const eps = c.normEps;
    const scale = 1 / Math.sqrt(hs);

    const emb = w.tokenEmbedding;
    for (let i = 0, o = token * dim; i < dim; i++) x[i] = emb[o + i]; // no subarray: nothing allocated per token

    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l];
      rmsnorm(xb, x, lw.attnNorm, dim, eps);

      // q, k, v for this position; k and v go straight into the cache.
      const loff = l * this.maxPositions * kv;
      const rowOff = loff + pos * kv;
      this.onMatrixInput?.(l, 'wq', xb);
      matmul(q, xb, lw.wq, dim, dim);
      matmul(keyCache, xb, lw.wk, dim, kv, rowOff);
      matmul(valueCache, xb, lw.wv, dim, kv, rowOff);

      // RoPE on interleaved pairs (i, i+1) of each head of q and k.
      const ropeRow = pos * half;
      for (let i = 0; i < dim; i += 2) {
        const pair = (i % hs) >> 1;
        const fcr = this.ropeCos[ropeRow + pair];
        const fci = this.ropeSin[ropeRow + pair];
        const q0 = q[i];
        const q1 = q[i + 1];
        q[i] = q0 * fcr - q1 * fci;
        q[i + 1] = q0 * fci + q1 * fcr;
        if (i < kv) {
          const k0 = keyCache[rowOff + i];
          const k1 = keyCache[rowOff + i + 1];
          keyCache[rowOff + i] = k0 * fcr - k1 * fci;
          keyCache[rowOff + i + 1] = k0 * fci + k1 * fcr;
        }
      }

      if (this.int8KvCache) {
        for (let h = 0; h < c.nKvHeads; h++) {
          roundTripInt8(keyCache, rowOff + h * hs, hs);
          roundTripInt8(valueCache, rowOff + h * hs, hs);
        }
      }

      // Grouped-query attention: head h reads kv head h / kvMul.
      for (let h = 0; h < c.nHeads; h++) {
        const kvOff = loff + ((h / kvMul) | 0) * hs;
        attendHead(q, h * hs, keyCache, valueCache, kvOff, kv, att, h * this.maxPositions, pos, hs, scale, xb);
      }

      this.onMatrixInput?.(l, 'wo', xb);
      matmul(xb2, xb, lw.wo, dim, dim);
      for (let i = 0; i < dim; i++) x[i] += xb2[i];

      // SwiGLU feed-forward: w2(silu(w1 x) * w3 x).
      rmsnorm(xb, x, lw.ffnNorm, dim, eps);
      this.onMatrixInput?.(l, 'w1', xb);
      matmul(hb, xb, lw.w1, dim, hidden);
      matmul(hb2, xb, lw.w3, dim, hidden);
      for (let i = 0; i < hidden; i++) {
        const g = hb[i];
        hb[i] = (g / (1 + Math.exp(-g))) * hb2[i];
      }
      this.onMatrixInput?.(l, 'w2', hb);
      matmul(xb, hb, lw.w2, hidden, dim);
      for (let i = 0; i < dim; i++) x[i] += xb[i];
    }

    rmsnorm(x, x, w.finalNorm, dim, eps);
    matmul(this.logits, x, this.classifier, dim, c.vocabSize);
    return this.logits;
  }
}

/**
 * Feeds `prompt` then greedy tokens, like run.c with temperature 0, for
 * `steps` positions in all; returns the generated tokens (which may end early
 * at `stopToken`). `onLogits` sees each position's logits.
 */
export function generateGreedy(
  model: ReferenceModel,
  prompt: readonly number[],
  steps: number,
  opts: { stopToken?: number; onLogits?: (pos: number, logits: Float32Array) => void } = {},
): number[] {
  if (prompt.length === 0) throw new RangeError('generateGreedy needs at least one prompt token (BOS)');
  const out: number[] = [];
  let token = prompt[0];
  for (let pos = 0; pos < steps; pos++) {
    const logits = model.forward(token, pos);
    opts.onLogits?.(pos, logits);
    const next = pos + 1 < prompt.length ? prompt[pos + 1] : argmax(logits);
    if (pos + 1 >= prompt.length) {
      if (next === opts.stopToken) break;
      out.push(next);
    }
    token = next;
  }
  return out;
}
