/**
 * Writes an N-gram blob (architecture 2, docs/blob-format.md): header,
 * section table, the N-gram CONFIG, the TOKENIZER section (shared with
 * transformer blobs) and the NGRAM section: per order a descriptor, the
 * codebooks and the bit-packed entries of the trie (converter/ngram/trie.ts).
 */
import {
  BLOB_ALIGN,
  BLOB_HEADER_BYTES,
  Layout,
  placeTokenizer,
  SECTION_CONFIG,
  SECTION_TOKENIZER,
  writeBlobHeader,
  writeSectionTable,
  writeTokenizer,
} from '../../src/blob.js';
import { alignUp, bytesOf, dataView } from '../../src/bytes.js';
import { LmflashError } from '../../src/errors.js';
import {
  ARCH_NGRAM,
  bitsOfFloat,
  FLOAT_BITS,
  MAX_CODE_BITS,
  MAX_ENTRY_TABLE_BITS,
  NGRAM_CONFIG_BYTES,
  NGRAM_HEADER_BYTES,
  NGRAM_LEVEL_BYTES,
  NGRAM_MAX_SEQ_LEN,
  SECTION_NGRAM,
} from '../../src/ngram.js';
import type { TokenizerData } from '../../src/tokenizer.js';
import { quantizeBackoffs, quantizeProbs, type Codebook } from './quantize.js';
import type { TrieLevel } from './trie.js';

export interface NgramBlobOptions {
  /** bits per quantized value (1..16), or 32 to store float32 values as they are. Unigrams are always float32 (as in KenLM). */
  valueBits: number;
  /** tokens a generation may hold (the config's seq_len) */
  seqLen: number;
  /** informative: the --prune thresholds and the training token count */
  prune: number[];
  trainingTokens: number;
}

/** Per order: what it holds and what it costs. */
export interface LevelReport {
  order: number;
  count: number;
  entryBits: number;
  /** entries plus codebooks */
  bytes: number;
}

export interface NgramBlobResult {
  blob: Buffer;
  levels: LevelReport[];
}

/** Bits to hold values 0..max. */
function bitsFor(max: number): number {
  let b = 1;
  while (2 ** b <= max) b++;
  return b;
}

interface PackedLevel {
  lv: TrieLevel;
  wordBits: number;
  probBits: number;
  backoffBits: number;
  pointerBits: number;
  entryBits: number;
  rows: number;
  words: Uint32Array;
  probBook: Codebook | null;
  backoffBook: Codebook | null;
  entriesOffset: number;
  probBookOffset: number;
  backoffBookOffset: number;
}

/** ORs `width` bits of value into the word array at bit offset `bit` (LSB first). */
function putBits(words: Uint32Array, bit: number, value: number, width: number): void {
  const i = Math.floor(bit / 32);
  const s = bit % 32;
  words[i] = (words[i] | (value << s)) >>> 0;
  if (s + width > 32) words[i + 1] = (words[i + 1] | (value >>> (32 - s))) >>> 0;
}

function pack(levels: TrieLevel[], valueBits: number, vocabSize: number): PackedLevel[] {
  const N = levels.length;
  return levels.map((lv, i) => {
    const top = lv.order === N;
    const float = lv.order === 1 || valueBits === FLOAT_BITS;
    const probBook = float ? null : quantizeProbs(lv.logProbs, valueBits);
    const backoffBook = float || top ? null : quantizeBackoffs(lv.logBackoffs, valueBits);
    const wordBits = lv.order === 1 ? 0 : bitsFor(vocabSize - 1);
    const probBits = float ? FLOAT_BITS : valueBits;
    const backoffBits = top ? 0 : float ? FLOAT_BITS : valueBits;
    const pointerBits = top ? 0 : bitsFor(levels[i + 1].count);
    const entryBits = wordBits + probBits + backoffBits + pointerBits;
    const rows = lv.count + (top ? 0 : 1);
    if (rows * entryBits > MAX_ENTRY_TABLE_BITS) throw new LmflashError(`order ${lv.order} has too many n-grams for one table: prune it`);
    const words = new Uint32Array(Math.ceil((rows * entryBits) / 32) + 1); // + a spare word the readers may touch
    for (let r = 0; r < rows; r++) {
      let bit = r * entryBits;
      const last = r === lv.count; // the sentinel holds only the end pointer
      if (wordBits) putBits(words, bit, last ? 0 : lv.words[r], wordBits);
      bit += wordBits;
      if (!last) putBits(words, bit, probBook ? probBook.codes[r] : bitsOfFloat(lv.logProbs[r]), probBits);
      bit += probBits;
      if (backoffBits && !last) putBits(words, bit, backoffBook ? backoffBook.codes[r] : bitsOfFloat(lv.logBackoffs[r]), backoffBits);
      bit += backoffBits;
      if (pointerBits) putBits(words, bit, lv.pointers[r], pointerBits);
    }
    return { lv, wordBits, probBits, backoffBits, pointerBits, entryBits, rows, words, probBook, backoffBook, entriesOffset: 0, probBookOffset: 0, backoffBookOffset: 0 };
  });
}

export function writeNgramBlob(levels: TrieLevel[], tokenizer: TokenizerData, opts: NgramBlobOptions): NgramBlobResult {
  const N = levels.length;
  const V = levels[0].count;
  if (!((opts.valueBits >= 1 && opts.valueBits <= MAX_CODE_BITS) || opts.valueBits === FLOAT_BITS))
    throw new LmflashError(`values are stored in 1 to ${MAX_CODE_BITS} bits, or ${FLOAT_BITS} (float32), not ${opts.valueBits}`);
  if (tokenizer.vocabSize !== V) throw new Error(`internal error: tokenizer of ${tokenizer.vocabSize} tokens for a model of ${V}`);
  if (!(opts.seqLen >= 1 && opts.seqLen <= NGRAM_MAX_SEQ_LEN)) throw new LmflashError(`the context must be 1 to ${NGRAM_MAX_SEQ_LEN} tokens`);
  const packed = pack(levels, opts.valueBits, V);

  const layout = new Layout();
  layout.place(BLOB_HEADER_BYTES);
  const sectionTable = layout.place(3 * 16);
  const configOffset = layout.place(NGRAM_CONFIG_BYTES);
  const tok = placeTokenizer(layout, tokenizer);
  const ngramOffset = layout.place(NGRAM_HEADER_BYTES + NGRAM_LEVEL_BYTES * N);
  for (const p of packed) {
    if (p.probBook) p.probBookOffset = layout.place(4 * p.probBook.centers.length);
    if (p.backoffBook) p.backoffBookOffset = layout.place(4 * p.backoffBook.centers.length);
    p.entriesOffset = layout.place(4 * p.words.length);
  }
  const ngramSize = alignUp(layout.end, BLOB_ALIGN) - ngramOffset;
  const fileSize = alignUp(layout.end, BLOB_ALIGN);
  if (fileSize > 0xffffffff) throw new LmflashError(`the blob would be ${fileSize} bytes, more than the format's 4 GiB: prune the model`);

  const buf = Buffer.alloc(fileSize);
  const dv = dataView(buf);
  const u32 = (off: number, v: number) => dv.setUint32(off, v, true);
  writeSectionTable(dv, sectionTable, [
    [SECTION_CONFIG, configOffset, NGRAM_CONFIG_BYTES],
    [SECTION_TOKENIZER, tok.offset, tok.size],
    [SECTION_NGRAM, ngramOffset, ngramSize],
  ]);

  u32(configOffset, N);
  u32(configOffset + 4, V);
  u32(configOffset + 8, opts.seqLen);
  u32(configOffset + 12, 0);
  for (let i = 0; i < 5; i++) u32(configOffset + 16 + 4 * i, i < N ? (opts.prune[i] ?? 0) : 0);
  u32(configOffset + 36, Math.min(opts.trainingTokens, 0xffffffff));

  writeTokenizer(buf, tok, tokenizer);

  u32(ngramOffset, N);
  packed.forEach((p, i) => {
    const d = ngramOffset + NGRAM_HEADER_BYTES + NGRAM_LEVEL_BYTES * i;
    u32(d, p.lv.count);
    buf[d + 4] = p.wordBits;
    buf[d + 5] = p.probBits;
    buf[d + 6] = p.backoffBits;
    buf[d + 7] = p.pointerBits;
    u32(d + 8, p.entriesOffset);
    u32(d + 12, 4 * p.words.length);
    u32(d + 16, p.probBookOffset);
    u32(d + 20, p.backoffBookOffset);
    if (p.probBook) buf.set(bytesOf(p.probBook.centers), p.probBookOffset);
    if (p.backoffBook) buf.set(bytesOf(p.backoffBook.centers), p.backoffBookOffset);
    buf.set(bytesOf(p.words), p.entriesOffset);
  });

  writeBlobHeader(buf, ARCH_NGRAM, sectionTable, 3);

  return {
    blob: buf,
    levels: packed.map((p) => ({
      order: p.lv.order,
      count: p.lv.count,
      entryBits: p.entryBits,
      bytes: 4 * p.words.length + 4 * ((p.probBook?.centers.length ?? 0) + (p.backoffBook?.centers.length ?? 0)),
    })),
  };
}
