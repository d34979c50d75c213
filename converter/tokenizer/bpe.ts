/**
 * Sentencepiece-style BPE training with byte fallback, for the C core's
 * encoder (llama2.c's: each character → its piece or byte-fallback tokens,
 * then repeatedly merge the adjacent pair whose concatenation is the
 * highest-scoring piece). Every merge gets score −rank, so the encoder
 * replays the merges in the order they were learned.
 *
 * Like sentencepiece (split_by_whitespace, split_by_unicode_script,
 * split_digits, max_sentencepiece_length 16):
 * - each document gets a dummy-prefix space and is cut into words before
 *   every space, so a piece may start with a space but never contains one
 *   anywhere else (no merge can then cross a word start at encoding time);
 * - a piece never mixes Unicode scripts (letters do not join punctuation;
 *   Hiragana and Katakana count as Han), the leading space aside;
 * - digits stay single;
 * - a piece has at most 16 characters.
 *
 * Training counts pair frequencies over unique word segments (word → count),
 * and updates them incrementally: an index from each pair to the segments
 * holding it, and a max-heap of (count, pair) with lazy invalidation.
 */
import { LmflashError } from '../../src/errors.js';
import { characterCounts, documentsOf, selectCharacters } from './text.js';
import { FIRST_PIECE_ID, isReservedPiece, sentencepieceBin, type ScoredPiece } from './vocab-file.js';
import type { TokenizerBin } from '../../src/llama2c.js';

export interface BpeOptions {
  /** Total vocabulary size: 259 control and byte-fallback tokens, the characters, the merges. */
  vocabSize: number;
  /** Longest piece in characters (sentencepiece's max_sentencepiece_length; default 16). */
  maxPieceChars?: number;
  /** Fraction of character occurrences the single characters must cover (default 1: all characters seen). */
  characterCoverage?: number;
  /** Never merge across a change of Unicode script (default true). */
  splitByScript?: boolean;
  /** Keep every digit a piece of its own (default true). */
  splitDigits?: boolean;
  /** Called about every `progressEveryMs` during the merges. */
  onProgress?: (p: BpeProgress) => void;
  progressEveryMs?: number;
}

export interface BpeProgress {
  /** 'segments': the word counts are done and merging starts; 'merges': merging. */
  phase: 'segments' | 'merges';
  segments: number;
  merges: number;
  targetMerges: number;
  /** Since training started, and since merging started. */
  elapsedMs: number;
  mergeMs: number;
}

export interface BpeStats {
  documents: number;
  /** Characters in the training text (code points, without the dummy prefixes). */
  characters: number;
  /** Distinct characters seen, and how many became pieces. */
  distinctCharacters: number;
  keptCharacters: number;
  /** Distinct word segments the pair counts run over. */
  segments: number;
  merges: number;
  trainMs: number;
}

export interface TrainedVocabulary {
  type: 'bpe' | 'char' | 'word';
  /** The tokenizer.bin content. */
  bin: TokenizerBin;
}

export interface BpeResult extends TrainedVocabulary {
  type: 'bpe';
  /** The text pieces in id order from FIRST_PIECE_ID: characters, then merges. */
  pieces: ScoredPiece[];
  stats: BpeStats;
}

export const DEFAULT_MAX_PIECE_CHARS = 16;
/** A piece of 255 four-byte characters (plus a leading space) still fits the blob's 1024-byte piece limit. */
export const MAX_PIECE_CHARS = 255;

/** The smallest vocabulary with room for one character after the control and byte-fallback tokens. */
export const MIN_SENTENCEPIECE_VOCAB = FIRST_PIECE_ID + 1;

/** The largest vocabulary a blob holds (CONFIG.vocab_size ≤ 2^24). */
export const MAX_VOCAB = 1 << 24;

/** Script classes: a piece holds one class (a leading space aside). */
const SPACE = -1;
const DIGIT = -2;

const SCRIPTS = [
  'Latin', 'Greek', 'Cyrillic', 'Armenian', 'Hebrew', 'Arabic', 'Syriac', 'Thaana', 'Devanagari', 'Bengali',
  'Gurmukhi', 'Gujarati', 'Oriya', 'Tamil', 'Telugu', 'Kannada', 'Malayalam', 'Sinhala', 'Thai', 'Lao',
  'Tibetan', 'Myanmar', 'Georgian', 'Hangul', 'Ethiopic', 'Cherokee', 'Khmer', 'Mongolian', 'Han', 'Hiragana',
  'Katakana', 'Bopomofo', 'Yi', 'Tifinagh', 'Javanese', 'Balinese', 'Common', 'Inherited',
];
const SCRIPT_RES = SCRIPTS.map((s) => new RegExp(`^\\p{Script=${s}}$`, 'u'));
const HAN = SCRIPTS.indexOf('Han');
const JOINED_WITH_HAN = new Set([SCRIPTS.indexOf('Hiragana'), SCRIPTS.indexOf('Katakana')]);
const DECIMAL_DIGIT = /^\p{Nd}$/u;

/** The class of a character: SPACE, DIGIT, or a script number (scripts not listed share one number). */
function makeClassifier(splitByScript: boolean, splitDigits: boolean): (cp: number) => number {
  const cache = new Map<number, number>();
  return (cp) => {
    let c = cache.get(cp);
    if (c !== undefined) return c;
    const ch = String.fromCodePoint(cp);
    if (cp === 0x20) c = SPACE;
    else if (DECIMAL_DIGIT.test(ch)) c = splitDigits ? DIGIT : SCRIPTS.length + 1; // digits join only digits
    else if (!splitByScript) c = 0;
    else if (cp === 0x30fc) c = HAN; // the Katakana long vowel mark is Common in Unicode, Han for sentencepiece
    else {
      const s = SCRIPT_RES.findIndex((re) => re.test(ch));
      c = s < 0 ? SCRIPTS.length : JOINED_WITH_HAN.has(s) ? HAN : s;
    }
    cache.set(cp, c);
    return c;
  };
}

/** A max-heap of (count, pair key); ties go to the smaller key, so training is reproducible. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const a = this.counts[i];
    const b = this.counts[j];
    return a > b || (a === b && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = c;
    const k = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastCount = this.counts.pop() as number;
    const lastKey = this.keys.pop() as number;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.above(l, best)) best = l;
        if (r < n && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Pair keys: left id × 2^24 + right id (ids stay below 2^24, the blob's vocabulary limit). */
const KEY_SHIFT = MAX_VOCAB;

/**
 * Cuts each word into the stretches a merge can ever join: a new segment
 * starts at a change of script class, at every digit (with splitDigits) and
 * after a character that is not in the vocabulary (it becomes byte-fallback
 * tokens, which never merge). One-character segments are dropped: they hold
 * no pair.
 */
function segmentWords(
  words: Map<string, number>,
  charId: Map<number, number>,
  classOf: (cp: number) => number,
): { symbols: Int32Array[]; counts: number[] } {
  const segs = new Map<string, number>();
  const add = (s: string, n: number) => {
    if (s.length < 2 || (s.length === 2 && s.codePointAt(0)! > 0xffff)) return; // one character
    segs.set(s, (segs.get(s) ?? 0) + n);
  };
  for (const [word, n] of words) {
    let start = 0; // UTF-16 index of the current segment
    let segClass: number | null = null; // class of the segment's non-space characters
    let onlySpace = false;
    let i = 0;
    for (const ch of word) {
      const cp = ch.codePointAt(0) as number;
      const end = i + ch.length;
      if (!charId.has(cp)) {
        add(word.slice(start, i), n);
        start = end;
        segClass = null;
        onlySpace = false;
      } else {
        const c = classOf(cp);
        const empty = start === i;
        const joins = !empty && c !== DIGIT && (onlySpace ? true : c === segClass);
        if (!empty && !joins) {
          add(word.slice(start, i), n);
          start = i;
        }
        if (empty || !joins) {
          onlySpace = c === SPACE;
          segClass = c === SPACE ? null : c;
        } else if (onlySpace) {
          onlySpace = false;
          segClass = c;
        }
      }
      i = end;
    }
    add(word.slice(start), n);
  }
  const symbols: Int32Array[] = [];
  const counts: number[] = [];
  for (const [s, n] of segs) {
    symbols.push(Int32Array.from([...s], (ch) => charId.get(ch.codePointAt(0) as number) as number));
    counts.push(n);
  }
  return { symbols, counts };
}

/** Splits documents into words the sentencepiece way: a dummy-prefix space, then a new word before every space. */
function countWords(docs: readonly string[]): Map<string, number> {
  const words = new Map<string, number>();
  for (const doc of docs) {
    const s = ' ' + doc;
    let start = 0;
    for (let i = 1; i <= s.length; i++) {
      if (i === s.length || s.charCodeAt(i) === 0x20) {
        const w = s.slice(start, i);
        words.set(w, (words.get(w) ?? 0) + 1);
        start = i;
      }
    }
  }
  return words;
}

/** Trains a BPE vocabulary of exactly `opts.vocabSize` tokens on `text` (one document a line). */
export function trainBpe(text: string | Iterable<string>, opts: BpeOptions): BpeResult {
  const t0 = performance.now();
  const vocabSize = opts.vocabSize;
  const maxPieceChars = opts.maxPieceChars ?? DEFAULT_MAX_PIECE_CHARS;
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_SENTENCEPIECE_VOCAB || vocabSize > MAX_VOCAB) {
    throw new LmflashError(
      `a bpe vocabulary must have ${MIN_SENTENCEPIECE_VOCAB}..${MAX_VOCAB} tokens (ids 0..258 are the 3 control and 256 byte-fallback tokens), not ${vocabSize}`,
    );
  }
  if (!Number.isInteger(maxPieceChars) || maxPieceChars < 1 || maxPieceChars > MAX_PIECE_CHARS) {
    throw new LmflashError(`the longest piece must be 1..${MAX_PIECE_CHARS} characters, not ${maxPieceChars}`);
  }
  const docs = documentsOf(text);
  if (docs.length === 0) throw new LmflashError('the training text is empty: it has no non-empty line to learn from');

  // Single characters by frequency: every one seen, unless the vocabulary or the coverage asks for fewer.
  const charCounts = characterCounts(docs);
  const chars = selectCharacters(charCounts, vocabSize - FIRST_PIECE_ID, opts.characterCoverage ?? 1);
  const symText: string[] = [];
  const symChars: number[] = [];
  const idOf = new Map<string, number>();
  const charId = new Map<number, number>();
  for (const c of chars) {
    const s = String.fromCodePoint(c.cp);
    charId.set(c.cp, symText.length);
    idOf.set(s, symText.length);
    symText.push(s);
    symChars.push(1);
  }

  const classOf = makeClassifier(opts.splitByScript ?? true, opts.splitDigits ?? true);
  const { symbols: segs, counts: segCount } = segmentWords(countWords(docs), charId, classOf);
  const segLen = segs.map((s) => s.length);

  // Pair counts and, per pair, the segments that may hold it (a superset: checked when merging).
  const pairCount = new Map<number, number>();
  const pairSegs = new Map<number, number[]>();
  const banned = new Set<number>();
  const mergeable = (a: number, b: number) => symChars[a] + symChars[b] <= maxPieceChars;
  for (let si = 0; si < segs.length; si++) {
    const s = segs[si];
    for (let k = 0; k + 1 < s.length; k++) {
      if (!mergeable(s[k], s[k + 1])) continue;
      const key = s[k] * KEY_SHIFT + s[k + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + segCount[si]);
      const list = pairSegs.get(key);
      if (list === undefined) pairSegs.set(key, [si]);
      else if (list[list.length - 1] !== si) list.push(si);
    }
  }
  const heap = new PairHeap();
  for (const [key, n] of pairCount) heap.push(n, key);

  const targetMerges = vocabSize - FIRST_PIECE_ID - chars.length;
  const merged: ScoredPiece[] = [];
  const progressEvery = opts.progressEveryMs ?? 1000;
  const tMerge = performance.now();
  let lastProgress = tMerge;
  const progress = (phase: BpeProgress['phase'], now: number) =>
    opts.onProgress?.({ phase, segments: segs.length, merges: merged.length, targetMerges, elapsedMs: now - t0, mergeMs: now - tMerge });
  if (tMerge - t0 >= progressEvery) progress('segments', tMerge);

  while (merged.length < targetMerges && heap.size > 0) {
    const [n, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== n) {
      if (current > 0) heap.push(current, key); // stale: the count fell since it was queued
      continue;
    }
    const a = Math.floor(key / KEY_SHIFT);
    const b = key % KEY_SHIFT;
    const text = symText[a] + symText[b];
    if (isReservedPiece(text)) {
      // "<s>" or "<0x41>" as a text piece would read back as a control or byte token: never learn it.
      banned.add(key);
      pairCount.delete(key);
      pairSegs.delete(key);
      continue;
    }
    // A piece learned before from another split ("a"+"bc" after "ab"+"c") is reused, not added again.
    let c = idOf.get(text);
    if (c === undefined) {
      c = symText.length;
      idOf.set(text, c);
      symText.push(text);
      symChars.push(symChars[a] + symChars[b]);
      merged.push({ text, score: -merged.length });
    }

    const touched = new Set<number>();
    const list = pairSegs.get(key) ?? [];
    pairSegs.delete(key);
    for (const si of list) {
      const s = segs[si];
      const len = segLen[si];
      let found = false;
      for (let k = 0; k + 1 < len; k++) {
        if (s[k] === a && s[k + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      const w = segCount[si];
      // Take out the segment's pairs, merge left to right, put the new pairs in.
      for (let k = 0; k + 1 < len; k++) {
        const pk = s[k] * KEY_SHIFT + s[k + 1];
        if (banned.has(pk) || !mergeable(s[k], s[k + 1])) continue;
        const left = (pairCount.get(pk) ?? 0) - w;
        if (left > 0) pairCount.set(pk, left);
        else pairCount.delete(pk);
      }
      let out = 0;
      for (let k = 0; k < len; k++) {
        if (k + 1 < len && s[k] === a && s[k + 1] === b) {
          s[out++] = c;
          k++;
        } else s[out++] = s[k];
      }
      segLen[si] = out;
      for (let k = 0; k + 1 < out; k++) {
        const x = s[k];
        const y = s[k + 1];
        if (!mergeable(x, y)) continue;
        const pk = x * KEY_SHIFT + y;
        if (banned.has(pk)) continue;
        pairCount.set(pk, (pairCount.get(pk) ?? 0) + w);
        if (x === c || y === c) {
          touched.add(pk);
          const l = pairSegs.get(pk);
          if (l === undefined) pairSegs.set(pk, [si]);
          else if (l[l.length - 1] !== si) l.push(si);
        }
      }
    }
    for (const pk of touched) {
      const cnt = pairCount.get(pk);
      if (cnt !== undefined && cnt > 0) heap.push(cnt, pk);
    }
    if (opts.onProgress) {
      const now = performance.now();
      if (now - lastProgress >= progressEvery) {
        lastProgress = now;
        progress('merges', now);
      }
    }
  }

  if (merged.length < targetMerges) {
    const most = FIRST_PIECE_ID + chars.length + merged.length;
    throw new LmflashError(
      `the training text only supports a bpe vocabulary of ${most} tokens (${chars.length} characters and ${merged.length} merges ` +
        `before no pair of pieces was left to merge): use --vocab ${most} or less, or more text`,
    );
  }

  // Characters first (by frequency), then merges; characters score below every merge, as in sentencepiece.
  const pieces: ScoredPiece[] = [
    ...chars.map((ch, i) => ({ text: String.fromCodePoint(ch.cp), score: -(targetMerges + i) })),
    ...merged,
  ];
  let characters = 0;
  for (const d of docs) for (const _ of d) characters++;
  return {
    type: 'bpe',
    bin: sentencepieceBin(pieces),
    pieces,
    stats: {
      documents: docs.length,
      characters,
      distinctCharacters: charCounts.size,
      keptCharacters: chars.length,
      segments: segs.length,
      merges: merged.length,
      trainMs: performance.now() - t0,
    },
  };
}
