/**
 * A synthetic model of stories15M's shape (llama2.c's 15M TinyStories model:
 * dim 288, 6 layers, 6 heads, hidden 768, vocab 32000, 256 positions, shared
 * classifier), random weights and a made-up 32000-token vocabulary: what
 * matters for flash and RAM is the shape, not the values. Built in memory by
 * tests/int4.test.ts and the bench (bench/int4.ts); nothing is written to the
 * repository.
 */
import type { FloatModel, LayerWeights, ModelConfig } from '../src/model.js';
import { modelTensorSpecs } from '../src/model.js';
import { seededRandom } from '../src/random.js';
import { buildTokenizerData, llamaControlAndBytePieces, PIECE_TEXT, TOKENIZER_FLAG_DUMMY_PREFIX, type TokenizerData } from '../src/tokenizer.js';

export const STORIES15M_CONFIG: ModelConfig = {
  dim: 288,
  hiddenDim: 768,
  nLayers: 6,
  nHeads: 6,
  nKvHeads: 6,
  vocabSize: 32000,
  seqLen: 256,
  sharedClassifier: true,
  ropeTheta: 10000,
  normEps: 1e-5,
};

/** Uniform weights of std ~1/sqrt(cols), norms of 1. */
export function stories15mShapedModel(seed = 15, config: ModelConfig = STORIES15M_CONFIG): FloatModel {
  const next = seededRandom(seed);
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, () => ({}) as LayerWeights);
  let tokenEmbedding = new Float32Array(0);
  let finalNorm = new Float32Array(0);
  for (const s of modelTensorSpecs(config)) {
    const v = new Float32Array(s.rows * s.cols);
    if (s.kind === 'vector') v.fill(1);
    else {
      const amp = 1.7 / Math.sqrt(s.cols);
      for (let i = 0; i < v.length; i++) v[i] = (next() * 2 - 1) * amp;
    }
    if (s.key === 'tokenEmbedding') tokenEmbedding = v;
    else if (s.key === 'finalNorm') finalNorm = v;
    else if (s.key !== 'classifier') layers[s.layer as number][s.key] = v;
  }
  return { config, weights: { tokenEmbedding, layers, finalNorm, classifier: null } };
}

/** A llama2.c-like vocabulary of `size` tokens: 3 control, 256 byte fallback, the rest distinct text pieces of 2-7 letters. */
export function syntheticTokenizer(size: number, seed = 15): TokenizerData {
  const next = seededRandom(seed);
  const { pieces, kinds, scores, byteIds } = llamaControlAndBytePieces();
  const seen = new Set<string>();
  while (pieces.length < size) {
    const len = 2 + Math.floor(next() * 6);
    const text = (next() < 0.5 ? ' ' : '') + Array.from({ length: len }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join('');
    if (seen.has(text)) continue;
    seen.add(text);
    pieces.push(Buffer.from(text));
    kinds.push(PIECE_TEXT);
    scores.push(-pieces.length);
  }
  return buildTokenizerData({ pieces, scores, kinds, byteIds, bosId: 1, eosId: 2, unkId: 0, flags: TOKENIZER_FLAG_DUMMY_PREFIX });
}
