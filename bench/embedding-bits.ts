/**
 * What fewer bits in the token embedding alone cost stories260K (docs/hardware.md,
 * "A 15M-class model on an 8 MB board"): the float model with only its
 * embedding rounded, perplexity over the test split of the samples corpus by
 * the TypeScript float reference, against the float model in the same run.
 * Not part of `npm run bench` (about 1.5 minutes of CPU):
 *   npm run build:ts && node dist/bench/embedding-bits.js [GROUP_SIZE]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../converter/convert.js';
import { splitLines } from '../host/commands/eval.js';
import { projectRoot } from '../host/native.js';
import type { FloatModel } from '../src/model.js';
import { dequantizeMatrix, dequantizeMatrix4, quantizeMatrix, quantizeMatrix4 } from '../src/quantize.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer } from '../src/tokenizer.js';

const shared = path.resolve(projectRoot(), '../shared');
const { model, tokenizer } = await loadCheckpoint(path.join(shared, 'models/stories260K.bin'), path.join(shared, 'models/tok512.bin'));
const docs = splitLines(readFileSync(path.join(shared, 'corpora/stories260K-samples.txt'), 'utf8'), 'test');
const tok = new Tokenizer(tokenizer);

/** exp(mean negative log-likelihood) of each next token, every document from position 0. */
function perplexity(m: FloatModel): number {
  const ref = new ReferenceModel(m);
  let nll = 0;
  let n = 0;
  for (const d of docs) {
    const ids = tok.encode(d);
    for (let p = 0; p + 1 < ids.length && p < m.config.seqLen; p++) {
      const logits = ref.forward(ids[p], p);
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      let sum = 0;
      for (const v of logits) sum += Math.exp(v - max);
      nll -= logits[ids[p + 1]] - max - Math.log(sum);
      n++;
    }
  }
  return Math.exp(nll / n);
}

const group = Number(process.argv[2] ?? 64);
const { vocabSize: rows, dim: cols } = model.config;
const e = model.weights.tokenEmbedding;
const variants: [string, Float32Array][] = [
  ['int4, as lmflash writes it (scale search)', dequantizeMatrix4(quantizeMatrix4(e, rows, cols, group))],
  ['int4, rounded to nearest (max/7)', dequantizeMatrix(quantizeMatrix(e, rows, cols, group, 'embedding', 7))],
  ['3-bit, rounded to nearest (max/3)', dequantizeMatrix(quantizeMatrix(e, rows, cols, group, 'embedding', 3))],
];
const float = perplexity(model);
console.log(`stories260K, test split, group size ${group}: float perplexity ${float.toFixed(4)}`);
for (const [name, embedding] of variants) {
  const p = perplexity({ ...model, weights: { ...model.weights, tokenEmbedding: embedding } });
  console.log(`embedding ${name}: ${p.toFixed(4)} = ${(p / float).toFixed(4)} x float`);
}
