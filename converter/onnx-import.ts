/**
 * ONNX → FloatModel: reads a Llama-style decoder graph (as torch.onnx.export
 * writes a llama2.c model.py Transformer, as Hugging Face exporters write
 * LlamaForCausalLM, and as `lmflash export onnx` writes) and maps its weights
 * onto llama2.c's layout (docs/onnx.md).
 *
 * The mapping follows the graph, not names: from the token-id input to the
 * embedding Gather, along the residual stream (each Add of the stream and a
 * branch is a residual block: attention, then feed-forward), to the logits.
 * Inside each block it finds the RMSNorm, the weight MatMuls (weights as
 * initializers, used directly as [in, out] or through a Transpose, or by
 * Gemm), fused projections split by Split/Slice, and tells q, k and v apart by
 * where they flow (q·kᵀ before the Softmax, probabilities·v after it). Names
 * (initializers, nodes) are then checked against that mapping: a name that
 * says k_proj where the graph uses a q projection is an error, not a guess.
 *
 * RoPE: the graph's form is recognised on the q and k paths — interleaved
 * pairs (a reshape to [..., 2]: llama2.c, Meta) or rotate-half (Slice + Neg:
 * Hugging Face); rotate-half q/k weight rows are permuted back to llama2.c's
 * interleaved order. rope_theta comes from inv_freq or the cos/sin tables,
 * seq_len from the tables, and both, with norm_eps, from lmflash's metadata
 * when present.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LmflashError } from '../src/errors.js';
import { checkInputFile } from '../src/input-file.js';
import {
  checkModelShapes,
  configProblems,
  describeConfig,
  type FloatModel,
  type LayerWeights,
  type ModelConfig,
} from '../src/model.js';
import { META_CONFIG, META_TOKENIZER, type LmflashOnnxConfig } from './onnx-export.js';
import {
  ATTR,
  decodeModel,
  dims,
  DT,
  dtypeName,
  elementCount,
  num,
  tensorFloats,
  tensorInts,
  type ExternalReader,
  type IAttributeProto,
  type INodeProto,
  type ITensorProto,
  type ModelProto,
} from './onnx-proto.js';

export interface OnnxImportOptions {
  /** Reads an external data file named by an initializer (relative to the model's folder). */
  readExternal?: ExternalReader;
  /** Context length to record when the file does not say (no lmflash metadata, no constant RoPE table); overrides the file's. */
  seqLen?: number;
}

export type RopeStyle = 'interleaved' | 'rotate-half';

export interface OnnxImportInfo {
  producer: string;
  opset: number;
  rope: RopeStyle;
  fusedQkv: boolean;
  fusedGateUp: boolean;
  /** The file carries lmflash's config metadata (an lmflash export). */
  lmflashMetadata: boolean;
  seqLenSource: 'option' | 'metadata' | 'rope table';
  ropeThetaSource: 'metadata' | 'inv_freq' | 'rope table';
}

export interface OnnxImportResult {
  model: FloatModel;
  /** llama2.c tokenizer.bin bytes from the metadata, or null. */
  tokenizerBin: Uint8Array | null;
  info: OnnxImportInfo;
}

const fail = (msg: string): never => {
  throw new LmflashError(msg);
};

// ---------------------------------------------------------------------------
// The graph, indexed

/** Ops of the default domain the importer knows how to read (others are refused by name). */
const SUPPORTED_OPS = new Set([
  'Gather', 'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Reciprocal', 'ReduceMean', 'Cast', 'CastLike',
  'Reshape', 'Transpose', 'Split', 'Slice', 'Concat', 'Unsqueeze', 'Squeeze', 'Flatten', 'Softmax', 'Sigmoid', 'Neg',
  'Shape', 'Size', 'Range', 'Expand', 'Tile', 'Where', 'Trilu', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual',
  'And', 'Or', 'Not', 'IsInf', 'IsNaN', 'ConstantOfShape', 'Constant', 'Identity', 'Dropout', 'Cos', 'Sin', 'Max', 'Min',
  'Abs', 'ScatterND', 'RMSNormalization', 'SimplifiedLayerNormalization',
]);
/** Ops that pass a value through unchanged (for following weights and outputs). */
const NORM_OPS = new Set(['Cast', 'CastLike', 'Identity', 'Pow', 'Mul', 'ReduceMean', 'Add', 'Sqrt', 'Reciprocal', 'Div', 'RMSNormalization', 'SimplifiedLayerNormalization']);
const FFN_OPS = new Set(['Sigmoid', 'Mul', 'Split', 'Slice', 'Cast', 'CastLike', 'Identity']);
const SELECT_OPS = new Set(['Gather', 'Slice', 'Squeeze', 'Unsqueeze', 'Reshape', 'Flatten']);
const FLOAT_TYPES = new Set<number>([DT.FLOAT, DT.FLOAT16, DT.BFLOAT16, DT.DOUBLE]);

interface GNode {
  index: number;
  op: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, IAttributeProto>;
}

interface ConstInfo {
  tensor: ITensorProto;
  /** "initializer" or "Constant node ..." */
  origin: string;
}

function label(n: GNode): string {
  return n.name ? `node "${n.name}" (${n.op})` : `node #${n.index} (${n.op}, output "${n.outputs[0]}")`;
}

class Graph {
  readonly nodes: GNode[] = [];
  readonly producer = new Map<string, GNode>();
  readonly consumers = new Map<string, GNode[]>();
  readonly consts = new Map<string, ConstInfo>();
  readonly inputs = new Map<string, { elemType: number; rank: number | null }>();
  readonly outputs: string[];
  readonly opset: number;
  private readonly floatCache = new Map<string, Float32Array>();

  constructor(
    readonly model: ModelProto,
    private readonly readExternal?: ExternalReader,
  ) {
    const g = model.graph!;
    const defaultOpset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
    this.opset = defaultOpset ? num(defaultOpset.version) : 1;
    if ((g.sparseInitializer ?? []).length > 0) {
      fail(`the graph has sparse initializers ("${g.sparseInitializer![0].values?.name ?? '?'}"); lmflash reads dense weights only: export without sparsification`);
    }
    for (const t of g.initializer ?? []) {
      if (!t.name) fail('the graph has an initializer without a name: the file is corrupt');
      this.consts.set(t.name!, { tensor: t, origin: 'initializer' });
    }
    for (const vi of g.input ?? []) {
      if (!vi.name || this.consts.has(vi.name)) continue; // IR < 4 lists initializers among the inputs
      const tt = vi.type?.tensorType;
      this.inputs.set(vi.name, { elemType: tt?.elemType ?? 0, rank: tt?.shape?.dim ? tt.shape.dim.length : null });
    }
    this.outputs = (g.output ?? []).map((o) => o.name ?? '');
    (g.node ?? []).forEach((raw: INodeProto, index) => {
      const n: GNode = {
        index,
        op: raw.opType ?? '',
        domain: raw.domain ?? '',
        name: raw.name ?? '',
        inputs: raw.input ?? [],
        outputs: raw.output ?? [],
        attrs: new Map((raw.attribute ?? []).map((a) => [a.name ?? '', a])),
      };
      this.nodes.push(n);
    });
    for (const n of this.nodes) {
      const qualified = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.op}` : n.op;
      if ((n.domain && n.domain !== 'ai.onnx') || !SUPPORTED_OPS.has(n.op)) {
        fail(
          `unsupported op ${qualified} (${label(n)}): lmflash reads standard-opset Llama graphs as torch.onnx.export and ` +
            'Hugging Face exporters write them; export again without runtime-specific fusions (e.g. no ONNX Runtime transformer optimizer), ' +
            'without quantization and without control flow',
        );
      }
      for (const o of n.outputs) {
        if (!o) continue;
        if (this.producer.has(o) || this.consts.has(o)) fail(`tensor "${o}" is produced twice (by ${label(n)} and earlier): the graph is invalid`);
        this.producer.set(o, n);
      }
      if (n.op === 'Constant') this.consts.set(n.outputs[0], { tensor: constantNodeTensor(n), origin: label(n) });
    }
    for (const n of this.nodes) {
      for (const i of n.inputs) {
        if (!i) continue;
        if (!this.producer.has(i) && !this.consts.has(i) && !this.inputs.has(i)) {
          fail(
            `${label(n)} reads "${i}", which is neither a graph input, an initializer nor the output of a node: ` +
              'the file is incomplete (a missing initializer, or weights saved as external data that were not kept next to the model?)',
          );
        }
        const list = this.consumers.get(i) ?? [];
        list.push(n);
        this.consumers.set(i, list);
      }
    }
    this.checkAcyclic();
  }

  private checkAcyclic(): void {
    const state = new Map<GNode, number>(); // 1 visiting, 2 done
    for (const start of this.nodes) {
      if (state.get(start) === 2) continue;
      const stack: [GNode, number][] = [[start, 0]];
      state.set(start, 1);
      while (stack.length > 0) {
        const top = stack[stack.length - 1];
        const [n, k] = top;
        if (k >= n.inputs.length) {
          state.set(n, 2);
          stack.pop();
          continue;
        }
        top[1]++;
        const p = this.producer.get(n.inputs[k]);
        if (!p || state.get(p) === 2) continue;
        if (state.get(p) === 1) fail(`the graph has a cycle through ${label(p)}: it is invalid`);
        state.set(p, 1);
        stack.push([p, 0]);
      }
    }
  }

  isConst(t: string): boolean {
    return this.consts.has(t);
  }

  constDims(t: string): number[] {
    return dims(this.consts.get(t)!.tensor);
  }

  constType(t: string): number {
    return this.consts.get(t)!.tensor.dataType ?? 0;
  }

  floats(t: string): Float32Array {
    let v = this.floatCache.get(t);
    if (!v) {
      v = tensorFloats(this.consts.get(t)!.tensor, this.readExternal);
      this.floatCache.set(t, v);
    }
    return v;
  }

  ints(t: string): number[] {
    return tensorInts(this.consts.get(t)!.tensor, this.readExternal);
  }

  /** The constant value of an integer tensor (through Cast/Identity), or null when it is computed. */
  constInts(t: string): number[] | null {
    const r = this.followValue(t);
    return this.isConst(r) ? this.ints(r) : null;
  }

  /** A scalar float constant (through Cast/Identity), or null. */
  constScalar(t: string): number | null {
    const r = this.followValue(t);
    if (!this.isConst(r) || elementCount(this.constDims(r)) !== 1) return null;
    return FLOAT_TYPES.has(this.constType(r)) ? this.floats(r)[0] : this.ints(r)[0];
  }

  /** Follows Identity, Dropout and Cast back to where a value comes from. */
  followValue(t: string): string {
    for (;;) {
      const p = this.producer.get(t);
      if (!p || !['Identity', 'Dropout', 'Cast', 'CastLike'].includes(p.op) || p.outputs[0] !== t) return t;
      t = p.inputs[0];
    }
  }

  /** The known trailing values of an int64 shape tensor (a Concat of constants and computed sizes). */
  constTail(t: string): (number | null)[] | null {
    const r = this.followValue(t);
    if (this.isConst(r)) return this.ints(r);
    const p = this.producer.get(r);
    if (!p) return null;
    switch (p.op) {
      case 'Concat': {
        let acc: (number | null)[] = [];
        for (const i of p.inputs) {
          const piece = this.constTail(i);
          if (piece === null) acc = [];
          else acc.push(...piece);
        }
        return acc.length > 0 ? acc : null;
      }
      case 'Unsqueeze':
      case 'Gather':
        return [null]; // a size picked out of a Shape: one unknown value
      default:
        return null;
    }
  }
}

function constantNodeTensor(n: GNode): ITensorProto {
  const a = n.attrs;
  if (a.get('value')?.t) return { ...a.get('value')!.t!, name: n.outputs[0] };
  if (a.has('value_float')) return { name: n.outputs[0], dataType: DT.FLOAT, dims: [], floatData: [a.get('value_float')!.f ?? 0] };
  if (a.has('value_floats')) {
    const f = a.get('value_floats')!.floats ?? [];
    return { name: n.outputs[0], dataType: DT.FLOAT, dims: [f.length], floatData: f };
  }
  if (a.has('value_int')) return { name: n.outputs[0], dataType: DT.INT64, dims: [], int64Data: [a.get('value_int')!.i ?? 0] };
  if (a.has('value_ints')) {
    const v = a.get('value_ints')!.ints ?? [];
    return { name: n.outputs[0], dataType: DT.INT64, dims: [v.length], int64Data: v };
  }
  return fail(`${label(n)} has no value attribute lmflash can read (value, value_float(s), value_int(s))`);
}

function attrInt(n: GNode, name: string, dflt: number): number {
  const a = n.attrs.get(name);
  return a ? num(a.i) : dflt;
}

function attrInts(n: GNode, name: string): number[] | null {
  const a = n.attrs.get(name);
  return a ? (a.ints ?? []).map((v) => num(v)) : null;
}

function attrFloat(n: GNode, name: string, dflt: number): number {
  const a = n.attrs.get(name);
  return a && a.type === ATTR.FLOAT ? (a.f ?? 0) : dflt;
}

// ---------------------------------------------------------------------------
// Names: hints checked against the structural mapping

type Role = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down' | 'qkv' | 'gate_up' | 'attn_norm' | 'ffn_norm';
const ROLE_TOKENS: Record<Role, string[]> = {
  q: ['q_proj', 'wq', 'query', 'query_proj'],
  k: ['k_proj', 'wk', 'key', 'key_proj'],
  v: ['v_proj', 'wv', 'value', 'value_proj'],
  o: ['o_proj', 'wo', 'out_proj'],
  gate: ['gate_proj', 'w1'],
  up: ['up_proj', 'w3'],
  down: ['down_proj', 'w2'],
  qkv: ['qkv_proj', 'wqkv', 'query_key_value', 'c_attn'],
  gate_up: ['gate_up_proj', 'w13'],
  attn_norm: ['attention_norm', 'input_layernorm'],
  ffn_norm: ['ffn_norm', 'post_attention_layernorm'],
};
const PROJECTION_ROLES: Role[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down', 'qkv', 'gate_up'];
const NORM_ROLES: Role[] = ['attn_norm', 'ffn_norm'];

function nameTokens(name: string): string[] {
  return name.split(/[./:]+/).filter(Boolean);
}

function rolesNamed(name: string, among: Role[]): Role[] {
  const tokens = new Set(nameTokens(name));
  return among.filter((r) => ROLE_TOKENS[r].some((t) => tokens.has(t)));
}

function layerNamed(name: string): number | null {
  const t = nameTokens(name);
  for (let i = 0; i + 1 < t.length; i++) {
    if (['layers', 'layer', 'h', 'blocks'].includes(t[i]) && /^\d+$/.test(t[i + 1])) return Number(t[i + 1]);
  }
  return null;
}

/** Throws when a name says another role or layer than the graph structure gives it. */
function checkName(name: string, role: Role, layer: number, among: Role[], what: string): void {
  if (!name) return;
  const named = rolesNamed(name, among);
  if (named.length === 1 && named[0] !== role) {
    fail(
      `${what}: the graph uses "${name}" as layer ${layer}'s ${role} weight, but its name says ${named[0]}; ` +
        'lmflash does not guess which one is right: the graph is not the Llama decoder it expects',
    );
  }
  const l = layerNamed(name);
  if (l !== null && l !== layer) {
    fail(`${what}: the graph uses "${name}" in layer ${layer}, but its name says layer ${l}; the graph is not the Llama decoder lmflash expects`);
  }
}

// ---------------------------------------------------------------------------
// Weights

interface WeightRef {
  /** Initializer (or Constant output) holding the values. */
  name: string;
  /** True when the graph uses the stored matrix transposed. */
  transposed: boolean;
}

/** Follows Identity/Cast/Transpose from a MatMul operand to a 2-D float constant. */
function resolveWeight(g: Graph, t: string): WeightRef | null {
  let transposed = false;
  for (;;) {
    if (g.isConst(t)) {
      if (!FLOAT_TYPES.has(g.constType(t)) || g.constDims(t).length !== 2) return null;
      return { name: t, transposed };
    }
    const p = g.producer.get(t);
    if (!p) return null;
    if (['Identity', 'Cast', 'CastLike'].includes(p.op)) t = p.inputs[0];
    else if (p.op === 'Transpose') {
      const perm = attrInts(p, 'perm');
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return null;
      transposed = !transposed;
      t = p.inputs[0];
    } else return null;
  }
}

interface Projection {
  node: GNode;
  /** The activation operand. */
  act: string;
  weight: WeightRef;
  /** Output features (rows of W in y = W x) and input features. */
  outFeatures: number;
  inFeatures: number;
  /** True when the graph multiplies x · S with S the stored matrix (so W = Sᵀ). */
  storedInOut: boolean;
}

function asProjection(g: Graph, n: GNode): Projection | null {
  if (n.op === 'MatMul') {
    if (g.isConst(g.followValue(n.inputs[0]))) return null;
    const w = resolveWeight(g, n.inputs[1]);
    if (!w) return null;
    const [a, b] = g.constDims(w.name);
    const storedInOut = !w.transposed;
    return { node: n, act: n.inputs[0], weight: w, outFeatures: storedInOut ? b : a, inFeatures: storedInOut ? a : b, storedInOut };
  }
  if (n.op === 'Gemm') {
    const w = resolveWeight(g, n.inputs[1]);
    if (!w) return null;
    if (attrInt(n, 'transA', 0) !== 0 || attrFloat(n, 'alpha', 1) !== 1) {
      fail(`${label(n)} uses Gemm with transA or alpha ≠ 1, which lmflash does not read as a plain weight product`);
    }
    if (n.inputs[2]) {
      const c = g.followValue(n.inputs[2]);
      if (!g.isConst(c) || g.floats(c).some((v) => v !== 0)) {
        fail(`${label(n)} adds a bias ("${n.inputs[2]}"); Llama-style models have no biases and the blob cannot hold one`);
      }
    }
    const transposed = w.transposed !== (attrInt(n, 'transB', 0) === 1);
    const [a, b] = g.constDims(w.name);
    const storedInOut = !transposed;
    return { node: n, act: n.inputs[0], weight: w, outFeatures: storedInOut ? b : a, inFeatures: storedInOut ? a : b, storedInOut };
  }
  return null;
}

/** Rows [r0, r1) of the projection's W (out × in, row-major) as llama2.c stores it. */
function projectionRows(g: Graph, p: Projection, r0: number, r1: number): Float32Array {
  const s = g.floats(p.weight.name);
  const inF = p.inFeatures;
  const outF = p.outFeatures;
  if (!p.storedInOut) return s.slice(r0 * inF, r1 * inF);
  const out = new Float32Array((r1 - r0) * inF);
  for (let r = r0; r < r1; r++) for (let c = 0; c < inF; c++) out[(r - r0) * inF + c] = s[c * outF + r];
  return out;
}

/** A projection or one slice of a fused one (rows [r0, r1) of its output features). */
interface Part {
  proj: Projection;
  r0: number;
  r1: number;
  out: string;
  fused: boolean;
}

// ---------------------------------------------------------------------------
// Importing

interface Meta {
  config: LmflashOnnxConfig | null;
  tokenizer: Uint8Array | null;
}

function readMeta(m: ModelProto): Meta {
  const props = new Map((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
  let config: LmflashOnnxConfig | null = null;
  const raw = props.get(META_CONFIG);
  if (raw !== undefined) {
    try {
      config = JSON.parse(raw) as LmflashOnnxConfig;
    } catch {
      fail(`metadata "${META_CONFIG}" is not valid JSON: the file is corrupt`);
    }
    const c = config as unknown as Record<string, unknown>;
    for (const k of ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len', 'head_size', 'rope_theta', 'norm_eps']) {
      if (typeof c[k] !== 'number' || !Number.isFinite(c[k])) fail(`metadata "${META_CONFIG}" has no numeric ${k}: the file is corrupt`);
    }
  }
  let tokenizer: Uint8Array | null = null;
  const tok = props.get(META_TOKENIZER);
  if (tok !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(tok)) fail(`metadata "${META_TOKENIZER}" is not base64: the file is corrupt`);
    tokenizer = new Uint8Array(Buffer.from(tok, 'base64'));
  }
  return { config, tokenizer };
}

/** The shortest decimal that rounds to the same float32 (1e-5 rather than 9.99999974738e-6). */
export function shortestFloat32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const v = Number(f.toPrecision(p));
    if (Math.fround(v) === f) return v;
  }
  return f;
}

/** run.c's float32 RoPE frequency for pair i. */
function ropeFreq(theta: number, i: number, hs: number): number {
  const f = Math.fround;
  return f(1 / f(Math.pow(theta, f((2 * i) / hs))));
}

/**
 * The rope_theta for which theta^(-2i/hs) gives these frequencies (within
 * `tol`), as the shortest decimal that fits; null when none does.
 */
function thetaFromFreqs(freqs: number[], hs: number, tol: number, estimateFrom: number): number | null {
  if (freqs.length < 2 || Math.abs(freqs[0] - 1) > tol) return null;
  const i = estimateFrom;
  if (!(freqs[i] > 0 && freqs[i] < 1)) return null;
  const estimate = Math.pow(freqs[i], -hs / (2 * i));
  const fits = (theta: number) => freqs.every((f, k) => Math.abs(f - ropeFreq(theta, k, hs)) <= tol * Math.max(1, ropeFreq(theta, k, hs)) + 1e-7);
  for (let p = 1; p <= 8; p++) {
    const t = Number(estimate.toPrecision(p));
    if (fits(t)) return t;
  }
  return fits(estimate) ? estimate : null;
}

interface Branch {
  /** Nodes computing the block from the stream (they depend on it). */
  main: GNode[];
  mainSet: Set<GNode>;
  /** Nodes feeding the block that do not depend on the stream (masks, RoPE tables, shapes). */
  aux: Set<GNode>;
}

class Importer {
  private readonly g: Graph;
  private readonly meta: Meta;
  private streamRank = 3;
  private dim = 0;
  private ropeStyle: RopeStyle | null = null;
  private headSize: number | null = null;
  private ropeTheta: { value: number; source: 'inv_freq' | 'rope table' } | null = null;
  private tableRows: number | null = null;
  private fusedQkv = false;
  private fusedGateUp = false;
  private eps: number | null = null;

  constructor(
    private readonly model: ModelProto,
    private readonly opts: OnnxImportOptions,
  ) {
    this.g = new Graph(model, opts.readExternal);
    this.meta = readMeta(model);
  }

  run(): OnnxImportResult {
    const g = this.g;
    const { gather, embedding, tokenInput } = this.findEmbedding();
    const inputRank = g.inputs.get(tokenInput)?.rank;
    this.streamRank = (inputRank ?? 2) + 1;
    const [vocab, dim] = g.constDims(embedding.name);
    this.dim = dim;
    const tokenEmbedding = g.floats(embedding.name);

    const layers: LayerWeights[] = [];
    let x = gather.outputs[0];
    const qkRows: { q: number; k: number } = { q: 0, k: 0 };
    for (let l = 0; ; l++) {
      const attnRes = this.findResidual(x, l, 'attention');
      if (!attnRes) break;
      const attn = this.readAttention(x, attnRes.branchOut, l);
      const ffnRes = this.findResidual(attnRes.add.outputs[0], l, 'feed-forward');
      if (!ffnRes) {
        fail(`layer ${l}: the attention block (ending at ${label(attnRes.add)}) is not followed by a feed-forward residual block`);
      }
      const ffn = this.readFeedForward(attnRes.add.outputs[0], ffnRes!.branchOut, l);
      qkRows.q = attn.wq.length / dim;
      qkRows.k = attn.wk.length / dim;
      layers.push({ ...attn, ...ffn });
      x = ffnRes!.add.outputs[0];
    }
    if (layers.length === 0) {
      fail(
        `no transformer layer found: the embedding output "${x}" is not the start of a residual stream (an Add of the stream and an attention block); ` +
          `its consumers are ${(g.consumers.get(x) ?? []).map(label).join(', ') || 'none'}`,
      );
    }
    const { finalNorm, classifier } = this.readHead(x);

    // Configuration.
    const meta = this.meta.config;
    let hs = this.headSize ?? (meta ? meta.head_size : null);
    if (hs === null) {
      fail('cannot tell the head size: no Reshape to [..., n_heads, head_size] after the q projection, no RoPE frequencies and no lmflash metadata');
    }
    hs = hs!;
    if (meta && meta.head_size !== hs) fail(`metadata "${META_CONFIG}" says head_size ${meta.head_size} but the graph reshapes q into heads of ${hs}`);
    if (qkRows.q % hs !== 0 || qkRows.k % hs !== 0) {
      fail(`head size ${hs} does not divide the q/k projection outputs (${qkRows.q}, ${qkRows.k}): the graph is not understood`);
    }
    const nHeads = qkRows.q / hs;
    const nKvHeads = qkRows.k / hs;
    if (nHeads * hs !== dim) {
      fail(`the q projection has ${qkRows.q} outputs (${nHeads} heads of ${hs}) but the model dim is ${dim}; lmflash's blob needs n_heads·head_size = dim`);
    }

    let ropeTheta: number;
    let ropeThetaSource: OnnxImportInfo['ropeThetaSource'];
    if (meta) {
      if (this.ropeTheta && Math.abs(this.ropeTheta.value - meta.rope_theta) > 1e-4 * meta.rope_theta) {
        fail(`metadata "${META_CONFIG}" says rope_theta ${meta.rope_theta} but the graph's RoPE ${this.ropeTheta.source} gives ${this.ropeTheta.value}`);
      }
      ropeTheta = meta.rope_theta;
      ropeThetaSource = 'metadata';
    } else if (this.ropeTheta) {
      ropeTheta = this.ropeTheta.value;
      ropeThetaSource = this.ropeTheta.source;
    } else {
      return fail(
        'cannot find rope_theta: no inv_freq constant or cos/sin table feeds the rotary embedding of layer 0 (computed ones are not followed), and no lmflash metadata',
      );
    }

    let eps = this.eps!;
    if (meta) {
      if (Math.fround(meta.norm_eps) !== Math.fround(eps)) fail(`metadata "${META_CONFIG}" says norm_eps ${meta.norm_eps} but the graph's RMSNorm adds ${eps}`);
      eps = meta.norm_eps;
    }

    let seqLen: number;
    let seqLenSource: OnnxImportInfo['seqLenSource'];
    if (this.opts.seqLen !== undefined) {
      seqLen = this.opts.seqLen;
      seqLenSource = 'option';
    } else if (meta) {
      seqLen = meta.seq_len;
      seqLenSource = 'metadata';
    } else if (this.tableRows !== null) {
      seqLen = this.tableRows;
      seqLenSource = 'rope table';
    } else {
      return fail('the model does not record its context length (no lmflash metadata, no constant RoPE table): pass --seq-len N');
    }

    const config: ModelConfig = {
      dim,
      hiddenDim: layers[0].w1.length / dim,
      nLayers: layers.length,
      nHeads,
      nKvHeads,
      vocabSize: vocab,
      seqLen,
      sharedClassifier: classifier === null,
      ropeTheta,
      normEps: eps,
    };
    const problems = configProblems(config);
    if (problems.length > 0) fail(`the graph describes a model lmflash cannot hold (${describeConfig(config)}): ${problems.join('; ')}`);
    if (meta) {
      const expect: [string, number, number][] = [
        ['dim', meta.dim, config.dim],
        ['hidden_dim', meta.hidden_dim, config.hiddenDim],
        ['n_layers', meta.n_layers, config.nLayers],
        ['n_heads', meta.n_heads, config.nHeads],
        ['n_kv_heads', meta.n_kv_heads, config.nKvHeads],
        ['vocab_size', meta.vocab_size, config.vocabSize],
      ];
      for (const [k, m, v] of expect) if (m !== v) fail(`metadata "${META_CONFIG}" says ${k} ${m} but the graph has ${v}`);
    }

    if (this.ropeStyle === 'rotate-half') {
      for (const lw of layers) {
        lw.wq = halfToInterleaved(lw.wq, nHeads, hs, dim);
        lw.wk = halfToInterleaved(lw.wk, nKvHeads, hs, dim);
      }
    }
    const model: FloatModel = { config, weights: { tokenEmbedding, layers, finalNorm, classifier } };
    try {
      checkModelShapes(model);
    } catch (e) {
      fail(`the weights found do not fit together: ${(e as Error).message}`);
    }
    const m = this.model;
    return {
      model,
      tokenizerBin: this.meta.tokenizer,
      info: {
        producer: [m.producerName, m.producerVersion].filter(Boolean).join(' ') || 'unknown producer',
        opset: g.opset,
        rope: this.ropeStyle!,
        fusedQkv: this.fusedQkv,
        fusedGateUp: this.fusedGateUp,
        lmflashMetadata: meta !== null,
        seqLenSource,
        ropeThetaSource,
      },
    };
  }

  // -- embedding and stream --------------------------------------------------

  private findEmbedding(): { gather: GNode; embedding: WeightRef; tokenInput: string } {
    const g = this.g;
    const found: { gather: GNode; embedding: WeightRef; tokenInput: string }[] = [];
    for (const n of g.nodes) {
      if (n.op !== 'Gather' || attrInt(n, 'axis', 0) !== 0) continue;
      const w = resolveWeight(g, n.inputs[0]);
      if (!w || w.transposed) continue;
      const idx = g.followValue(n.inputs[1]);
      if (!g.inputs.has(idx)) continue;
      found.push({ gather: n, embedding: w, tokenInput: idx });
    }
    if (found.length === 0) {
      fail(
        'no token embedding found: expected a Gather (axis 0) of a 2-D float initializer [vocab_size, dim] by the integer token-id input ' +
          `(graph inputs: ${[...g.inputs.keys()].join(', ') || 'none'})`,
      );
    }
    if (found.length > 1) fail(`more than one token embedding: ${found.map((f) => label(f.gather)).join(', ')}; lmflash reads single-embedding decoders`);
    const f = found[0];
    const type = g.inputs.get(f.tokenInput)!.elemType;
    if (type !== DT.INT64 && type !== DT.INT32) fail(`the token-id input "${f.tokenInput}" is ${dtypeName(type)}; expected int64 (or int32)`);
    return f;
  }

  /** The residual Add fed by stream tensor x: (x + branchOut). */
  private findResidual(x: string, l: number, what: string): { add: GNode; branchOut: string } | null {
    const g = this.g;
    const adds = (g.consumers.get(x) ?? []).filter((n) => n.op === 'Add' && n.inputs.some((i) => i !== x && !g.isConst(g.followValue(i))));
    if (adds.length === 0) return null;
    if (adds.length > 1) fail(`layer ${l}: the stream "${x}" feeds several Adds (${adds.map(label).join(', ')}), so the ${what} residual is ambiguous`);
    const add = adds[0];
    const other = add.inputs[0] === x ? add.inputs[1] : add.inputs[0];
    return { add, branchOut: other };
  }

  /** Nodes between stream tensor x and the block's output y. */
  private branch(x: string, y: string): Branch {
    const g = this.g;
    // Which tensors depend on x: forward from x.
    const dep = new Set<string>([x]);
    const queue = [x];
    while (queue.length > 0) {
      const t = queue.pop()!;
      for (const c of g.consumers.get(t) ?? []) {
        for (const o of c.outputs) {
          if (o && !dep.has(o)) {
            dep.add(o);
            queue.push(o);
          }
        }
      }
    }
    const mainSet = new Set<GNode>();
    const aux = new Set<GNode>();
    const seen = new Set<string>();
    const stack = [y];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (seen.has(t) || t === x) continue;
      seen.add(t);
      const p = g.producer.get(t);
      if (!p) continue;
      if (p.outputs.some((o) => dep.has(o))) mainSet.add(p);
      else aux.add(p);
      for (const i of p.inputs) if (i) stack.push(i);
    }
    const main = g.nodes.filter((n) => mainSet.has(n));
    return { main, mainSet, aux };
  }

  /** Nodes of `within` on a path from tensor `from` to tensor `to` (both directions restricted to `within`). */
  private between(from: string, to: string, within: Set<GNode>): Set<GNode> {
    const g = this.g;
    const fwd = new Set<GNode>();
    const reach = new Set<string>([from]);
    const queue = [from];
    while (queue.length > 0) {
      const t = queue.pop()!;
      for (const c of g.consumers.get(t) ?? []) {
        if (!within.has(c) || fwd.has(c)) continue;
        fwd.add(c);
        for (const o of c.outputs) if (o && !reach.has(o)) {
          reach.add(o);
          queue.push(o);
        }
      }
    }
    const out = new Set<GNode>();
    const seen = new Set<string>();
    const stack = [to];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (seen.has(t) || t === from) continue;
      seen.add(t);
      const p = g.producer.get(t);
      if (!p || !fwd.has(p)) continue;
      out.add(p);
      for (const i of p.inputs) if (i) stack.push(i);
    }
    return out;
  }

  /** Tensors reachable from `from` through nodes of `within`. */
  private reach(from: string, within: Set<GNode>): Set<string> {
    const reach = new Set<string>([from]);
    const queue = [from];
    while (queue.length > 0) {
      const t = queue.pop()!;
      for (const c of this.g.consumers.get(t) ?? []) {
        if (!within.has(c)) continue;
        for (const o of c.outputs) if (o && !reach.has(o)) {
          reach.add(o);
          queue.push(o);
        }
      }
    }
    return reach;
  }

  /**
   * The block's weight MatMuls: the output one (producing y) and the input
   * ones (reading the normed stream n), with the norm between x and n.
   */
  private projections(x: string, y: string, b: Branch, l: number, what: string) {
    const g = this.g;
    const projs = new Map<GNode, Projection>();
    for (const n of b.main) {
      const p = asProjection(g, n);
      if (p) projs.set(n, p);
    }
    const outNode = g.producer.get(g.followValue(y));
    const outProj = outNode ? projs.get(outNode) : undefined;
    if (!outProj) {
      fail(
        `layer ${l} ${what}: the block output "${y}" comes from ${outNode ? label(outNode) : 'no node'}, not from a weight MatMul ` +
          `(${what === 'attention' ? 'o_proj / wo' : 'down_proj / w2'})`,
      );
    }
    const inputs: Projection[] = [];
    for (const p of projs.values()) {
      if (p === outProj) continue;
      const upstream = this.between(x, p.act, b.mainSet);
      const viaOther = [...upstream].some((n) => projs.has(n));
      if (viaOther) fail(`layer ${l} ${what}: unexpected weight MatMul ${label(p.node)} in the middle of the block; lmflash does not know its role`);
      inputs.push(p);
    }
    if (inputs.length === 0) fail(`layer ${l} ${what}: no weight MatMul reads the normed stream`);
    const n = g.followValue(inputs[0].act);
    for (const p of inputs) {
      if (g.followValue(p.act) !== n) {
        fail(`layer ${l} ${what}: the projections read different tensors ("${inputs[0].act}" and "${p.act}"); expected one normed stream`);
      }
    }
    return { outProj: outProj!, inputs, n };
  }

  /** Splits of a fused projection's output (Split or Slice on the feature axis), or the whole projection. */
  private parts(p: Projection, l: number, what: string): Part[] {
    const g = this.g;
    const out = p.node.outputs[0];
    const cons = g.consumers.get(out) ?? [];
    const splitters = cons.filter((c) => c.op === 'Split' || c.op === 'Slice');
    if (splitters.length === 0) return [{ proj: p, r0: 0, r1: p.outFeatures, out, fused: false }];
    if (splitters.length !== cons.length) {
      fail(`layer ${l} ${what}: the output of ${label(p.node)} is both split and used whole; lmflash reads a fused projection only when all of it is split`);
    }
    const rows = p.outFeatures;
    const lastAxis = (axis: number) => axis === -1 || axis === this.streamRank - 1;
    const parts: Part[] = [];
    for (const s of splitters) {
      if (s.op === 'Split') {
        const axis = attrInt(s, 'axis', 0);
        if (!lastAxis(axis)) fail(`layer ${l} ${what}: ${label(s)} splits the fused projection along axis ${axis}, not along its features (the last axis)`);
        let sizes = s.inputs[1] ? g.constInts(s.inputs[1]) : attrInts(s, 'split');
        if (s.inputs[1] && !sizes) fail(`layer ${l} ${what}: ${label(s)} has computed split sizes; lmflash needs them constant`);
        if (!sizes) {
          const k = s.outputs.length;
          if (rows % k !== 0) fail(`layer ${l} ${what}: ${label(s)} splits ${rows} features into ${k} equal parts`);
          sizes = Array(k).fill(rows / k);
        }
        if (sizes!.reduce((a, c) => a + c, 0) !== rows) fail(`layer ${l} ${what}: ${label(s)} splits ${rows} features into [${sizes!.join(', ')}]`);
        let r = 0;
        sizes!.forEach((size, k) => {
          parts.push({ proj: p, r0: r, r1: r + size, out: s.outputs[k], fused: true });
          r += size;
        });
      } else {
        const starts = s.inputs[1] ? g.constInts(s.inputs[1]) : attrInts(s, 'starts');
        const ends = s.inputs[2] ? g.constInts(s.inputs[2]) : attrInts(s, 'ends');
        const axes = s.inputs[3] ? g.constInts(s.inputs[3]) : (attrInts(s, 'axes') ?? (starts ? starts.map((_, i) => i) : null));
        const steps = s.inputs[4] ? g.constInts(s.inputs[4]) : null;
        if (!starts || !ends || !axes || starts.length !== 1 || !lastAxis(axes[0]) || (steps && steps[0] !== 1)) {
          fail(`layer ${l} ${what}: ${label(s)} slices the fused projection other than by constant ranges of its features (the last axis, step 1)`);
        }
        const clamp = (v: number) => Math.min(rows, Math.max(0, v < 0 ? v + rows : v));
        parts.push({ proj: p, r0: clamp(starts![0]), r1: clamp(ends![0]), out: s.outputs[0], fused: true });
      }
    }
    parts.sort((a, b) => a.r0 - b.r0);
    return parts;
  }

  /** The RMSNorm between stream x and normed tensor n: weight and epsilon. */
  private readNorm(x: string, n: string, within: Set<GNode>, where: string, extraOps: Set<string> = new Set()): { weight: Float32Array; eps: number; weightName: string } {
    const g = this.g;
    const region = [...this.between(x, n, within)].sort((a, b) => a.index - b.index);
    if (region.length === 0) fail(`${where}: no RMSNorm between the stream and the projections`);
    for (const node of region) {
      if (!NORM_OPS.has(node.op) && !extraOps.has(node.op)) {
        fail(
          `${where}: ${label(node)} is not part of an RMSNorm (w·x/sqrt(mean(x²)+eps)); ` +
            'LayerNorm (mean subtraction, bias) and other normalizations are not supported',
        );
      }
    }
    const fused = region.find((r) => r.op === 'RMSNormalization' || r.op === 'SimplifiedLayerNormalization');
    if (fused) {
      const axis = attrInt(fused, 'axis', -1);
      if (axis !== -1 && axis !== this.streamRank - 1) fail(`${where}: ${label(fused)} normalizes over axis ${axis}, not the features`);
      const w = g.followValue(fused.inputs[1]);
      if (!g.isConst(w)) fail(`${where}: the scale of ${label(fused)} is computed, not an initializer`);
      const weight = g.floats(w);
      if (weight.length !== this.dim) fail(`${where}: RMSNorm weight "${w}" has ${weight.length} values but dim is ${this.dim}`);
      return { weight, eps: attrFloat(fused, 'epsilon', 1e-5), weightName: w };
    }
    const means = region.filter((r) => r.op === 'ReduceMean');
    if (means.length !== 1) fail(`${where}: expected one ReduceMean (mean of x²) in the RMSNorm, found ${means.length}`);
    const mean = means[0];
    const axes = mean.inputs[1] ? g.constInts(mean.inputs[1]) : attrInts(mean, 'axes');
    if (!axes || axes.length !== 1 || !(axes[0] === -1 || axes[0] === this.streamRank - 1) || attrInt(mean, 'keepdims', 1) !== 1) {
      fail(`${where}: ${label(mean)} does not average over the features with keepdims`);
    }
    if (!region.some((r) => r.op === 'Sqrt' || (r.op === 'Pow' && g.constScalar(r.inputs[1]) === -0.5))) {
      fail(`${where}: no square root in the RMSNorm`);
    }
    let weight: Float32Array | null = null;
    let weightName = '';
    let eps: number | null = null;
    for (const node of region) {
      for (const i of node.inputs) {
        const c = g.followValue(i);
        if (!g.isConst(c)) continue;
        const count = elementCount(g.constDims(c));
        if (count === 1) {
          const v = g.constScalar(c)!;
          if (node.op === 'Add') {
            if (eps !== null) fail(`${where}: two epsilons in the RMSNorm (${label(node)})`);
            eps = v;
          } else if (node.op === 'Pow' && ![2, 0.5, -0.5].includes(v)) {
            fail(`${where}: ${label(node)} raises to the power ${v}, which is not part of an RMSNorm`);
          }
          continue;
        }
        if (node.op === 'Mul' && count === this.dim && FLOAT_TYPES.has(g.constType(c)) && weight === null) {
          weight = g.floats(c);
          weightName = c;
          continue;
        }
        if (SELECT_OPS.has(node.op) && !FLOAT_TYPES.has(g.constType(c))) continue; // indices of a position selection
        if (node.op === 'ReduceMean') continue;
        fail(`${where}: ${label(node)} uses "${c}" (shape [${g.constDims(c).join(', ')}]), which is not part of an RMSNorm with a [${this.dim}] weight`);
      }
    }
    if (eps === null) fail(`${where}: the RMSNorm adds no constant epsilon`);
    return { weight: weight ?? new Float32Array(this.dim).fill(1), eps: eps!, weightName };
  }

  private noteEps(eps: number, where: string): void {
    const e = shortestFloat32(eps);
    if (this.eps === null) this.eps = e;
    else if (Math.fround(this.eps) !== Math.fround(e)) fail(`${where}: RMSNorm epsilon ${e} differs from the ${this.eps} of earlier norms; the blob holds one`);
  }

  private checkBias(p: Part, b: Branch, where: string): void {
    const g = this.g;
    for (const c of g.consumers.get(p.out) ?? []) {
      if (c.op !== 'Add' || !b.mainSet.has(c)) continue;
      const other = c.inputs[0] === p.out ? c.inputs[1] : c.inputs[0];
      const op = g.producer.get(other);
      if (g.isConst(g.followValue(other)) || (op && b.aux.has(op))) {
        fail(`${where}: ${label(c)} adds "${other}" to the output of ${label(p.proj.node)} (a bias?); Llama-style models have none and the blob cannot hold one`);
      }
    }
  }

  // -- attention -------------------------------------------------------------

  private readAttention(x: string, y: string, l: number): Pick<LayerWeights, 'attnNorm' | 'wq' | 'wk' | 'wv' | 'wo'> {
    const g = this.g;
    const where = `layer ${l} attention`;
    const b = this.branch(x, y);
    const softmaxes = b.main.filter((n) => n.op === 'Softmax');
    if (softmaxes.length !== 1) {
      fail(`${where}: expected one Softmax in the block ending at "${y}", found ${softmaxes.length}; ${l === 0 ? 'the first residual block must be attention' : 'is it really attention?'}`);
    }
    const softmax = softmaxes[0];
    const axis = softmax.attrs.has('axis') ? attrInt(softmax, 'axis', -1) : g.opset >= 13 ? -1 : 1;
    if (axis !== -1 && axis < 3) fail(`${where}: ${label(softmax)} normalizes over axis ${axis}, not over the keys (the last axis)`);

    const { outProj, inputs, n } = this.projections(x, y, b, l, 'attention');
    const norm = this.readNorm(x, n, b.mainSet, `${where} norm`);
    this.noteEps(norm.eps, where);
    checkName(norm.weightName, 'attn_norm', l, NORM_ROLES, where);
    const parts = inputs.flatMap((p) => this.parts(p, l, 'attention'));
    if (inputs.length === 1 && parts.length > 1) this.fusedQkv = true;

    // q·kᵀ feeds the Softmax, whose output multiplies v.
    const isActMatMul = (m: GNode) => m.op === 'MatMul' && !asProjection(g, m);
    const beforeSoftmax = this.between(x, softmax.inputs[0], b.mainSet);
    const scoreMMs = [...beforeSoftmax].filter(isActMatMul);
    const afterSoftmax = this.reach(softmax.outputs[0], b.mainSet);
    const pvMMs = b.main.filter((m) => isActMatMul(m) && afterSoftmax.has(m.inputs[0]));
    if (scoreMMs.length !== 1 || pvMMs.length !== 1) {
      fail(`${where}: expected one MatMul of q and k before ${label(softmax)} and one of its probabilities and v after it, found ${scoreMMs.length} and ${pvMMs.length}`);
    }
    const scores = scoreMMs[0];
    const pv = pvMMs[0];
    const reaches = parts.map((p) => this.reach(p.out, b.mainSet));
    const partsReaching = (t: string) => parts.filter((_, i) => reaches[i].has(t));
    const pick = (t: string, role: string): Part => {
      const found = partsReaching(t);
      if (found.length !== 1) {
        fail(`${where}: ${found.length === 0 ? 'no' : 'more than one'} projection feeds the ${role} operand of ${label(found.length === 0 ? pv : scores)}; cannot tell q, k and v apart`);
      }
      return found[0];
    };
    const q = pick(scores.inputs[0], 'q (first)');
    const k = pick(scores.inputs[1], 'k (second)');
    const v = pick(pv.inputs[1], 'v (second)');
    if (new Set([q, k, v]).size !== 3 || parts.length !== 3) {
      fail(`${where}: the projections do not map one-to-one onto q, k and v (${parts.length} projection outputs)`);
    }
    for (const [p, role] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
      if (p.proj.inFeatures !== this.dim) {
        fail(`${where}: the ${role} weight "${p.proj.weight.name}" has shape [${g.constDims(p.proj.weight.name).join(', ')}], which does not take the model dim ${this.dim}`);
      }
    }
    for (const p of parts) this.checkBias(p, b, where);
    const maskRegion = this.between(scores.outputs[0], softmax.inputs[0], b.mainSet);
    if (![...maskRegion].some((m) => m.op === 'Add' || m.op === 'Where')) {
      fail(`${where}: nothing masks the scores between ${label(scores)} and ${label(softmax)}; lmflash needs causal attention`);
    }

    // Names, where they say something.
    const roleCheck = (p: Part, role: Role) => {
      if (p.fused) {
        checkName(p.proj.weight.name, 'qkv', l, PROJECTION_ROLES, where);
        checkName(p.proj.node.name, 'qkv', l, PROJECTION_ROLES, where);
      } else {
        checkName(p.proj.weight.name, role, l, PROJECTION_ROLES, where);
        checkName(p.proj.node.name, role, l, PROJECTION_ROLES, where);
      }
    };
    roleCheck(q, 'q');
    roleCheck(k, 'k');
    roleCheck(v, 'v');
    checkName(outProj.weight.name, 'o', l, PROJECTION_ROLES, where);
    checkName(outProj.node.name, 'o', l, PROJECTION_ROLES, where);

    // RoPE on q and k.
    const qPath = this.between(q.out, scores.inputs[0], b.mainSet);
    const kPath = this.between(k.out, scores.inputs[1], b.mainSet);
    const qStyle = this.ropeStyleOf(qPath, reaches[parts.indexOf(q)], `${where} q`);
    const kStyle = this.ropeStyleOf(kPath, reaches[parts.indexOf(k)], `${where} k`);
    if (qStyle !== kStyle) fail(`${where}: q uses ${qStyle} RoPE but k uses ${kStyle}`);
    if (this.ropeStyle && this.ropeStyle !== qStyle) fail(`${where}: RoPE is ${qStyle} here but ${this.ropeStyle} in layer 0`);
    this.ropeStyle = qStyle;
    const hs = this.headSizeOn(qPath, q);
    if (hs !== null) {
      if (this.headSize !== null && this.headSize !== hs) fail(`${where}: heads of ${hs} here but ${this.headSize} in earlier layers`);
      this.headSize = hs;
    }
    if (l === 0) this.findRopeFrequencies(x, qPath, reaches[parts.indexOf(q)]);

    const d = this.dim;
    const rows = (p: Part) => projectionRows(g, p.proj, p.r0, p.r1);
    if (outProj.outFeatures !== d) fail(`${where}: the o weight "${outProj.weight.name}" has shape [${g.constDims(outProj.weight.name).join(', ')}], which does not give the model dim ${d}`);
    if (outProj.inFeatures !== q.r1 - q.r0) fail(`${where}: the o weight "${outProj.weight.name}" takes ${outProj.inFeatures} features but q has ${q.r1 - q.r0}`);
    if (k.r1 - k.r0 !== v.r1 - v.r0) fail(`${where}: k has ${k.r1 - k.r0} features but v has ${v.r1 - v.r0}`);
    return {
      attnNorm: norm.weight,
      wq: rows(q),
      wk: rows(k),
      wv: rows(v),
      wo: projectionRows(g, outProj, 0, d),
    };
  }

  /** Interleaved pairs or rotate-half, from the nodes between a q/k projection and q·kᵀ. */
  private ropeStyleOf(path: Set<GNode>, reach: Set<string>, where: string): RopeStyle {
    const g = this.g;
    const nodes = [...path];
    const lastAxis = (a: number | null | undefined) => a === -1 || a === 3 || a === 4;
    const pairReshape = nodes.some((n) => {
      if (n.op !== 'Reshape') return false;
      const tail = g.constTail(n.inputs[1]);
      return tail !== null && tail[tail.length - 1] === 2;
    });
    const pairSplit = nodes.some((n) => {
      if (n.op !== 'Split' || !lastAxis(attrInt(n, 'axis', 0))) return false;
      const sizes = n.inputs[1] ? g.constInts(n.inputs[1]) : attrInts(n, 'split');
      return sizes !== null && sizes.length === 2 && sizes[0] === 1 && sizes[1] === 1;
    });
    const halfSlice = nodes.some((n) => {
      if (n.op === 'Slice') {
        const axes = n.inputs[3] ? g.constInts(n.inputs[3]) : attrInts(n, 'axes');
        return axes !== null && axes.length === 1 && lastAxis(axes[0]);
      }
      if (n.op === 'Split' && lastAxis(attrInt(n, 'axis', 0))) {
        const sizes = n.inputs[1] ? g.constInts(n.inputs[1]) : attrInts(n, 'split');
        return sizes === null ? n.outputs.length === 2 : sizes.length === 2 && sizes[0] === sizes[1] && sizes[0] > 1;
      }
      return false;
    });
    const neg = nodes.some((n) => n.op === 'Neg');
    const rotates = nodes.some(
      (n) =>
        n.op === 'Mul' &&
        n.inputs.some((i) => !reach.has(i) && !(g.isConst(g.followValue(i)) && elementCount(g.constDims(g.followValue(i))) === 1)),
    );
    if (!rotates) fail(`${where}: no rotary embedding between the projection and q·kᵀ (no multiplication by cos/sin); lmflash needs RoPE`);
    if (pairReshape || pairSplit) return 'interleaved';
    if (neg && halfSlice) return 'rotate-half';
    if (this.meta.config?.rope === 'interleaved') return 'interleaved';
    return fail(
      `${where}: the rotary embedding (${nodes.map(label).slice(0, 6).join(', ')}${nodes.length > 6 ? ', …' : ''}) matches neither the interleaved-pair form ` +
        '(reshape to [..., head_size/2, 2]: llama2.c, Meta) nor the rotate-half form (Slice halves + Neg: Hugging Face)',
    );
  }

  /** Head size from the first Reshape after the q projection ([..., n_heads, head_size]). */
  private headSizeOn(path: Set<GNode>, q: Part): number | null {
    const g = this.g;
    const rows = q.r1 - q.r0;
    const first = [...path].filter((n) => n.op === 'Reshape' && g.followValue(n.inputs[0]) === q.out).sort((a, b) => a.index - b.index)[0];
    if (!first) return null;
    const tail = g.constTail(first.inputs[1]);
    if (!tail || tail.length < 2) return null;
    const n = tail.length;
    if (this.ropeStyle === 'interleaved' && tail[n - 1] === 2 && n >= 3) {
      // [..., n_heads, head_size/2, 2]
      const [heads, halfHs] = [tail[n - 3], tail[n - 2]];
      if (halfHs !== null && halfHs > 0) return 2 * halfHs;
      if (heads !== null && heads > 0 && rows % heads === 0) return rows / heads;
      return null;
    }
    const [h, hs] = [tail[n - 2], tail[n - 1]];
    if (hs !== null && hs > 0 && rows % hs === 0) return hs;
    if (hs === -1 && h !== null && h > 0 && rows % h === 0) return rows / h;
    return null;
  }

  /** rope_theta (and seq_len from a table) from the constants feeding layer 0's q rotation. */
  private findRopeFrequencies(x: string, qPath: Set<GNode>, reach: Set<string>): void {
    const g = this.g;
    const start: string[] = [];
    for (const n of qPath) if (n.op === 'Mul') for (const i of n.inputs) if (!reach.has(i)) start.push(i);
    const consts = new Set<string>();
    const seen = new Set<string>();
    while (start.length > 0) {
      const t = start.pop()!;
      if (seen.has(t) || t === x) continue;
      seen.add(t);
      if (g.isConst(t)) {
        if (FLOAT_TYPES.has(g.constType(t)) && elementCount(g.constDims(t)) > 1) consts.add(t);
        continue;
      }
      // Walk back through whatever computes the tables (also from the stream's shape: Shape is where it stops).
      const p = g.producer.get(t);
      if (!p || p.op === 'Shape' || p.op === 'Size' || asProjection(g, p)) continue;
      for (const i of p.inputs) if (i) start.push(i);
    }
    const hs = this.headSize;
    const cands = [...consts];
    // inv_freq: head_size/2 values, 1 first, decreasing.
    for (const c of cands) {
      const count = elementCount(g.constDims(c));
      if (hs !== null ? count !== hs / 2 : count > 512) continue;
      const v = g.floats(c);
      if (v.length < 2 || v[0] !== 1 || !v.every((f, i) => i === 0 || (f > 0 && f < v[i - 1]))) continue;
      const h = hs ?? 2 * v.length;
      const theta = thetaFromFreqs(Array.from(v), h, 2e-6, v.length - 1);
      if (theta === null) {
        fail(`the RoPE frequencies "${c}" do not follow rope_theta^(-2i/head_size) for any rope_theta (RoPE scaling is not supported)`);
      }
      this.headSize ??= h;
      this.ropeTheta = { value: theta!, source: 'inv_freq' };
      return;
    }
    // cos/sin tables: [positions, width] with row 0 all ones (cos) / zeros (sin), width hs/2 or hs (halves repeated).
    const tables = cands
      .map((c) => ({ c, d: g.constDims(c).filter((n) => n !== 1) }))
      .filter((t) => t.d.length === 2 && t.d[0] >= 2 && (hs === null || t.d[1] === hs || t.d[1] === hs / 2))
      .map((t) => ({ ...t, v: g.floats(t.c) }));
    const cosT = tables.find((t) => t.v.subarray(0, t.d[1]).every((x) => x === 1));
    const sinT = tables.find((t) => t !== cosT && t.v.subarray(0, t.d[1]).every((x) => x === 0) && cosT && t.d[0] === cosT.d[0] && t.d[1] === cosT.d[1]);
    if (!cosT || !sinT) return;
    const [rows, width] = cosT.d;
    let half = width;
    if (hs !== null && width === hs) half = hs / 2;
    else if (hs === null && this.ropeStyle === 'rotate-half') half = width / 2;
    const h = hs ?? 2 * half;
    const freqs = Array.from({ length: half }, (_, i) => Math.atan2(sinT.v[width + i], cosT.v[width + i]));
    const theta = thetaFromFreqs(freqs, h, 2e-6, 1);
    if (theta === null) fail(`the RoPE tables "${cosT.c}" and "${sinT.c}" do not follow rope_theta^(-2i/head_size) for any rope_theta (RoPE scaling is not supported)`);
    this.headSize ??= h;
    this.ropeTheta = { value: theta!, source: 'rope table' };
    this.tableRows = rows;
  }

  // -- feed-forward ------------------------------------------------------------

  private readFeedForward(x: string, y: string, l: number): Pick<LayerWeights, 'ffnNorm' | 'w1' | 'w2' | 'w3'> {
    const g = this.g;
    const where = `layer ${l} feed-forward`;
    const b = this.branch(x, y);
    const { outProj, inputs, n } = this.projections(x, y, b, l, 'feed-forward');
    const norm = this.readNorm(x, n, b.mainSet, `${where} norm`);
    this.noteEps(norm.eps, where);
    checkName(norm.weightName, 'ffn_norm', l, NORM_ROLES, where);
    const normNodes = this.between(x, n, b.mainSet);
    for (const node of b.main) {
      if (normNodes.has(node) || asProjection(g, node)) continue;
      if (!FFN_OPS.has(node.op)) {
        fail(`${where}: ${label(node)} is not part of a SwiGLU feed-forward (w2·(silu(w1·x) ⊙ w3·x)); other activations are not supported`);
      }
    }
    const parts = inputs.flatMap((p) => this.parts(p, l, 'feed-forward'));
    if (inputs.length === 1 && parts.length > 1) this.fusedGateUp = true;
    if (parts.length !== 2) fail(`${where}: expected two input projections (gate and up), found ${parts.length}`);
    const sigmoids = b.main.filter((m) => m.op === 'Sigmoid');
    if (sigmoids.length !== 1) fail(`${where}: expected one Sigmoid (SiLU of the gate), found ${sigmoids.length}`);
    const reaches = parts.map((p) => this.reach(p.out, b.mainSet));
    const gates = parts.filter((_, i) => reaches[i].has(sigmoids[0].inputs[0]));
    if (gates.length !== 1) fail(`${where}: cannot tell the gate from the up projection (${gates.length} of them feed ${label(sigmoids[0])})`);
    const gate = gates[0];
    const up = parts.find((p) => p !== gate)!;
    for (const p of parts) this.checkBias(p, b, where);
    const roleCheck = (p: Part, role: Role) => {
      const r = p.fused ? 'gate_up' : role;
      checkName(p.proj.weight.name, r, l, PROJECTION_ROLES, where);
      checkName(p.proj.node.name, r, l, PROJECTION_ROLES, where);
    };
    roleCheck(gate, 'gate');
    roleCheck(up, 'up');
    checkName(outProj.weight.name, 'down', l, PROJECTION_ROLES, where);
    checkName(outProj.node.name, 'down', l, PROJECTION_ROLES, where);
    const d = this.dim;
    const hidden = gate.r1 - gate.r0;
    for (const [p, role] of [[gate, 'gate (w1)'], [up, 'up (w3)']] as const) {
      if (p.proj.inFeatures !== d) fail(`${where}: the ${role} weight "${p.proj.weight.name}" has shape [${g.constDims(p.proj.weight.name).join(', ')}], which does not take the model dim ${d}`);
    }
    if (up.r1 - up.r0 !== hidden) fail(`${where}: gate has ${hidden} features but up has ${up.r1 - up.r0}`);
    if (outProj.inFeatures !== hidden || outProj.outFeatures !== d) {
      fail(`${where}: the down (w2) weight "${outProj.weight.name}" has shape [${g.constDims(outProj.weight.name).join(', ')}], expected to map ${hidden} features to ${d}`);
    }
    return {
      ffnNorm: norm.weight,
      w1: projectionRows(g, gate.proj, gate.r0, gate.r1),
      w3: projectionRows(g, up.proj, up.r0, up.r1),
      w2: projectionRows(g, outProj, 0, d),
    };
  }

  // -- final norm and classifier ---------------------------------------------

  private readHead(x: string): { finalNorm: Float32Array; classifier: Float32Array | null } {
    const g = this.g;
    const outName = g.outputs.includes('logits') ? 'logits' : g.outputs[0];
    if (!outName) fail('the graph has no output');
    let t = outName;
    for (;;) {
      const p = g.producer.get(t);
      if (p && ['Identity', 'Cast', 'Reshape', 'Flatten'].includes(p.op)) t = p.inputs[0];
      else break;
    }
    const producer = g.producer.get(t);
    const cls = producer ? asProjection(g, producer) : null;
    if (!cls) {
      fail(
        `the graph output "${outName}" comes from ${producer ? label(producer) : 'no node'}; lmflash expects raw logits from the classifier MatMul ` +
          '(lm_head / output) on the final norm',
      );
    }
    const b = this.branch(x, cls!.act);
    const norm = this.readNorm(x, cls!.act, b.mainSet, 'final norm', SELECT_OPS);
    this.noteEps(norm.eps, 'final norm');
    const d = this.dim;
    if (cls!.inFeatures !== d) fail(`classifier weight "${cls!.weight.name}" has shape [${g.constDims(cls!.weight.name).join(', ')}], which does not take the model dim ${d}`);
    const emb = this.findEmbedding().embedding;
    const vocab = g.constDims(emb.name)[0];
    if (cls!.outFeatures !== vocab) fail(`classifier weight "${cls!.weight.name}" gives ${cls!.outFeatures} logits but the embedding has ${vocab} tokens`);
    if (cls!.weight.name === emb.name && !cls!.storedInOut) return { finalNorm: norm.weight, classifier: null };
    const w = projectionRows(g, cls!, 0, vocab);
    const e = g.floats(emb.name);
    const same = w.length === e.length && w.every((v, i) => Object.is(v, e[i]));
    return { finalNorm: norm.weight, classifier: same ? null : w };
  }
}

/** Hugging Face q/k rows (per head: the first components of all pairs, then the second) → llama2.c's interleaved pairs. */
export function halfToInterleaved(w: Float32Array, heads: number, hs: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = hs / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let p = 0; p < 2; p++) {
        const src = (h * hs + p * half + i) * cols;
        const dst = (h * hs + 2 * i + p) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** Reads an encoded ONNX model into a float model (and the tokenizer its metadata carries). */
export function importOnnx(bytes: Uint8Array, opts: OnnxImportOptions = {}): OnnxImportResult {
  return new Importer(decodeModel(bytes), opts).run();
}

/** ONNX files are recognised by their extension (protobuf has no magic number). */
export function isOnnxPath(file: string): boolean {
  return file.toLowerCase().endsWith('.onnx');
}

/**
 * Reads external data files named by initializers: relative paths inside the
 * model's folder only (a model file must not make lmflash read elsewhere).
 */
export function externalReaderFor(modelPath: string): ExternalReader {
  const dir = path.dirname(path.resolve(modelPath));
  const cache = new Map<string, Uint8Array>();
  return (location, tensorName) => {
    const target = path.resolve(dir, location);
    if (path.isAbsolute(location) || (target !== dir && !target.startsWith(dir + path.sep))) {
      throw new LmflashError(`initializer "${tensorName}" names the external data file "${location}", outside the model's folder; lmflash only reads external data next to the model`);
    }
    let data = cache.get(target);
    if (!data) {
      if (existsSync(target)) checkInputFile(target, `external data file of "${tensorName}"`); // a missing one is explained below
      try {
        data = readFileSync(target);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new LmflashError(
          `initializer "${tensorName}" keeps its data in "${location}", which ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`} ` +
            `in ${dir}: copy the external data file(s) exported with the model next to it`,
        );
      }
      cache.set(target, data);
    }
    return data;
  };
}

/** One line on how the graph was read, for the convert report. */
export function describeOnnxImport(i: OnnxImportInfo): string {
  const parts = [
    `ONNX model (${i.producer}, opset ${i.opset})`,
    i.rope === 'rotate-half' ? 'rotate-half RoPE (q/k rows permuted to interleaved pairs)' : 'interleaved-pair RoPE',
  ];
  if (i.fusedQkv) parts.push('fused QKV split');
  if (i.fusedGateUp) parts.push('fused gate/up split');
  parts.push(`seq_len from ${i.seqLenSource === 'option' ? '--seq-len' : i.seqLenSource}`, `rope_theta from ${i.ropeThetaSource}`);
  return parts.join(', ');
}
