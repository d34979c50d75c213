/**
 * FloatModel → ONNX: the full-sequence forward pass as a standard-opset graph
 * (opset 17, IR version 8) that ONNX Runtime runs as is (docs/onnx.md).
 *
 * - one input `input_ids`, int64 [batch, sequence]; one output `logits`,
 *   float32 [batch, sequence, vocab];
 * - weights keep llama2.c's layout and names of llama2.c model.py
 *   (`layers.0.attention.wq.weight`, [out, in] like nn.Linear), each used
 *   through a Transpose node; a shared classifier is the embedding itself;
 * - RoPE is llama2.c's: interleaved pairs (2i, 2i+1) of each head, with
 *   constant cos/sin tables [seq_len, head_size/2] computed exactly as the
 *   reference forward pass (and run.c) computes them, sliced to the sequence;
 * - causal mask built from the sequence length (Range, Greater, Where);
 * - config and tokenizer in the model's metadata props, so that
 *   `lmflash convert model.onnx` needs nothing else.
 */
import { LmflashError } from '../src/errors.js';
import { checkModelShapes, headSize, type FloatModel, type ModelConfig } from '../src/model.js';
import { PIECE_BYTE, pieceOf, TOKENIZER_FLAG_DUMMY_PREFIX, tokenizerFromBin, type TokenizerData } from '../src/tokenizer.js';
import { readTokenizerBin } from '../src/llama2c.js';
import { A, DT, GraphBuilder, valueInfo } from './onnx-proto.js';

/** Metadata prop holding the model configuration as JSON (see LmflashOnnxConfig). */
export const META_CONFIG = 'lmflash.config';
/** Metadata prop holding the llama2.c tokenizer.bin, base64. */
export const META_TOKENIZER = 'lmflash.tokenizer';
export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

/** What META_CONFIG holds (llama2.c's field names). */
export interface LmflashOnnxConfig {
  format: 'lmflash-onnx';
  version: 1;
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  vocab_size: number;
  seq_len: number;
  head_size: number;
  rope_theta: number;
  norm_eps: number;
  shared_classifier: boolean;
  /** How the graph applies RoPE: always 'interleaved' (llama2.c pairs) in lmflash's exports. */
  rope: 'interleaved';
}

export function onnxConfigOf(c: ModelConfig): LmflashOnnxConfig {
  return {
    format: 'lmflash-onnx',
    version: 1,
    dim: c.dim,
    hidden_dim: c.hiddenDim,
    n_layers: c.nLayers,
    n_heads: c.nHeads,
    n_kv_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    seq_len: c.seqLen,
    head_size: headSize(c),
    rope_theta: c.ropeTheta,
    norm_eps: c.normEps,
    shared_classifier: c.sharedClassifier,
    rope: 'interleaved',
  };
}

/**
 * cos and sin of pos·freq_i for pos < positions and i < head_size/2, as
 * float32 [positions][head_size/2]: run.c's float32 arithmetic
 * (freq = 1/powf(theta, 2i/hs), val = pos·freq), as src/reference.ts does.
 */
export function ropeTables(c: ModelConfig, positions: number): { cos: Float32Array; sin: Float32Array } {
  const hs = headSize(c);
  const half = hs / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  const f = Math.fround;
  for (let i = 0; i < half; i++) {
    const freq = f(1 / f(Math.pow(c.ropeTheta, f((2 * i) / hs))));
    for (let pos = 0; pos < positions; pos++) {
      const val = f(pos * freq);
      cos[pos * half + i] = Math.cos(val);
      sin[pos * half + i] = Math.sin(val);
    }
  }
  return { cos, sin };
}

/**
 * The llama2.c tokenizer.bin that reads back (readTokenizerBin +
 * tokenizerFromBin) into exactly these tables: control tokens by their name,
 * byte-fallback tokens as <0xXX>, text pieces as their bytes. Throws when the
 * tables cannot be expressed that way.
 */
export function tokenizerBinFromData(t: TokenizerData): Uint8Array {
  const pieces: Uint8Array[] = [];
  for (let id = 0; id < t.vocabSize; id++) {
    const p = pieceOf(t, id);
    if (t.kinds[id] === PIECE_BYTE) pieces.push(Buffer.from(`<0x${p[0].toString(16).toUpperCase().padStart(2, '0')}>`, 'latin1'));
    else pieces.push(p);
  }
  const maxLen = Math.max(1, ...pieces.map((p) => p.length));
  const size = 4 + pieces.reduce((n, p) => n + 8 + p.length, 0);
  const out = Buffer.alloc(size);
  out.writeInt32LE(maxLen, 0);
  let o = 4;
  pieces.forEach((p, id) => {
    out.writeFloatLE(t.scores[id], o);
    out.writeInt32LE(p.length, o + 4);
    out.set(p, o + 8);
    o += 8 + p.length;
  });
  const back = tokenizerFromBin(readTokenizerBin(out, t.vocabSize));
  const same =
    (t.flags & TOKENIZER_FLAG_DUMMY_PREFIX) !== 0 &&
    back.bosId === t.bosId &&
    back.eosId === t.eosId &&
    back.unkId === t.unkId &&
    Buffer.compare(Buffer.from(back.kinds), Buffer.from(t.kinds)) === 0 &&
    Buffer.compare(Buffer.from(back.pieceBytes), Buffer.from(t.pieceBytes)) === 0 &&
    Buffer.compare(Buffer.from(back.byteIds.buffer), Buffer.from(t.byteIds.buffer)) === 0;
  if (!same) {
    throw new LmflashError(
      'this tokenizer cannot be written as a llama2.c tokenizer.bin (its special tokens, byte pieces or dummy-prefix flag differ from what tokenizer.bin expresses): pass --tokenizer with the original tokenizer.bin',
    );
  }
  return out;
}

export interface ExportOnnxOptions {
  /** llama2.c tokenizer.bin bytes to embed (metadata META_TOKENIZER); none when null. */
  tokenizerBin?: Uint8Array | null;
  /** Where the model came from, for the model's doc string. */
  source?: string;
}

/** The model as an encoded ONNX ModelProto. */
export function exportOnnx(model: FloatModel, opts: ExportOnnxOptions = {}): Uint8Array {
  checkModelShapes(model);
  const c = model.config;
  const w = model.weights;
  const D = c.dim;
  const hs = headSize(c);
  const half = hs / 2;
  const H = c.nHeads;
  const KV = c.nKvHeads;
  const rep = H / KV;
  const g = new GraphBuilder();
  const ids = 'input_ids';

  // Constants shared by every layer.
  const eps = g.f32('norm_eps', [], [c.normEps]);
  const scale = g.f32('attn_scale', [], [1 / Math.sqrt(hs)]);
  const negInf = g.f32('neg_inf', [], [-Infinity]);
  const { cos, sin } = ropeTables(c, c.seqLen);
  const cosTable = g.f32('rope.cos', [c.seqLen, half], cos);
  const sinTable = g.f32('rope.sin', [c.seqLen, half], sin);
  const axes0 = g.i64('axes_0', [1], [0]);
  const zero1 = g.i64('zero_1d', [1], [0]);
  const zero = g.i64('zero', [], [0]);
  const one = g.i64('one', [], [1]);
  const pairSplit = g.i64('pair_split', [2], [1, 1]);
  const shapeQ5 = g.i64('shape_q_pairs', [5], [0, 0, H, half, 2]);
  const shapeK5 = g.i64('shape_kv_pairs', [5], [0, 0, KV, half, 2]);
  const shapeQg = g.i64('shape_q_groups', [5], [0, 0, KV, rep, hs]);
  const shapeKg = g.i64('shape_kv_groups', [5], [0, 0, KV, 1, hs]);
  const shapeOut = g.i64('shape_attn_out', [3], [0, 0, D]);

  // Sequence length, RoPE tables for it ([S, 1, hs/2, 1]) and the causal mask ([S, S], true above the diagonal).
  const seq1 = g.op1('Shape', [ids], { name: '/seq_len/Shape', attrs: { start: A.i(1), end: A.i(2) } });
  const ropeSlice = (table: string, what: string) => {
    const s = g.op1('Slice', [table, zero1, seq1, axes0], { name: `/rope/${what}/Slice` });
    return g.op1('Unsqueeze', [s, g.i64(`axes_${what}`, [2], [1, 3])], { name: `/rope/${what}/Unsqueeze` });
  };
  const cosS = ropeSlice(cosTable, 'cos');
  const sinS = ropeSlice(sinTable, 'sin');
  const seq = g.op1('Squeeze', [seq1, axes0], { name: '/mask/Squeeze' });
  const pos = g.op1('Range', [zero, seq, one], { name: '/mask/Range' });
  const rows = g.op1('Unsqueeze', [pos, g.i64('axes_1', [1], [1])], { name: '/mask/rows' });
  const cols = g.op1('Unsqueeze', [pos, axes0], { name: '/mask/cols' });
  const future = g.op1('Greater', [cols, rows], { name: '/mask/Greater' });

  const linear = (x: string, weight: Float32Array, rowsN: number, colsN: number, name: string, prefix: string): string => {
    const wName = g.f32(`${name}.weight`, [rowsN, colsN], weight);
    const wt = g.op1('Transpose', [wName], { name: `${prefix}/Transpose`, attrs: { perm: A.ints([1, 0]) } });
    return g.op1('MatMul', [x, wt], { name: `${prefix}/MatMul` });
  };
  const rmsnorm = (x: string, weight: Float32Array, name: string, prefix: string): string => {
    const wName = g.f32(`${name}.weight`, [D], weight);
    const sq = g.op1('Mul', [x, x], { name: `${prefix}/Square` });
    const ms = g.op1('ReduceMean', [sq], { name: `${prefix}/ReduceMean`, attrs: { axes: A.ints([-1]), keepdims: A.i(1) } });
    const v = g.op1('Add', [ms, eps], { name: `${prefix}/AddEps` });
    const r = g.op1('Sqrt', [v], { name: `${prefix}/Sqrt` });
    const inv = g.op1('Reciprocal', [r], { name: `${prefix}/Reciprocal` });
    const xn = g.op1('Mul', [x, inv], { name: `${prefix}/Normalize` });
    return g.op1('Mul', [xn, wName], { name: `${prefix}/Scale` });
  };
  /** RoPE on interleaved pairs: [B,S,heads*hs] → [B,S,heads,hs/2,2] rotated. */
  const rope = (t: string, shape5: string, prefix: string): string => {
    const r = g.op1('Reshape', [t, shape5], { name: `${prefix}/Reshape` });
    const [re, im] = g.op('Split', [r, pairSplit], { name: `${prefix}/Split`, attrs: { axis: A.i(-1) }, outputs: 2 });
    const a = g.op1('Sub', [g.op1('Mul', [re, cosS], { name: `${prefix}/re_cos` }), g.op1('Mul', [im, sinS], { name: `${prefix}/im_sin` })], {
      name: `${prefix}/Sub`,
    });
    const b = g.op1('Add', [g.op1('Mul', [re, sinS], { name: `${prefix}/re_sin` }), g.op1('Mul', [im, cosS], { name: `${prefix}/im_cos` })], {
      name: `${prefix}/Add`,
    });
    return g.op1('Concat', [a, b], { name: `${prefix}/Concat`, attrs: { axis: A.i(-1) } });
  };

  let x = g.op1('Gather', [g.f32('tok_embeddings.weight', [c.vocabSize, D], w.tokenEmbedding), ids], {
    name: '/tok_embeddings/Gather',
    attrs: { axis: A.i(0) },
  });
  for (let l = 0; l < c.nLayers; l++) {
    const lw = w.layers[l];
    const p = `/layers.${l}`;
    const n = `layers.${l}`;
    // Attention.
    const xn = rmsnorm(x, lw.attnNorm, `${n}.attention_norm`, `${p}/attention_norm`);
    const q = linear(xn, lw.wq, H * hs, D, `${n}.attention.wq`, `${p}/attention/wq`);
    const k = linear(xn, lw.wk, KV * hs, D, `${n}.attention.wk`, `${p}/attention/wk`);
    const v = linear(xn, lw.wv, KV * hs, D, `${n}.attention.wv`, `${p}/attention/wv`);
    const qr = rope(q, shapeQ5, `${p}/attention/rope_q`);
    const kr = rope(k, shapeK5, `${p}/attention/rope_k`);
    // Grouped-query attention by broadcasting: q [B,KV,rep,S,hs] × k [B,KV,1,hs,S].
    const qh = g.op1('Transpose', [g.op1('Reshape', [qr, shapeQg], { name: `${p}/attention/q_groups` })], {
      name: `${p}/attention/q_heads`,
      attrs: { perm: A.ints([0, 2, 3, 1, 4]) },
    });
    const kh = g.op1('Transpose', [g.op1('Reshape', [kr, shapeKg], { name: `${p}/attention/k_groups` })], {
      name: `${p}/attention/k_heads`,
      attrs: { perm: A.ints([0, 2, 3, 4, 1]) },
    });
    const vh = g.op1('Transpose', [g.op1('Reshape', [v, shapeKg], { name: `${p}/attention/v_groups` })], {
      name: `${p}/attention/v_heads`,
      attrs: { perm: A.ints([0, 2, 3, 1, 4]) },
    });
    const scores = g.op1('MatMul', [qh, kh], { name: `${p}/attention/scores` });
    const scaled = g.op1('Mul', [scores, scale], { name: `${p}/attention/scale` });
    const masked = g.op1('Where', [future, negInf, scaled], { name: `${p}/attention/causal_mask` });
    const probs = g.op1('Softmax', [masked], { name: `${p}/attention/Softmax`, attrs: { axis: A.i(-1) } });
    const att = g.op1('MatMul', [probs, vh], { name: `${p}/attention/weighted_values` });
    const merged = g.op1(
      'Reshape',
      [g.op1('Transpose', [att], { name: `${p}/attention/merge_heads`, attrs: { perm: A.ints([0, 3, 1, 2, 4]) } }), shapeOut],
      { name: `${p}/attention/merge_reshape` },
    );
    const o = linear(merged, lw.wo, D, H * hs, `${n}.attention.wo`, `${p}/attention/wo`);
    x = g.op1('Add', [x, o], { name: `${p}/attention_residual` });
    // SwiGLU feed-forward.
    const hn = rmsnorm(x, lw.ffnNorm, `${n}.ffn_norm`, `${p}/ffn_norm`);
    const gate = linear(hn, lw.w1, c.hiddenDim, D, `${n}.feed_forward.w1`, `${p}/feed_forward/w1`);
    const up = linear(hn, lw.w3, c.hiddenDim, D, `${n}.feed_forward.w3`, `${p}/feed_forward/w3`);
    const silu = g.op1('Mul', [gate, g.op1('Sigmoid', [gate], { name: `${p}/feed_forward/Sigmoid` })], { name: `${p}/feed_forward/silu` });
    const prod = g.op1('Mul', [silu, up], { name: `${p}/feed_forward/gate_up` });
    const down = linear(prod, lw.w2, D, c.hiddenDim, `${n}.feed_forward.w2`, `${p}/feed_forward/w2`);
    x = g.op1('Add', [x, down], { name: `${p}/ffn_residual` });
  }
  const xf = rmsnorm(x, w.finalNorm, 'norm', '/norm');
  const clsName = w.classifier ? g.f32('output.weight', [c.vocabSize, D], w.classifier) : 'tok_embeddings.weight';
  const clsT = g.op1('Transpose', [clsName], { name: '/output/Transpose', attrs: { perm: A.ints([1, 0]) } });
  g.op1('MatMul', [xf, clsT], { name: '/output/MatMul', outputNames: ['logits'] });

  const metadata: Record<string, string> = { [META_CONFIG]: JSON.stringify(onnxConfigOf(c)) };
  if (opts.tokenizerBin) metadata[META_TOKENIZER] = Buffer.from(opts.tokenizerBin).toString('base64');
  return g.encode({
    inputs: [valueInfo(ids, DT.INT64, ['batch', 'sequence'])],
    outputs: [valueInfo('logits', DT.FLOAT, ['batch', 'sequence', c.vocabSize])],
    opset: ONNX_OPSET,
    irVersion: ONNX_IR_VERSION,
    graphName: 'lmflash_llama',
    producerName: 'lmflash',
    producerVersion: '0.1.0',
    docString:
      'Llama-style decoder, full-sequence forward pass (llama2.c semantics: RMSNorm, interleaved-pair RoPE, GQA, SwiGLU). ' +
      `Input: input_ids int64 [batch, sequence <= ${c.seqLen}]. Output: logits float32 [batch, sequence, ${c.vocabSize}].` +
      (opts.source ? ` Exported by lmflash from ${opts.source}.` : ''),
    metadata,
  });
}
