/**
 * Writing and reading trained vocabularies as llama2.c tokenizer.bin files
 * (int32 max_token_length, then per token: float32 score, int32 byte length,
 * bytes), the format `lmflash convert --tokenizer` and src/llama2c.ts read.
 *
 * Layout of what the trainers write (docs/tokenizers.md):
 * - bpe and char: `<unk>` 0, `<s>` 1, `</s>` 2 (score 0, spelled as llama2.c's
 *   export does), the 256 byte-fallback tokens `<0x00>`..`<0xFF>` (ids 3..258,
 *   score 0), then the text pieces with spaces stored as spaces.
 * - word: the same control tokens, then the marker piece `<words>` at id 3,
 *   then one piece per word, stored with a leading space (" the").
 */
import { LmflashError } from '../../src/errors.js';
import { readTokenizerBin, type TokenizerBin } from '../../src/llama2c.js';
import {
  buildTokenizerData,
  NO_ID,
  PIECE_CONTROL,
  PIECE_TEXT,
  tokenizerFromBin,
  TOKENIZER_FLAG_WORDS,
  type TokenizerData,
} from '../../src/tokenizer.js';

export type VocabularyType = 'bpe' | 'char' | 'word';

/** How the three control tokens are stored (llama2.c's tokenizer.py export: BOS and EOS wrapped in newlines). */
export const CONTROL_PIECES = ['<unk>', '\n<s>\n', '\n</s>\n'] as const;
export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
/** Ids 3..258 in a bpe or char vocabulary: the byte-fallback token for byte value id − 3. */
export const FIRST_BYTE_ID = 3;
export const FIRST_PIECE_ID = FIRST_BYTE_ID + 256;

/** The piece at id 3 that marks a word vocabulary (a bpe/char vocabulary has `<0x00>` there). */
export const WORD_VOCAB_MARKER = '<words>';
export const WORD_MARKER_ID = 3;
export const FIRST_WORD_ID = 4;

/** The longest piece a blob accepts (max_piece_bytes ≤ 1024). */
export const MAX_PIECE_BYTES = 1024;

const BYTE_NAME = /^<0x[0-9A-F]{2}>$/;

export function byteFallbackName(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * A text piece that a tokenizer.bin reader would take for something else: a
 * control token (src/tokenizer.ts compares the trimmed text) or a byte-fallback
 * name. The trainers never emit these as text.
 */
export function isReservedPiece(text: string): boolean {
  const t = text.trim();
  return t === '<unk>' || t === '<s>' || t === '</s>' || BYTE_NAME.test(text);
}

/** A text piece and its merge score (higher merges first). */
export interface ScoredPiece {
  text: string;
  score: number;
}

/** Control tokens + byte fallback + `pieces`: a sentencepiece-style (bpe or char) vocabulary. */
export function sentencepieceBin(pieces: readonly ScoredPiece[]): TokenizerBin {
  const bytes: Uint8Array[] = CONTROL_PIECES.map((p) => Buffer.from(p, 'utf8'));
  const scores: number[] = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    bytes.push(Buffer.from(byteFallbackName(b), 'latin1'));
    scores.push(0);
  }
  for (const p of pieces) {
    if (isReservedPiece(p.text)) throw new Error(`bug: reserved piece ${JSON.stringify(p.text)} in a vocabulary`);
    bytes.push(Buffer.from(p.text, 'utf8'));
    scores.push(p.score);
  }
  return finish(bytes, scores);
}

/** Control tokens + the `<words>` marker + one piece per word (stored as " " + word). */
export function wordBin(words: readonly ScoredPiece[]): TokenizerBin {
  const bytes: Uint8Array[] = [...CONTROL_PIECES, WORD_VOCAB_MARKER].map((p) => Buffer.from(p, 'utf8'));
  const scores: number[] = [0, 0, 0, 0];
  for (const w of words) {
    bytes.push(Buffer.from(' ' + w.text, 'utf8'));
    scores.push(w.score);
  }
  return finish(bytes, scores);
}

function finish(pieces: Uint8Array[], scores: number[]): TokenizerBin {
  const longest = pieces.reduce((m, p) => Math.max(m, p.length), 1);
  if (longest > MAX_PIECE_BYTES) throw new Error(`bug: a ${longest}-byte piece`);
  return { maxTokenLength: longest, pieces, scores: Float32Array.from(scores) };
}

/** The bytes of a llama2.c tokenizer.bin. */
export function encodeTokenizerBin(bin: TokenizerBin): Uint8Array {
  let size = 4;
  for (const p of bin.pieces) size += 8 + p.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, bin.maxTokenLength, true);
  let o = 4;
  bin.pieces.forEach((p, i) => {
    dv.setFloat32(o, bin.scores[i], true);
    dv.setInt32(o + 4, p.length, true);
    out.set(p, o + 8);
    o += 8 + p.length;
  });
  return out;
}

/**
 * Reads a tokenizer.bin without knowing its vocabulary size in advance (the
 * format does not store it): counts the tokens, then reads and checks them
 * with src/llama2c.ts's reader.
 */
export function decodeTokenizerBin(buf: Uint8Array): TokenizerBin {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let count = 0;
  for (let o = 4; o + 8 <= buf.length; count++) {
    const len = dv.getInt32(o + 4, true);
    if (len < 0 || o + 8 + len > buf.length) break; // readTokenizerBin names the problem
    o += 8 + len;
  }
  return readTokenizerBin(buf, count);
}

/** Which trainer wrote a vocabulary: `word` by its marker, `char` when no text piece is longer than one character. */
export function vocabularyType(bin: TokenizerBin): VocabularyType {
  if (isWordVocabulary(bin)) return 'word';
  for (let id = FIRST_PIECE_ID; id < bin.pieces.length; id++) {
    const text = Buffer.from(bin.pieces[id]).toString('utf8');
    if ([...text].length > 1) return 'bpe';
  }
  return 'char';
}

export function isWordVocabulary(bin: TokenizerBin): boolean {
  const p = bin.pieces[WORD_MARKER_ID];
  return p !== undefined && Buffer.from(p).toString('latin1') === WORD_VOCAB_MARKER;
}

/** A word vocabulary as the N-gram side uses it: id ↔ word, unknown words → `<unk>`. */
export interface WordVocabulary {
  vocabSize: number;
  unkId: number;
  bosId: number;
  eosId: number;
  /** words[id]: the word (without its stored leading space); null for the control tokens and the marker. */
  words: (string | null)[];
  /** The id of a word (whitespace-free), or unkId. */
  idOf(word: string): number;
}

export function wordVocabularyFromBin(bin: TokenizerBin): WordVocabulary {
  if (!isWordVocabulary(bin)) {
    throw new LmflashError(`not a word vocabulary: token ${WORD_MARKER_ID} is not the ${WORD_VOCAB_MARKER} marker (train one with --type word)`);
  }
  const words: (string | null)[] = [];
  const ids = new Map<string, number>();
  bin.pieces.forEach((p, id) => {
    if (id < FIRST_WORD_ID) {
      words.push(null);
      return;
    }
    const text = Buffer.from(p).toString('utf8');
    const word = text.startsWith(' ') ? text.slice(1) : text;
    words.push(word);
    if (!ids.has(word)) ids.set(word, id);
  });
  return {
    vocabSize: bin.pieces.length,
    unkId: UNK_ID,
    bosId: BOS_ID,
    eosId: EOS_ID,
    words,
    idOf: (word) => ids.get(word) ?? UNK_ID,
  };
}

/**
 * The blob's tokenizer tables for a vocabulary file. A bpe or char vocabulary
 * (or any llama2.c tokenizer.bin) is read as tokenizerFromBin reads it. A word
 * vocabulary gets the word-level encoding flag (TOKENIZER_FLAG_WORDS: split on
 * whitespace, look up " " + word, else <unk>) and its marker becomes a control
 * token, which encodes from nothing and decodes to nothing.
 */
export function tokenizerDataFromBin(bin: TokenizerBin): TokenizerData {
  if (!isWordVocabulary(bin)) return tokenizerFromBin(bin);
  const n = bin.pieces.length;
  const kinds = new Uint8Array(n).fill(PIECE_TEXT);
  kinds.fill(PIECE_CONTROL, 0, FIRST_WORD_ID);
  const names = ['<unk>', '<s>', '</s>', WORD_VOCAB_MARKER];
  return buildTokenizerData({
    pieces: bin.pieces.map((p, id) => (id < FIRST_WORD_ID ? Buffer.from(names[id], 'utf8') : p)),
    scores: bin.scores,
    kinds,
    byteIds: new Uint32Array(256).fill(NO_ID),
    bosId: BOS_ID,
    eosId: EOS_ID,
    unkId: UNK_ID,
    flags: TOKENIZER_FLAG_WORDS,
  });
}
