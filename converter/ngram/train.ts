/**
 * `lmflash train ngram` without the command line: text lines in, an N-gram
 * blob out. Count (count.ts), estimate with interpolated modified
 * Kneser-Ney and prune (estimate.ts), lay out the trie (trie.ts), quantize
 * and pack (blob.ts).
 */
import { LmflashError } from '../../src/errors.js';
import { FLOAT_BITS, NGRAM_MAX_ORDER } from '../../src/ngram.js';
import { Tokenizer, type TokenizerData } from '../../src/tokenizer.js';
import { writeNgramBlob, type LevelReport } from './blob.js';
import { countNgrams, type CorpusTokens } from './count.js';
import { bpeCorpus, wordCorpus, wordTokenizer } from './corpus.js';
import { estimateKneserNey, type NgramModel, type OrderStats } from './estimate.js';
import { buildTrie } from './trie.js';

export const DEFAULT_SEQ_LEN = 1024;

export interface TrainNgramOptions {
  order: number;
  /** lmplz-style --prune thresholds per order */
  prune?: number[];
  /** a BPE tokenizer; without one the lines' whitespace-separated words are the tokens */
  tokenizer?: TokenizerData;
  /** bits per stored value (1..16), or 0 / 32 for float32 (unquantized); default 8 */
  quantize?: number;
  /** tokens a generation may hold (default 1024) */
  seqLen?: number;
  /** Called as each stage starts (and with done === total at the end), for a progress bar. */
  onStage?: (stage: TrainStage, done: number, total: number) => void;
}

export const TRAIN_STAGES = ['tokenizing', 'counting', 'estimating', 'writing'] as const;
export type TrainStage = (typeof TRAIN_STAGES)[number] | 'done';

export interface TrainNgramResult {
  blob: Buffer;
  model: NgramModel;
  tokenizer: TokenizerData;
  report: {
    sentences: number;
    /** tokens counted: words (or BPE tokens) plus one </s> per line */
    tokens: number;
    vocabSize: number;
    orders: (OrderStats & LevelReport)[];
    /** words the text held that a vocabulary cannot (<s>, </s>, <unk> themselves, over-long words), read as whitespace */
    skippedWords: number;
    seconds: { count: number; estimate: number; write: number };
  };
}

export function trainNgram(lines: string[], opts: TrainNgramOptions): TrainNgramResult {
  if (!Number.isInteger(opts.order) || opts.order < 1 || opts.order > NGRAM_MAX_ORDER)
    throw new LmflashError(`--order must be 1 to ${NGRAM_MAX_ORDER}, not ${opts.order}`);
  const bits = opts.quantize === undefined ? 8 : opts.quantize === 0 ? FLOAT_BITS : opts.quantize;
  const t0 = performance.now();
  const stage = (i: number) => opts.onStage?.(i < TRAIN_STAGES.length ? TRAIN_STAGES[i] : 'done', i, TRAIN_STAGES.length);
  stage(0);
  let corpus: CorpusTokens;
  let tokenizer: TokenizerData;
  let skippedWords = 0;
  if (opts.tokenizer) {
    corpus = bpeCorpus(lines, new Tokenizer(opts.tokenizer));
    tokenizer = opts.tokenizer;
  } else {
    const words = wordCorpus(lines);
    corpus = words;
    skippedWords = words.skipped;
    tokenizer = wordTokenizer(words.words);
  }
  if (corpus.sentences.length === 0) throw new LmflashError('the training text has no non-empty lines');
  stage(1);
  const counts = countNgrams(corpus, opts.order);
  const t1 = performance.now();
  stage(2);
  const model = estimateKneserNey(counts, { prune: opts.prune });
  const t2 = performance.now();
  stage(3);
  const written = writeNgramBlob(buildTrie(model), tokenizer, {
    valueBits: bits,
    seqLen: opts.seqLen ?? DEFAULT_SEQ_LEN,
    prune: model.stats.map((_, i) => (opts.prune && opts.prune.length ? opts.prune[Math.min(i, opts.prune.length - 1)] : 0)),
    trainingTokens: counts.tokens,
  });
  const t3 = performance.now();
  stage(4);
  return {
    blob: written.blob,
    model,
    tokenizer,
    report: {
      sentences: counts.sentences,
      tokens: counts.tokens,
      vocabSize: counts.vocabSize,
      orders: model.stats.map((s, i) => ({ ...s, ...written.levels[i] })),
      skippedWords,
      seconds: { count: (t1 - t0) / 1000, estimate: (t2 - t1) / 1000, write: (t3 - t2) / 1000 },
    },
  };
}
