/**
 * A model whose greedy output is known in advance: every weight is zero
 * except the token embedding and the classifier, so the residual stream is
 * just the current token's embedding and the next token depends only on the
 * current one (a bigram table). Embedding token t_i as the i-th unit vector
 * and giving t_{i+1} the classifier row of that vector makes the model spell
 * a chosen byte sequence through byte-fallback tokens, then stop with EOS.
 */
import { writeBlob } from '../src/blob.js';
import type { FloatModel, ModelConfig } from '../src/model.js';
import { tinyTokenizer } from './vectors.js';

/** The tiny tokenizer's byte-fallback id for byte b. */
const byteToken = (b: number) => 3 + b;
const EOS = 2;

/** A blob that continues bytes[0] with bytes[1..] (each byte at most once) and then EOS. */
export function chainBlob(bytes: Uint8Array): Buffer {
  if (new Set(bytes).size !== bytes.length) throw new Error('a chain byte may appear only once');
  const dim = 32;
  if (bytes.length > dim) throw new Error('chain too long for the model');
  const config: ModelConfig = {
    dim, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 300, seqLen: 64,
    sharedClassifier: false, ropeTheta: 10000, normEps: 1e-5,
  };
  const V = config.vocabSize;
  const zeros = (n: number) => new Float32Array(n);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const embedding = zeros(V * dim);
  const classifier = zeros(V * dim);
  bytes.forEach((b, i) => {
    embedding[byteToken(b) * dim + i] = 1;
    const next = i + 1 < bytes.length ? byteToken(bytes[i + 1]) : EOS;
    classifier[next * dim + i] = 8;
  });
  const layer = {
    attnNorm: ones(dim), wq: zeros(dim * dim), wk: zeros(dim * dim), wv: zeros(dim * dim), wo: zeros(dim * dim),
    ffnNorm: ones(dim), w1: zeros(32 * dim), w2: zeros(dim * 32), w3: zeros(32 * dim),
  };
  const model: FloatModel = { config, weights: { tokenEmbedding: embedding, layers: [layer], finalNorm: ones(dim), classifier } };
  return writeBlob(model, tinyTokenizer(), { groupSize: 32 }).blob;
}
