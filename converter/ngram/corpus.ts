/**
 * From text to the token ids the N-gram counter reads: one sentence per
 * non-empty line, either the line's whitespace-separated words exactly as
 * they stand (a vocabulary of words is built as they come), or the ids a
 * BPE tokenizer gives the line.
 */
import { LmflashError } from '../../src/errors.js';
import {
  buildTokenizerData,
  NO_ID,
  PIECE_CONTROL,
  PIECE_TEXT,
  Tokenizer,
  TOKENIZER_FLAG_WORDS,
  type TokenizerData,
} from '../../src/tokenizer.js';
import type { CorpusTokens } from './count.js';

/** What separates words, in training and in the core's word tokenizer: ASCII space, tab, LF, CR, VT, FF. */
export const WORD_SEPARATORS = /[ \t\n\r\v\f]+/;

/** The three control tokens of a word vocabulary, with lmplz's ids. */
export const WORD_UNK = 0;
export const WORD_BOS = 1;
export const WORD_EOS = 2;
export const CONTROL_WORDS = ['<unk>', '<s>', '</s>'] as const;

/** Longest word a blob can hold: a piece is the word after a space, at most 1024 bytes. */
export const MAX_WORD_BYTES = 1023;

export interface WordCorpus extends CorpusTokens {
  /** words by id; ids 0..2 are <unk>, <s>, </s> */
  words: string[];
  /** words of the text that became <unk>: the control names themselves, and words too long for a piece */
  skipped: number;
}

/**
 * Words as tokens. Like lmplz, the names <s>, </s> and <unk> in the text are
 * not words (lmplz reads them as whitespace, so do we); a word longer than
 * MAX_WORD_BYTES cannot be a piece and is read as whitespace too.
 */
export function wordCorpus(lines: string[]): WordCorpus {
  const ids = new Map<string, number>();
  const words: string[] = [...CONTROL_WORDS];
  let skipped = 0;
  const sentences: Int32Array[] = [];
  for (const line of lines) {
    const parts = line.split(WORD_SEPARATORS);
    const s: number[] = [];
    for (const w of parts) {
      if (w.length === 0) continue;
      if ((CONTROL_WORDS as readonly string[]).includes(w) || Buffer.byteLength(w, 'utf8') > MAX_WORD_BYTES) {
        skipped++;
        continue;
      }
      let id = ids.get(w);
      if (id === undefined) {
        id = words.length;
        words.push(w);
        ids.set(w, id);
      }
      s.push(id);
    }
    sentences.push(Int32Array.from(s));
  }
  return { sentences, vocabSize: words.length, bos: WORD_BOS, eos: WORD_EOS, unk: WORD_UNK, words, skipped };
}

/** The tokenizer's ids for each line, without BOS/EOS (the counter adds the sentence marks). */
export function bpeCorpus(lines: string[], tok: Tokenizer): CorpusTokens {
  const t = tok.data;
  if (t.bosId === NO_ID || t.eosId === NO_ID)
    throw new LmflashError('the tokenizer has no <s> or no </s> token: an N-gram model needs both to mark where lines start and end');
  const sentences = lines.map((l) => {
    const ids = tok.encode(l, { bos: false });
    // a stray control token inside a line would break the sentence marks
    return Int32Array.from(ids.filter((id) => t.kinds[id] !== PIECE_CONTROL || id === t.unkId));
  });
  return { sentences, vocabSize: t.vocabSize, bos: t.bosId, eos: t.eosId, unk: t.unkId === NO_ID ? -1 : t.unkId };
}

/**
 * The blob tokenizer of a word vocabulary: <unk>, <s>, </s> as control
 * tokens, every word as the text piece " word" (so that decoding puts a space
 * between words and drops it after <s>, like the dummy prefix of BPE), and
 * the word-level encoding flag.
 */
export function wordTokenizer(words: string[]): TokenizerData {
  const n = words.length;
  const kinds = new Uint8Array(n).fill(PIECE_TEXT);
  kinds[WORD_UNK] = kinds[WORD_BOS] = kinds[WORD_EOS] = PIECE_CONTROL;
  return buildTokenizerData({
    pieces: words.map((w, id) => Buffer.from(id <= WORD_EOS ? w : ` ${w}`, 'utf8')),
    scores: new Float32Array(n),
    kinds,
    byteIds: new Uint32Array(256).fill(NO_ID),
    bosId: WORD_BOS,
    eosId: WORD_EOS,
    unkId: WORD_UNK,
    flags: TOKENIZER_FLAG_WORDS,
  });
}
