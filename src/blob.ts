/**
 * The lmflash blob (docs/blob-format.md, format version 1.1): writer and
 * validating reader. The C core reads the same bytes in place from flash, so
 * everything here follows the doc to the byte: little-endian fields, 16-byte
 * aligned tables, zero padding, canonical tensor order, CRC-32 of [16, size).
 */
import { crc32 } from 'node:zlib';
import { alignUp, bytesOf, copyF32, copyU32, dataView } from './bytes.js';
import { LmflashError } from './errors.js';
import {
  checkModelShapes,
  configProblems,
  getWeight,
  modelTensorSpecs,
  type FloatModel,
  type LayerTensorName,
  type LayerWeights,
  type ModelConfig,
  type TensorSpec,
} from './model.js';
import {
  DEFAULT_GROUP_SIZE,
  dequantizeMatrix,
  groupSizeProblem,
  dequantizeMatrix4,
  Q8_ROW_ALIGN,
  q4RowStride,
  quantizationError,
  quantizeMatrix,
  quantizeMatrix4,
  quantizeMatrix4Calibrated,
  type QuantizationError,
  type QuantizedMatrix,
  type QuantizedMatrix4,
} from './quantize.js';
import { tokenizerProblems, type TokenizerData } from './tokenizer.js';

export const BLOB_MAGIC = 'LMFB';
export const BLOB_VERSION_MAJOR = 1;
/** 1.1 added the q4 dtype; a blob without q4 tensors is written as 1.0, which 1.0 readers read. */
export const BLOB_VERSION_MINOR = 1;
/** The first minor version with q4 tensors. */
export const BLOB_MINOR_Q4 = 1;
export const BLOB_HEADER_BYTES = 64;
export const BLOB_ALIGN = 16;
export const ARCH_TRANSFORMER = 1;
export const SECTION_CONFIG = 1;
export const SECTION_TOKENIZER = 2;
export const SECTION_TENSORS = 3;
export const CONFIG_BYTES = 64;
export const TOKENIZER_HEADER_BYTES = 64;
export const TENSORS_HEADER_BYTES = 16;
export const TENSOR_ENTRY_BYTES = 32;
export const CONFIG_FLAG_SHARED_CLASSIFIER = 1;
export const DTYPE_F32 = 1;
export const DTYPE_Q8 = 2;
/** Two signed 4-bit values a byte with f32 group scales (format 1.1). */
export const DTYPE_Q4 = 3;
export const NO_LAYER = 0xffff;
/** Unknown section kinds are skipped, but a table of more than this many entries is corruption. */
const MAX_SECTIONS = 64;

/** Tensor roles (the `role` field of a tensor entry). */
export const ROLES = {
  token_embedding: 1,
  attn_norm: 2,
  wq: 3,
  wk: 4,
  wv: 5,
  wo: 6,
  ffn_norm: 7,
  w1: 8,
  w2: 9,
  w3: 10,
  final_norm: 11,
  classifier: 12,
} as const;
export type RoleName = keyof typeof ROLES;

const ROLE_OF_KEY: Record<TensorSpec['key'], number> = {
  tokenEmbedding: ROLES.token_embedding,
  attnNorm: ROLES.attn_norm,
  wq: ROLES.wq,
  wk: ROLES.wk,
  wv: ROLES.wv,
  wo: ROLES.wo,
  ffnNorm: ROLES.ffn_norm,
  w1: ROLES.w1,
  w2: ROLES.w2,
  w3: ROLES.w3,
  finalNorm: ROLES.final_norm,
  classifier: ROLES.classifier,
};

/** The model configuration as the CONFIG section stores it. */
export interface BlobConfig extends ModelConfig {
  /** Columns per quantization group of every q8 tensor. */
  groupSize: number;
}

/** One entry of the TENSORS directory, decoded. */
export interface TensorEntry {
  /** Position in the canonical order. */
  index: number;
  name: string;
  role: number;
  /** Layer index, or null for tensors outside the layers (0xFFFF in the file). */
  layer: number | null;
  dtype: typeof DTYPE_F32 | typeof DTYPE_Q8 | typeof DTYPE_Q4;
  rows: number;
  cols: number;
  rowStride: number;
  /** q8, q4: columns per scale; f32: 0. */
  groupSize: number;
  dataOffset: number;
  /** q8, q4: offset of rows × ceil(cols / groupSize) f32 scales; f32: 0. */
  scaleOffset: number;
}

/** A validated blob. Tables are copied out of the buffer; tensor data is read on demand. */
export interface BlobView {
  bytes: Uint8Array;
  fileSize: number;
  versionMajor: number;
  versionMinor: number;
  arch: number;
  config: BlobConfig;
  tokenizer: TokenizerData;
  tensors: TensorEntry[];
}

// ---------------------------------------------------------------------------
// Writer

/** Bits per weight of a quantized matrix. */
export type WeightBits = 4 | 8;

export interface WriteBlobOptions {
  /** Columns per quantization group (default 64). */
  groupSize?: number;
  /** Called after each tensor with the weights done so far and in all (a progress bar on big models). */
  onWeights?: (done: number, total: number) => void;
  /** The layers' matrices (wq … w3): q8 (default) or q4. */
  bits?: WeightBits;
  /** Per q4 tensor name, Σ x xᵀ of its inputs on calibration text (converter/calibrate.ts): error feedback instead of plain rounding. */
  hessians?: Map<string, Float64Array>;
  /** int4 matrices already rounded (converter/sequential.ts), by tensor name: written as they are. */
  quantized?: Map<string, QuantizedMatrix4>;
  /** The token embedding and a separate classifier: q8 (default; int4 there costs stories260K more perplexity than any layer matrix) or q4. */
  embeddingBits?: WeightBits;
}

/** Per-tensor outcome of writing a blob; `error` is null for tensors kept in f32. */
export interface TensorReport {
  name: string;
  role: number;
  layer: number | null;
  rows: number;
  cols: number;
  dtype: 'f32' | 'q8' | 'q4';
  error: QuantizationError | null;
}

export interface WriteBlobResult {
  blob: Buffer;
  tensors: TensorReport[];
}

/** Hands out 16-byte aligned offsets in file order. */
export class Layout {
  end = 0;
  place(bytes: number): number {
    const at = alignUp(this.end, BLOB_ALIGN);
    this.end = at + bytes;
    return at;
  }
}

/** Where the TOKENIZER section and its tables go (absolute offsets). */
export interface TokenizerPlacement {
  offset: number;
  size: number;
  scores: number;
  pieceOffsets: number;
  pieceBytes: number;
  kinds: number;
  sorted: number;
  byteIds: number;
}

/** What the TOKENIZER section's size depends on (a TokenizerData has it). */
export interface TokenizerShape {
  vocabSize: number;
  pieceBytes: { length: number };
  sorted: { length: number };
}

/** Places the TOKENIZER section: its header, then its tables; the section spans all of them. */
export function placeTokenizer(layout: Layout, t: TokenizerShape): TokenizerPlacement {
  const n = t.vocabSize;
  const offset = layout.place(TOKENIZER_HEADER_BYTES);
  const scores = layout.place(4 * n);
  const pieceOffsets = layout.place(4 * (n + 1));
  const pieceBytes = layout.place(t.pieceBytes.length);
  const kinds = layout.place(n);
  const sorted = layout.place(4 * t.sorted.length);
  const byteIds = layout.place(4 * 256);
  return { offset, size: layout.end - offset, scores, pieceOffsets, pieceBytes, kinds, sorted, byteIds };
}

/** Writes the TOKENIZER section where placeTokenizer put it (buf is zero-filled). */
export function writeTokenizer(buf: Buffer, at: TokenizerPlacement, t: TokenizerData): void {
  const dv = dataView(buf);
  [
    t.vocabSize,
    t.maxPieceBytes,
    t.bosId,
    t.eosId,
    t.unkId,
    t.flags,
    at.scores,
    at.pieceOffsets,
    at.pieceBytes,
    t.pieceBytes.length,
    at.kinds,
    at.sorted,
    t.sorted.length,
    at.byteIds,
  ].forEach((v, i) => dv.setUint32(at.offset + 4 * i, v, true));
  buf.set(bytesOf(Float32Array.from(t.scores)), at.scores);
  buf.set(bytesOf(Uint32Array.from(t.pieceOffsets)), at.pieceOffsets);
  buf.set(t.pieceBytes, at.pieceBytes);
  buf.set(t.kinds, at.kinds);
  buf.set(bytesOf(Uint32Array.from(t.sorted)), at.sorted);
  buf.set(bytesOf(Uint32Array.from(t.byteIds)), at.byteIds);
}

interface PlannedTensor {
  spec: TensorSpec;
  dtype: typeof DTYPE_F32 | typeof DTYPE_Q8 | typeof DTYPE_Q4;
  rowStride: number;
  groupSize: number;
  data: Uint8Array; // rows × rowStride bytes
  scales: Float32Array | null;
  dataOffset: number;
  scaleOffset: number;
  error: QuantizationError | null;
}

/**
 * The 64-byte header, written last: its CRC covers every byte after the
 * first 16, so everything else must be in place. buf is exactly the blob.
 */
export function writeBlobHeader(buf: Buffer, arch: number, sectionTable: number, sectionCount: number, versionMinor = 0): void {
  const dv = dataView(buf);
  buf.write(BLOB_MAGIC, 0, 'latin1');
  dv.setUint16(4, BLOB_VERSION_MAJOR, true);
  dv.setUint16(6, versionMinor, true);
  dv.setUint32(8, buf.length, true);
  dv.setUint32(16, arch, true);
  dv.setUint32(20, sectionCount, true);
  dv.setUint32(24, sectionTable, true);
  dv.setUint32(12, crc32(buf.subarray(16)), true);
}

/** The section table: one 16-byte entry (kind, offset, size, reserved) per section. */
export function writeSectionTable(dv: DataView, tableOffset: number, sections: [kind: number, offset: number, size: number][]): void {
  sections.forEach(([kind, off, size], i) => {
    dv.setUint32(tableOffset + 16 * i, kind, true);
    dv.setUint32(tableOffset + 16 * i + 4, off, true);
    dv.setUint32(tableOffset + 16 * i + 8, size, true);
  });
}

/**
 * Quantizes `model` and packs it with `tokenizer` into a blob. Throws an
 * LmflashError naming the problem when the model or tokenizer cannot be
 * represented (bad dims, vocab mismatch, bad group size, non-finite weights).
 */
export function writeBlob(model: FloatModel, tokenizer: TokenizerData, opts: WriteBlobOptions = {}): WriteBlobResult {
  const groupSize = opts.groupSize ?? DEFAULT_GROUP_SIZE;
  const gsProblem = groupSizeProblem(groupSize);
  if (gsProblem) throw new LmflashError(gsProblem);
  const bits = opts.bits ?? 8;
  const embeddingBits = opts.embeddingBits ?? 8;
  for (const b of [bits, embeddingBits]) {
    if (b !== 4 && b !== 8) throw new LmflashError(`${b} bits per weight is not supported: use 4 or 8`);
  }
  const c = model.config;
  const problems = configProblems(c);
  if (problems.length > 0) throw new LmflashError(`model cannot be stored in a blob: ${problems.join('; ')}`);
  checkModelShapes(model);
  if (tokenizer.vocabSize !== c.vocabSize) {
    throw new LmflashError(
      `tokenizer has ${tokenizer.vocabSize} tokens but the model expects ${c.vocabSize}: pass the tokenizer that was trained with this model`,
    );
  }
  const tokProblems = tokenizerProblems(tokenizer);
  if (tokProblems.length > 0) throw new LmflashError(`tokenizer is malformed: ${tokProblems.join('; ')}`);

  const layout = new Layout();
  layout.place(BLOB_HEADER_BYTES);
  const sectionTable = layout.place(3 * 16);
  const configOffset = layout.place(CONFIG_BYTES);

  const tok = placeTokenizer(layout, tokenizer);

  // TENSORS: directory, then each tensor's data and scales; the section spans all of them.
  const specs = modelTensorSpecs(c);
  const tensorsOffset = layout.place(TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * specs.length);
  const totalWeights = specs.reduce((n, s) => n + s.rows * s.cols, 0);
  let doneWeights = 0;
  const planned: PlannedTensor[] = specs.map((spec) => {
    const w = getWeight(model.weights, spec);
    opts.onWeights?.(doneWeights, totalWeights); // the tensors before this one are done
    doneWeights += spec.rows * spec.cols;
    if (spec.kind === 'vector') {
      for (let i = 0; i < w.length; i++) {
        if (!Number.isFinite(w[i])) {
          throw new LmflashError(`${spec.name} holds ${w[i]} at column ${i}: the checkpoint is damaged (non-finite weight)`);
        }
      }
      const dataOffset = layout.place(w.byteLength);
      return { spec, dtype: DTYPE_F32, rowStride: 4 * spec.cols, groupSize: 0, data: bytesOf(w), scales: null, dataOffset, scaleOffset: 0, error: null };
    }
    const isEmbedding = spec.key === 'tokenEmbedding' || spec.key === 'classifier';
    const q4 = (isEmbedding ? embeddingBits : bits) === 4;
    const hessian = q4 ? opts.hessians?.get(spec.name) : undefined;
    const given = q4 ? opts.quantized?.get(spec.name) : undefined;
    if (given && (given.rows !== spec.rows || given.cols !== spec.cols || given.groupSize !== groupSize)) {
      throw new Error(`${spec.name}: the int4 matrix given is ${given.rows}x${given.cols} in groups of ${given.groupSize}, not ${spec.rows}x${spec.cols} in groups of ${groupSize}`);
    }
    const q = given
      ? given
      : !q4
      ? quantizeMatrix(w, spec.rows, spec.cols, groupSize, spec.name)
      : hessian
        ? quantizeMatrix4Calibrated(w, spec.rows, spec.cols, groupSize, hessian, spec.name)
        : quantizeMatrix4(w, spec.rows, spec.cols, groupSize, spec.name);
    const restored = q4 ? dequantizeMatrix4(q as QuantizedMatrix4) : dequantizeMatrix(q as QuantizedMatrix);
    const error = quantizationError(w, restored);
    const dataOffset = layout.place(q.data.byteLength);
    const scaleOffset = layout.place(q.scales.byteLength);
    const dtype = q4 ? DTYPE_Q4 : DTYPE_Q8;
    return { spec, dtype, rowStride: q.rowStride, groupSize, data: bytesOf(q.data), scales: q.scales, dataOffset, scaleOffset, error };
  });
  opts.onWeights?.(totalWeights, totalWeights);
  const anyQ4 = planned.some((p) => p.dtype === DTYPE_Q4);
  const tensorsSize = layout.end - tensorsOffset;
  const fileSize = layout.end;
  if (fileSize > 0xffffffff) throw new LmflashError(`blob would be ${fileSize} bytes, more than the format's 4 GiB limit`);

  // Buffer.alloc zero-fills, which gives every padding and reserved byte its required zero.
  const buf = Buffer.alloc(fileSize);
  const dv = dataView(buf);
  const u32 = (off: number, v: number) => dv.setUint32(off, v, true);

  writeSectionTable(dv, sectionTable, [
    [SECTION_CONFIG, configOffset, CONFIG_BYTES],
    [SECTION_TOKENIZER, tok.offset, tok.size],
    [SECTION_TENSORS, tensorsOffset, tensorsSize],
  ]);

  // CONFIG.
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen, groupSize].forEach((v, i) =>
    u32(configOffset + 4 * i, v),
  );
  u32(configOffset + 32, c.sharedClassifier ? CONFIG_FLAG_SHARED_CLASSIFIER : 0);
  dv.setFloat32(configOffset + 36, c.ropeTheta, true);
  dv.setFloat32(configOffset + 40, c.normEps, true);

  writeTokenizer(buf, tok, tokenizer);

  // TENSORS directory and data.
  u32(tensorsOffset, planned.length);
  planned.forEach((p, i) => {
    const e = tensorsOffset + TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * i;
    dv.setUint16(e, ROLE_OF_KEY[p.spec.key], true);
    dv.setUint16(e + 2, p.spec.layer ?? NO_LAYER, true);
    buf[e + 4] = p.dtype;
    u32(e + 8, p.spec.rows);
    u32(e + 12, p.spec.cols);
    u32(e + 16, p.rowStride);
    u32(e + 20, p.groupSize);
    u32(e + 24, p.dataOffset);
    u32(e + 28, p.scaleOffset);
    buf.set(p.data, p.dataOffset);
    if (p.scales) buf.set(bytesOf(p.scales), p.scaleOffset);
  });

  // a blob without q4 stays 1.0, readable by every 1.x reader
  writeBlobHeader(buf, ARCH_TRANSFORMER, sectionTable, 3, anyQ4 ? BLOB_MINOR_Q4 : 0);

  const tensors: TensorReport[] = planned.map((p) => ({
    name: p.spec.name,
    role: ROLE_OF_KEY[p.spec.key],
    layer: p.spec.layer,
    rows: p.spec.rows,
    cols: p.spec.cols,
    dtype: p.dtype === DTYPE_F32 ? 'f32' : p.dtype === DTYPE_Q4 ? 'q4' : 'q8',
    error: p.error,
  }));
  return { blob: buf, tensors };
}

// ---------------------------------------------------------------------------
// Reader

export function corrupt(what: string): LmflashError {
  return new LmflashError(`${what}: the blob is corrupt — convert it again`);
}

/** [off, off+len) is 16-byte aligned and inside [lo, hi). */
export function extentOk(off: number, len: number, lo: number, hi: number): boolean {
  return off % BLOB_ALIGN === 0 && off >= lo && off <= hi && len <= hi - off;
}

export interface ReadBlobOptions {
  /** Verify the CRC (default true). */
  checkCrc?: boolean;
}

/**
 * Parses and validates a blob: magic, version, size, CRC, section table,
 * CONFIG, TOKENIZER tables and every tensor entry (role, layer, dtype, shape,
 * stride, group size, alignment and extent). `buf` may be longer than the
 * blob (a flash partition image): bytes past file_size are ignored.
 */
export function readBlob(buf: Uint8Array, opts: ReadBlobOptions = {}): BlobView {
  if (buf.length < BLOB_HEADER_BYTES || Buffer.from(buf.subarray(0, 4)).toString('latin1') !== BLOB_MAGIC) {
    throw new LmflashError('not an lmflash blob (no LMFB magic): convert the model with `lmflash convert` first');
  }
  const dv = dataView(buf);
  const u32 = (off: number) => dv.getUint32(off, true);
  const versionMajor = dv.getUint16(4, true);
  const versionMinor = dv.getUint16(6, true);
  if (versionMajor > BLOB_VERSION_MAJOR) {
    throw new LmflashError(
      `blob format version ${versionMajor} is newer than this lmflash (${BLOB_VERSION_MAJOR}): update lmflash`,
    );
  }
  if (versionMajor !== BLOB_VERSION_MAJOR) {
    throw new LmflashError(
      `blob format version ${versionMajor} is older than this lmflash reads (${BLOB_VERSION_MAJOR}): convert the model again`,
    );
  }
  const fileSize = u32(8);
  if (fileSize < BLOB_HEADER_BYTES || fileSize > buf.length) {
    throw new LmflashError(
      `blob says it is ${fileSize} bytes but only ${buf.length} are present: the file is truncated — convert or copy it again`,
    );
  }
  const bytes = buf.subarray(0, fileSize);
  if (opts.checkCrc !== false && crc32(bytes.subarray(16)) !== u32(12)) {
    throw new LmflashError('blob CRC mismatch: the file is corrupt or truncated — convert it again');
  }
  const arch = u32(16);
  if (arch !== ARCH_TRANSFORMER) {
    throw new LmflashError(`blob architecture ${arch} is not supported by this lmflash (1 = transformer): update lmflash`);
  }

  const sectionCount = u32(20);
  const tableOffset = u32(24);
  if (sectionCount > MAX_SECTIONS || !extentOk(tableOffset, 16 * sectionCount, BLOB_HEADER_BYTES, fileSize)) {
    throw corrupt(`section table (${sectionCount} entries at ${tableOffset}) lies outside the file or is misaligned`);
  }
  const sections = new Map<number, { offset: number; size: number }>();
  for (let i = 0; i < sectionCount; i++) {
    const s = tableOffset + 16 * i;
    const kind = u32(s);
    const offset = u32(s + 4);
    const size = u32(s + 8);
    if (kind < SECTION_CONFIG || kind > SECTION_TENSORS) continue; // a newer minor version's section
    if (sections.has(kind)) throw corrupt(`section kind ${kind} appears twice`);
    if (!extentOk(offset, size, BLOB_HEADER_BYTES, fileSize)) {
      throw corrupt(`section kind ${kind} (${size} bytes at ${offset}) lies outside the file or is misaligned`);
    }
    sections.set(kind, { offset, size });
  }
  const section = (kind: number, name: string) => {
    const s = sections.get(kind);
    if (!s) throw corrupt(`blob has no ${name} section`);
    return s;
  };
  const config = readConfig(bytes, section(SECTION_CONFIG, 'CONFIG'));
  const tokenizer = readTokenizer(bytes, section(SECTION_TOKENIZER, 'TOKENIZER'), config);
  const tensors = readTensors(bytes, section(SECTION_TENSORS, 'TENSORS'), config, versionMinor);
  return { bytes, fileSize, versionMajor, versionMinor, arch, config, tokenizer, tensors };
}

function readConfig(bytes: Uint8Array, s: { offset: number; size: number }): BlobConfig {
  if (s.size < CONFIG_BYTES) throw corrupt(`CONFIG section is ${s.size} bytes, expected ${CONFIG_BYTES}`);
  const dv = dataView(bytes);
  const u = (i: number) => dv.getUint32(s.offset + 4 * i, true);
  const config: BlobConfig = {
    dim: u(0),
    hiddenDim: u(1),
    nLayers: u(2),
    nHeads: u(3),
    nKvHeads: u(4),
    vocabSize: u(5),
    seqLen: u(6),
    groupSize: u(7),
    sharedClassifier: (u(8) & CONFIG_FLAG_SHARED_CLASSIFIER) !== 0,
    ropeTheta: dv.getFloat32(s.offset + 36, true),
    normEps: dv.getFloat32(s.offset + 40, true),
  };
  const problems = configProblems(config);
  const gs = groupSizeProblem(config.groupSize);
  if (gs) problems.push(gs);
  if (problems.length > 0) throw corrupt(`blob config is invalid: ${problems.join('; ')}`);
  return config;
}

export function readTokenizer(bytes: Uint8Array, s: { offset: number; size: number }, config: { vocabSize: number }): TokenizerData {
  if (s.size < TOKENIZER_HEADER_BYTES) throw corrupt(`TOKENIZER section is ${s.size} bytes, expected at least ${TOKENIZER_HEADER_BYTES}`);
  const dv = dataView(bytes);
  const u = (i: number) => dv.getUint32(s.offset + 4 * i, true);
  const n = u(0);
  if (n !== config.vocabSize) {
    throw corrupt(`blob tokenizer has ${n} tokens but the model expects ${config.vocabSize}`);
  }
  const [scoresOff, offsetsOff, bytesOff, bytesSize, kindsOff, sortedOff, sortedCount, byteIdsOff] = [6, 7, 8, 9, 10, 11, 12, 13].map(u);
  const end = s.offset + s.size;
  const tables: [string, number, number][] = [
    ['scores', scoresOff, 4 * n],
    ['piece offsets', offsetsOff, 4 * (n + 1)],
    ['piece bytes', bytesOff, bytesSize],
    ['kinds', kindsOff, n],
    ['sorted index', sortedOff, 4 * sortedCount],
    ['byte map', byteIdsOff, 4 * 256],
  ];
  for (const [name, off, len] of tables) {
    if (!extentOk(off, len, s.offset + TOKENIZER_HEADER_BYTES, end)) {
      throw corrupt(`tokenizer ${name} table (${len} bytes at ${off}) lies outside the TOKENIZER section or is misaligned`);
    }
  }
  const t: TokenizerData = {
    vocabSize: n,
    maxPieceBytes: u(1),
    bosId: u(2),
    eosId: u(3),
    unkId: u(4),
    flags: u(5),
    scores: copyF32(bytes, scoresOff, n),
    pieceOffsets: copyU32(bytes, offsetsOff, n + 1),
    // new Uint8Array(view) copies (Buffer#slice would not).
    pieceBytes: new Uint8Array(bytes.subarray(bytesOff, bytesOff + bytesSize)),
    kinds: new Uint8Array(bytes.subarray(kindsOff, kindsOff + n)),
    sorted: copyU32(bytes, sortedOff, sortedCount),
    byteIds: copyU32(bytes, byteIdsOff, 256),
  };
  const problems = tokenizerProblems(t);
  if (problems.length > 0) throw corrupt(`blob tokenizer is invalid: ${problems.join('; ')}`);
  return t;
}

const ROLE_NAMES = new Map<number, RoleName>(Object.entries(ROLES).map(([k, v]) => [v, k as RoleName]));

/** The dtypes a matrix may have in a blob of this minor version. */
function matrixDtypes(versionMinor: number): number[] {
  return versionMinor >= BLOB_MINOR_Q4 ? [DTYPE_Q8, DTYPE_Q4] : [DTYPE_Q8];
}

function readTensors(bytes: Uint8Array, s: { offset: number; size: number }, config: BlobConfig, versionMinor: number): TensorEntry[] {
  if (s.size < TENSORS_HEADER_BYTES) throw corrupt('TENSORS section is too short');
  const dv = dataView(bytes);
  const specs = modelTensorSpecs(config);
  const count = dv.getUint32(s.offset, true);
  if (count !== specs.length) {
    throw corrupt(`blob has ${count} tensors but its config needs ${specs.length}`);
  }
  const end = s.offset + s.size;
  const dirEnd = s.offset + TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * count;
  if (dirEnd > end) throw corrupt('tensor directory is larger than its section');
  return specs.map((spec, index) => {
    const e = s.offset + TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * index;
    const u = (off: number) => dv.getUint32(e + off, true);
    const role = dv.getUint16(e, true);
    const layerRaw = dv.getUint16(e + 2, true);
    const dtype = bytes[e + 4];
    const entry = {
      index,
      name: spec.name,
      role,
      layer: layerRaw === NO_LAYER ? null : layerRaw,
      dtype: dtype as TensorEntry['dtype'],
      rows: u(8),
      cols: u(12),
      rowStride: u(16),
      groupSize: u(20),
      dataOffset: u(24),
      scaleOffset: u(28),
    };
    const wantRole = ROLE_OF_KEY[spec.key];
    const wantDtypes = spec.kind === 'vector' ? [DTYPE_F32] : matrixDtypes(versionMinor);
    if (spec.kind === 'matrix' && !wantDtypes.includes(dtype) && versionMinor > BLOB_VERSION_MINOR) {
      throw new LmflashError(
        `blob format 1.${versionMinor} stores ${spec.name} as dtype ${dtype}, which this lmflash (format 1.${BLOB_VERSION_MINOR}) does not know: update lmflash`,
      );
    }
    if (role !== wantRole || layerRaw !== (spec.layer ?? NO_LAYER) || !wantDtypes.includes(dtype) || entry.rows !== spec.rows || entry.cols !== spec.cols) {
      throw corrupt(
        `tensor ${index} is role ${role} layer ${layerRaw} dtype ${dtype} ${entry.rows}×${entry.cols}, ` +
          `expected ${spec.name} (role ${wantRole} layer ${spec.layer ?? NO_LAYER} dtype ${wantDtypes.join(' or ')} ${spec.rows}×${spec.cols})`,
      );
    }
    if (dtype === DTYPE_F32) {
      if (entry.rowStride !== 4 * entry.cols || entry.groupSize !== 0 || entry.scaleOffset !== 0) {
        throw corrupt(`tensor ${spec.name} (f32) has stride ${entry.rowStride}, group ${entry.groupSize}, scales at ${entry.scaleOffset}`);
      }
      if (!extentOk(entry.dataOffset, entry.rows * entry.rowStride, dirEnd, end)) {
        throw corrupt(`tensor ${spec.name} data lies outside the TENSORS section or is misaligned`);
      }
    } else {
      const stride = dtype === DTYPE_Q4 ? q4RowStride(entry.cols) : alignUp(entry.cols, Q8_ROW_ALIGN);
      if (entry.rowStride !== stride || entry.groupSize !== config.groupSize) {
        throw corrupt(
          `tensor ${spec.name} has row stride ${entry.rowStride} and group size ${entry.groupSize}, ` +
            `expected ${stride} and ${config.groupSize}`,
        );
      }
      const scales = entry.rows * Math.ceil(entry.cols / entry.groupSize) * 4;
      if (!extentOk(entry.dataOffset, entry.rows * entry.rowStride, dirEnd, end) || !extentOk(entry.scaleOffset, scales, dirEnd, end)) {
        throw corrupt(`tensor ${spec.name} data or scales lie outside the TENSORS section or are misaligned`);
      }
    }
    return entry;
  });
}

/** Name of a role number ("wq"), for messages and reports. */
export function roleName(role: number): string {
  return ROLE_NAMES.get(role) ?? `role ${role}`;
}

/** The tensor with this role (and layer, for layer tensors); the classifier falls back to the shared embedding. */
export function findTensor(view: BlobView, role: number, layer: number | null = null): TensorEntry {
  if (role === ROLES.classifier && view.config.sharedClassifier) role = ROLES.token_embedding;
  const t = view.tensors.find((e) => e.role === role && e.layer === layer);
  if (!t) throw new Error(`blob has no tensor ${roleName(role)}${layer === null ? '' : ` in layer ${layer}`}`);
  return t;
}

/** A tensor's values as float32 rows × cols: f32 copied, q8 and q4 dequantized (q · scale). */
export function tensorValues(view: BlobView, entry: TensorEntry): Float32Array {
  const { bytes } = view;
  if (entry.dtype === DTYPE_F32) return copyF32(bytes, entry.dataOffset, entry.rows * entry.cols);
  const groups = Math.ceil(entry.cols / entry.groupSize);
  if (entry.dtype === DTYPE_Q4) return dequantizeMatrix4(quantizedMatrix4Of(view, entry));
  return dequantizeMatrix({
    rows: entry.rows,
    cols: entry.cols,
    groupSize: entry.groupSize,
    rowStride: entry.rowStride,
    groupsPerRow: groups,
    data: new Int8Array(bytes.buffer, bytes.byteOffset + entry.dataOffset, entry.rows * entry.rowStride),
    scales: copyF32(bytes, entry.scaleOffset, entry.rows * groups),
  });
}

/** A q4 tensor's nibbles and scales as stored (the nibbles a view into the blob). */
export function quantizedMatrix4Of(view: BlobView, entry: TensorEntry): QuantizedMatrix4 {
  if (entry.dtype !== DTYPE_Q4) throw new Error(`${entry.name} is not a q4 tensor`);
  const groups = Math.ceil(entry.cols / entry.groupSize);
  return {
    rows: entry.rows,
    cols: entry.cols,
    groupSize: entry.groupSize,
    rowStride: entry.rowStride,
    groupsPerRow: groups,
    data: view.bytes.subarray(entry.dataOffset, entry.dataOffset + entry.rows * entry.rowStride),
    scales: copyF32(view.bytes, entry.scaleOffset, entry.rows * groups),
  };
}

/** Every q4 tensor of the blob as stored, by name: passed back to writeBlob (`quantized`) they are written byte for byte. */
export function quantizedMatrices4(view: BlobView): Map<string, QuantizedMatrix4> {
  return new Map(view.tensors.filter((t) => t.dtype === DTYPE_Q4).map((t) => [t.name, quantizedMatrix4Of(view, t)]));
}

/** The whole blob dequantized into a float model, e.g. to score the quantized model with the reference forward pass. */
export function blobToFloatModel(view: BlobView): FloatModel {
  const { groupSize: _groupSize, ...config } = view.config;
  const specs = modelTensorSpecs(config);
  const values = specs.map((spec, i) => tensorValues(view, view.tensors[i]));
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, () => ({}) as LayerWeights);
  let tokenEmbedding: Float32Array = new Float32Array(0);
  let finalNorm: Float32Array = new Float32Array(0);
  let classifier: Float32Array | null = null;
  specs.forEach((spec, i) => {
    if (spec.key === 'tokenEmbedding') tokenEmbedding = values[i];
    else if (spec.key === 'finalNorm') finalNorm = values[i];
    else if (spec.key === 'classifier') classifier = values[i];
    else layers[spec.layer as number][spec.key as LayerTensorName] = values[i];
  });
  return { config, weights: { tokenEmbedding, layers, finalNorm, classifier } };
}
