/**
 * Fine-tuning pairs: a JSON Lines file, one {"prompt": "...", "completion": "..."}
 * object a line (blank lines skipped, other keys ignored). Each pair becomes
 * one example:
 *
 *   BOS + encode(prompt) + encode(completion, no dummy prefix) + BOS
 *
 * The prompt is encoded exactly as `lmflash generate -p PROMPT` encodes it
 * (BOS, dummy prefix), so the fine-tuned model sees at run time what it was
 * trained on; the completion continues the text with no space added (begin
 * it with one if the text should have one). The end marker is BOS because
 * that is where llama2.c's stories end (documents are packed BOS-separated)
 * and the C core stops generating at BOS or EOS; a tokenizer without BOS gets
 * no end marker. Only the completion and the end marker are scored: the
 * prompt's tokens are inputs, never targets.
 */
import { LmflashError } from '../src/errors.js';
import { NO_ID, Tokenizer, type TokenizerData } from '../src/tokenizer.js';
import { seededRandom } from '../src/random.js';
import { stepSeed, type Batch } from './train/data.js';

export interface Pair {
  prompt: string;
  completion: string;
  /** 0-based line of the file it came from */
  line: number;
}

/** Every pair of a JSON Lines text; any bad line is refused, naming it. */
export function parsePairs(text: string, name: string): Pair[] {
  const pairs: Pair[] = [];
  const hint = 'each line must be a JSON object {"prompt": "...", "completion": "..."}';
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim().length === 0) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new LmflashError(`line ${i + 1} of ${name} is not JSON (${(err as Error).message}): ${hint}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new LmflashError(`line ${i + 1} of ${name} is not a JSON object: ${hint}`);
    const o = v as Record<string, unknown>;
    for (const key of ['prompt', 'completion']) {
      if (!(key in o)) throw new LmflashError(`line ${i + 1} of ${name} has no "${key}": ${hint}`);
      if (typeof o[key] !== 'string') throw new LmflashError(`line ${i + 1} of ${name}: "${key}" is not a string: ${hint}`);
    }
    if ((o.completion as string).length === 0) throw new LmflashError(`line ${i + 1} of ${name} has an empty completion: there is nothing to learn from it`);
    pairs.push({ prompt: o.prompt as string, completion: o.completion as string, line: i });
  });
  if (pairs.length === 0) throw new LmflashError(`${name} holds no pairs: ${hint}, one a line`);
  return pairs;
}

/** The project's split (0-based line % 10 == 0 held out), by the pairs' lines in their file. */
export function splitPairs(pairs: readonly Pair[]): { train: Pair[]; heldOut: Pair[] } {
  return { train: pairs.filter((p) => p.line % 10 !== 0), heldOut: pairs.filter((p) => p.line % 10 === 0) };
}

export interface Example {
  /** BOS + prompt + completion + end marker */
  tokens: Int32Array;
  /** tokens before the completion (BOS + prompt): never scored */
  promptTokens: number;
}

/** The end marker fine-tuning appends: the tokenizer's BOS (see the module comment), or none. */
export function endMarker(t: TokenizerData): number | null {
  return t.bosId === NO_ID ? null : t.bosId;
}

/** Each pair as tokens; a pair longer than the context (`seqLen` inputs) is refused, naming its line. */
export function encodePairs(pairs: readonly Pair[], tokenizer: TokenizerData, seqLen: number, name: string): Example[] {
  const tok = new Tokenizer(tokenizer);
  const end = endMarker(tokenizer);
  return pairs.map((p) => {
    const prompt = tok.encode(p.prompt, { bos: true });
    const completion = tok.encode(p.completion, { bos: false, dummyPrefix: false });
    const ids = [...prompt, ...completion, ...(end === null ? [] : [end])];
    if (ids.length - 1 > seqLen) {
      throw new LmflashError(
        `line ${p.line + 1} of ${name} is ${ids.length} tokens with BOS${end === null ? '' : ' and the end marker'}, more than the model's context of ${seqLen} + 1: shorten the prompt or the completion`,
      );
    }
    if (ids.length < 2) throw new LmflashError(`line ${p.line + 1} of ${name} encodes to no tokens to predict`);
    return { tokens: Int32Array.from(ids), promptTokens: prompt.length };
  });
}

/** Window length that holds every example's inputs (its tokens but the last). */
export function windowFor(examples: readonly Example[]): number {
  return Math.max(...examples.map((e) => e.tokens.length - 1));
}

/**
 * `examples` one per window of `seq` positions, padded (padding unscored;
 * attention is causal, so it never reaches the example): inputs are the
 * tokens but the last, targets the next token where that is part of the
 * completion or the end marker, -1 elsewhere.
 */
export function fillBatch(examples: readonly Example[], seq: number, into: Batch): void {
  into.inputs.fill(0);
  into.targets.fill(-1);
  examples.forEach((e, b) => {
    const n = e.tokens.length - 1;
    into.inputs.set(e.tokens.subarray(0, n), b * seq);
    for (let i = Math.max(e.promptTokens - 1, 0); i < n; i++) into.targets[b * seq + i] = e.tokens[i + 1];
  });
}

/** The examples of step `step`: `batch` drawn with replacement by the project's PRNG from (seed, step). */
export function drawExamples(examples: readonly Example[], batch: number, seed: number, step: number): Example[] {
  const rand = seededRandom(stepSeed(seed, step));
  return Array.from({ length: batch }, () => examples[Math.floor(rand() * examples.length)]);
}
