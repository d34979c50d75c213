/**
 * Readers for karpathy/llama2.c model checkpoints and tokenizer.bin files.
 *
 * Three checkpoint layouts exist (see llama2.c export.py):
 * - legacy ("v0", run.c): 7 int32 header, float32 weights in run.c's
 *   memory_map_weights order, RoPE tables that we skip, and a separate
 *   classifier only when the header's vocab_size is negative;
 * - version 1: 256-byte header with magic "ak42", float32 weights, norms first;
 * - version 2: same header plus a group size, norms in float32, every other
 *   tensor as Q8_0 (int8 values followed by that tensor's float32 group scales).
 * All three are turned into the same plain float32 FloatModel.
 */
import { copyF32, dataView } from './bytes.js';
import { LmflashError } from './errors.js';
import {
  configProblems,
  DEFAULT_NORM_EPS,
  DEFAULT_ROPE_THETA,
  describeConfig,
  headSize,
  kvDim,
  type FloatModel,
  type LayerWeights,
  type ModelConfig,
} from './model.js';

export type CheckpointFormat = 'legacy' | 'v1' | 'v2';

export interface Llama2cCheckpoint extends FloatModel {
  format: CheckpointFormat;
  /** Q8_0 group size of a version 2 file, else null. */
  groupSize: number | null;
}

/** uint32 "ak42" as export.py writes it (struct.pack('I', 0x616b3432)). */
export const AK42_MAGIC = 0x616b3432;
const LEGACY_HEADER_BYTES = 28;
const VERSIONED_HEADER_BYTES = 256;

/** Reads any llama2.c checkpoint, detecting its layout, into a float32 model. */
export function readLlama2cCheckpoint(buf: Uint8Array): Llama2cCheckpoint {
  if (buf.length < LEGACY_HEADER_BYTES) {
    throw new LmflashError(
      `checkpoint is ${buf.length} bytes, too short to be a llama2.c checkpoint (even the legacy header is ${LEGACY_HEADER_BYTES} bytes)`,
    );
  }
  const dv = dataView(buf);
  if (dv.getUint32(0, true) === AK42_MAGIC) {
    const version = dv.getInt32(4, true);
    if (version === 1) return readVersion1(buf);
    if (version === 2) return readVersion2(buf);
    throw new LmflashError(
      `checkpoint has llama2.c's "ak42" magic but version ${version}; lmflash reads versions 1 (float32) and 2 (Q8_0) ` +
        'and the legacy headerless format: export the model again with llama2.c export.py --version 1',
    );
  }
  return readLegacy(buf);
}

/** The 7 int32 params common to every layout, at `offset`. */
function readParams(buf: Uint8Array, offset: number): number[] {
  const dv = dataView(buf);
  return Array.from({ length: 7 }, (_, i) => dv.getInt32(offset + 4 * i, true));
}

function makeConfig(p: number[], sharedClassifier: boolean): ModelConfig {
  return {
    dim: p[0],
    hiddenDim: p[1],
    nLayers: p[2],
    nHeads: p[3],
    nKvHeads: p[4],
    vocabSize: p[5],
    seqLen: p[6],
    sharedClassifier,
    ropeTheta: DEFAULT_ROPE_THETA,
    normEps: DEFAULT_NORM_EPS,
  };
}

/** Float counts of the tensors, per layer where it applies. */
function tensorSizes(c: ModelConfig) {
  const hs = headSize(c);
  return {
    embedding: c.vocabSize * c.dim,
    norm: c.dim,
    wq: c.dim * c.nHeads * hs,
    wkv: c.dim * kvDim(c),
    wo: c.nHeads * hs * c.dim,
    ffn: c.dim * c.hiddenDim,
  };
}

/** Reads consecutive float32 tensors from a buffer. */
class FloatCursor {
  constructor(
    private readonly buf: Uint8Array,
    public offset: number,
  ) {}
  take(count: number): Float32Array {
    const a = copyF32(this.buf, this.offset, count);
    this.offset += count * 4;
    return a;
  }
  /** One tensor of `count` floats for each of `n` layers, stored back to back. */
  takeLayers(n: number, count: number): Float32Array[] {
    return Array.from({ length: n }, () => this.take(count));
  }
  skip(count: number): void {
    this.offset += count * 4;
  }
}

/** Assembles per-layer arrays (each stored for all layers at once) into LayerWeights. */
function zipLayers(n: number, t: Record<keyof LayerWeights, Float32Array[]>): LayerWeights[] {
  return Array.from({ length: n }, (_, l) => ({
    attnNorm: t.attnNorm[l],
    wq: t.wq[l],
    wk: t.wk[l],
    wv: t.wv[l],
    wo: t.wo[l],
    ffnNorm: t.ffnNorm[l],
    w1: t.w1[l],
    w2: t.w2[l],
    w3: t.w3[l],
  }));
}

function rejectNonsense(c: ModelConfig, what: string): void {
  const problems = configProblems(c);
  if (problems.length > 0) {
    throw new LmflashError(`${what} (${describeConfig(c)}): ${problems.join('; ')}`);
  }
}

function readLegacy(buf: Uint8Array): Llama2cCheckpoint {
  const p = readParams(buf, 0);
  // export.py legacy_export writes a negative vocab_size to flag an unshared classifier.
  const shared = p[5] > 0;
  p[5] = Math.abs(p[5]);
  const c = makeConfig(p, shared);
  rejectNonsense(
    c,
    'not a llama2.c checkpoint: it lacks the "ak42" magic of export.py versions 1-2, and read as a legacy header its numbers are nonsense',
  );
  const s = tensorSizes(c);
  const L = c.nLayers;
  const ropeFloats = c.seqLen * headSize(c); // freq_cis_real + freq_cis_imag, seq_len*hs/2 each
  const sharedFloats =
    s.embedding + L * (2 * s.norm + s.wq + 2 * s.wkv + s.wo + 3 * s.ffn) + s.norm + ropeFloats;
  const sharedBytes = LEGACY_HEADER_BYTES + 4 * sharedFloats;
  const unsharedBytes = sharedBytes + 4 * s.embedding;
  const expected = shared ? sharedBytes : unsharedBytes;
  if (buf.length !== expected) {
    const alt = shared
      ? `${sharedBytes} (or ${unsharedBytes} with an unshared classifier)`
      : `${unsharedBytes}, as its negative vocab_size announces an unshared classifier (${sharedBytes} without one)`;
    throw new LmflashError(
      `checkpoint is ${buf.length} bytes but a legacy checkpoint with ${describeConfig(c)} needs ${alt}: ` +
        'the file is truncated, corrupt or not a llama2.c checkpoint',
    );
  }
  // run.c memory_map_weights order.
  const r = new FloatCursor(buf, LEGACY_HEADER_BYTES);
  const tokenEmbedding = r.take(s.embedding);
  const attnNorm = r.takeLayers(L, s.norm);
  const wq = r.takeLayers(L, s.wq);
  const wk = r.takeLayers(L, s.wkv);
  const wv = r.takeLayers(L, s.wkv);
  const wo = r.takeLayers(L, s.wo);
  const ffnNorm = r.takeLayers(L, s.norm);
  const w1 = r.takeLayers(L, s.ffn);
  const w2 = r.takeLayers(L, s.ffn);
  const w3 = r.takeLayers(L, s.ffn);
  const finalNorm = r.take(s.norm);
  r.skip(ropeFloats); // run.c computes RoPE itself; the stored tables are unused
  const classifier = shared ? null : r.take(s.embedding);
  return {
    format: 'legacy',
    groupSize: null,
    config: c,
    weights: {
      tokenEmbedding,
      layers: zipLayers(L, { attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3 }),
      finalNorm,
      classifier,
    },
  };
}

function readVersionedHeader(buf: Uint8Array, version: number): ModelConfig {
  if (buf.length < VERSIONED_HEADER_BYTES) {
    throw new LmflashError(
      `checkpoint is ${buf.length} bytes, shorter than the ${VERSIONED_HEADER_BYTES}-byte header of a version ${version} llama2.c checkpoint: the file is truncated`,
    );
  }
  const c = makeConfig(readParams(buf, 8), buf[36] !== 0);
  rejectNonsense(c, `version ${version} llama2.c checkpoint header has nonsense dimensions`);
  return c;
}

function sizeMismatch(buf: Uint8Array, version: number, c: ModelConfig, expected: number, extra = ''): LmflashError {
  return new LmflashError(
    `checkpoint is ${buf.length} bytes but a version ${version} checkpoint with ${describeConfig(c)}${extra}` +
      ` (${c.sharedClassifier ? 'shared' : 'unshared'} classifier) needs ${expected}: the file is truncated or corrupt`,
  );
}

function readVersion1(buf: Uint8Array): Llama2cCheckpoint {
  const c = readVersionedHeader(buf, 1);
  const s = tensorSizes(c);
  const L = c.nLayers;
  const floats =
    s.embedding + L * (2 * s.norm + s.wq + 2 * s.wkv + s.wo + 3 * s.ffn) + s.norm + (c.sharedClassifier ? 0 : s.embedding);
  const expected = VERSIONED_HEADER_BYTES + 4 * floats;
  if (buf.length !== expected) throw sizeMismatch(buf, 1, c, expected);
  // export.py version1_export order: norms first, then the embedding and the matrices.
  const r = new FloatCursor(buf, VERSIONED_HEADER_BYTES);
  const attnNorm = r.takeLayers(L, s.norm);
  const ffnNorm = r.takeLayers(L, s.norm);
  const finalNorm = r.take(s.norm);
  const tokenEmbedding = r.take(s.embedding);
  const wq = r.takeLayers(L, s.wq);
  const wk = r.takeLayers(L, s.wkv);
  const wv = r.takeLayers(L, s.wkv);
  const wo = r.takeLayers(L, s.wo);
  const w1 = r.takeLayers(L, s.ffn);
  const w2 = r.takeLayers(L, s.ffn);
  const w3 = r.takeLayers(L, s.ffn);
  const classifier = c.sharedClassifier ? null : r.take(s.embedding);
  return {
    format: 'v1',
    groupSize: null,
    config: c,
    weights: { tokenEmbedding, layers: zipLayers(L, { attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3 }), finalNorm, classifier },
  };
}

/**
 * Version 2 (Q8_0). export.py writes the group size as an int32 right after
 * the shared-classifier byte, i.e. at the unaligned offset 37. Each quantized
 * tensor (every layer's matrix separately) is its int8 values followed by its
 * float32 scales, one per `group_size` consecutive values of the flattened
 * tensor — groups may straddle rows, which is why runq.c needs dim and
 * hidden_dim to be multiples of the group size and we do not.
 */
function readVersion2(buf: Uint8Array): Llama2cCheckpoint {
  const c = readVersionedHeader(buf, 2);
  const gs = dataView(buf).getInt32(37, true);
  const s = tensorSizes(c);
  const L = c.nLayers;
  const counts = [s.embedding, s.wq, s.wkv, s.wkv, s.wo, s.ffn, s.ffn, s.ffn];
  if (!(gs > 0) || counts.some((n) => n % gs !== 0)) {
    throw new LmflashError(
      `version 2 llama2.c checkpoint has group size ${gs}, which does not divide every tensor (${describeConfig(c)}): the file is corrupt`,
    );
  }
  const qBytes = (n: number) => n + (4 * n) / gs;
  const matrices = qBytes(s.embedding) + L * (qBytes(s.wq) + 2 * qBytes(s.wkv) + qBytes(s.wo) + 3 * qBytes(s.ffn));
  const expected =
    VERSIONED_HEADER_BYTES + 4 * (2 * L * s.norm + s.norm) + matrices + (c.sharedClassifier ? 0 : qBytes(s.embedding));
  if (buf.length !== expected) throw sizeMismatch(buf, 2, c, expected, `, group_size=${gs}`);

  const r = new FloatCursor(buf, VERSIONED_HEADER_BYTES);
  const attnNorm = r.takeLayers(L, s.norm);
  const ffnNorm = r.takeLayers(L, s.norm);
  const finalNorm = r.take(s.norm);
  let offset = r.offset;
  const takeQ = (n: number): Float32Array => {
    const out = dequantizeQ80(buf, offset, n, gs);
    offset += qBytes(n);
    return out;
  };
  const takeQLayers = (n: number) => Array.from({ length: L }, () => takeQ(n));
  const tokenEmbedding = takeQ(s.embedding);
  const wq = takeQLayers(s.wq);
  const wk = takeQLayers(s.wkv);
  const wv = takeQLayers(s.wkv);
  const wo = takeQLayers(s.wo);
  const w1 = takeQLayers(s.ffn);
  const w2 = takeQLayers(s.ffn);
  const w3 = takeQLayers(s.ffn);
  const classifier = c.sharedClassifier ? null : takeQ(s.embedding);
  return {
    format: 'v2',
    groupSize: gs,
    config: c,
    weights: { tokenEmbedding, layers: zipLayers(L, { attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3 }), finalNorm, classifier },
  };
}

/** int8[n] at `offset` followed by float32[n/gs] scales → float32[n] (value = q * scale, in float32 like runq.c). */
function dequantizeQ80(buf: Uint8Array, offset: number, n: number, gs: number): Float32Array {
  const q = new Int8Array(buf.buffer, buf.byteOffset + offset, n);
  const scales = copyF32(buf, offset + n, n / gs);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = q[i] * scales[Math.floor(i / gs)];
  return out;
}

/** A llama2.c tokenizer.bin: pieces exactly as stored (bytes) and their merge scores. */
export interface TokenizerBin {
  maxTokenLength: number;
  pieces: Uint8Array[];
  scores: Float32Array;
}

/**
 * Reads tokenizer.bin (int32 max_token_length, then per token: float32 score,
 * int32 length, bytes). The file does not store its token count, so we read to
 * the end and compare with the model's vocab size.
 */
export function readTokenizerBin(buf: Uint8Array, vocabSize: number): TokenizerBin {
  if (buf.length < 4) {
    throw new LmflashError(`tokenizer file is ${buf.length} bytes, too short to be a llama2.c tokenizer.bin`);
  }
  const dv = dataView(buf);
  const maxTokenLength = dv.getInt32(0, true);
  if (maxTokenLength < 1 || maxTokenLength > 65536) {
    throw new LmflashError(
      `tokenizer file starts with max_token_length ${maxTokenLength}, which is not plausible: is it really a llama2.c tokenizer.bin?`,
    );
  }
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let o = 4;
  while (o < buf.length) {
    if (o + 8 > buf.length) {
      throw new LmflashError(`tokenizer file is truncated inside the header of token ${pieces.length} (byte ${o})`);
    }
    const score = dv.getFloat32(o, true);
    const len = dv.getInt32(o + 4, true);
    if (len < 0 || len > maxTokenLength || o + 8 + len > buf.length) {
      throw new LmflashError(
        `tokenizer token ${pieces.length} at byte ${o} claims ${len} bytes (max_token_length is ${maxTokenLength}, ` +
          `${buf.length - o - 8} bytes remain): the file is truncated or not a llama2.c tokenizer.bin`,
      );
    }
    pieces.push(new Uint8Array(buf.subarray(o + 8, o + 8 + len))); // a copy, whatever buf is
    scores.push(score);
    o += 8 + len;
  }
  if (pieces.length !== vocabSize) {
    throw new LmflashError(
      `tokenizer has ${pieces.length} tokens but the model expects ${vocabSize}: pass the tokenizer.bin that was trained with this model`,
    );
  }
  return { maxTokenLength, pieces, scores: Float32Array.from(scores) };
}
