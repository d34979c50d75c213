/**
 * Teacher → N-gram: an N-gram student estimated from a transformer
 * teacher's next-token distributions instead of the text's counts alone.
 *
 * At each position of the text (after `<s> w1 … wp`) the real next token
 * counts (1 - α) and each of the teacher's k most likely next tokens counts
 * α × its probability: expected counts, mixed with the real ones. Teacher
 * samples (sequences the teacher generated) add their tokens as counts of 1,
 * the Monte-Carlo estimate of the same expectation. Weights are scaled and
 * rounded to whole counts (expected-count.ts) and estimated with the same
 * interpolated modified Kneser-Ney as `lmflash train ngram`.
 *
 * Control tokens get no teacher mass: the teacher marks the end of a story,
 * not of a line, so `</s>` keeps its real count only.
 */
import { LmflashError } from '../../src/errors.js';
import { FLOAT_BITS } from '../../src/ngram.js';
import { PIECE_CONTROL, type TokenizerData } from '../../src/tokenizer.js';
import { writeNgramBlob } from './blob.js';
import type { CorpusTokens } from './count.js';
import { estimateKneserNey, type OrderStats } from './estimate.js';
import { countExpected, type Candidate } from './expected-count.js';
import { DEFAULT_SEQ_LEN } from './train.js';
import { buildTrie } from './trie.js';

/**
 * The default teacher weight α per order (index = order), chosen on the dev
 * part of the stories260K train split by bench/distill-ngram.ts (see
 * docs/distill-prune.md). Where the text has many occurrences of every
 * context (order 2: 512 contexts for 338,698 tokens) the real counts are
 * already good and the teacher's bias costs more than its smoothing gains;
 * in the sparse longer contexts the teacher's share pays. Order 1 takes
 * order 2's weight and order 5 order 4's (not measured).
 */
export const TEACHER_WEIGHT_BY_ORDER: readonly number[] = [0, 0.1, 0.1, 0.75, 0.85, 0.85];

export function teacherWeightFor(order: number): number {
  return TEACHER_WEIGHT_BY_ORDER[Math.min(Math.max(order, 1), TEACHER_WEIGHT_BY_ORDER.length - 1)];
}

export interface TeacherNgramOptions {
  order: number;
  /** teacher tokens per position (default 16) */
  topK: number;
  /** α: the teacher's share of each position's count (the command's default: teacherWeightFor(order)) */
  teacherWeight: number;
  /** counts are multiplied by this and rounded (default 10) */
  scale: number;
  /** bits per stored value, 0 / 32 for float32; default 8 */
  quantize?: number;
  seqLen?: number;
}

/** The teacher's top-k at every position of one sentence: ids and probabilities, row p predicting token p. */
export interface TeacherTopK {
  ids: Int32Array; // [positions][k]
  probs: Float32Array; // [positions][k]
  positions: number;
}

/** Top-k of softmax(logits) over the tokens that are not control tokens (probabilities of the full softmax). */
export function topKOf(logits: Float32Array, k: number, kinds: Uint8Array, outIds: Int32Array, outProbs: Float32Array, at: number): void {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  // k small: insertion into a sorted list
  const bestIds: number[] = [];
  const bestVals: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (kinds[i] === PIECE_CONTROL) continue;
    const v = logits[i];
    if (bestVals.length === k && v <= bestVals[k - 1]) continue;
    let j = bestVals.length;
    while (j > 0 && bestVals[j - 1] < v) j--;
    bestVals.splice(j, 0, v);
    bestIds.splice(j, 0, i);
    if (bestVals.length > k) {
      bestVals.pop();
      bestIds.pop();
    }
  }
  for (let j = 0; j < k; j++) {
    outIds[at + j] = j < bestIds.length ? bestIds[j] : -1;
    outProbs[at + j] = j < bestIds.length ? Math.exp(bestVals[j] - max) / sum : 0;
  }
}

export interface TeacherNgramResult {
  blob: Buffer;
  report: { sentences: number; tokens: number; teacherPositions: number; orders: OrderStats[] };
}

/**
 * The student from the text's sentences (`teacher[s]`: the teacher's top-k
 * for sentence s, null for none) and extra teacher-sampled sentences counted
 * as they stand.
 */
export function estimateTeacherNgram(
  text: CorpusTokens,
  teacher: (TeacherTopK | null)[],
  samples: ArrayLike<number>[],
  tokenizer: TokenizerData,
  opts: TeacherNgramOptions,
): TeacherNgramResult {
  const { topK: k, teacherWeight: alpha, scale } = opts;
  if (!(alpha >= 0 && alpha < 1)) throw new LmflashError(`--teacher-weight must be at least 0 and below 1, not ${alpha}`);
  if ((1 - alpha) * scale < 1) throw new LmflashError(`--scale ${scale} × (1 - --teacher-weight ${alpha}) is below 1: the text's own counts would round away`);
  const corpus: CorpusTokens = { ...text, sentences: [...text.sentences, ...Array.from(samples)] };
  const nText = text.sentences.length;
  let teacherPositions = 0;
  const candidates = (s: number, p: number, real: number): Candidate[] => {
    const t = s < nText ? teacher[s] : null;
    if (!t || p >= t.positions) return [{ token: real, weight: 1 }];
    teacherPositions++;
    const out: Candidate[] = [{ token: real, weight: 1 - alpha }];
    for (let j = 0; j < k; j++) {
      const id = t.ids[p * k + j];
      if (id < 0) break;
      const w = alpha * t.probs[p * k + j];
      if (id === real) out[0].weight += w;
      else out.push({ token: id, weight: w });
    }
    return out;
  };
  const counts = countExpected(corpus, opts.order, candidates, scale);
  const model = estimateKneserNey(counts);
  const bits = opts.quantize === undefined ? 8 : opts.quantize === 0 ? FLOAT_BITS : opts.quantize;
  const written = writeNgramBlob(buildTrie(model), tokenizer, {
    valueBits: bits,
    seqLen: opts.seqLen ?? DEFAULT_SEQ_LEN,
    prune: model.stats.map(() => 0),
    trainingTokens: counts.tokens,
  });
  return { blob: written.blob, report: { sentences: counts.sentences, tokens: counts.tokens, teacherPositions, orders: model.stats } };
}
