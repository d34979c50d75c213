/**
 * What the int8 KV cache alone costs: the float reference with and without
 * keys and values rounded through int8 (as the C core stores them), over the
 * test split of the samples corpus. Everything else stays float, so the
 * difference is the cache's share of the int8 blob's error.
 */
import { readFileSync } from 'node:fs';
import { splitLines } from '../host/commands/eval.js';
import type { BlobView } from '../src/blob.js';
import { readLlama2cCheckpoint } from '../src/llama2c.js';
import { ReferenceModel, argmax } from '../src/reference.js';
import { Tokenizer } from '../src/tokenizer.js';

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

export function int8KvCost(checkpoint: string, view: BlobView, corpus: string): { meanKl: number; top1: number; positions: number } {
  const model = readLlama2cCheckpoint(readFileSync(checkpoint));
  const exact = new ReferenceModel(model);
  const rounded = new ReferenceModel(model, { int8KvCache: true });
  const tok = new Tokenizer(view.tokenizer);
  let kl = 0, agree = 0, n = 0;
  for (const doc of splitLines(readFileSync(corpus, 'utf8'), 'test')) {
    const ids = tok.encode(doc).slice(0, model.config.seqLen);
    for (let p = 0; p + 1 < ids.length; p++) {
      const f = logSoftmax(exact.forward(ids[p], p));
      const lq = rounded.forward(ids[p], p);
      const q = logSoftmax(lq);
      let k = 0;
      for (let i = 0; i < f.length; i++) k += Math.exp(f[i]) * (f[i] - q[i]);
      kl += k;
      if (argmax(f) === argmax(lq)) agree++;
      n++;
    }
  }
  return { meanKl: kl / n, top1: agree / n, positions: n };
}
