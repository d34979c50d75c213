/**
 * One entry point for the three vocabulary trainers (what `lmflash tokenizer
 * train` calls): bpe (default), char and word, each returning its
 * tokenizer.bin content and figures to report.
 */
import { MAX_VOCAB, MIN_SENTENCEPIECE_VOCAB, trainBpe, type BpeOptions, type BpeResult } from './bpe.js';
import { trainChar, type CharResult } from './char.js';
import { encodeTokenizerBin, type VocabularyType } from './vocab-file.js';
import { MIN_WORD_VOCAB, trainWord, type WordResult } from './word.js';

export const VOCABULARY_TYPES: readonly VocabularyType[] = ['bpe', 'char', 'word'];

export interface TrainOptions extends BpeOptions {
  type?: VocabularyType;
}

export type TrainResult = BpeResult | CharResult | WordResult;

/** Why a vocabulary of `n` tokens cannot be of this type (null when it can), checked before any training. */
export function vocabSizeProblem(type: VocabularyType, n: number): string | null {
  const min = type === 'word' ? MIN_WORD_VOCAB : MIN_SENTENCEPIECE_VOCAB;
  if (!Number.isInteger(n) || n < min) {
    return type === 'word'
      ? `a word vocabulary of ${n} tokens is too small: ids 0..3 are the 3 control tokens and the <words> marker, so it needs at least ${min}`
      : `a ${type} vocabulary of ${n} tokens is too small: ids 0..258 are the 3 control and 256 byte-fallback tokens, ` +
          `so it needs at least ${min} (e.g. --vocab 512)`;
  }
  if (n > MAX_VOCAB) return `a vocabulary of ${n} tokens is too large: a blob holds at most ${MAX_VOCAB}`;
  return null;
}

export function trainVocabulary(text: string | Iterable<string>, opts: TrainOptions): TrainResult {
  const type = opts.type ?? 'bpe';
  if (type === 'char') return trainChar(text, opts);
  if (type === 'word') return trainWord(text, opts);
  return trainBpe(text, opts);
}

/** The trained vocabulary as tokenizer.bin bytes. */
export function tokenizerFileBytes(r: TrainResult): Uint8Array {
  return encodeTokenizerBin(r.bin);
}
