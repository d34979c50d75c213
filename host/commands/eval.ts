/**
 * `lmflash eval <blob> --text <file> [--reference <checkpoint>] [--split test|train|all]`:
 * perplexity of the blob on a text (one document per line), run on the native
 * core; with a float llama2.c checkpoint as reference, also how far the int8
 * model is from it: mean KL(float ‖ int8) per token, top-1 agreement and the
 * float model's perplexity.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import { readLlama2cCheckpoint } from '../../src/llama2c.js';
import { ReferenceModel } from '../../src/reference.js';
import { Tokenizer } from '../../src/tokenizer.js';
import type { CliIO } from '../io.js';
import { runNativeCollect } from '../native.js';
import { parsePositiveInt, readBlobFile } from './inspect.js';

export type Split = 'test' | 'train' | 'all';

/** The project's split: 0-based line index % 10 == 0 is test, the rest train. */
export function splitLines(text: string, split: Split): string[] {
  return text
    .split('\n')
    .map((line, i) => ({ line: line.replace(/\r$/, ''), i }))
    .filter(({ line, i }) => line.length > 0 && (split === 'all' || (split === 'test') === (i % 10 === 0)))
    .map(({ line }) => line);
}

export interface EvalResult {
  documents: number;
  tokens: number;
  perplexity: number;
  reference?: { perplexity: number; perplexityRatio: number; meanKl: number; top1Agreement: number };
}

/** log-softmax of logits at `i`, computed in float64. */
function logSoftmax(logits: Float32Array, out: Float64Array): void {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** Batches of sequences small enough for one command line (Linux caps one argument at 128 KiB). */
function batches(seqs: number[][], maxChars = 100_000): number[][][] {
  const out: number[][][] = [];
  let cur: number[][] = [];
  let chars = 0;
  for (const s of seqs) {
    const len = s.join(',').length + 1;
    if (cur.length > 0 && chars + len > maxChars) {
      out.push(cur);
      cur = [];
      chars = 0;
    }
    cur.push(s);
    chars += len;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Int8 logits of the native core for every position of every sequence, in order. */
async function* nativeLogits(blob: string, seqs: number[][], vocab: number): AsyncGenerator<Float32Array> {
  for (const batch of batches(seqs)) {
    const { stdout } = await runNativeCollect(blob, ['--tokens', batch.map((s) => s.join(',')).join(';'), '--logits']);
    const rows = stdout.length / (vocab * 4);
    const expected = batch.reduce((n, s) => n + s.length, 0);
    if (rows !== expected) throw new LmflashError(`the native decoder returned ${rows} logit rows for ${expected} positions`);
    const all = new Float32Array(stdout.buffer.slice(stdout.byteOffset, stdout.byteOffset + stdout.length));
    for (let r = 0; r < rows; r++) yield all.subarray(r * vocab, (r + 1) * vocab);
  }
}

export async function evaluate(blobPath: string, textPath: string, opts: { reference?: string; split: Split; limit?: number }): Promise<EvalResult> {
  const view = await readBlobFile(blobPath);
  const tok = new Tokenizer(view.tokenizer);
  const V = view.config.vocabSize;
  let docs = splitLines(await readFile(textPath, 'utf8'), opts.split);
  if (opts.limit) docs = docs.slice(0, opts.limit);
  if (docs.length === 0) throw new LmflashError(`${textPath} has no non-empty lines in the ${opts.split} split`);
  const seqs = docs.map((d) => tok.encode(d).slice(0, view.config.seqLen)).filter((s) => s.length > 1);

  let ref: ReferenceModel | null = null;
  if (opts.reference) {
    const ckpt = readLlama2cCheckpoint(await readFile(opts.reference));
    const c = ckpt.config;
    const b = view.config;
    if (c.dim !== b.dim || c.nLayers !== b.nLayers || c.vocabSize !== b.vocabSize || c.hiddenDim !== b.hiddenDim)
      throw new LmflashError(`the reference checkpoint (${opts.reference}) is not the model this blob was made from`);
    ref = new ReferenceModel(ckpt);
  }

  const lq = new Float64Array(V);
  const lf = new Float64Array(V);
  let nll = 0, nllRef = 0, kl = 0, agree = 0, count = 0;
  let seqIndex = 0, pos = 0;
  for await (const logits of nativeLogits(blobPath, seqs, V)) {
    const seq = seqs[seqIndex];
    if (pos + 1 < seq.length) {
      logSoftmax(logits, lq);
      nll -= lq[seq[pos + 1]];
      if (ref) {
        const fl = ref.forward(seq[pos], pos);
        logSoftmax(fl, lf);
        nllRef -= lf[seq[pos + 1]];
        let k = 0;
        for (let i = 0; i < V; i++) k += Math.exp(lf[i]) * (lf[i] - lq[i]);
        kl += k;
        if (argmax(fl) === argmax(logits)) agree++;
      }
      count++;
    }
    if (++pos === seq.length) {
      seqIndex++;
      pos = 0;
    }
  }
  const result: EvalResult = { documents: seqs.length, tokens: count, perplexity: Math.exp(nll / count) };
  if (ref) {
    const perplexity = Math.exp(nllRef / count);
    result.reference = { perplexity, perplexityRatio: result.perplexity / perplexity, meanKl: kl / count, top1Agreement: agree / count };
  }
  return result;
}

export function formatEval(r: EvalResult): string {
  const lines = [`${r.documents} documents, ${r.tokens} predicted tokens`, `perplexity (int8 blob): ${r.perplexity.toFixed(4)}`];
  if (r.reference) {
    const f = r.reference;
    lines.push(
      `perplexity (float reference): ${f.perplexity.toFixed(4)}  (int8 / float = ${f.perplexityRatio.toFixed(4)})`,
      `mean KL(float || int8): ${f.meanKl.toFixed(5)} nats/token`,
      `top-1 agreement: ${(100 * f.top1Agreement).toFixed(2)}%`,
    );
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command, io: CliIO): void {
  program
    .command('eval')
    .description('perplexity of a blob on a text, and its distance from the float model it came from')
    .argument('<model>', 'an lmflash blob')
    .requiredOption('--text <file>', 'plain text, one document per line')
    .option('--reference <checkpoint>', 'the float llama2.c checkpoint the blob was converted from')
    .option('--split <which>', 'lines to use: test (index % 10 == 0), train or all', 'all')
    .option('--limit <n>', 'use only the first n documents', parsePositiveInt)
    .option('--json', 'print the figures as JSON')
    .action(async (model: string, opts: { text: string; reference?: string; split: string; limit?: number; json?: boolean }) => {
      if (!['test', 'train', 'all'].includes(opts.split)) throw new LmflashError(`--split must be test, train or all, not "${opts.split}"`);
      const r = await evaluate(model, opts.text, { reference: opts.reference, split: opts.split as Split, limit: opts.limit });
      io.out(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatEval(r));
    });
}
