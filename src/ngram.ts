/**
 * N-gram blobs (architecture 2, docs/blob-format.md "Architecture 2: N-gram"):
 * the validating reader and a scorer that gives, for every context, the same
 * float32 log-probabilities as the C core (firmware/core/src/ngram.c), bit
 * for bit: it reads the same packed tables and does the same float32 sums in
 * the same order.
 */
import { crc32 } from 'node:zlib';
import {
  BLOB_HEADER_BYTES,
  BLOB_MAGIC,
  BLOB_VERSION_MAJOR,
  corrupt,
  extentOk,
  readTokenizer,
  SECTION_CONFIG,
  SECTION_TOKENIZER,
} from './blob.js';
import { dataView } from './bytes.js';
import { LmflashError } from './errors.js';
import type { TokenizerData } from './tokenizer.js';

export const ARCH_NGRAM = 2;
export const SECTION_NGRAM = 4;
export const NGRAM_MAX_ORDER = 5;
export const NGRAM_CONFIG_BYTES = 64;
export const NGRAM_HEADER_BYTES = 16;
export const NGRAM_LEVEL_BYTES = 32;
/** A value field of this width holds a float32 as it is; narrower fields index the order's codebook. */
export const FLOAT_BITS = 32;
export const MAX_CODE_BITS = 16;
export const MAX_WORD_BITS = 24;
/** Largest vocabulary (word ids fit 24 bits). */
export const NGRAM_MAX_VOCAB = 1 << 24;
/** Bit offsets inside an order's entries stay below 2^32 (the core computes them in 32 bits). */
export const MAX_ENTRY_TABLE_BITS = 2 ** 32 - 64;
/** The largest seq_len a blob may ask for: the driver keeps that many token ids. */
export const NGRAM_MAX_SEQ_LEN = 1 << 20;

export interface NgramConfig {
  order: number;
  vocabSize: number;
  /** tokens a generation holds (prompt and output); the model itself looks back order − 1 tokens */
  seqLen: number;
  flags: number;
  /** the --prune thresholds the model was trained with, one per order (informative) */
  prune: number[];
  /** tokens the model was trained on (informative) */
  trainingTokens: number;
}

/** One order's table. */
export interface NgramLevel {
  order: number;
  count: number;
  wordBits: number;
  probBits: number;
  backoffBits: number;
  pointerBits: number;
  entryBits: number;
  entriesOffset: number;
  entriesBytes: number;
  /** the packed entries (count, plus a sentinel below the highest order), then at least one zero word */
  entries: Uint32Array;
  probCodebook: Float32Array | null;
  backoffCodebook: Float32Array | null;
}

export interface NgramView {
  bytes: Uint8Array;
  fileSize: number;
  versionMajor: number;
  versionMinor: number;
  arch: typeof ARCH_NGRAM;
  config: NgramConfig;
  tokenizer: TokenizerData;
  levels: NgramLevel[];
}

/** The architecture field of a blob (after checking the magic), to pick a reader. */
export function blobArch(buf: Uint8Array): number {
  if (buf.length < BLOB_HEADER_BYTES || Buffer.from(buf.subarray(0, 4)).toString('latin1') !== BLOB_MAGIC)
    throw new LmflashError('not an lmflash blob (no LMFB magic): convert or train a model first');
  return dataView(buf).getUint32(16, true);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** The float32 whose bits are u. */
export function floatOfBits(u: number): number {
  u32[0] = u;
  return f32[0];
}
/** The bits of float32(x). */
export function bitsOfFloat(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** `width` bits at bit offset `bit` of the little-endian word array (LSB first); the array has a spare word at its end. */
export function readBits(words: Uint32Array, bit: number, width: number): number {
  const i = Math.floor(bit / 32);
  const s = bit % 32;
  let v = words[i] >>> s;
  if (s + width > 32) v = (v | (words[i + 1] << (32 - s))) >>> 0;
  return width >= 32 ? v : (v & (2 ** width - 1)) >>> 0;
}

/** A fresh, aligned copy of bytes[offset, offset+length) (a Buffer's slice would share memory). */
function copyOut(bytes: Uint8Array, offset: number, length: number): ArrayBuffer {
  return new Uint8Array(bytes.subarray(offset, offset + length)).buffer;
}

function fieldBitsOk(bits: number): boolean {
  return (bits >= 1 && bits <= MAX_CODE_BITS) || bits === FLOAT_BITS;
}

/**
 * Parses and validates an N-gram blob as the C core does at open: header,
 * sections, config, tokenizer, and every order's descriptor, codebooks and
 * entries (word ids in range and increasing under each parent, pointers
 * increasing from 0 to the next order's count, finite values).
 */
export function readNgramBlob(buf: Uint8Array, opts: { checkCrc?: boolean } = {}): NgramView {
  const arch = blobArch(buf);
  const dv = dataView(buf);
  const versionMajor = dv.getUint16(4, true);
  const versionMinor = dv.getUint16(6, true);
  if (versionMajor !== BLOB_VERSION_MAJOR)
    throw new LmflashError(`blob format version ${versionMajor} is not ${BLOB_VERSION_MAJOR}, the version this lmflash reads`);
  const fileSize = dv.getUint32(8, true);
  if (fileSize < BLOB_HEADER_BYTES || fileSize > buf.length)
    throw new LmflashError(`blob says it is ${fileSize} bytes but only ${buf.length} are present: the file is truncated — train or copy it again`);
  const bytes = buf.subarray(0, fileSize);
  if (opts.checkCrc !== false && crc32(bytes.subarray(16)) !== dv.getUint32(12, true))
    throw new LmflashError('blob CRC mismatch: the file is corrupt or truncated — train it again');
  if (arch !== ARCH_NGRAM) throw new LmflashError(`blob architecture ${arch} is not an N-gram model (2)`);
  const count = dv.getUint32(20, true);
  const table = dv.getUint32(24, true);
  if (count > 64 || !extentOk(table, 16 * count, BLOB_HEADER_BYTES, fileSize)) throw corrupt('section table lies outside the file');
  const sections = new Map<number, { offset: number; size: number }>();
  for (let i = 0; i < count; i++) {
    const kind = dv.getUint32(table + 16 * i, true);
    const offset = dv.getUint32(table + 16 * i + 4, true);
    const size = dv.getUint32(table + 16 * i + 8, true);
    if (kind < SECTION_CONFIG || kind > SECTION_NGRAM) continue;
    if (sections.has(kind)) throw corrupt(`section kind ${kind} appears twice`);
    if (!extentOk(offset, size, BLOB_HEADER_BYTES, fileSize)) throw corrupt(`section kind ${kind} lies outside the file or is misaligned`);
    sections.set(kind, { offset, size });
  }
  const need = (kind: number, name: string) => {
    const s = sections.get(kind);
    if (!s) throw corrupt(`N-gram blob has no ${name} section`);
    return s;
  };
  const config = readNgramConfig(bytes, need(SECTION_CONFIG, 'CONFIG'));
  const tokenizer = readTokenizer(bytes, need(SECTION_TOKENIZER, 'TOKENIZER'), config);
  const levels = readLevels(bytes, need(SECTION_NGRAM, 'NGRAM'), config);
  return { bytes, fileSize, versionMajor, versionMinor, arch: ARCH_NGRAM, config, tokenizer, levels };
}

function readNgramConfig(bytes: Uint8Array, s: { offset: number; size: number }): NgramConfig {
  if (s.size < NGRAM_CONFIG_BYTES) throw corrupt(`N-gram CONFIG section is ${s.size} bytes, expected ${NGRAM_CONFIG_BYTES}`);
  const dv = dataView(bytes);
  const u = (i: number) => dv.getUint32(s.offset + 4 * i, true);
  const c: NgramConfig = {
    order: u(0),
    vocabSize: u(1),
    seqLen: u(2),
    flags: u(3),
    prune: [4, 5, 6, 7, 8].map(u),
    trainingTokens: u(9),
  };
  if (c.order < 1 || c.order > NGRAM_MAX_ORDER) throw corrupt(`N-gram order ${c.order} is not 1..${NGRAM_MAX_ORDER}`);
  if (c.vocabSize < 1 || c.vocabSize > NGRAM_MAX_VOCAB) throw corrupt(`N-gram vocab_size ${c.vocabSize} is not 1..2^24`);
  if (c.seqLen < 1 || c.seqLen > NGRAM_MAX_SEQ_LEN) throw corrupt(`N-gram seq_len ${c.seqLen} is not 1..2^20`);
  c.prune = c.prune.slice(0, c.order);
  return c;
}

function readLevels(bytes: Uint8Array, s: { offset: number; size: number }, c: NgramConfig): NgramLevel[] {
  const dv = dataView(bytes);
  const end = s.offset + s.size;
  if (s.size < NGRAM_HEADER_BYTES + NGRAM_LEVEL_BYTES * c.order) throw corrupt('NGRAM section is too short for its order descriptors');
  if (dv.getUint32(s.offset, true) !== c.order) throw corrupt('NGRAM section order differs from the config');
  const tablesStart = s.offset + NGRAM_HEADER_BYTES + NGRAM_LEVEL_BYTES * c.order;
  const levels: NgramLevel[] = [];
  for (let n = 1; n <= c.order; n++) {
    const d = s.offset + NGRAM_HEADER_BYTES + NGRAM_LEVEL_BYTES * (n - 1);
    const top = n === c.order;
    const lv = {
      order: n,
      count: dv.getUint32(d, true),
      wordBits: bytes[d + 4],
      probBits: bytes[d + 5],
      backoffBits: bytes[d + 6],
      pointerBits: bytes[d + 7],
      entriesOffset: dv.getUint32(d + 8, true),
      entriesBytes: dv.getUint32(d + 12, true),
      probCodebookOffset: dv.getUint32(d + 16, true),
      backoffCodebookOffset: dv.getUint32(d + 20, true),
    };
    const where = `N-gram order ${n}`;
    if (n === 1 && lv.count !== c.vocabSize) throw corrupt(`${where} has ${lv.count} entries, not one per token (${c.vocabSize})`);
    if (n === 1 ? lv.wordBits !== 0 : lv.wordBits < 1 || lv.wordBits > MAX_WORD_BITS) throw corrupt(`${where} word field of ${lv.wordBits} bits`);
    if (!fieldBitsOk(lv.probBits)) throw corrupt(`${where} probability field of ${lv.probBits} bits`);
    if (top ? lv.backoffBits !== 0 || lv.pointerBits !== 0 : !fieldBitsOk(lv.backoffBits) || lv.pointerBits < 1 || lv.pointerBits > 32)
      throw corrupt(`${where} backoff / pointer fields of ${lv.backoffBits} / ${lv.pointerBits} bits`);
    const entryBits = lv.wordBits + lv.probBits + lv.backoffBits + lv.pointerBits;
    const rows = lv.count + (top ? 0 : 1);
    const totalBits = rows * entryBits;
    if (totalBits > MAX_ENTRY_TABLE_BITS) throw corrupt(`${where} table is too large`);
    const needBytes = 4 * (Math.ceil(totalBits / 32) + 1);
    if (lv.entriesBytes < needBytes || !extentOk(lv.entriesOffset, lv.entriesBytes, tablesStart, end))
      throw corrupt(`${where} entries lie outside the NGRAM section or are misaligned`);
    const book = (offset: number, bits: number, name: string): Float32Array | null => {
      if (bits === FLOAT_BITS || bits === 0) return null;
      if (!extentOk(offset, 4 * 2 ** bits, tablesStart, end)) throw corrupt(`${where} ${name} codebook lies outside the NGRAM section`);
      const v = new Float32Array(copyOut(bytes, offset, 4 * 2 ** bits));
      if (!v.every(Number.isFinite)) throw corrupt(`${where} ${name} codebook holds a value that is not a finite number`);
      return v;
    };
    const entries = new Uint32Array(copyOut(bytes, lv.entriesOffset, needBytes));
    levels.push({
      ...lv,
      entryBits,
      entries,
      probCodebook: book(lv.probCodebookOffset, lv.probBits, 'probability'),
      backoffCodebook: book(lv.backoffCodebookOffset, lv.backoffBits, 'backoff'),
    });
  }
  for (const lv of levels) checkEntries(lv, levels[lv.order] ?? null, c);
  return levels;
}

/** Word ids in range and strictly increasing under each parent; pointers from 0 to the next count; float fields finite. */
function checkEntries(lv: NgramLevel, next: NgramLevel | null, c: NgramConfig): void {
  const where = `N-gram order ${lv.order}`;
  const f = fields(lv);
  for (let r = 0; r < lv.count; r++) {
    if (lv.probBits === FLOAT_BITS && !Number.isFinite(f.prob(r))) throw corrupt(`${where} entry ${r} has a probability that is not a finite number`);
    if (next && lv.backoffBits === FLOAT_BITS && !Number.isFinite(f.backoff(r))) throw corrupt(`${where} entry ${r} has a backoff that is not a finite number`);
  }
  if (lv.order > 1) for (let r = 0; r < lv.count; r++) if (f.word(r) >= c.vocabSize) throw corrupt(`${where} entry ${r} has word ${f.word(r)}, outside the vocabulary`);
  if (!next) return;
  if (f.pointer(0) !== 0 || f.pointer(lv.count) !== next.count) throw corrupt(`${where} pointers do not cover order ${lv.order + 1}`);
  const g = fields(next);
  for (let r = 0; r < lv.count; r++) {
    const lo = f.pointer(r);
    const hi = f.pointer(r + 1);
    if (hi < lo) throw corrupt(`${where} pointers decrease at entry ${r}`);
    for (let k = lo + 1; k < hi; k++) if (g.word(k) <= g.word(k - 1)) throw corrupt(`N-gram order ${lv.order + 1} words are not increasing at entry ${k}`);
  }
}

/** Field readers of one order's entries. */
export function fields(lv: NgramLevel) {
  const { entries, entryBits, wordBits, probBits, backoffBits, pointerBits } = lv;
  const probAt = wordBits;
  const backoffAt = probAt + probBits;
  const pointerAt = backoffAt + backoffBits;
  const value = (code: number, bits: number, book: Float32Array | null) => (bits === FLOAT_BITS ? floatOfBits(code) : book![code]);
  return {
    word: (r: number) => (lv.order === 1 ? r : readBits(entries, r * entryBits, wordBits)),
    prob: (r: number) => value(readBits(entries, r * entryBits + probAt, probBits), probBits, lv.probCodebook),
    backoff: (r: number) => value(readBits(entries, r * entryBits + backoffAt, backoffBits), backoffBits, lv.backoffCodebook),
    pointer: (r: number) => readBits(entries, r * entryBits + pointerAt, pointerBits),
  };
}

/**
 * The model's next-token log-probabilities (natural logs, float32), the way
 * the C core computes them (firmware/core/src/ngram.c):
 * - the history is the last order − 1 tokens (a position of 0 starts over);
 * - ctx_j, the last j tokens, is looked up for j = 1, 2, … until one is
 *   missing (a longer one then cannot exist either); b_j is its backoff;
 * - S_J = 0 and S_{j−1} = b_j + S_j (float32), for the J contexts found;
 * - logit[w] = p(w | ctx_m) + S_m for the longest ctx_m that w follows
 *   (m = 0: the unigram), one float32 addition.
 */
export class NgramLm {
  readonly order: number;
  readonly vocabSize: number;
  private readonly f: ReturnType<typeof fields>[];
  private readonly history: number[] = [];
  /** index of ctx_j in order j, for j = 1..found */
  private readonly ctx: Int32Array;
  /** S_j, for j = 0..found */
  private readonly sums: Float32Array;
  private found = 0;

  constructor(view: NgramView) {
    this.order = view.config.order;
    this.vocabSize = view.config.vocabSize;
    this.f = view.levels.map(fields);
    this.ctx = new Int32Array(this.order + 1);
    this.sums = new Float32Array(this.order + 1);
  }

  /** Feeds the token at position pos (0 starts a new sequence); afterwards logit()/logits() predict the next token. */
  forward(token: number, pos: number): void {
    if (pos === 0) this.history.length = 0;
    if (!(token >= 0 && token < this.vocabSize)) this.history.length = 0; // the core forgets the context too
    else {
      this.history.push(token);
      if (this.history.length > this.order - 1) this.history.shift();
    }
    this.findContexts();
  }

  private findContexts(): void {
    const h = this.history;
    let found = 0;
    for (let j = 1; j <= h.length; j++) {
      const at = this.find(h, h.length - j, j);
      if (at < 0) break;
      this.ctx[j] = at;
      found = j;
    }
    this.found = found;
    this.sums[found] = 0;
    for (let j = found; j >= 1; j--) this.sums[j - 1] = Math.fround(this.f[j - 1].backoff(this.ctx[j]) + this.sums[j]);
  }

  /** Index of the n-gram tokens[from .. from+len) in order len, or -1. */
  private find(tokens: number[], from: number, len: number): number {
    let at = tokens[from];
    for (let n = 1; n < len; n++) {
      at = this.child(n, at, tokens[from + n]);
      if (at < 0) return -1;
    }
    return at;
  }

  /** Index in order n+1 of word w under entry `at` of order n, or -1 (binary search). */
  private child(n: number, at: number, w: number): number {
    const f = this.f[n - 1];
    const g = this.f[n];
    let lo = f.pointer(at);
    let hi = f.pointer(at + 1);
    while (lo < hi) {
      const mid = lo + ((hi - lo) >> 1);
      const x = g.word(mid);
      if (x === w) return mid;
      if (x < w) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** The log-probability the core gives token w next (a float32). */
  logit(w: number): number {
    for (let j = this.found; j >= 1; j--) {
      if (j >= this.order) continue;
      const k = this.child(j, this.ctx[j], w);
      if (k >= 0) return Math.fround(this.f[j].prob(k) + this.sums[j]);
    }
    return Math.fround(this.f[0].prob(w) + this.sums[0]);
  }

  /** Every token's logit, into out (vocabSize floats). */
  logits(out: Float32Array = new Float32Array(this.vocabSize)): Float32Array {
    const V = this.vocabSize;
    for (let w = 0; w < V; w++) out[w] = this.f[0].prob(w) + this.sums[0];
    for (let j = 1; j <= this.found && j < this.order; j++) {
      const f = this.f[j - 1];
      const g = this.f[j];
      const hi = f.pointer(this.ctx[j] + 1);
      for (let k = f.pointer(this.ctx[j]); k < hi; k++) out[g.word(k)] = g.prob(k) + this.sums[j];
    }
    return out;
  }

  /** Tokens of context in use (the longest context found), e.g. for tests. */
  get contextLength(): number {
    return this.found;
  }
}

/** The RAM the C driver uses for an N-gram blob at context ctx (firmware/core/src/lm.c and app.c). */
export interface NgramRamPlan {
  ctx: number;
  logitsBytes: number;
  samplerBytes: number;
  tokenBytes: number;
  totalBytes: number;
}

const r16 = (n: number) => Math.ceil(n / 16) * 16;

export function ngramRamPlan(c: NgramConfig, ctx: number): NgramRamPlan {
  const logitsBytes = r16(c.vocabSize * 4);
  const samplerBytes = r16(c.vocabSize * 8);
  const tokenBytes = r16((ctx + 2) * 4);
  return { ctx, logitsBytes, samplerBytes, tokenBytes, totalBytes: logitsBytes + samplerBytes + tokenBytes };
}
