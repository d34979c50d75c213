/**
 * A word-level vocabulary for the N-gram models: the most frequent
 * whitespace-separated words, case and punctuation kept ("earth." and "earth"
 * are different words), stored in tokenizer.bin form behind the `<words>`
 * marker (docs/tokenizers.md).
 */

/**
 * What separates words: ASCII space, tab, LF, VT, FF, CR — the bytes the
 * core's word-level encoding splits on (blob tokenizer flag bit 1), so a word
 * learned here is a word the encoder looks up.
 */
export const WORD_SEPARATORS = /[ \t\n\v\f\r]+/;
import { LmflashError } from '../../src/errors.js';
import { MAX_VOCAB, type TrainedVocabulary } from './bpe.js';
import { documentsOf } from './text.js';
import { FIRST_WORD_ID, isReservedPiece, MAX_PIECE_BYTES, wordBin, type ScoredPiece } from './vocab-file.js';

export interface WordOptions {
  /** Total vocabulary size: 3 control tokens + the marker + vocabSize − 4 words. */
  vocabSize: number;
}

export interface WordResult extends TrainedVocabulary {
  type: 'word';
  /** The words in id order from FIRST_WORD_ID, score −rank (the most frequent first). */
  words: ScoredPiece[];
  stats: { documents: number; tokens: number; distinctWords: number; keptWords: number; coverage: number };
}

/** The smallest word vocabulary: the control tokens, the marker and one word. */
export const MIN_WORD_VOCAB = FIRST_WORD_ID + 1;

export function trainWord(text: string | Iterable<string>, opts: WordOptions): WordResult {
  const { vocabSize } = opts;
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_WORD_VOCAB || vocabSize > MAX_VOCAB) {
    throw new LmflashError(
      `a word vocabulary must have ${MIN_WORD_VOCAB}..${MAX_VOCAB} tokens (ids 0..3 are the 3 control tokens and the <words> marker), not ${vocabSize}`,
    );
  }
  const docs = documentsOf(text);
  const counts = new Map<string, number>();
  let tokens = 0;
  for (const doc of docs) {
    for (const w of doc.split(WORD_SEPARATORS)) {
      if (w.length === 0) continue;
      tokens++;
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  if (tokens === 0) throw new LmflashError('the training text is empty: it has no word to learn from');
  // A word stored as " " + word must fit a blob piece and must not read back as a control token.
  const usable = [...counts]
    .filter(([w]) => Buffer.byteLength(w, 'utf8') < MAX_PIECE_BYTES && !isReservedPiece(w))
    .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const want = vocabSize - FIRST_WORD_ID;
  if (usable.length < want) {
    throw new LmflashError(
      `the training text has only ${usable.length} distinct words, too few for a word vocabulary of ${vocabSize} ` +
        `(${want} words after the 3 control tokens and the marker): use --vocab ${FIRST_WORD_ID + usable.length} or less`,
    );
  }
  const kept = usable.slice(0, want);
  const words = kept.map(([w], i) => ({ text: w, score: -i }));
  const covered = kept.reduce((s, [, n]) => s + n, 0);
  return {
    type: 'word',
    bin: wordBin(words),
    words,
    stats: { documents: docs.length, tokens, distinctWords: counts.size, keptWords: kept.length, coverage: covered / tokens },
  };
}
