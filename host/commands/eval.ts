/**
 * `lmflash eval <blob> --text <file> [--reference <checkpoint>] [--split test|train|all]`:
 * perplexity of the blob on a text (one document per line), run on the native
 * core; with a float llama2.c checkpoint as reference, also how far the quantized
 * model is from it: mean KL(float ‖ blob) per token, top-1 agreement and the
 * float model's perplexity. N-gram blobs (architecture 2) are scored as KenLM's
 * query scores a text: every word and one </s> per line, from the model's own
 * log-probabilities (no renormalization), with perplexity including and
 * excluding out-of-vocabulary words.
 */
import type { Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import { aboutFile, readInputFile, readInputText } from '../../src/input-file.js';
import { readLlama2cCheckpoint } from '../../src/llama2c.js';
import { NgramLm, type NgramView } from '../../src/ngram.js';
import { ReferenceModel } from '../../src/reference.js';
import { NO_ID, Tokenizer } from '../../src/tokenizer.js';
import type { CliIO } from '../io.js';
import { runNativeRows } from '../native.js';
import { Progress, ProgressCounter, stderrIsTty } from '../progress.js';
import { readAnyBlobFile } from './inspect.js';
import { parsePositiveInt } from '../option-parsers.js';

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
  architecture: 'transformer' | 'ngram';
  documents: number;
  tokens: number;
  /** including out-of-vocabulary tokens (those the tokenizer made <unk>) */
  perplexity: number;
  /** over the tokens that are not <unk> (KenLM's "excluding OOVs") */
  perplexityExcludingOov: number;
  /** predicted tokens that are <unk> */
  oov: number;
  /** N-gram blobs: who computed the log-probabilities (the TypeScript scorer gives the core's floats bit for bit) */
  scorer?: 'typescript' | 'native';
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

/**
 * Runs every position of every sequence through the native core and hands
 * each position's int8 logits to onRow as they arrive: one row in memory at a
 * time, whatever the corpus length and vocabulary.
 */
export async function forEachNativeRow(blob: string, seqs: number[][], vocab: number, onRow: (logits: Float32Array, seq: number[], pos: number) => void): Promise<void> {
  for (const batch of batches(seqs)) {
    const expected = batch.reduce((n, s) => n + s.length, 0);
    let seqIndex = 0;
    let pos = 0;
    const { rows } = await runNativeRows(blob, ['--tokens', batch.map((s) => s.join(',')).join(';'), '--logits'], vocab * 4, (logits) => {
      if (seqIndex === batch.length) return; // too many rows: reported below
      onRow(logits, batch[seqIndex], pos);
      if (++pos === batch[seqIndex].length) {
        seqIndex++;
        pos = 0;
      }
    });
    if (rows !== expected) throw new LmflashError(`the native decoder returned ${rows} logit rows for ${expected} positions`);
  }
}

/**
 * The native core's logit of each position's next id, for every prediction of
 * every sequence in order: what an N-gram's perplexity needs (its
 * log-probabilities are the logits), 4 bytes a position through the pipe.
 */
async function forEachNativeTargetLogit(blob: string, seqs: number[][], onLogit: (logit: number, target: number) => void): Promise<void> {
  for (const batch of batches(seqs)) {
    const targets = batch.flatMap((s) => s.slice(1));
    let i = 0;
    const { rows } = await runNativeRows(blob, ['--tokens', batch.map((s) => s.join(',')).join(';'), '--target-logits'], 4, (logit) => {
      if (i < targets.length) onLogit(logit[0], targets[i]);
      i++;
    });
    if (rows !== targets.length) throw new LmflashError(`the native decoder returned ${rows} logits for ${targets.length} predictions`);
  }
}

export interface EvalOptions {
  reference?: string;
  split: Split;
  limit?: number;
  /** N-gram blobs: score through the native core's logits instead of the TypeScript scorer */
  native?: boolean;
  /** where to draw the scoring's progress (none by default) */
  progress?: Progress;
}

/** The predictions to score: every position but the last of each sequence. */
const predictions = (seqs: number[][]) => seqs.reduce((n, s) => n + s.length - 1, 0);

/** Sums of log-probabilities, with and without the <unk> targets. */
class Tally {
  nll = 0;
  nllKnown = 0;
  count = 0;
  oov = 0;
  add(logProb: number, isOov: boolean): void {
    this.nll -= logProb;
    this.count++;
    if (isOov) this.oov++;
    else this.nllKnown -= logProb;
  }
  get perplexity(): number {
    return Math.exp(this.nll / this.count);
  }
  get perplexityExcludingOov(): number {
    return Math.exp(this.nllKnown / (this.count - this.oov));
  }
}

async function readText(textPath: string, split: Split, limit?: number): Promise<string[]> {
  const text = await readInputText(textPath, 'text');
  let docs = splitLines(text, split);
  if (limit) docs = docs.slice(0, limit);
  if (docs.length === 0) throw new LmflashError(`${textPath} has no non-empty lines in the ${split} split`);
  return docs;
}

/**
 * An N-gram blob on a text: each line is <s> words </s>, and every word and
 * the </s> is predicted from what precedes it in its line, as KenLM's query
 * does. The log-probabilities are the model's own (quantized values need not
 * sum to exactly one; KenLM does not renormalize either).
 */
async function evaluateNgram(blobPath: string, view: NgramView, textPath: string, opts: EvalOptions): Promise<EvalResult> {
  if (opts.reference) throw new LmflashError('--reference compares a transformer blob with its float checkpoint; this is an N-gram blob');
  const tok = new Tokenizer(view.tokenizer);
  const t = view.tokenizer;
  const docs = await readText(textPath, opts.split, opts.limit);
  const seqs = docs.map((d) => [...tok.encode(d), t.eosId].slice(0, view.config.seqLen)).filter((s) => s.length > 1);
  const tally = new Tally();
  const isOov = (id: number) => t.unkId !== NO_ID && id === t.unkId;
  const progress = new ProgressCounter(opts.progress ?? null, 'eval', predictions(seqs));
  if (opts.native) {
    await forEachNativeTargetLogit(blobPath, seqs, (logit, target) => {
      tally.add(logit, isOov(target));
      progress.step();
    });
  } else {
    const lm = new NgramLm(view);
    for (const seq of seqs) {
      for (let pos = 0; pos + 1 < seq.length; pos++) {
        lm.forward(seq[pos], pos);
        tally.add(lm.logit(seq[pos + 1]), isOov(seq[pos + 1]));
        progress.step();
      }
    }
  }
  progress.finish();
  return {
    architecture: 'ngram',
    documents: seqs.length,
    tokens: tally.count,
    perplexity: tally.perplexity,
    perplexityExcludingOov: tally.perplexityExcludingOov,
    oov: tally.oov,
    scorer: opts.native ? 'native' : 'typescript',
  };
}

export async function evaluate(blobPath: string, textPath: string, opts: EvalOptions): Promise<EvalResult> {
  const blob = await readAnyBlobFile(blobPath);
  if (blob.kind === 'ngram') return evaluateNgram(blobPath, blob.view, textPath, opts);
  const view = blob.view;
  const tok = new Tokenizer(view.tokenizer);
  const V = view.config.vocabSize;
  const docs = await readText(textPath, opts.split, opts.limit);
  const seqs = docs.map((d) => tok.encode(d).slice(0, view.config.seqLen)).filter((s) => s.length > 1);

  let ref: ReferenceModel | null = null;
  if (opts.reference) {
    const ckptBytes = await readInputFile(opts.reference, 'reference checkpoint');
    const ckpt = aboutFile(opts.reference, () => readLlama2cCheckpoint(ckptBytes));
    const c = ckpt.config;
    const b = view.config;
    if (c.dim !== b.dim || c.nLayers !== b.nLayers || c.vocabSize !== b.vocabSize || c.hiddenDim !== b.hiddenDim)
      throw new LmflashError(`the reference checkpoint (${opts.reference}) is not the model this blob was made from`);
    ref = new ReferenceModel(ckpt);
  }

  const lq = new Float64Array(V);
  const lf = new Float64Array(V);
  const tally = new Tally();
  const progress = new ProgressCounter(opts.progress ?? null, ref ? 'eval + reference' : 'eval', predictions(seqs));
  const unk = view.tokenizer.unkId;
  let nllRef = 0, kl = 0, agree = 0;
  await forEachNativeRow(blobPath, seqs, V, (logits, seq, pos) => {
    if (pos + 1 < seq.length) {
      logSoftmax(logits, lq);
      tally.add(lq[seq[pos + 1]], unk !== NO_ID && seq[pos + 1] === unk);
      if (ref) {
        const fl = ref.forward(seq[pos], pos);
        logSoftmax(fl, lf);
        nllRef -= lf[seq[pos + 1]];
        let k = 0;
        for (let i = 0; i < V; i++) k += Math.exp(lf[i]) * (lf[i] - lq[i]);
        kl += k;
        if (argmax(fl) === argmax(logits)) agree++;
      }
      progress.step();
    }
  });
  progress.finish();
  const count = tally.count;
  const result: EvalResult = {
    architecture: 'transformer',
    documents: seqs.length,
    tokens: count,
    perplexity: tally.perplexity,
    perplexityExcludingOov: tally.perplexityExcludingOov,
    oov: tally.oov,
  };
  if (ref) {
    const perplexity = Math.exp(nllRef / count);
    result.reference = { perplexity, perplexityRatio: result.perplexity / perplexity, meanKl: kl / count, top1Agreement: agree / count };
  }
  return result;
}

export function formatEval(r: EvalResult): string {
  if (r.architecture === 'ngram') {
    return [
      `${r.documents} lines, ${r.tokens} predicted tokens (one </s> a line included), ${r.oov} out of vocabulary`,
      `perplexity including OOVs: ${r.perplexity.toFixed(4)}`,
      `perplexity excluding OOVs: ${r.perplexityExcludingOov.toFixed(4)}`,
      `(log-probabilities from the ${r.scorer === 'native' ? 'native core' : 'TypeScript scorer, identical to the core\'s'})`,
    ].join('\n') + '\n';
  }
  const lines = [`${r.documents} documents, ${r.tokens} predicted tokens`, `perplexity (blob): ${r.perplexity.toFixed(4)}`];
  if (r.oov > 0) lines.push(`${r.oov} predicted tokens are <unk>; perplexity without them: ${r.perplexityExcludingOov.toFixed(4)}`);
  if (r.reference) {
    const f = r.reference;
    lines.push(
      `perplexity (float reference): ${f.perplexity.toFixed(4)}  (blob / float = ${f.perplexityRatio.toFixed(4)})`,
      `mean KL(float || blob): ${f.meanKl.toFixed(5)} nats/token`,
      `top-1 agreement: ${(100 * f.top1Agreement).toFixed(2)}%`,
    );
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command, io: CliIO): void {
  program
    .command('eval')
    .description('perplexity of a blob on a text, and its distance from the float model it came from (transformers) or with and without out-of-vocabulary words (N-grams)')
    .argument('<model>', 'an lmflash blob')
    .requiredOption('--text <file>', 'plain text, one document per line')
    .option('--reference <checkpoint>', 'the float llama2.c checkpoint the blob was converted from')
    .option('--split <which>', 'lines to use: test (index % 10 == 0), train or all', 'all')
    .option('--limit <n>', 'use only the first n documents', parsePositiveInt)
    .option('--native', 'N-gram blobs: take the log-probabilities from the native core (slower; the TypeScript scorer gives the same floats)')
    .option('--json', 'print the figures as JSON')
    .action(async (model: string, opts: { text: string; reference?: string; split: string; limit?: number; native?: boolean; json?: boolean }) => {
      if (!['test', 'train', 'all'].includes(opts.split)) throw new LmflashError(`--split must be test, train or all, not "${opts.split}"`);
      const progress = new Progress(io, { tty: stderrIsTty(io), unit: 'positions', delayMs: 1000 });
      const r = await evaluate(model, opts.text, { reference: opts.reference, split: opts.split as Split, limit: opts.limit, native: opts.native, progress });
      io.out(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatEval(r));
    });
}
