/**
 * Structured pruning to a target shape: whole layers (depth), attention heads
 * respecting GQA groups, FFN neurons and residual (embedding) channels
 * (width), so the blob and the compute really shrink. This is the one entry
 * point for every kind (`lmflash prune --layers/--heads/--dim/--ffn` and the
 * initial student of `lmflash distill --student-config` both call
 * pruneToShape).
 *
 * The blob format (llama2.c's) has no head-size field: head size is
 * dim / n_heads, so the attention width n_heads × head size IS the model dim.
 * Head size must not change (RoPE's frequency of pair i is
 * theta^(-2i / head_size) and the scores are scaled by 1/sqrt(head_size)), so
 * removing heads narrows the residual stream by the same amount and narrowing
 * the residual stream removes heads: dim' = n_heads' × head_size. The two are
 * still ranked separately (head importance picks which query/kv heads go,
 * channel importance which residual channels go: different spaces that only
 * have to have the same size).
 *
 * GQA: n_heads' and n_kv_heads' are one pair for all layers. Each layer keeps
 * its n_kv_heads' most important kv groups (a group = one kv head and the
 * n_heads / n_kv_heads query heads that read it; its score is the sum of
 * theirs) and, in each kept group, its n_heads' / n_kv_heads' most important
 * query heads. By default (only n_heads or dim given) whole groups go
 * (n_kv_heads' = n_heads' / group size): that keeps every remaining head's
 * keys and values exactly as they were and also shrinks the kv cache, which
 * is most of the C core's RAM. Giving n_kv_heads = the original instead
 * removes the same number of query heads from every group.
 *
 * Order: depth first (layers ranked on the unpruned model, then removed),
 * then width: heads, FFN neurons and channels are all ranked in ONE
 * calibration pass over the depth-pruned model (as Minitron does: every
 * width axis from the same forward activations) and removed together (they
 * act on different axes, so the order among them does not change the
 * result; an intermediate model with heads gone but dim unchanged could not
 * even be represented).
 *
 * Importance (higher = kept), activation (NVIDIA Minitron, on a calibration
 * text) or magnitude (weights only, the baseline):
 * - layer: activation = block influence, mean over tokens of
 *   1 - cos(x_in, x_out) of the residual stream around the block (ShortGPT,
 *   Minitron depth); magnitude = ||wo||·||wv||·max|g_attn| +
 *   ||w2||·||w1||·||w3||·max|g_ffn|² (Frobenius norms: a bound on the size of
 *   the block's two residual updates, the SwiGLU being quadratic in its input);
 * - head: activation = mean over tokens of ||wo[:, h] · o_h||, the norm of
 *   what the head actually adds to the residual (o_h its attention output);
 *   magnitude = ||wo[:, h]|| · ||wv of its kv head||, a bound on that for a
 *   unit input (the attention weights sum to one);
 * - FFN neuron: as converter/prune-ffn.ts (activation mean
 *   |silu(w1_i x)(w3_i x)| · ||w2[:, i]||, magnitude ||w1_i||·||w3_i||·||w2[:, i]||);
 * - residual channel: activation = sum over every RMSNorm (each layer's two
 *   and the final one) of the mean |output_c| (Minitron's embedding-channel
 *   importance); magnitude = the L2 norm of every weight that writes channel
 *   c (embedding column, wo and w2 rows) or reads it (wq, wk, wv, w1, w3 and
 *   classifier columns, times the gain of the RMSNorm that feeds them).
 *
 * Removing channels keeps the model exactly the unpruned one with those
 * channels zeroed: RMSNorm divides the sum of squares by dim, so every norm
 * gain is multiplied by sqrt(dim / dim') and norm_eps by dim / dim' (the
 * blob stores norm_eps): g x / sqrt(ss/D + eps) = g sqrt(D/D') x / sqrt(ss/D' + eps D/D').
 * Kept layers, heads, neurons and channels keep their order.
 */
import { LmflashError } from '../src/errors.js';
import { headSize, type FloatModel, type LayerWeights, type ModelConfig } from '../src/model.js';
import type { TokenizerData } from '../src/tokenizer.js';
import { downColumnNorms, flatParams, magnitudeImportance as ffnMagnitudeImportance, topIndices } from './prune-ffn.js';
import { packDocuments, validationWindows } from './train/data.js';
import type { Kernels } from './train/kernels.js';
import { TransformerPass } from './train/transformer.js';

export type Importance = 'activation' | 'magnitude';

/** The shape fields structured pruning changes (ModelConfig's names). */
export interface Shape {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
}

/** What to prune to; a missing field keeps the model's value (see resolveShape for what else follows). */
export type ShapeTarget = Partial<Shape>;

/** The text activation importance runs on (packed as training packs it, windows of `seq` tokens, at most `maxWindows`). */
export interface Calibration {
  tokenizer: TokenizerData;
  lines: string[];
  kernels: Kernels;
  /** default 256 (capped at the model's seq_len) */
  seq?: number;
  /** default 64 */
  maxWindows?: number;
}

export interface ShapeReport {
  importance: Importance;
  /** tokens each calibration pass averaged over (0 for magnitude) */
  calibrationTokens: number;
  from: Shape;
  to: Shape;
  /** original indices of the layers removed, ascending */
  droppedLayers: number[];
  /** importance of each original layer (empty when no layer was removed) */
  layerScores: number[];
  /** per remaining layer, the original ids of the kept query heads and kv heads, ascending */
  keptHeads: number[][];
  keptKvHeads: number[][];
  /** original ids of the kept residual channels, ascending */
  keptChannels: number[];
  /** per remaining layer, the original ids of the kept FFN neurons, ascending */
  keptNeurons: number[][];
}

export interface ShapePruneResult {
  model: FloatModel;
  report: ShapeReport;
}

export function shapeOf(c: ModelConfig): Shape {
  return { dim: c.dim, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads, hiddenDim: c.hiddenDim };
}

const isInt = (n: number | undefined): n is number => n !== undefined && Number.isInteger(n);

/**
 * The full target shape, or a LmflashError naming every problem. dim and
 * n_heads determine each other (dim = n_heads × head size, head size fixed);
 * n_kv_heads defaults to the original when the heads are unchanged, else to
 * whole groups (n_heads' / group size).
 */
export function resolveShape(c: ModelConfig, t: ShapeTarget): Shape {
  const hs = headSize(c);
  const group = c.nHeads / c.nKvHeads;
  const p: string[] = [];
  const count = (name: string, v: number | undefined, max: number): void => {
    if (v !== undefined && !(isInt(v) && v >= 1 && v <= max)) p.push(`${name} ${v} must be a whole number from 1 to ${max} (the model's; pruning only removes)`);
  };
  count('n_layers', t.nLayers, c.nLayers);
  count('hidden_dim', t.hiddenDim, c.hiddenDim);
  count('n_heads', t.nHeads, c.nHeads);
  count('n_kv_heads', t.nKvHeads, c.nKvHeads);
  count('dim', t.dim, c.dim);
  if (p.length) throw new LmflashError(p.join('; '));
  let nHeads = t.nHeads ?? c.nHeads;
  if (t.dim !== undefined) {
    if (t.dim % hs !== 0) {
      throw new LmflashError(
        `dim ${t.dim} is not a multiple of the head size ${hs}: heads keep their size (RoPE depends on it) and a blob's dim is n_heads × head size, ` +
          `so dim must be one of ${Array.from({ length: c.nHeads }, (_, i) => (i + 1) * hs).join(', ')}`,
      );
    }
    if (t.nHeads !== undefined && t.nHeads * hs !== t.dim) {
      throw new LmflashError(`dim ${t.dim} and n_heads ${t.nHeads} disagree: with the head size ${hs} kept, dim = n_heads × ${hs}; give one of them`);
    }
    nHeads = t.dim / hs;
  }
  const nKvHeads = t.nKvHeads ?? (nHeads === c.nHeads ? c.nKvHeads : nHeads / group);
  if (!Number.isInteger(nKvHeads)) {
    throw new LmflashError(
      `${nHeads} query heads are not whole kv groups of ${group}: keep a multiple of ${group} heads (dim a multiple of ${group * hs}), ` +
        `or give n_kv_heads (lmflash prune --kv-heads; ${c.nKvHeads} keeps every kv head and removes the same number of query heads from each group)`,
    );
  }
  if (nHeads % nKvHeads !== 0 || nHeads / nKvHeads > group) {
    throw new LmflashError(
      `${nHeads} query heads cannot be spread over ${nKvHeads} kv heads: each kv head keeps the same number of its ${group} query heads, ` +
        `so n_heads must be a multiple of n_kv_heads and at most ${group} × n_kv_heads`,
    );
  }
  return { dim: nHeads * hs, nLayers: t.nLayers ?? c.nLayers, nHeads, nKvHeads, hiddenDim: t.hiddenDim ?? c.hiddenDim };
}

/** Mean activations over the calibration windows that the importances are made of. */
interface ActivationStats {
  tokens: number;
  /** [layer] mean 1 - cos(x_in, x_out) */
  influence: Float64Array;
  /** [layer][head] mean ||wo[:, h] · o_h|| */
  headOutput: Float64Array[];
  /** [channel] sum over the RMSNorms of mean |output_c| */
  channel: Float64Array;
  /** [layer][neuron] mean |silu(w1_i x)(w3_i x)| */
  gate: Float64Array[];
}

function cosine(a: Float32Array, b: Float32Array, o: number, n: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let j = 0; j < n; j++) {
    ab += a[o + j] * b[o + j];
    aa += a[o + j] * a[o + j];
    bb += b[o + j] * b[o + j];
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 1;
}

function addAbs(sum: Float64Array, m: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) sum[j] += Math.abs(m[r * cols + j]);
}

/** ||wo[:, h] · o_h|| of every head h of every row, added to sums[h]. */
function addHeadOutputNorms(sums: Float64Array, att: Float32Array, wo: Float32Array, rows: number, c: ModelConfig): void {
  const hs = headSize(c);
  const dim = c.dim;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < c.nHeads; h++) {
      const o = r * dim + h * hs;
      let ss = 0;
      for (let d = 0; d < dim; d++) {
        let y = 0;
        for (let i = 0; i < hs; i++) y += wo[d * dim + h * hs + i] * att[o + i];
        ss += y * y;
      }
      sums[h] += Math.sqrt(ss);
    }
  }
}

function collectActivations(model: FloatModel, cal: Calibration, what: 'depth' | 'width'): ActivationStats {
  const c = model.config;
  const stream = packDocuments(cal.lines, cal.tokenizer);
  const T = Math.min(cal.seq ?? 256, c.seqLen, stream.length - 1);
  if (T < 1) throw new LmflashError('the calibration text is too short: it must encode to at least 2 tokens');
  const windows = validationWindows(stream, 1, T, cal.maxWindows ?? 64);
  const pass = new TransformerPass(c, 1, T, cal.kernels);
  const params = flatParams(model);
  const s: ActivationStats = {
    tokens: 0,
    influence: new Float64Array(c.nLayers),
    headOutput: Array.from({ length: c.nLayers }, () => new Float64Array(c.nHeads)),
    channel: new Float64Array(c.dim),
    gate: Array.from({ length: c.nLayers }, () => new Float64Array(c.hiddenDim)),
  };
  for (const w of windows) {
    pass.run(params, w.inputs, w.targets, null);
    for (let l = 0; l < c.nLayers; l++) {
      const a = pass.layerActivationsOfLastRun(l);
      if (what === 'depth') {
        const out = l + 1 < c.nLayers ? pass.layerActivationsOfLastRun(l + 1).residualIn : pass.finalActivationsOfLastRun().residual;
        for (let r = 0; r < T; r++) s.influence[l] += 1 - cosine(a.residualIn, out, r * c.dim, c.dim);
        continue;
      }
      addHeadOutputNorms(s.headOutput[l], a.attentionOut, model.weights.layers[l].wo, T, c);
      addAbs(s.channel, a.attnNormOut, T, c.dim);
      addAbs(s.channel, a.ffnNormOut, T, c.dim);
      addAbs(s.gate[l], pass.ffnGateOfLastRun(l), T, c.hiddenDim);
    }
    if (what === 'width') addAbs(s.channel, pass.finalActivationsOfLastRun().normOut, T, c.dim);
    s.tokens += T;
  }
  const mean = (a: Float64Array) => a.forEach((v, i) => (a[i] = v / s.tokens));
  mean(s.influence);
  mean(s.channel);
  s.headOutput.forEach(mean);
  s.gate.forEach(mean);
  return s;
}

const frob = (m: Float32Array) => Math.sqrt(m.reduce((a, v) => a + v * v, 0));
const maxAbs = (m: Float32Array) => m.reduce((a, v) => Math.max(a, Math.abs(v)), 0);

export function layerMagnitudeImportance(model: FloatModel): Float64Array {
  return Float64Array.from(model.weights.layers, (lw) => {
    const g2 = maxAbs(lw.ffnNorm);
    return frob(lw.wo) * frob(lw.wv) * maxAbs(lw.attnNorm) + frob(lw.w2) * frob(lw.w1) * frob(lw.w3) * g2 * g2;
  });
}

/** ||wo[:, h]||_F of each head's block of columns (wo is [dim][n_heads·hs]). */
function woHeadNorms(wo: Float32Array, c: ModelConfig): Float64Array {
  const hs = headSize(c);
  const out = new Float64Array(c.nHeads);
  for (let d = 0; d < c.dim; d++) for (let j = 0; j < c.dim; j++) out[(j / hs) | 0] += wo[d * c.dim + j] * wo[d * c.dim + j];
  return out.map(Math.sqrt);
}

export function headMagnitudeImportance(model: FloatModel): Float64Array[] {
  const c = model.config;
  const hs = headSize(c);
  const group = c.nHeads / c.nKvHeads;
  return model.weights.layers.map((lw) => {
    const wv = Array.from({ length: c.nKvHeads }, (_, g) => frob(lw.wv.subarray(g * hs * c.dim, (g + 1) * hs * c.dim)));
    return woHeadNorms(lw.wo, c).map((n, h) => n * wv[(h / group) | 0]);
  });
}

export function channelMagnitudeImportance(model: FloatModel): Float64Array {
  const { dim } = model.config;
  const w = model.weights;
  const ss = new Float64Array(dim);
  /** adds (gain_c · m[r][c])² of a [rows][dim] matrix */
  const columns = (m: Float32Array, gain: Float32Array | null) => {
    for (let i = 0; i < m.length; i++) {
      const c = i % dim;
      const v = m[i] * (gain ? gain[c] : 1);
      ss[c] += v * v;
    }
  };
  /** adds m[c][j]² of a [dim][cols] matrix */
  const rows = (m: Float32Array) => {
    const cols = m.length / dim;
    for (let i = 0; i < m.length; i++) ss[(i / cols) | 0] += m[i] * m[i];
  };
  columns(w.tokenEmbedding, null);
  for (const lw of w.layers) {
    for (const m of [lw.wq, lw.wk, lw.wv]) columns(m, lw.attnNorm);
    for (const m of [lw.w1, lw.w3]) columns(m, lw.ffnNorm);
    rows(lw.wo);
    rows(lw.w2);
  }
  columns(w.classifier ?? w.tokenEmbedding, w.finalNorm);
  return ss.map(Math.sqrt);
}

/** The original ids of the kept heads and kv heads of one layer (see the file comment). */
export function chooseHeads(scores: Float64Array, nKvHeads: number, to: Shape): { heads: number[]; kv: number[] } {
  const group = scores.length / nKvHeads;
  const perGroup = to.nHeads / to.nKvHeads;
  const groupScores = Float64Array.from({ length: nKvHeads }, (_, g) => scores.subarray(g * group, (g + 1) * group).reduce((a, v) => a + v, 0));
  const kv = Array.from(topIndices(groupScores, to.nKvHeads));
  const heads = kv.flatMap((g) => Array.from(topIndices(scores.subarray(g * group, (g + 1) * group), perGroup), (i) => g * group + i));
  return { heads, kv };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** Row (or column) ids of whole blocks of `size`: the head blocks of wq, wk, wv, wo. */
const blocks = (ids: number[], size: number) => ids.flatMap((b) => range(size).map((i) => b * size + i));

/** m[rowIds][colIds] of a [?][cols] matrix. */
function gather(m: Float32Array, cols: number, rowIds: number[], colIds: number[]): Float32Array {
  const out = new Float32Array(rowIds.length * colIds.length);
  let k = 0;
  for (const r of rowIds) for (const j of colIds) out[k++] = m[r * cols + j];
  return out;
}

interface WidthSelection {
  heads: number[][];
  kv: number[][];
  channels: number[];
  neurons: number[][];
}

/** The model with only the selected heads, kv heads, FFN neurons and residual channels (norm gains and eps rescaled). */
export function applyWidth(model: FloatModel, sel: WidthSelection): FloatModel {
  const c = model.config;
  const hs = headSize(c);
  const D = c.dim;
  const ch = sel.channels;
  const gainScale = Math.sqrt(D / ch.length);
  const norm = (g: Float32Array) => Float32Array.from(ch, (j) => g[j] * gainScale);
  const layers: LayerWeights[] = model.weights.layers.map((lw, l) => {
    const q = blocks(sel.heads[l], hs);
    const kv = blocks(sel.kv[l], hs);
    const n = sel.neurons[l];
    return {
      attnNorm: norm(lw.attnNorm),
      wq: gather(lw.wq, D, q, ch),
      wk: gather(lw.wk, D, kv, ch),
      wv: gather(lw.wv, D, kv, ch),
      wo: gather(lw.wo, D, ch, q),
      ffnNorm: norm(lw.ffnNorm),
      w1: gather(lw.w1, D, n, ch),
      w2: gather(lw.w2, c.hiddenDim, ch, n),
      w3: gather(lw.w3, D, n, ch),
    };
  });
  const V = range(c.vocabSize);
  const w = model.weights;
  return {
    config: {
      ...c,
      dim: ch.length,
      nHeads: sel.heads[0].length,
      nKvHeads: sel.kv[0].length,
      hiddenDim: sel.neurons[0].length,
      normEps: ch.length === D ? c.normEps : Math.fround((c.normEps * D) / ch.length),
    },
    weights: {
      tokenEmbedding: gather(w.tokenEmbedding, D, V, ch),
      layers,
      finalNorm: norm(w.finalNorm),
      classifier: w.classifier ? gather(w.classifier, D, V, ch) : null,
    },
  };
}

/** The model with only the layers `kept` (original indices, ascending). */
export function keepLayers(model: FloatModel, kept: number[]): FloatModel {
  return { config: { ...model.config, nLayers: kept.length }, weights: { ...model.weights, layers: kept.map((l) => model.weights.layers[l]) } };
}

function needCalibration(importance: Importance, cal: Calibration | undefined): Calibration | null {
  if (importance === 'magnitude') return null;
  if (!cal) throw new LmflashError('activation importance needs a calibration text (or use magnitude importance)');
  return cal;
}

/**
 * `teacher` pruned to `target` (missing fields: unchanged; see resolveShape),
 * ranking by `importance`: layers first on the unpruned model, then heads,
 * FFN neurons and residual channels together on the depth-pruned one (the
 * file comment says why and how each is ranked). The teacher is not changed.
 */
export function pruneToShape(teacher: FloatModel, target: ShapeTarget, importance: Importance, calibration?: Calibration): ShapePruneResult {
  if (importance !== 'activation' && importance !== 'magnitude') throw new LmflashError(`importance must be activation or magnitude, not "${importance}"`);
  const from = shapeOf(teacher.config);
  const to = resolveShape(teacher.config, target);
  const cal = needCalibration(importance, calibration);
  let model = teacher;
  let tokens = 0;
  let layerScores: number[] = [];
  let droppedLayers: number[] = [];
  if (to.nLayers < from.nLayers) {
    const stats = cal && collectActivations(model, cal, 'depth');
    const scores = stats ? stats.influence : layerMagnitudeImportance(model);
    const kept = Array.from(topIndices(scores, to.nLayers));
    layerScores = Array.from(scores);
    droppedLayers = range(from.nLayers).filter((l) => !kept.includes(l));
    tokens = stats?.tokens ?? 0;
    model = keepLayers(model, kept);
  }
  const c = model.config;
  const all = (n: number) => Array.from({ length: c.nLayers }, () => range(n));
  let sel: WidthSelection = { heads: all(c.nHeads), kv: all(c.nKvHeads), channels: range(c.dim), neurons: all(c.hiddenDim) };
  if (to.dim < c.dim || to.hiddenDim < c.hiddenDim) {
    const stats = cal && collectActivations(model, cal, 'width');
    tokens = stats?.tokens ?? tokens;
    if (to.dim < c.dim) {
      const headScores = stats ? stats.headOutput : headMagnitudeImportance(model);
      const chosen = headScores.map((s) => chooseHeads(s, c.nKvHeads, to));
      const channelScores = stats ? stats.channel : channelMagnitudeImportance(model);
      sel = { ...sel, heads: chosen.map((x) => x.heads), kv: chosen.map((x) => x.kv), channels: Array.from(topIndices(channelScores, to.dim)) };
    }
    if (to.hiddenDim < c.hiddenDim) {
      const neuronScores = stats
        ? stats.gate.map((g, l) => {
            const down = downColumnNorms(model.weights.layers[l].w2, c.dim, c.hiddenDim);
            return g.map((v, i) => v * down[i]);
          })
        : ffnMagnitudeImportance(model);
      sel = { ...sel, neurons: neuronScores.map((s) => Array.from(topIndices(s, to.hiddenDim))) };
    }
    model = applyWidth(model, sel);
  }
  return {
    model,
    report: {
      importance,
      calibrationTokens: tokens,
      from,
      to,
      droppedLayers,
      layerScores,
      keptHeads: sel.heads,
      keptKvHeads: sel.kv,
      keptChannels: sel.channels,
      keptNeurons: sel.neurons,
    },
  };
}
