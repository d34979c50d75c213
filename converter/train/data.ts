/**
 * Training data: documents (one a line) tokenized with BOS first, as
 * `lmflash eval` scores them, and packed end to end into one token stream
 * (sequence packing: no padding, windows cross document boundaries as in
 * llama2.c's training). Batches are windows at start positions drawn from the
 * project's PRNG seeded by (seed, step), so any step's batch can be made
 * again after a resume without replaying the ones before it.
 */
import { LmflashError } from '../../src/errors.js';
import { seededRandom } from '../../src/random.js';
import { Tokenizer, type TokenizerData } from '../../src/tokenizer.js';

/** All documents, each BOS + its tokens, back to back. */
export function packDocuments(docs: readonly string[], tokenizer: TokenizerData): Int32Array {
  const tok = new Tokenizer(tokenizer);
  const parts = docs.map((d) => tok.encode(d, { bos: true }));
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A different, well-mixed PRNG seed for every (seed, step). */
export function stepSeed(seed: number, step: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  return Math.imul(h, 0x27d4eb2f) >>> 0;
}

export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
}

/** Fills `into` with `batch` windows of `seq` inputs and their next tokens, chosen for `step`. */
export function sampleBatch(stream: Int32Array, batch: number, seq: number, seed: number, step: number, into: Batch): void {
  const starts = stream.length - seq - 1;
  if (starts < 0) throw new LmflashError(`the training text has ${stream.length} tokens, fewer than one window of ${seq + 1}: use a longer text or a smaller --seq`);
  const rand = seededRandom(stepSeed(seed, step));
  for (let b = 0; b < batch; b++) {
    const s = Math.floor(rand() * (starts + 1));
    into.inputs.set(stream.subarray(s, s + seq), b * seq);
    into.targets.set(stream.subarray(s + 1, s + seq + 1), b * seq);
  }
}

/**
 * The validation stream cut into consecutive windows (the last one padded,
 * its padding unscored), so that every validation token is scored once.
 */
export function validationWindows(stream: Int32Array, batch: number, seq: number, maxWindows: number): Batch[] {
  const out: Batch[] = [];
  const windows = Math.min(maxWindows, Math.ceil(Math.max(stream.length - 1, 0) / seq));
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const inputs = new Int32Array(batch * seq);
    const targets = new Int32Array(batch * seq).fill(-1);
    for (let b = 0; b < batch && w0 + b < windows; b++) {
      const s = (w0 + b) * seq;
      const n = Math.min(seq, stream.length - 1 - s);
      inputs.set(stream.subarray(s, s + n), b * seq);
      targets.set(stream.subarray(s + 1, s + 1 + n), b * seq);
    }
    out.push({ inputs, targets });
  }
  return out;
}
