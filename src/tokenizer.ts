/**
 * Sentencepiece-style BPE tokenizer with llama2.c run.c semantics
 * (encode(text, bos=1, eos=0) and decode), operating on exactly the tables
 * the blob stores (docs/blob-format.md, TOKENIZER section): the C core walks
 * the same tables, so anything wrong in them shows up in these tests first.
 */
import { LmflashError } from './errors.js';
import type { TokenizerBin } from './llama2c.js';

/** "No such token" in the blob's u32 id fields. */
export const NO_ID = 0xffffffff;

export const PIECE_TEXT = 0;
export const PIECE_BYTE = 1;
export const PIECE_CONTROL = 2;

export const TOKENIZER_FLAG_DUMMY_PREFIX = 1;

/**
 * The first 259 pieces of a llama2.c-style vocabulary: <unk>, <s>, </s>
 * (control, ids 0-2) and the 256 byte-fallback tokens (ids 3-258), as
 * parallel arrays to append text pieces to before buildTokenizerData.
 */
export function llamaControlAndBytePieces(): { pieces: Uint8Array[]; kinds: number[]; scores: number[]; byteIds: Uint32Array } {
  const pieces: Uint8Array[] = ['<unk>', '<s>', '</s>'].map((name) => Buffer.from(name));
  const kinds: number[] = [PIECE_CONTROL, PIECE_CONTROL, PIECE_CONTROL];
  const byteIds = new Uint32Array(256).fill(NO_ID);
  for (let b = 0; b < 256; b++) {
    byteIds[b] = pieces.length;
    pieces.push(Uint8Array.of(b));
    kinds.push(PIECE_BYTE);
  }
  return { pieces, kinds, scores: pieces.map(() => 0), byteIds };
}
/**
 * Word-level encoding (N-gram blobs trained on words): the text's
 * whitespace-separated words are the tokens, each the text piece of the word
 * after a space (" word"), <unk> when there is none. No merges.
 */
export const TOKENIZER_FLAG_WORDS = 2;

/** The bytes that separate words in word-level encoding: ASCII space, tab, LF, VT, FF, CR. */
export function isWordSeparator(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

/** The blob's tokenizer tables, one field per blob field. */
export interface TokenizerData {
  vocabSize: number;
  maxPieceBytes: number;
  bosId: number; // NO_ID when none
  eosId: number;
  unkId: number;
  flags: number; // bit 0: add a dummy-prefix space
  scores: Float32Array; // [vocabSize]
  pieceOffsets: Uint32Array; // [vocabSize + 1]
  pieceBytes: Uint8Array;
  kinds: Uint8Array; // [vocabSize]: PIECE_TEXT / PIECE_BYTE / PIECE_CONTROL
  sorted: Uint32Array; // text piece ids in memcmp order of their bytes
  byteIds: Uint32Array; // [256]: byte-fallback token per byte value, NO_ID when absent
}

/** memcmp order with a prefix before its extensions (what a C binary search expects). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** run.c starts its search for the best merge at this score: a piece scoring lower never merges. */
const MERGE_SCORE_FLOOR = Math.fround(-1e10);
const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;
const CONTROL_NAMES = ['<unk>', '<s>', '</s>'] as const;

/**
 * Builds the blob's tokenizer tables from a llama2.c tokenizer.bin.
 * - control tokens are the ones named <unk>, <s>, </s> (llama2.c's export
 *   stores BOS/EOS as "\n<s>\n" and "\n</s>\n"; we keep the bare name);
 * - byte-fallback tokens are the pieces spelled <0xXX>; they store their raw byte;
 * - everything else is text, stored as is (tokenizer.bin already has spaces, not ▁).
 * The dummy prefix is always on, as in run.c.
 */
export function tokenizerFromBin(bin: TokenizerBin): TokenizerData {
  const n = bin.pieces.length;
  const latin1 = (p: Uint8Array) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('latin1');
  const pieces: Uint8Array[] = [];
  const kinds = new Uint8Array(n);
  const byteIds = new Uint32Array(256).fill(NO_ID);
  const special: Record<string, number> = {};
  for (let id = 0; id < n; id++) {
    const raw = bin.pieces[id];
    const text = latin1(raw);
    const name = text.trim();
    const byteMatch = BYTE_PIECE.exec(text);
    if ((CONTROL_NAMES as readonly string[]).includes(name) && special[name] === undefined) {
      special[name] = id;
      kinds[id] = PIECE_CONTROL;
      pieces.push(Buffer.from(name, 'latin1'));
    } else if (byteMatch) {
      const value = parseInt(byteMatch[1], 16);
      kinds[id] = PIECE_BYTE;
      pieces.push(Uint8Array.of(value));
      // A duplicate spelling keeps the first id, like a C lookup table would.
      if (byteIds[value] === NO_ID) byteIds[value] = id;
    } else {
      kinds[id] = PIECE_TEXT;
      pieces.push(raw);
    }
  }
  return buildTokenizerData({
    pieces,
    scores: bin.scores,
    kinds,
    byteIds,
    bosId: special['<s>'] ?? NO_ID,
    eosId: special['</s>'] ?? NO_ID,
    unkId: special['<unk>'] ?? NO_ID,
    flags: TOKENIZER_FLAG_DUMMY_PREFIX,
  });
}

/** Inputs to buildTokenizerData: per-token pieces and kinds; the derived tables are computed. */
export interface TokenizerSpec {
  pieces: Uint8Array[];
  scores: Float32Array | number[];
  kinds: Uint8Array | number[];
  byteIds: Uint32Array;
  bosId: number;
  eosId: number;
  unkId: number;
  flags: number;
}

/**
 * Packs pieces into the blob's tables and computes the sorted index. Only
 * non-empty text pieces are indexed, and when two text pieces have the same
 * bytes only the lower id is (a merge or lookup can only ever produce one id).
 */
export function buildTokenizerData(spec: TokenizerSpec): TokenizerData {
  const n = spec.pieces.length;
  const pieceOffsets = new Uint32Array(n + 1);
  let total = 0;
  let maxPieceBytes = 0;
  for (let i = 0; i < n; i++) {
    pieceOffsets[i] = total;
    total += spec.pieces[i].length;
    maxPieceBytes = Math.max(maxPieceBytes, spec.pieces[i].length);
  }
  pieceOffsets[n] = total;
  const pieceBytes = new Uint8Array(total);
  for (let i = 0; i < n; i++) pieceBytes.set(spec.pieces[i], pieceOffsets[i]);
  const kinds = Uint8Array.from(spec.kinds);
  const textIds: number[] = [];
  for (let i = 0; i < n; i++) if (kinds[i] === PIECE_TEXT && spec.pieces[i].length > 0) textIds.push(i);
  textIds.sort((a, b) => compareBytes(spec.pieces[a], spec.pieces[b]) || a - b);
  const sorted = textIds.filter((id, k) => k === 0 || compareBytes(spec.pieces[textIds[k - 1]], spec.pieces[id]) !== 0);
  const data: TokenizerData = {
    vocabSize: n,
    maxPieceBytes,
    bosId: spec.bosId,
    eosId: spec.eosId,
    unkId: spec.unkId,
    flags: spec.flags,
    scores: Float32Array.from(spec.scores),
    pieceOffsets,
    pieceBytes,
    kinds,
    sorted: Uint32Array.from(sorted),
    byteIds: Uint32Array.from(spec.byteIds),
  };
  const problems = tokenizerProblems(data);
  if (problems.length > 0) throw new LmflashError(`tokenizer is malformed: ${problems.join('; ')}`);
  return data;
}

/**
 * Consistency checks on the tables (what a blob reader must verify before
 * trusting them): sizes, offsets, kinds, special ids, sorted order, byte map.
 * Returns readable problems, empty when the tables are sound.
 */
export function tokenizerProblems(t: TokenizerData): string[] {
  const n = t.vocabSize;
  const p: string[] = [];
  if (t.scores.length !== n || t.kinds.length !== n || t.pieceOffsets.length !== n + 1 || t.byteIds.length !== 256) {
    return ['table lengths do not match the vocabulary size'];
  }
  if (t.pieceOffsets[0] !== 0 || t.pieceOffsets[n] !== t.pieceBytes.length) {
    return ['piece offsets do not cover the piece bytes'];
  }
  let longest = 0;
  for (let i = 0; i < n; i++) {
    if (t.pieceOffsets[i + 1] < t.pieceOffsets[i]) return [`piece offsets decrease at token ${i}`];
    const len = t.pieceOffsets[i + 1] - t.pieceOffsets[i];
    longest = Math.max(longest, len);
    if (t.kinds[i] > PIECE_CONTROL) return [`token ${i} has unknown kind ${t.kinds[i]}`];
    if (t.kinds[i] === PIECE_BYTE && len !== 1) return [`byte-fallback token ${i} holds ${len} bytes instead of 1`];
  }
  if (longest > t.maxPieceBytes) p.push(`a piece has ${longest} bytes but max_piece_bytes is ${t.maxPieceBytes}`);
  if (t.maxPieceBytes < 1 || t.maxPieceBytes > 1024) p.push(`max_piece_bytes ${t.maxPieceBytes} is not in 1..1024`);
  for (const [name, id] of [
    ['bos', t.bosId],
    ['eos', t.eosId],
    ['unk', t.unkId],
  ] as const) {
    if (id !== NO_ID && !(id < n)) p.push(`${name} id ${id} is outside the vocabulary`);
  }
  if (t.sorted.length > n) p.push('the sorted index has more entries than the vocabulary');
  for (let k = 0; k < t.sorted.length; k++) {
    const id = t.sorted[k];
    if (!(id < n) || t.kinds[id] !== PIECE_TEXT) {
      p.push(`sorted index entry ${k} (${id}) is not a text token`);
      break;
    }
    if (k > 0 && compareBytes(pieceOf(t, t.sorted[k - 1]), pieceOf(t, id)) > 0) {
      p.push(`sorted index is out of order at entry ${k}`);
      break;
    }
  }
  for (let b = 0; b < 256; b++) {
    const id = t.byteIds[b];
    if (id === NO_ID) continue;
    if (!(id < n) || t.kinds[id] !== PIECE_BYTE || t.pieceBytes[t.pieceOffsets[id]] !== b) {
      p.push(`byte-fallback map entry ${b} (${id}) is not the byte token for that value`);
      break;
    }
  }
  return p;
}

/** A token's piece bytes (a view into the table). */
export function pieceOf(t: TokenizerData, id: number): Uint8Array {
  return t.pieceBytes.subarray(t.pieceOffsets[id], t.pieceOffsets[id + 1]);
}

export interface EncodeOptions {
  /** Put the BOS token first (default true, as run.c's generate does). */
  bos?: boolean;
  /** Put the EOS token last (default false). */
  eos?: boolean;
  /**
   * Start with the dummy prefix " " (default true, as run.c). false encodes
   * a continuation of text already encoded: a fine-tuning completion after
   * its prompt, so the pair's tokens are the prompt's as `generate` encodes
   * it followed by the completion's.
   */
  dummyPrefix?: boolean;
  /**
   * Receives every id the encoding passes through: the chunks' pieces, the
   * byte fallbacks, each merge's result (intermediates included) and the
   * special tokens. Vocabulary pruning keeps exactly these, so the smaller
   * vocabulary makes the same merge choices (converter/prune-vocab.ts).
   */
  visited?: Set<number>;
}

/** A min-heap of merge candidates ordered by (score desc, left position asc): run.c's choice of pair. */
class MergeHeap {
  private score: number[] = [];
  private left: number[] = [];
  private leftId: number[] = [];
  private rightId: number[] = [];
  private merged: number[] = [];
  private heap: number[] = []; // indices into the arrays above

  get size(): number {
    return this.heap.length;
  }

  private before(a: number, b: number): boolean {
    return this.score[a] > this.score[b] || (this.score[a] === this.score[b] && this.left[a] < this.left[b]);
  }

  push(score: number, left: number, leftId: number, rightId: number, merged: number): void {
    const e = this.score.length;
    this.score.push(score);
    this.left.push(left);
    this.leftId.push(leftId);
    this.rightId.push(rightId);
    this.merged.push(merged);
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  /** Removes the best candidate; returns [left, leftId, rightId, merged]. */
  pop(): [number, number, number, number] {
    const h = this.heap;
    const top = h[0];
    const last = h.pop() as number;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && this.before(h[l], h[best])) best = l;
        if (r < h.length && this.before(h[r], h[best])) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best], h[i]];
        i = best;
      }
    }
    return [this.left[top], this.leftId[top], this.rightId[top], this.merged[top]];
  }
}

/** Encoder/decoder over TokenizerData. Stateless apart from scratch buffers. */
export class Tokenizer {
  private readonly scratch: Uint8Array;

  constructor(readonly data: TokenizerData) {
    const problems = tokenizerProblems(data);
    if (problems.length > 0) throw new LmflashError(`tokenizer is malformed: ${problems.join('; ')}`);
    this.scratch = new Uint8Array(2 * Math.max(data.maxPieceBytes, 4));
  }

  get vocabSize(): number {
    return this.data.vocabSize;
  }

  piece(id: number): Uint8Array {
    return pieceOf(this.data, id);
  }

  /**
   * Binary search of the sorted text pieces for scratch[0, len). Returns the
   * id or -1. This is the lookup the C core does, on the same table.
   */
  private lookup(len: number): number {
    const t = this.data;
    const key = this.scratch;
    let lo = 0;
    let hi = t.sorted.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const id = t.sorted[mid];
      const start = t.pieceOffsets[id];
      const plen = t.pieceOffsets[id + 1] - start;
      const n = Math.min(plen, len);
      let c = 0;
      for (let i = 0; i < n && c === 0; i++) c = t.pieceBytes[start + i] - key[i];
      if (c === 0) c = plen - len;
      if (c === 0) return id;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Id of the text piece equal to the concatenation of pieces a and b, or -1. */
  private lookupPair(a: number, b: number): number {
    const t = this.data;
    const la = t.pieceOffsets[a + 1] - t.pieceOffsets[a];
    const lb = t.pieceOffsets[b + 1] - t.pieceOffsets[b];
    if (la + lb > t.maxPieceBytes) return -1; // cannot be a piece: saves the search
    this.scratch.set(t.pieceBytes.subarray(t.pieceOffsets[a], t.pieceOffsets[a + 1]), 0);
    this.scratch.set(t.pieceBytes.subarray(t.pieceOffsets[b], t.pieceOffsets[b + 1]), la);
    return this.lookup(la + lb);
  }

  /**
   * run.c's encode(text, bos, eos) on the blob's tables:
   * 1. before non-empty text (flag bit 0) the " " text piece as a dummy
   *    prefix, a token of its own (nothing when there is no such piece);
   * 2. the text is cut into chunks of one byte plus the continuation bytes
   *    (10xxxxxx) that follow it, at most 4 bytes a chunk; each chunk becomes
   *    its text piece, else one byte-fallback token per byte (one unk token
   *    for the chunk when a byte has none; nothing if there is no unk either);
   * 3. repeatedly the adjacent pair of text tokens whose concatenation is a
   *    text piece with the highest score (leftmost on ties; scores must be
   *    above -1e10, run.c's starting point) is merged.
   * Step 3 runs on a priority queue instead of run.c's quadratic rescan; the
   * result is the same because order is kept and ties go to the leftmost pair.
   */
  encode(text: string | Uint8Array, opts: EncodeOptions = {}): number[] {
    const t = this.data;
    const input = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    if (t.flags & TOKENIZER_FLAG_WORDS) return this.encodeWords(input, opts);
    const ids: number[] = [];
    // The dummy prefix is the " " text piece, a token of its own (so it never
    // joins a leading continuation byte); run.c assumes the piece exists, we
    // add nothing when it does not.
    if (input.length > 0 && t.flags & TOKENIZER_FLAG_DUMMY_PREFIX && opts.dummyPrefix !== false) {
      this.scratch[0] = 0x20;
      const space = this.lookup(1);
      if (space >= 0) ids.push(space);
    }
    for (let i = 0; i < input.length; ) {
      let len = 1;
      while (len < 4 && i + len < input.length && (input[i + len] & 0xc0) === 0x80) len++;
      this.pushChunk(ids, input, i, len);
      i += len;
    }

    if (opts.visited) for (const id of ids) opts.visited.add(id);
    const merged = this.merge(ids, opts.visited);
    if (opts.bos !== false && t.bosId !== NO_ID) merged.unshift(t.bosId);
    if (opts.eos && t.eosId !== NO_ID) merged.push(t.eosId);
    if (opts.visited) for (const id of merged) opts.visited.add(id);
    return merged;
  }

  /**
   * Word-level encoding (TOKENIZER_FLAG_WORDS): BOS, then per run of
   * non-separator bytes the text piece " " + word, or the unk token (nothing
   * when there is none). The C core does the same (tokenizer.c).
   */
  private encodeWords(input: Uint8Array, opts: EncodeOptions): number[] {
    const t = this.data;
    const ids: number[] = [];
    if (opts.bos !== false && t.bosId !== NO_ID) ids.push(t.bosId);
    for (let i = 0; i < input.length; ) {
      if (isWordSeparator(input[i])) {
        i++;
        continue;
      }
      let end = i;
      while (end < input.length && !isWordSeparator(input[end])) end++;
      let id = -1;
      if (end - i + 1 <= t.maxPieceBytes) {
        if (this.scratch.length < end - i + 1) throw new Error('internal error: scratch too small');
        this.scratch[0] = 0x20;
        this.scratch.set(input.subarray(i, end), 1);
        id = this.lookup(end - i + 1);
      }
      if (id >= 0) ids.push(id);
      else if (t.unkId !== NO_ID) ids.push(t.unkId);
      i = end;
    }
    if (opts.eos && t.eosId !== NO_ID) ids.push(t.eosId);
    return ids;
  }

  /**
   * Appends the token(s) for bytes[start, start+len): its text piece, else byte
   * fallback per byte; a character the byte tokens cannot spell (a vocabulary
   * without byte fallback) is one unk token, not one per byte (nothing without unk).
   */
  private pushChunk(ids: number[], bytes: Uint8Array, start: number, len: number): void {
    const t = this.data;
    this.scratch.set(bytes.subarray(start, start + len), 0);
    const id = this.lookup(len);
    if (id >= 0) {
      ids.push(id);
      return;
    }
    const chunk = bytes.subarray(start, start + len);
    if (chunk.some((b) => t.byteIds[b] === NO_ID)) {
      if (t.unkId !== NO_ID) ids.push(t.unkId);
      return;
    }
    for (const b of chunk) ids.push(t.byteIds[b]);
  }

  private merge(ids: number[], visited?: Set<number>): number[] {
    const t = this.data;
    const n = ids.length;
    const id = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MergeHeap();
    const consider = (left: number) => {
      if (left < 0) return;
      const right = next[left];
      if (right < 0) return;
      const a = id[left];
      const b = id[right];
      if (t.kinds[a] !== PIECE_TEXT || t.kinds[b] !== PIECE_TEXT) return; // byte and control tokens never merge
      const m = this.lookupPair(a, b);
      if (m >= 0 && t.scores[m] > MERGE_SCORE_FLOOR) heap.push(t.scores[m], left, a, b, m);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const [left, a, b, m] = heap.pop();
      const right = next[left];
      // Stale entry: one side was merged away (id -1) or changed since it was queued.
      if (id[left] !== a || right < 0 || id[right] !== b) continue;
      id[left] = m;
      id[right] = -1;
      visited?.add(m);
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left]);
      consider(left);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(id[i]);
    return out;
  }

  /**
   * The bytes token `id` prints after token `prev` (run.c decode): control
   * tokens print nothing, and a text piece right after BOS loses its leading
   * space (the dummy prefix).
   */
  decodeToken(prev: number, id: number): Uint8Array {
    const t = this.data;
    if (!(id >= 0 && id < t.vocabSize)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${t.vocabSize - 1})`);
    if (t.kinds[id] === PIECE_CONTROL) return new Uint8Array(0);
    const piece = pieceOf(t, id);
    if (prev === t.bosId && t.bosId !== NO_ID && t.kinds[id] === PIECE_TEXT && piece[0] === 0x20) return piece.subarray(1);
    return piece;
  }

  /** Concatenated bytes of a token sequence; `prev` is the token before ids[0] (NO_ID: none). */
  decode(ids: ArrayLike<number>, prev: number = NO_ID): Uint8Array {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      parts.push(this.decodeToken(prev, ids[i]));
      prev = ids[i];
    }
    return Buffer.concat(parts);
  }

  /** decode() as a UTF-8 string (invalid sequences become U+FFFD). */
  decodeText(ids: ArrayLike<number>, prev: number = NO_ID): string {
    return Buffer.from(this.decode(ids, prev)).toString('utf8');
  }
}
