/**
 * Deterministic synthetic test vectors: tiny random models packed into blobs,
 * with the expected tokenizations and reference logits. The TypeScript tests
 * use them, and `writeVectors(dir)` puts them on disk so the C reader and
 * decoder can be checked against exactly the same bytes:
 *
 *   LMFLASH_VECTORS_OUT=build/vectors npx vitest run tests/vectors.test.ts
 *
 * The tiny model is chosen to hit the awkward cases: hidden_dim 40 is not a
 * multiple of the group size (tail groups), grouped-query attention (4 heads,
 * 2 kv heads), vocab 300 with byte fallback, a 2-byte text piece, tied merge
 * scores, and both shared and separate classifiers.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../src/atomic-write.js';
import { blobToFloatModel, readBlob, writeBlob, type WeightBits } from '../src/blob.js';
import { modelTensorSpecs, type FloatModel, type LayerWeights, type ModelConfig } from '../src/model.js';
import { generateGreedy, ReferenceModel } from '../src/reference.js';
import {
  buildTokenizerData,
  llamaControlAndBytePieces,
  PIECE_TEXT,
  Tokenizer,
  TOKENIZER_FLAG_DUMMY_PREFIX,
  type TokenizerData,
} from '../src/tokenizer.js';
import { seededRandom } from '../src/random.js';

/** The project's seeded PRNG (mulberry32). */
export const rng = seededRandom;

export const TINY_CONFIG: ModelConfig = {
  dim: 16,
  hiddenDim: 40,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 300,
  seqLen: 64,
  sharedClassifier: true,
  ropeTheta: 10000,
  normEps: 1e-5,
};

/** Single characters (including the 2-byte "é"), then merges in priority order. */
const TINY_SINGLES = [' ', 'a', 'b', 'c', 'd', 'e', 'h', 'i', 'l', 'n', 'o', 'r', 's', 't', 'w', '.', 'é'];
const TINY_MERGES = [
  'he', ' t', ' the', 'at', ' c', ' ca', ' cat', 'an', 'and', ' and', ' a',
  'ab', 'bc', // equal scores: the leftmost pair must win
  'cab', 'hé', 'hél', 'll', 'lo', ' h', 'ha', 'hat', ' hat', 'or', 'orl',
];

/** 3 control tokens, 256 byte-fallback tokens, 41 text pieces = 300, like a llama2.c tokenizer. */
export function tinyTokenizer(): TokenizerData {
  const { pieces, kinds, scores, byteIds } = llamaControlAndBytePieces();
  TINY_SINGLES.forEach((s) => {
    pieces.push(Buffer.from(s));
    kinds.push(PIECE_TEXT);
    scores.push(-1000);
  });
  TINY_MERGES.forEach((s, i) => {
    pieces.push(Buffer.from(s));
    kinds.push(PIECE_TEXT);
    scores.push(s === 'bc' ? -TINY_MERGES.indexOf('ab') : -i);
  });
  if (pieces.length !== TINY_CONFIG.vocabSize) throw new Error(`tiny tokenizer has ${pieces.length} tokens`);
  return buildTokenizerData({ pieces, scores, kinds, byteIds, bosId: 1, eosId: 2, unkId: 0, flags: TOKENIZER_FLAG_DUMMY_PREFIX });
}

/**
 * A random float model: matrices uniform with std ~1/sqrt(cols) and a few
 * 4× outliers so group scales differ; norm weights around 1.
 */
export function tinyModel(seed: number, opts: { sharedClassifier?: boolean; config?: ModelConfig } = {}): FloatModel {
  const config: ModelConfig = { ...(opts.config ?? TINY_CONFIG), sharedClassifier: opts.sharedClassifier ?? true };
  const next = rng(seed);
  const matrix = (rows: number, cols: number) =>
    Float32Array.from({ length: rows * cols }, (_, i) => (next() * 2 - 1) * (1.7 / Math.sqrt(cols)) * (i % 37 === 5 ? 4 : 1));
  const vector = (n: number) => Float32Array.from({ length: n }, () => 1 + (next() * 2 - 1) * 0.2);
  const specs = modelTensorSpecs(config);
  const values = specs.map((s) => (s.kind === 'vector' ? vector(s.cols) : matrix(s.rows, s.cols)));
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, () => ({}) as LayerWeights);
  let tokenEmbedding = new Float32Array(0);
  let finalNorm = new Float32Array(0);
  let classifier: Float32Array | null = null;
  specs.forEach((s, i) => {
    if (s.key === 'tokenEmbedding') tokenEmbedding = values[i];
    else if (s.key === 'finalNorm') finalNorm = values[i];
    else if (s.key === 'classifier') classifier = values[i];
    else layers[s.layer as number][s.key] = values[i];
  });
  return { config, weights: { tokenEmbedding, layers, finalNorm, classifier } };
}

/** Inputs the tokenizer vectors cover (as bytes: one is deliberately invalid UTF-8). */
export const TINY_TEXTS: Uint8Array[] = [
  'the cat',
  'a cat and the hat',
  '',
  '  leading spaces',
  'abcbc',
  '.abc',
  'héllo wörld.',
  '日本',
  'tab\there',
].map((s) => Buffer.from(s, 'utf8') as Uint8Array).concat([Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x41, 0xc3)]);

export interface TestVector {
  name: string;
  seed: number;
  groupSize: number;
  /** The float model before quantization. */
  model: FloatModel;
  blob: Buffer;
  /** Expected encode(text) (BOS first) for each of TINY_TEXTS. */
  encodings: { input: Uint8Array; ids: number[] }[];
  /** Greedy run on the dequantized blob model: prompt, then argmax tokens. */
  prompt: number[];
  steps: number;
  generated: number[];
  /** steps × vocab float32 logits of that run. */
  logits: Float32Array;
}

/** How a vector's matrices are stored (default: all q8, TINY_CONFIG's hidden_dim). */
export interface VectorStorage {
  bits?: WeightBits;
  embeddingBits?: WeightBits;
  hiddenDim?: number;
}

export const VECTOR_SPECS: readonly ({ name: string; groupSize: number; sharedClassifier: boolean } & VectorStorage)[] = [
  { name: 'tiny-g16-shared', groupSize: 16, sharedClassifier: true }, // 40 cols: groups 16, 16, 8
  { name: 'tiny-g32-separate', groupSize: 32, sharedClassifier: false }, // 16 cols: one short group; 40: 32 + 8
  { name: 'tiny-row-shared', groupSize: 48, sharedClassifier: true }, // longer than every row: one scale per row
  { name: 'tiny-g16-q4', groupSize: 16, sharedClassifier: true, bits: 4, embeddingBits: 4 }, // every matrix int4, the embedding too
  // int4 layers, int8 embedding and classifier; w2 rows of 41 columns: an odd row ends in a half-used byte
  { name: 'tiny-g32-q4-odd', groupSize: 32, sharedClassifier: false, bits: 4, embeddingBits: 8, hiddenDim: 41 },
];

/** Builds one vector; everything follows from `seed`. */
export function buildVector(
  name: string,
  seed: number,
  groupSize: number,
  sharedClassifier: boolean,
  steps = 24,
  storage: VectorStorage = {},
): TestVector {
  const config = { ...TINY_CONFIG, hiddenDim: storage.hiddenDim ?? TINY_CONFIG.hiddenDim };
  const model = tinyModel(seed, { sharedClassifier, config });
  const tokenizerData = tinyTokenizer();
  const { blob } = writeBlob(model, tokenizerData, { groupSize, bits: storage.bits, embeddingBits: storage.embeddingBits });
  const view = readBlob(blob);
  const tok = new Tokenizer(view.tokenizer);
  const encodings = TINY_TEXTS.map((input) => ({ input, ids: tok.encode(input) }));
  const prompt = tok.encode('the cat');
  const rm = new ReferenceModel(blobToFloatModel(view));
  const logits = new Float32Array(steps * model.config.vocabSize);
  const generated = generateGreedy(rm, prompt, steps, { onLogits: (pos, l) => logits.set(l, pos * l.length) });
  return { name, seed, groupSize, model, blob, encodings, prompt, steps, generated, logits };
}

export function buildVectors(seed = 1): TestVector[] {
  return VECTOR_SPECS.map((s, i) => buildVector(s.name, seed + i, s.groupSize, s.sharedClassifier, 24, s));
}

/**
 * Writes NAME.blob, NAME.logits.f32 (steps × vocab little-endian float32) and
 * NAME.json (config, prompt, generated, encodings with inputs in hex) per vector.
 */
export async function writeVectors(dir: string, seed = 1): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const v of buildVectors(seed)) {
    const base = path.join(dir, v.name);
    const json = {
      name: v.name,
      seed: v.seed,
      group_size: v.groupSize,
      config: v.model.config,
      blob_bytes: v.blob.length,
      prompt_tokens: v.prompt,
      generated_tokens: v.generated,
      steps: v.steps,
      logits_file: `${v.name}.logits.f32`,
      encodings: v.encodings.map((e) => ({ input_hex: Buffer.from(e.input).toString('hex'), ids: e.ids })),
    };
    await writeFileAtomic(`${base}.blob`, v.blob);
    await writeFileAtomic(`${base}.logits.f32`, new Uint8Array(v.logits.buffer));
    await writeFileAtomic(`${base}.json`, Buffer.from(JSON.stringify(json, null, 2) + '\n'));
    written.push(`${base}.blob`, `${base}.logits.f32`, `${base}.json`);
  }
  return written;
}
