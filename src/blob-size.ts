/**
 * What a transformer blob takes in flash, without writing it: the writer's
 * layout (src/blob.ts: header, section table, CONFIG, TOKENIZER, tensor
 * directory, then each tensor's data and scales, all 16-byte aligned) from the
 * model's shape alone. `convert` uses it to pick a group size before it
 * calibrates; the fit planner's advice (src/boards.ts) to say what a model too
 * big for a board would take with fewer tokens or at all-int4.
 */
import {
  BLOB_ALIGN,
  BLOB_HEADER_BYTES,
  CONFIG_BYTES,
  DTYPE_F32,
  DTYPE_Q4,
  Layout,
  placeTokenizer,
  ROLES,
  TENSOR_ENTRY_BYTES,
  TENSORS_HEADER_BYTES,
  type BlobView,
  type TensorEntry,
  type TokenizerShape,
  type WeightBits,
} from './blob.js';
import { alignUp } from './bytes.js';
import { modelTensorSpecs, type ModelConfig } from './model.js';

/** Weight bits of a blob's layer matrices and of its embedding (and classifier). */
export interface BlobBits {
  bits: WeightBits;
  embeddingBits: WeightBits;
}

export interface BlobQuantization extends BlobBits {
  groupSize: number;
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

/** The bytes writeBlob makes for a model of this shape, tokenizer and quantization (exactly: tests/int4.test.ts). */
export function plannedBlobBytes(config: ModelConfig, tokenizer: TokenizerShape, q: BlobQuantization): number {
  const layout = new Layout();
  layout.place(BLOB_HEADER_BYTES);
  layout.place(3 * 16); // section table
  layout.place(CONFIG_BYTES);
  placeTokenizer(layout, tokenizer);
  const specs = modelTensorSpecs(config);
  layout.place(TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * specs.length);
  for (const s of specs) {
    if (s.kind === 'vector') {
      layout.place(4 * s.rows * s.cols);
      continue;
    }
    const embedding = s.key === 'tokenEmbedding' || s.key === 'classifier';
    const q4 = (embedding ? q.embeddingBits : q.bits) === 4;
    const stride = alignUp(q4 ? Math.ceil(s.cols / 2) : s.cols, BLOB_ALIGN);
    layout.place(s.rows * stride);
    layout.place(4 * s.rows * Math.ceil(s.cols / q.groupSize));
  }
  return layout.end;
}

/** The blob's tokenizer cut to `vocab` tokens: its piece bytes and sorted table scaled in proportion (an estimate unless `vocab` is its own). */
function tokenizerShapeFor(view: BlobView, vocab: number): TokenizerShape {
  const t = view.tokenizer;
  if (vocab === t.vocabSize) return t;
  const share = vocab / t.vocabSize;
  return { vocabSize: vocab, pieceBytes: { length: Math.round(t.pieceBytes.length * share) }, sorted: { length: Math.round(t.sorted.length * share) } };
}

/** Bytes the blob would take with `vocab` tokens (its own count by default) and other bits; its own size for its own. */
export function blobBytesFor(view: BlobView, opts: { vocab?: number } & Partial<BlobBits> = {}): number {
  const vocab = opts.vocab ?? view.config.vocabSize;
  return plannedBlobBytes({ ...view.config, vocabSize: vocab }, tokenizerShapeFor(view, vocab), { groupSize: view.config.groupSize, ...blobBits(view), ...opts });
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
