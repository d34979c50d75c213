/**
 * What a transformer blob would take in flash with fewer tokens or other
 * weight bits, without writing it: the fit planner's advice (src/boards.ts)
 * when a model is too big for a board ("at all-int4 it takes X", "keep at
 * most N tokens"). The sizes follow the writer's layout (src/blob.ts: every
 * table 16-byte aligned, q8/q4 row strides, f32 group scales); what the
 * formula leaves out (header, section table, config, tensor directory) is
 * taken from the blob itself, so the figure for the blob's own vocabulary
 * and bits is its file size exactly.
 */
import { DTYPE_F32, DTYPE_Q4, DTYPE_Q8, ROLES, type BlobView, type TensorEntry, type WeightBits } from './blob.js';

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Weight bits of a blob's layer matrices and of its embedding (and classifier). */
export interface BlobBits {
  bits: WeightBits;
  embeddingBits: WeightBits;
}

const isEmbeddingRole = (t: TensorEntry) => t.role === ROLES.token_embedding || t.role === ROLES.classifier;

/** The bits the blob stores its matrices at (the first matrix of each kind decides). */
export function blobBits(view: BlobView): BlobBits {
  const of = (t: TensorEntry | undefined): WeightBits => (t?.dtype === DTYPE_Q4 ? 4 : 8);
  return {
    bits: of(view.tensors.find((t) => t.dtype !== DTYPE_F32 && !isEmbeddingRole(t))),
    embeddingBits: of(view.tensors.find(isEmbeddingRole)),
  };
}

function tensorBytes(t: TensorEntry, rows: number, dtype: number): number {
  if (dtype === DTYPE_F32) return align16(rows * t.cols * 4);
  const stride = dtype === DTYPE_Q4 ? align16(Math.ceil(t.cols / 2)) : align16(t.cols);
  return align16(rows * stride) + align16(rows * Math.ceil(t.cols / t.groupSize) * 4);
}

/** The TOKENIZER section for `vocab` tokens, its piece bytes and sorted table scaled from the blob's own. */
function tokenizerBytes(view: BlobView, vocab: number): number {
  const t = view.tokenizer;
  const share = vocab / t.vocabSize;
  const pieceBytes = Math.round(t.pieceBytes.length * share);
  const sorted = Math.round(t.sorted.length * share);
  return 64 + align16(4 * vocab) + align16(4 * (vocab + 1)) + align16(pieceBytes) + align16(vocab) + align16(4 * sorted) + 4 * 256;
}

function formulaBytes(view: BlobView, vocab: number, b: BlobBits): number {
  let n = tokenizerBytes(view, vocab);
  for (const t of view.tensors) {
    const embedding = isEmbeddingRole(t);
    const dtype = t.dtype === DTYPE_F32 ? DTYPE_F32 : (embedding ? b.embeddingBits : b.bits) === 4 ? DTYPE_Q4 : DTYPE_Q8;
    n += tensorBytes(t, embedding ? vocab : t.rows, dtype);
  }
  return n;
}

/** Bytes the blob would take with `vocab` tokens (its own count by default) and the given bits; exact for its own. */
export function blobBytesFor(view: BlobView, opts: { vocab?: number } & Partial<BlobBits> = {}): number {
  const own = blobBits(view);
  const rest = view.fileSize - formulaBytes(view, view.config.vocabSize, own);
  return rest + formulaBytes(view, opts.vocab ?? view.config.vocabSize, { ...own, ...opts });
}

/** The most tokens (at most the blob's own count) with which the blob, at these bits, takes at most `bytes`; 0 when even one token is too many. */
export function largestVocabFitting(view: BlobView, bytes: number, bits: Partial<BlobBits> = {}): number {
  let lo = 0;
  let hi = view.config.vocabSize;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (blobBytesFor(view, { ...bits, vocab: mid }) <= bytes) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
