/**
 * A character-level vocabulary (the right unit for Chinese and other scripts
 * without spaces): control and byte-fallback tokens, then the most frequent
 * characters, no merges. Characters that miss the cut encode as their UTF-8
 * bytes through byte fallback, so every text still round-trips.
 */
import { LmflashError } from '../../src/errors.js';
import type { TrainedVocabulary } from './bpe.js';
import { MAX_VOCAB, MIN_SENTENCEPIECE_VOCAB } from './bpe.js';
import { characterCounts, documentsOf, selectCharacters } from './text.js';
import { FIRST_PIECE_ID, sentencepieceBin, type ScoredPiece } from './vocab-file.js';

export interface CharOptions {
  /** Total vocabulary size: 259 control and byte-fallback tokens + vocabSize − 259 characters. */
  vocabSize: number;
}

export interface CharResult extends TrainedVocabulary {
  type: 'char';
  pieces: ScoredPiece[];
  stats: { documents: number; distinctCharacters: number; keptCharacters: number; coverage: number };
}

export function trainChar(text: string | Iterable<string>, opts: CharOptions): CharResult {
  const { vocabSize } = opts;
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_SENTENCEPIECE_VOCAB || vocabSize > MAX_VOCAB) {
    throw new LmflashError(
      `a char vocabulary must have ${MIN_SENTENCEPIECE_VOCAB}..${MAX_VOCAB} tokens (ids 0..258 are the 3 control and 256 byte-fallback tokens), not ${vocabSize}`,
    );
  }
  const docs = documentsOf(text);
  if (docs.length === 0) throw new LmflashError('the training text is empty: it has no non-empty line to learn from');
  // The dummy-prefix space is counted once per line: the encoder puts it before every text.
  const counts = characterCounts(docs);
  const want = vocabSize - FIRST_PIECE_ID;
  if (counts.size < want) {
    throw new LmflashError(
      `the training text has only ${counts.size} distinct characters (with the space), too few for a char vocabulary of ${vocabSize} ` +
        `(${want} characters after the 259 control and byte-fallback tokens): use --vocab ${FIRST_PIECE_ID + counts.size} or less`,
    );
  }
  const chars = selectCharacters(counts, want);
  const total = [...counts.values()].reduce((s, n) => s + n, 0);
  const kept = chars.reduce((s, c) => s + c.count, 0);
  // Scores only order the pieces (no concatenation of two characters is a piece, so nothing merges).
  const pieces = chars.map((c, i) => ({ text: String.fromCodePoint(c.cp), score: -i }));
  return {
    type: 'char',
    bin: sentencepieceBin(pieces),
    pieces,
    stats: { documents: docs.length, distinctCharacters: counts.size, keptCharacters: chars.length, coverage: kept / total },
  };
}
