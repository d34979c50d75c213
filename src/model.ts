/**
 * The in-memory float32 model every part of lmflash exchanges: the checkpoint
 * readers produce it, the reference forward pass runs it, the blob writer
 * quantizes it and the blob reader can dequantize back into it.
 */

/** Hyperparameters of a Llama-style transformer (llama2.c's Config plus the constants run.c hard-codes). */
export interface ModelConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** Longest context the model was trained for. */
  seqLen: number;
  /** The classifier is the token embedding (no separate wcls tensor). */
  sharedClassifier: boolean;
  /** RoPE base; llama2.c uses 10000. */
  ropeTheta: number;
  /** RMSNorm epsilon; llama2.c uses 1e-5. */
  normEps: number;
}

/** One transformer layer; matrices are row-major [rows][cols] as in llama2.c (y = W x). */
export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Float32Array; // [nHeads*hs][dim]
  wk: Float32Array; // [nKvHeads*hs][dim]
  wv: Float32Array; // [nKvHeads*hs][dim]
  wo: Float32Array; // [dim][nHeads*hs]
  ffnNorm: Float32Array; // [dim]
  w1: Float32Array; // [hiddenDim][dim]  (gate)
  w2: Float32Array; // [dim][hiddenDim]  (down)
  w3: Float32Array; // [hiddenDim][dim]  (up)
}

export interface ModelWeights {
  tokenEmbedding: Float32Array; // [vocabSize][dim]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [dim]
  /** [vocabSize][dim]; null when config.sharedClassifier (use tokenEmbedding). */
  classifier: Float32Array | null;
}

export interface FloatModel {
  config: ModelConfig;
  weights: ModelWeights;
}

export const DEFAULT_ROPE_THETA = 10000;
export const DEFAULT_NORM_EPS = 1e-5;

/**
 * Upper bounds shared with the C core (docs/blob-format.md): they keep every
 * size computation far from 32-bit overflow. Head size is bounded by the C
 * core's attention scratch.
 */
export const LIMITS = {
  maxDim: 65536,
  maxLayers: 256,
  maxVocab: 2 ** 24,
  maxSeqLen: 2 ** 20,
  maxHeadSize: 256,
} as const;

export function headSize(c: ModelConfig): number {
  return c.dim / c.nHeads;
}

export function kvDim(c: ModelConfig): number {
  return (c.dim / c.nHeads) * c.nKvHeads;
}

/** "dim=64, hidden_dim=172, …" in llama2.c's field names, for error messages. */
export function describeConfig(c: ModelConfig): string {
  return (
    `dim=${c.dim}, hidden_dim=${c.hiddenDim}, n_layers=${c.nLayers}, n_heads=${c.nHeads}, ` +
    `n_kv_heads=${c.nKvHeads}, vocab_size=${c.vocabSize}, seq_len=${c.seqLen}`
  );
}

function isCount(n: number, max: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= max;
}

/**
 * Everything that makes a configuration unusable, as readable sentences
 * (empty when it is fine). Used both on checkpoint headers, where a failure
 * usually means "this is not a checkpoint", and on blobs.
 */
export function configProblems(c: ModelConfig): string[] {
  const p: string[] = [];
  if (!isCount(c.dim, LIMITS.maxDim)) p.push(`dim ${c.dim} is not in 1..${LIMITS.maxDim}`);
  if (!isCount(c.hiddenDim, LIMITS.maxDim)) p.push(`hidden_dim ${c.hiddenDim} is not in 1..${LIMITS.maxDim}`);
  if (!isCount(c.nLayers, LIMITS.maxLayers)) p.push(`n_layers ${c.nLayers} is not in 1..${LIMITS.maxLayers}`);
  if (!isCount(c.nHeads, LIMITS.maxDim)) p.push(`n_heads ${c.nHeads} is not a positive count`);
  if (!isCount(c.nKvHeads, LIMITS.maxDim)) p.push(`n_kv_heads ${c.nKvHeads} is not a positive count`);
  if (!isCount(c.vocabSize, LIMITS.maxVocab)) p.push(`vocab_size ${c.vocabSize} is not in 1..2^24`);
  if (!isCount(c.seqLen, LIMITS.maxSeqLen)) p.push(`seq_len ${c.seqLen} is not in 1..2^20`);
  if (p.length === 0) {
    if (c.dim % c.nHeads !== 0) p.push(`dim ${c.dim} is not a multiple of n_heads ${c.nHeads}`);
    else {
      const hs = c.dim / c.nHeads;
      if (hs % 2 !== 0) p.push(`head size ${hs} (dim / n_heads) is odd, RoPE needs pairs`);
      if (hs > LIMITS.maxHeadSize) p.push(`head size ${hs} is larger than ${LIMITS.maxHeadSize}`);
    }
    if (c.nHeads % c.nKvHeads !== 0) p.push(`n_heads ${c.nHeads} is not a multiple of n_kv_heads ${c.nKvHeads}`);
  }
  if (!(c.ropeTheta > 0 && Number.isFinite(c.ropeTheta))) p.push(`rope_theta ${c.ropeTheta} is not a positive number`);
  if (!(c.normEps > 0 && Number.isFinite(c.normEps))) p.push(`norm_eps ${c.normEps} is not a positive number`);
  return p;
}

/** The layer matrices and vectors, in the blob's canonical per-layer order (roles 2..10). */
export const LAYER_TENSORS = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as const;
export type LayerTensorName = (typeof LAYER_TENSORS)[number];

/** One tensor of the model with its shape; `vector` tensors are the RMSNorm weights (kept f32). */
export interface TensorSpec {
  /** Human name, e.g. "token_embedding", "layers.3.w2". */
  name: string;
  /** Which weight: a top-level tensor or a layer tensor. */
  key: 'tokenEmbedding' | 'finalNorm' | 'classifier' | LayerTensorName;
  /** Layer index, or null for tensors outside the layers. */
  layer: number | null;
  rows: number;
  cols: number;
  kind: 'matrix' | 'vector';
}

const SNAKE: Record<LayerTensorName, string> = {
  attnNorm: 'attn_norm',
  wq: 'wq',
  wk: 'wk',
  wv: 'wv',
  wo: 'wo',
  ffnNorm: 'ffn_norm',
  w1: 'w1',
  w2: 'w2',
  w3: 'w3',
};

/** Shape of a layer tensor (rows × cols). */
export function layerTensorShape(c: ModelConfig, key: LayerTensorName): [number, number] {
  const hs = headSize(c);
  switch (key) {
    case 'attnNorm':
    case 'ffnNorm':
      return [1, c.dim];
    case 'wq':
      return [c.nHeads * hs, c.dim];
    case 'wk':
    case 'wv':
      return [c.nKvHeads * hs, c.dim];
    case 'wo':
      return [c.dim, c.nHeads * hs];
    case 'w1':
    case 'w3':
      return [c.hiddenDim, c.dim];
    case 'w2':
      return [c.dim, c.hiddenDim];
  }
}

/**
 * Every tensor of the model in the blob's canonical order: token embedding,
 * then per layer attn_norm wq wk wv wo ffn_norm w1 w2 w3, then final_norm,
 * then the classifier when it is not shared.
 */
export function modelTensorSpecs(c: ModelConfig): TensorSpec[] {
  const specs: TensorSpec[] = [
    { name: 'token_embedding', key: 'tokenEmbedding', layer: null, rows: c.vocabSize, cols: c.dim, kind: 'matrix' },
  ];
  for (let l = 0; l < c.nLayers; l++) {
    for (const key of LAYER_TENSORS) {
      const [rows, cols] = layerTensorShape(c, key);
      const kind = key === 'attnNorm' || key === 'ffnNorm' ? 'vector' : 'matrix';
      specs.push({ name: `layers.${l}.${SNAKE[key]}`, key, layer: l, rows, cols, kind });
    }
  }
  specs.push({ name: 'final_norm', key: 'finalNorm', layer: null, rows: 1, cols: c.dim, kind: 'vector' });
  if (!c.sharedClassifier) {
    specs.push({ name: 'classifier', key: 'classifier', layer: null, rows: c.vocabSize, cols: c.dim, kind: 'matrix' });
  }
  return specs;
}

/** The weights of one tensor spec. */
export function getWeight(w: ModelWeights, spec: TensorSpec): Float32Array {
  switch (spec.key) {
    case 'tokenEmbedding':
      return w.tokenEmbedding;
    case 'finalNorm':
      return w.finalNorm;
    case 'classifier':
      if (!w.classifier) throw new Error('model has no separate classifier');
      return w.classifier;
    default:
      return w.layers[spec.layer as number][spec.key];
  }
}

/** Total number of float parameters (counting a shared classifier once). */
export function parameterCount(c: ModelConfig): number {
  return modelTensorSpecs(c).reduce((n, s) => n + s.rows * s.cols, 0);
}

/**
 * Throws unless every weight array has the length its spec implies: a cheap
 * guard against a hand-built or mis-read model reaching the writer or the
 * forward pass.
 */
export function checkModelShapes(m: FloatModel): void {
  const { config: c, weights: w } = m;
  if (w.layers.length !== c.nLayers) {
    throw new Error(`model has ${w.layers.length} layers but its config says n_layers=${c.nLayers}`);
  }
  if (c.sharedClassifier !== (w.classifier === null)) {
    throw new Error('model config sharedClassifier disagrees with the presence of a classifier tensor');
  }
  for (const spec of modelTensorSpecs(c)) {
    const a = getWeight(w, spec);
    if (a.length !== spec.rows * spec.cols) {
      throw new Error(`tensor ${spec.name} has ${a.length} values, expected ${spec.rows}×${spec.cols}`);
    }
  }
}
