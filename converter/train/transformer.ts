/**
 * Forward and backward pass of the Llama-style model (src/reference.ts
 * semantics: RMSNorm, RoPE on interleaved pairs, grouped-query attention,
 * SwiGLU, shared or separate classifier) with cross-entropy loss, over a
 * batch of B windows of T tokens, as micro-batches of m windows: each runs
 * forward and backward in turn, adding to the weight gradients, so the
 * activations are sized for m windows, not B (a smaller working set for
 * the caches, which runs faster: DEFAULT_MICRO_BATCH).
 * Every linear layer runs as one matrix-matrix product over a micro-batch's
 * m·T tokens (kernels.ts); the attention and the element-wise steps run in
 * the kernels when they have them, else in the plain loops here. Activations
 * the backward pass needs are kept per layer; nothing is allocated per step.
 * With kernels that offer a workspace (WebAssembly), every array lives in it
 * and the kernels work on them in place; run() copies the weights in and the
 * gradients out, once per run.
 */
import { headSize, kvDim, type LayerWeights, type ModelConfig, type ModelWeights } from '../../src/model.js';
import { attentionScratchFloats, carveArrays, type Kernels } from './kernels.js';
import { paramLayout, weightViews } from './params.js';

/** Activations of one layer saved by the forward pass for the backward pass. */
interface LayerActs {
  // N = m·T rows of one micro-batch of m windows
  xIn: Float32Array; // [N][dim] residual stream entering the layer
  inv1: Float32Array; // [N] 1/rms of xIn
  xn1: Float32Array; // [N][dim]
  q: Float32Array; // [N][dim] after RoPE
  k: Float32Array; // [N][kv] after RoPE
  v: Float32Array; // [N][kv]
  p: Float32Array; // [m][H][T][T] attention probabilities (lower triangle)
  att: Float32Array; // [N][dim] attention output before wo
  xMid: Float32Array; // [N][dim] residual after attention
  inv2: Float32Array; // [N]
  xn2: Float32Array; // [N][dim]
  h1: Float32Array; // [N][hidden] gate pre-activation
  h3: Float32Array; // [N][hidden] up projection
  gate: Float32Array; // [N][hidden] silu(h1) * h3
}

/**
 * Windows per micro-batch when the constructor is not told: 1, measured.
 * `node dist/bench/train.js` (stories260K shape, 8 windows of 256 tokens;
 * 2 threads: 4 windows a thread), runs alternated on the shared 2-core
 * machine (load about 1), tokens/s on 1 and 2 threads, then tokens per
 * CPU-second on 1 and 2 threads:
 *   whole batch (the pass before micro-batches): 8,821-9,237, 17,039-18,085; 9,178-9,444, 9,065-9,158 (3 runs)
 *   m = 2:                                       8,989-9,044, 17,347-17,501; 9,406-9,496, 9,021-9,416 (2 runs)
 *   m = 1:                                       9,195-10,111, 18,175-18,820; 9,534-10,347, 9,642-10,513 (5 runs)
 * Passes with different m alternated in one process (40 pairs, median of
 * the pairwise speed-ups): m=1 over the whole batch 1.071 on one thread;
 * on two, m=1 over m=4 1.017 to 1.033 (3 runs), over m=2 1.027.
 */
export const DEFAULT_MICRO_BATCH = 1;

export interface PassOptions {
  /**
   * Windows per micro-batch, a divisor of the batch (default
   * DEFAULT_MICRO_BATCH). The *OfLastRun views need the whole batch in
   * one: microBatch = batch.
   */
  microBatch?: number;
}

export class TransformerPass {
  readonly config: ModelConfig;
  readonly batch: number;
  readonly seq: number;
  /** windows per micro-batch */
  readonly microBatch: number;
  private readonly kernels: Kernels;
  /** rows (tokens) per micro-batch */
  private readonly n: number;
  private readonly acts: LayerActs[];
  private readonly xFinal: Float32Array;
  private readonly invF: Float32Array;
  private readonly xnF: Float32Array;
  private readonly logits: Float32Array;
  private readonly ropeCos: Float32Array;
  private readonly ropeSin: Float32Array;
  // backward scratch
  private readonly dx: Float32Array;
  private readonly dxn: Float32Array;
  private readonly dAtt: Float32Array;
  private readonly dq: Float32Array;
  private readonly dk: Float32Array;
  private readonly dv: Float32Array;
  private readonly dHid1: Float32Array;
  private readonly dHid3: Float32Array;
  private readonly dGate: Float32Array;
  private readonly dRow: Float32Array; // [T] dP of one query row
  /** With a workspace: its copies of the weights, gradients and targets of a run. */
  private readonly own: { params: Float32Array; grads: Float32Array; targets: Int32Array; weights: ModelWeights; gradViews: ModelWeights } | null;
  private distill: Distillation | null = null;

  constructor(config: ModelConfig, batch: number, seq: number, kernels: Kernels, options: PassOptions = {}) {
    this.config = config;
    this.batch = batch;
    this.seq = seq;
    const m = options.microBatch ?? DEFAULT_MICRO_BATCH;
    if (!(Number.isInteger(m) && m >= 1 && batch % m === 0)) throw new RangeError(`a micro-batch of ${m} windows does not divide the batch of ${batch}`);
    this.microBatch = m;
    const c = config;
    const N = m * seq;
    this.n = N;
    const kv = kvDim(c);
    const hs = headSize(c);
    const half = hs / 2;
    const paramCount = paramLayout(c).total;
    // the kernels' scratch: a transposed weight (gemmABt), one kv head's keys and values (attention), the row statistics of the loss
    const scratch = Math.max(c.vocabSize * c.dim, c.hiddenDim * c.dim, c.dim * c.dim, attentionScratchFloats(hs, seq), 2 * N);
    const carved = carveArrays(kernels, scratch, (f) => ({
      acts: Array.from({ length: c.nLayers }, () => ({
        xIn: f(N * c.dim), inv1: f(N), xn1: f(N * c.dim), q: f(N * c.dim), k: f(N * kv), v: f(N * kv),
        p: f(m * c.nHeads * seq * seq), att: f(N * c.dim), xMid: f(N * c.dim), inv2: f(N), xn2: f(N * c.dim),
        h1: f(N * c.hiddenDim), h3: f(N * c.hiddenDim), gate: f(N * c.hiddenDim),
      })),
      xFinal: f(N * c.dim), invF: f(N), xnF: f(N * c.dim), logits: f(N * c.vocabSize),
      ropeCos: f(seq * half), ropeSin: f(seq * half),
      dx: f(N * c.dim), dxn: f(N * c.dim), dAtt: f(N * c.dim), dq: f(N * c.dim), dk: f(N * kv), dv: f(N * kv),
      dHid1: f(N * c.hiddenDim), dHid3: f(N * c.hiddenDim), dGate: f(N * c.hiddenDim), dRow: f(seq),
      // a workspace also holds the weights, gradients and targets, so that its kernels reach them in place
      own: kernels.workspace ? { params: f(paramCount), grads: f(paramCount), targets: f(N) } : null,
    }));
    const b = carved.arrays;
    this.kernels = carved.kernels;
    this.acts = b.acts;
    this.xFinal = b.xFinal;
    this.invF = b.invF;
    this.xnF = b.xnF;
    this.logits = b.logits;
    this.ropeCos = b.ropeCos;
    this.ropeSin = b.ropeSin;
    const fr = Math.fround;
    for (let i = 0; i < half; i++) {
      // exactly src/reference.ts (run.c): float32 frequency and angle
      const freq = fr(1 / fr(Math.pow(c.ropeTheta, fr((2 * i) / hs))));
      for (let pos = 0; pos < seq; pos++) {
        const val = fr(pos * freq);
        this.ropeCos[pos * half + i] = Math.cos(val);
        this.ropeSin[pos * half + i] = Math.sin(val);
      }
    }
    this.dx = b.dx;
    this.dxn = b.dxn;
    this.dAtt = b.dAtt;
    this.dq = b.dq;
    this.dk = b.dk;
    this.dv = b.dv;
    this.dHid1 = b.dHid1;
    this.dHid3 = b.dHid3;
    this.dGate = b.dGate;
    this.dRow = b.dRow;
    this.own = b.own && {
      params: b.own.params,
      grads: b.own.grads,
      targets: new Int32Array(b.own.targets.buffer, b.own.targets.byteOffset, N),
      weights: weightViews(c, b.own.params),
      gradViews: weightViews(c, b.own.grads),
    };
  }

  /**
   * Mean cross-entropy of predicting targets[i] after inputs[0..i] within
   * each window (targets < 0 are not scored). With `grads`, also writes the
   * gradient of that mean into it (overwriting it).
   */
  run(params: Float32Array, inputs: Int32Array, targets: Int32Array, grads: Float32Array | null): number {
    const c = this.config;
    const rows = this.batch * this.seq;
    if (inputs.length !== rows || targets.length !== rows) throw new RangeError(`expected ${rows} inputs and targets, got ${inputs.length} and ${targets.length}`);
    const own = this.own;
    if (own) own.params.set(params);
    const w = own ? own.weights : weightViews(c, params);
    // every micro-batch's loss and gradient is divided by the whole batch's scored count, so that they add up to the batch's mean
    const count = scoredCount(targets, c.vocabSize);
    const scale = count > 0 ? 1 / count : 0;
    let g: ModelWeights | null = null;
    if (grads) {
      (own ? own.grads : grads).fill(0);
      g = own ? own.gradViews : weightViews(c, grads);
    }
    let total = 0;
    for (let first = 0; first < rows; first += this.n) {
      this.forward(w, inputs, first);
      total += this.lossSum(targets, first, scale, g !== null);
      if (g) this.backward(w, g, inputs, first);
    }
    if (own && grads) grads.set(own.grads);
    return total * scale;
  }

  /** The micro-batch of rows first.. through the layers into this.logits. */
  private forward(w: ModelWeights, inputs: Int32Array, first: number): void {
    const c = this.config;
    const dim = c.dim;
    const x = this.acts.length > 0 ? this.acts[0].xIn : this.xFinal;
    const e = w.tokenEmbedding;
    for (let i = 0; i < this.n; i++) {
      const tok = inputs[first + i];
      if (!(tok >= 0 && tok < c.vocabSize)) throw new RangeError(`token ${tok} is outside the vocabulary (0..${c.vocabSize - 1})`);
      for (let j = 0; j < dim; j++) x[i * dim + j] = e[tok * dim + j]; // a loop, not set(subarray): no view allocated per token
    }
    for (let l = 0; l < c.nLayers; l++) {
      const next = l + 1 < c.nLayers ? this.acts[l + 1].xIn : this.xFinal;
      this.layerForward(this.acts[l], w.layers[l], next);
    }
    this.norm(this.xnF, this.invF, this.xFinal, w.finalNorm);
    this.kernels.gemmABt(this.logits, this.xnF, w.classifier ?? w.tokenEmbedding, this.n, c.vocabSize, dim, false);
  }

  /** Adds the gradient of the micro-batch of rows first.. (this.logits holding its loss gradient) into g. */
  private backward(w: ModelWeights, g: ModelWeights, inputs: Int32Array, first: number): void {
    const c = this.config;
    const dim = c.dim;
    // classifier: dxnF = dlogits · Wc, dWc += dlogitsᵀ · xnF
    this.linearBackward(this.logits, this.xnF, w.classifier ?? w.tokenEmbedding, g.classifier ?? g.tokenEmbedding, c.vocabSize, dim, this.dxn, false);
    this.dx.fill(0);
    this.normBackward(this.dx, g.finalNorm, this.dxn, this.xFinal, this.invF, w.finalNorm);
    for (let l = c.nLayers - 1; l >= 0; l--) this.layerBackward(this.acts[l], w.layers[l], g.layers[l]);
    // embedding: scatter-add the gradient reaching the layer-0 input
    for (let i = 0; i < this.n; i++) {
      const o = inputs[first + i] * dim;
      for (let j = 0; j < dim; j++) g.tokenEmbedding[o + j] += this.dx[i * dim + j];
    }
  }

  /**
   * The summed loss of this.logits against the micro-batch's targets
   * (cross-entropy, or distillation when set); with toGrad, this.logits
   * become its gradient times `scale`.
   */
  private lossSum(targets: Int32Array, first: number, scale: number, toGrad: boolean): number {
    const V = this.config.vocabSize;
    const N = this.n;
    const logits = this.logits;
    if (!this.distill && this.kernels.crossEntropy && this.own) {
      const own = this.own.targets; // the kernel reads the targets in the workspace
      for (let i = 0; i < N; i++) own[i] = targets[first + i];
      return this.kernels.crossEntropy(logits, own, N, V, scale, toGrad);
    }
    const total = this.distill ? distillationSum(logits, targets, first, N, V, this.distill, toGrad).total : softmaxCrossEntropySum(logits, targets, first, N, V, toGrad);
    if (toGrad) for (let i = 0; i < logits.length; i++) logits[i] *= scale;
    return total;
  }

  /** rmsnormForward over all rows, in the kernels when they have it. */
  private norm(out: Float32Array, inv: Float32Array, x: Float32Array, g: Float32Array): void {
    const k = this.kernels;
    if (k.rmsnormForward) k.rmsnormForward(out, inv, x, g, this.n, this.config.dim, this.config.normEps);
    else rmsnormForward(out, inv, x, g, this.n, this.config.dim, this.config.normEps);
  }

  private normBackward(dx: Float32Array, dg: Float32Array, dy: Float32Array, x: Float32Array, inv: Float32Array, g: Float32Array): void {
    const k = this.kernels;
    if (k.rmsnormBackward) k.rmsnormBackward(dx, dg, dy, x, inv, g, this.n, this.config.dim);
    else rmsnormBackward(dx, dg, dy, x, inv, g, this.n, this.config.dim);
  }

  /**
   * With a teacher's softened distribution for the next run(s), run() scores
   * and differentiates the distillation loss (distillationLoss) instead of
   * the plain cross-entropy; null goes back to cross-entropy.
   */
  setDistillation(d: Distillation | null): void {
    const expected = this.batch * this.seq * this.config.vocabSize;
    if (d && d.teacherProbs.length !== expected) {
      throw new RangeError(`teacher distribution has ${d.teacherProbs.length} values, expected ${expected}`);
    }
    this.distill = d;
  }

  /** silu(w1 x)·(w3 x) [B·T][hidden] of layer `layer` in the last run (what FFN pruning ranks neurons by). */
  ffnGateOfLastRun(layer: number): Float32Array {
    this.checkWholeBatch();
    return this.acts[layer].gate;
  }

  /**
   * Layer `layer`'s activations in the last run, [B·T][width] each, for
   * structured pruning's importance (converter/prune-shape.ts): the residual
   * entering the layer, the two RMSNorm outputs and the attention output
   * before wo (head h is columns h·hs..(h+1)·hs).
   */
  layerActivationsOfLastRun(layer: number): { residualIn: Float32Array; attnNormOut: Float32Array; attentionOut: Float32Array; ffnNormOut: Float32Array } {
    this.checkWholeBatch();
    const a = this.acts[layer];
    return { residualIn: a.xIn, attnNormOut: a.xn1, attentionOut: a.att, ffnNormOut: a.xn2 };
  }

  /** The residual after the last layer and the final RMSNorm's output in the last run, [B·T][dim]. */
  finalActivationsOfLastRun(): { residual: Float32Array; normOut: Float32Array } {
    this.checkWholeBatch();
    return { residual: this.xFinal, normOut: this.xnF };
  }

  /** Logits [B·T][vocab] of the last run without gradients (a run with gradients overwrites them). */
  get logitsOfLastRun(): Float32Array {
    this.checkWholeBatch();
    return this.logits;
  }

  /** The *OfLastRun views hold one micro-batch; only with the whole batch in one are they the batch's. */
  private checkWholeBatch(): void {
    if (this.microBatch !== this.batch) throw new Error(`the last run's activations are of its last micro-batch only: construct with microBatch ${this.batch} to read them`);
  }

  /** Y[N][out] = X[N][in] · Wᵀ */
  private linear(y: Float32Array, x: Float32Array, wt: Float32Array, out: number, inp: number): void {
    this.kernels.gemmABt(y, x, wt, this.n, out, inp, false);
  }

  /** dW += dYᵀ · X and dX (+)= dY · W for Y = X Wᵀ (W is out×in). */
  private linearBackward(
    dy: Float32Array, x: Float32Array, w: Float32Array, dw: Float32Array,
    out: number, inp: number, dxOut: Float32Array, accumulate: boolean,
  ): void {
    this.kernels.gemmAtB(dw, dy, x, out, inp, this.n, true);
    this.kernels.gemmAB(dxOut, dy, w, this.n, inp, out, accumulate);
  }

  private layerForward(a: LayerActs, lw: LayerWeights, xOut: Float32Array): void {
    const c = this.config;
    const N = this.n;
    const dim = c.dim;
    const kv = kvDim(c);
    const hid = c.hiddenDim;
    this.norm(a.xn1, a.inv1, a.xIn, lw.attnNorm);
    this.linear(a.q, a.xn1, lw.wq, dim, dim);
    this.linear(a.k, a.xn1, lw.wk, kv, dim);
    this.linear(a.v, a.xn1, lw.wv, kv, dim);
    this.rope(a.q, dim, false);
    this.rope(a.k, kv, false);
    this.attentionForward(a);
    a.xMid.set(a.xIn); // the residual, which the product adds to
    this.kernels.gemmABt(a.xMid, a.att, lw.wo, N, dim, dim, true);
    this.norm(a.xn2, a.inv2, a.xMid, lw.ffnNorm);
    this.linear(a.h1, a.xn2, lw.w1, hid, dim);
    this.linear(a.h3, a.xn2, lw.w3, hid, dim);
    if (this.kernels.swigluForward) this.kernels.swigluForward(a.gate, a.h1, a.h3);
    else {
      for (let i = 0; i < N * hid; i++) {
        const h = a.h1[i];
        a.gate[i] = (h / (1 + Math.exp(-h))) * a.h3[i];
      }
    }
    xOut.set(a.xMid);
    this.kernels.gemmABt(xOut, a.gate, lw.w2, N, dim, hid, true);
  }

  /** this.dx holds dLoss/dxOut on entry and dLoss/dxIn on return. */
  private layerBackward(a: LayerActs, lw: LayerWeights, gw: LayerWeights): void {
    const c = this.config;
    const N = this.n;
    const dim = c.dim;
    const kv = kvDim(c);
    const hid = c.hiddenDim;
    const dx = this.dx;
    // feed-forward: xOut = xMid + w2(gate)
    this.linearBackward(dx, a.gate, lw.w2, gw.w2, dim, hid, this.dGate, false);
    if (this.kernels.swigluBackward) this.kernels.swigluBackward(this.dHid1, this.dHid3, this.dGate, a.h1, a.h3);
    else {
      for (let i = 0; i < N * hid; i++) {
        const h = a.h1[i];
        const s = 1 / (1 + Math.exp(-h));
        const dg = this.dGate[i];
        this.dHid3[i] = dg * h * s;
        this.dHid1[i] = dg * a.h3[i] * s * (1 + h * (1 - s));
      }
    }
    this.linearBackward(this.dHid1, a.xn2, lw.w1, gw.w1, hid, dim, this.dxn, false);
    this.linearBackward(this.dHid3, a.xn2, lw.w3, gw.w3, hid, dim, this.dxn, true);
    this.normBackward(dx, gw.ffnNorm, this.dxn, a.xMid, a.inv2, lw.ffnNorm); // dx now dL/dxMid
    // attention: xMid = xIn + wo(att)
    this.linearBackward(dx, a.att, lw.wo, gw.wo, dim, dim, this.dAtt, false);
    this.attentionBackward(a);
    this.rope(this.dq, dim, true);
    this.rope(this.dk, kv, true);
    this.linearBackward(this.dq, a.xn1, lw.wq, gw.wq, dim, dim, this.dxn, false);
    this.linearBackward(this.dk, a.xn1, lw.wk, gw.wk, kv, dim, this.dxn, true);
    this.linearBackward(this.dv, a.xn1, lw.wv, gw.wv, kv, dim, this.dxn, true);
    this.normBackward(dx, gw.attnNorm, this.dxn, a.xIn, a.inv1, lw.attnNorm); // dx now dL/dxIn
  }

  /**
   * RoPE on each head's interleaved pairs at each token's position in its
   * window; `inverse` rotates back, which is the gradient of the rotation.
   */
  private rope(m: Float32Array, width: number, inverse: boolean): void {
    const hs = headSize(this.config);
    const half = hs / 2;
    const T = this.seq;
    if (this.kernels.rope) {
      this.kernels.rope(m, this.n, width, hs, T, this.ropeCos, this.ropeSin, inverse);
      return;
    }
    const sign = inverse ? -1 : 1;
    for (let r = 0; r < this.n; r++) {
      const row = (r % T) * half;
      const o = r * width;
      for (let i = 0; i < width; i += 2) {
        const pair = (i % hs) >> 1;
        const cs = this.ropeCos[row + pair];
        const sn = sign * this.ropeSin[row + pair];
        const a0 = m[o + i];
        const a1 = m[o + i + 1];
        m[o + i] = a0 * cs - a1 * sn;
        m[o + i + 1] = a0 * sn + a1 * cs;
      }
    }
  }

  private attentionForward(a: LayerActs): void {
    const c = this.config;
    const T = this.seq;
    const H = c.nHeads;
    const hs = headSize(c);
    const dim = c.dim;
    const kv = kvDim(c);
    const kvMul = H / c.nKvHeads;
    const scale = 1 / Math.sqrt(hs);
    const { q, k, v, p, att } = a;
    if (this.kernels.attentionForward) {
      const win = (m: Float32Array, b: number, width: number) => m.subarray(b * T * width, (b + 1) * T * width);
      for (let b = 0; b < this.microBatch; b++) {
        this.kernels.attentionForward(win(q, b, dim), win(k, b, kv), win(v, b, kv), win(p, b, H * T), win(att, b, dim), T, H, c.nKvHeads, hs, scale);
      }
      return;
    }
    for (let b = 0; b < this.microBatch; b++) {
      for (let h = 0; h < H; h++) {
        const kh = ((h / kvMul) | 0) * hs;
        for (let t = 0; t < T; t++) {
          const qo = (b * T + t) * dim + h * hs;
          const po = ((b * H + h) * T + t) * T;
          let max = -Infinity;
          for (let s = 0; s <= t; s++) {
            const ko = (b * T + s) * kv + kh;
            let sum = 0;
            for (let i = 0; i < hs; i++) sum += q[qo + i] * k[ko + i];
            const sc = sum * scale;
            p[po + s] = sc;
            if (sc > max) max = sc;
          }
          let z = 0;
          for (let s = 0; s <= t; s++) {
            const e = Math.exp(p[po + s] - max);
            p[po + s] = e;
            z += e;
          }
          const inv = 1 / z;
          for (let s = 0; s <= t; s++) p[po + s] *= inv;
          for (let i = 0; i < hs; i++) att[qo + i] = 0;
          for (let s = 0; s <= t; s++) {
            const pr = p[po + s];
            const vo = (b * T + s) * kv + kh;
            for (let i = 0; i < hs; i++) att[qo + i] += pr * v[vo + i];
          }
        }
      }
    }
  }

  /** From this.dAtt into this.dq, this.dk, this.dv (all overwritten). */
  private attentionBackward(a: LayerActs): void {
    const c = this.config;
    const T = this.seq;
    const H = c.nHeads;
    const hs = headSize(c);
    const dim = c.dim;
    const kv = kvDim(c);
    const kvMul = H / c.nKvHeads;
    const scale = 1 / Math.sqrt(hs);
    const { q, k, v, p } = a;
    const { dAtt, dq, dk, dv, dRow } = this;
    if (this.kernels.attentionBackward) {
      const win = (m: Float32Array, b: number, width: number) => m.subarray(b * T * width, (b + 1) * T * width);
      for (let b = 0; b < this.microBatch; b++) {
        this.kernels.attentionBackward(
          win(q, b, dim), win(k, b, kv), win(v, b, kv), win(p, b, H * T), win(dAtt, b, dim),
          win(dq, b, dim), win(dk, b, kv), win(dv, b, kv), T, H, c.nKvHeads, hs, scale,
        );
      }
      return;
    }
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    for (let b = 0; b < this.microBatch; b++) {
      for (let h = 0; h < H; h++) {
        const kh = ((h / kvMul) | 0) * hs;
        for (let t = 0; t < T; t++) {
          const qo = (b * T + t) * dim + h * hs;
          const po = ((b * H + h) * T + t) * T;
          let dot = 0;
          for (let s = 0; s <= t; s++) {
            const vo = (b * T + s) * kv + kh;
            const pr = p[po + s];
            let d = 0;
            for (let i = 0; i < hs; i++) {
              const g = dAtt[qo + i];
              d += g * v[vo + i];
              dv[vo + i] += pr * g;
            }
            dRow[s] = d;
            dot += pr * d;
          }
          for (let s = 0; s <= t; s++) {
            const ds = p[po + s] * (dRow[s] - dot) * scale;
            const ko = (b * T + s) * kv + kh;
            for (let i = 0; i < hs; i++) {
              dq[qo + i] += ds * k[ko + i];
              dk[ko + i] += ds * q[qo + i];
            }
          }
        }
      }
    }
  }
}

/** out = g ⊙ x / rms(x) per row; inv[r] keeps 1/rms for the backward pass. */
function rmsnormForward(out: Float32Array, inv: Float32Array, x: Float32Array, g: Float32Array, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
    const iv = 1 / Math.sqrt(ss / dim + eps);
    inv[r] = iv;
    for (let j = 0; j < dim; j++) out[o + j] = g[j] * (iv * x[o + j]);
  }
}

/** dx += dL/dx and dg += dL/dg for out = g ⊙ x · inv, given dy = dL/dout. */
function rmsnormBackward(dx: Float32Array, dg: Float32Array, dy: Float32Array, x: Float32Array, inv: Float32Array, g: Float32Array, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const iv = inv[r];
    let dot = 0;
    for (let j = 0; j < dim; j++) {
      dg[j] += dy[o + j] * x[o + j] * iv;
      dot += g[j] * dy[o + j] * x[o + j];
    }
    const k = (iv * iv * iv * dot) / dim;
    for (let j = 0; j < dim; j++) dx[o + j] += iv * g[j] * dy[o + j] - x[o + j] * k;
  }
}

/**
 * Sum of -log softmax(logits)[target] over the rows with a target (row r's
 * target is targets[first + r]), and (when `toGrad`) logits replaced in
 * place by softmax - onehot (rows without a target get zeros).
 */
function softmaxCrossEntropySum(logits: Float32Array, targets: Int32Array, first: number, rows: number, V: number, toGrad: boolean): number {
  return sumOverScoredRows(logits, targets, first, rows, V, toGrad, (o, t) => {
    const max = rowMax(logits, o, V);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(logits[o + j] - max);
    const lse = max + Math.log(z);
    const loss = lse - logits[o + t];
    if (toGrad) {
      for (let j = 0; j < V; j++) logits[o + j] = Math.exp(logits[o + j] - lse);
      logits[o + t] -= 1;
    }
    return loss;
  }).total;
}

/** How many rows have a target (>= 0), each checked against the vocabulary. */
function scoredCount(targets: Int32Array, V: number): number {
  let count = 0;
  for (const t of targets) {
    if (t >= V) throw new RangeError(`target ${t} is outside the vocabulary (0..${V - 1})`);
    if (t >= 0) count++;
  }
  return count;
}

/**
 * The loop both losses share: `score(o, t)` for every row with a target
 * (o: the row's offset in logits; row r's target is targets[first + r]),
 * checked against the vocabulary; a row without one (target < 0) gets a
 * zero gradient when `toGrad`. Returns the sum of the scores and how many
 * rows were scored.
 */
function sumOverScoredRows(
  logits: Float32Array,
  targets: Int32Array,
  first: number,
  rows: number,
  V: number,
  toGrad: boolean,
  score: (o: number, t: number) => number,
): { total: number; count: number } {
  let total = 0;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const t = targets[first + r];
    if (t < 0) {
      if (toGrad) logits.fill(0, o, o + V);
      continue;
    }
    if (t >= V) throw new RangeError(`target ${t} is outside the vocabulary (0..${V - 1})`);
    total += score(o, t);
    count++;
  }
  return { total, count };
}

function rowMax(logits: Float32Array, o: number, V: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
  return max;
}

/** The teacher side of a distillation loss, for the rows of one batch. */
export interface Distillation {
  /** [B·T][vocab] softmax(teacher logits / temperature) */
  teacherProbs: Float32Array;
  temperature: number;
  /** weight of the KL term; 1 - alpha weighs the cross-entropy on the text */
  alpha: number;
}

/** softmax(logits / temperature) of every row, in place. */
export function softenInPlace(logits: Float32Array, rows: number, V: number, temperature: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
    let z = 0;
    for (let j = 0; j < V; j++) {
      const e = Math.exp((logits[o + j] - max) / temperature);
      logits[o + j] = e;
      z += e;
    }
    for (let j = 0; j < V; j++) logits[o + j] /= z;
  }
}

/**
 * Hinton et al.'s distillation loss per scored row (rows with a target):
 *   L = alpha · T² · KL(p ‖ q_T) + (1 - alpha) · CE(softmax(z), target)
 * with p the teacher's softmax(z_teacher / T) and q_T = softmax(z / T).
 * Its gradient on the student logits z:
 *   dL/dz = alpha · T · (q_T - p) + (1 - alpha) · (softmax(z) - onehot)
 * (d/dz of -Σ p log q_T is (q_T - p) / T; the T² factor keeps the KL term's
 * gradient the same size whatever T, as Hinton et al. advise.) Returns the
 * mean over scored rows; with `toGrad`, logits become dL/dz (unscaled by
 * 1/count).
 */
export function distillationLoss(logits: Float32Array, targets: Int32Array, rows: number, V: number, d: Distillation, toGrad: boolean): { loss: number; count: number } {
  const { total, count } = distillationSum(logits, targets, 0, rows, V, d, toGrad);
  return { loss: count > 0 ? total / count : 0, count };
}

/** distillationLoss's sum over the rows first..first+rows of targets and d.teacherProbs, whose logits are `logits` (from row 0). */
function distillationSum(logits: Float32Array, targets: Int32Array, first: number, rows: number, V: number, d: Distillation, toGrad: boolean): { total: number; count: number } {
  const T = d.temperature;
  const a = d.alpha;
  const teacher = first * V; // the offset of the rows' teacher distributions
  return sumOverScoredRows(logits, targets, first, rows, V, toGrad, (o, t) => {
    const max = rowMax(logits, o, V);
    let z = 0;
    let zT = 0;
    for (let j = 0; j < V; j++) {
      z += Math.exp(logits[o + j] - max);
      zT += Math.exp((logits[o + j] - max) / T);
    }
    const lse = max + Math.log(z);
    const lseT = max / T + Math.log(zT);
    let kl = 0;
    for (let j = 0; j < V; j++) {
      const p = d.teacherProbs[teacher + o + j];
      if (p > 0) kl += p * (Math.log(p) - (logits[o + j] / T - lseT));
    }
    const loss = a * T * T * kl + (1 - a) * (lse - logits[o + t]);
    if (toGrad) {
      for (let j = 0; j < V; j++) {
        const zj = logits[o + j];
        const qT = Math.exp(zj / T - lseT);
        logits[o + j] = a * T * (qT - d.teacherProbs[teacher + o + j]) + (1 - a) * Math.exp(zj - lse);
      }
      logits[o + t] -= 1 - a;
    }
    return loss;
  });
}
