/**
 * llama2.c checkpoint + tokenizer.bin → lmflash blob, with a per-tensor
 * report of what quantization cost. File handling (reading inputs, naming
 * them in errors) lives here; the formats live in src/.
 */
import { BLOB_MAGIC, blobToFloatModel, quantizedMatrices4, readBlob, writeBlob, type TensorReport, type WeightBits } from '../src/blob.js';
import { blobBits, plannedBlobBytes, type BlobBits } from '../src/blob-size.js';
import { BOARD_PROFILES, FLASH_LAYOUTS, fmtBytes, modelPartition } from '../src/boards.js';
import type { QuantizedMatrix4 } from '../src/quantize.js';
import { ARCH_NGRAM, blobArch } from '../src/ngram.js';
import { LmflashError } from '../src/errors.js';
import { aboutFile, readInputFile } from '../src/input-file.js';
import { readLlama2cCheckpoint, readTokenizerBin, type CheckpointFormat } from '../src/llama2c.js';
import type { FloatModel, ModelConfig } from '../src/model.js';
import { DEFAULT_GROUP_SIZE } from '../src/quantize.js';
import { calibrateSequentially } from './sequential.js';
import { tokenizerFromBin, type TokenizerData } from '../src/tokenizer.js';
import { describeOnnxImport, externalReaderFor, importOnnx, isOnnxPath } from './onnx-import.js';

export interface ConvertOptions {
  /** Columns per quantization group (default 64; calibrated int4: chooseInt4GroupSize). */
  groupSize?: number;
  /** Bits per weight of the layers' matrices (default 8). */
  bits?: WeightBits;
  /** Bits per weight of the token embedding and classifier (default 8). */
  embeddingBits?: WeightBits;
  /** int4: documents to calibrate on (converter/calibrate.ts), and how many tokens of them to run (default INT4_CALIBRATION_TOKENS). */
  calibration?: { documents: string[]; maxTokens?: number; activationScaling?: boolean };
  /** ONNX inputs: the context length to record when the file does not say. */
  seqLen?: number;
  /** Receives the weights quantized so far and in all, after each tensor. */
  onWeights?: (done: number, total: number) => void;
}

export interface ConvertReport {
  checkpointFormat: CheckpointFormat | 'onnx';
  /** What was read, when it is not a llama2.c checkpoint (e.g. how an ONNX graph was mapped). */
  source?: string;
  config: ModelConfig;
  groupSize: number;
  /** Why the group size is what it is, when convert chose it (calibrated int4). */
  groupSizeReason?: string;
  /** Bits per weight of the layers' matrices and of the embedding/classifier. */
  bits: WeightBits;
  embeddingBits: WeightBits;
  /** Tokens the int4 calibration ran (0: plain rounding). */
  calibrationTokens: number;
  blobBytes: number;
  /** Every tensor in blob order; f32 tensors have error null. */
  tensors: TensorReport[];
  /** The quantized tensors with the largest relative max and RMS errors. */
  worstMaxRel: { name: string; value: number };
  worstRmsRel: { name: string; value: number };
}

export interface ConvertResult {
  blob: Buffer;
  report: ConvertReport;
}

/**
 * Calibrated int4's defaults: group 16 on 16,384 tokens is what meets issue
 * 13's bar, perplexity within 5 % of float, on stories260K (1.0466;
 * group 32: 1.0691, group 64: 1.0856; docs/blob-format.md). Uncalibrated
 * int4 meets it at no group size (group 16: 1.0749), so plain `--bits 4`
 * keeps group 64, the smallest blob.
 */
export const INT4_CALIBRATED_GROUP_SIZES = [16, 32, 64] as const;
export const INT4_CALIBRATION_TOKENS = 16384;

/** The largest `model` partition of any board profile: a blob bigger than this runs nowhere. */
function largestModelPartition(): { bytes: number; boards: string } {
  const bytes = Math.max(...Object.values(FLASH_LAYOUTS).map((l) => modelPartition(l).size));
  const boards = BOARD_PROFILES.filter((b) => modelPartition(FLASH_LAYOUTS[b.flashMB]).size === bytes).map((b) => b.id);
  return { bytes, boards: boards.join(', ') };
}

/**
 * The group size of a calibrated int4 conversion given none: the smallest of
 * INT4_CALIBRATED_GROUP_SIZES whose blob some board's flash holds (group 16
 * makes a stories15M-shaped model with an int8 embedding 15.83 MiB, more
 * than the 14.94 MiB of the 16 MB boards' partition), with the reason.
 */
export function chooseInt4GroupSize(model: FloatModel, tokenizer: TokenizerData, bits: BlobBits): { groupSize: number; reason: string } {
  const largest = largestModelPartition();
  const sizes: string[] = [];
  for (const groupSize of INT4_CALIBRATED_GROUP_SIZES) {
    const bytes = plannedBlobBytes(model.config, tokenizer, { groupSize, ...bits });
    if (bytes <= largest.bytes) {
      const why = groupSize === INT4_CALIBRATED_GROUP_SIZES[0] ? 'the default of calibrated int4' : `${sizes.join(' and ')}: more than the largest \`model\` partition, ${fmtBytes(largest.bytes)} (${largest.boards})`;
      return { groupSize, reason: why };
    }
    sizes.push(`group ${groupSize} would make ${fmtBytes(bytes)}`);
  }
  return { groupSize: DEFAULT_GROUP_SIZE, reason: `${sizes.join(', ')}: no board holds it at any group size` };
}

/** The conversion on bytes already in memory (names are only used in messages). */
export function convertBuffers(
  checkpoint: Uint8Array,
  tokenizerBin: Uint8Array,
  opts: ConvertOptions = {},
  names = { checkpoint: 'checkpoint', tokenizer: 'tokenizer' },
): ConvertResult {
  const model = aboutFile(names.checkpoint, () => readLlama2cCheckpoint(checkpoint));
  const tokenizer = aboutFile(names.tokenizer, () => tokenizerFromBin(readTokenizerBin(tokenizerBin, model.config.vocabSize)));
  return convertFloatModel(model, tokenizer, model.format, opts);
}

/** A float model and its tokenizer → blob and report. */
export function convertFloatModel(
  model: FloatModel,
  tokenizer: TokenizerData,
  format: ConvertReport['checkpointFormat'],
  opts: ConvertOptions = {},
  source?: string,
): ConvertResult {
  const bits = opts.bits ?? 8;
  const embeddingBits = opts.embeddingBits ?? 8;
  if (opts.calibration && bits === 8) {
    throw new LmflashError('--calibrate tunes the rounding of int4 layer matrices: use it with --bits 4 (int8 needs no calibration)');
  }
  const chosen = opts.groupSize === undefined && opts.calibration ? chooseInt4GroupSize(model, tokenizer, { bits, embeddingBits }) : null;
  const groupSize = opts.groupSize ?? chosen?.groupSize ?? DEFAULT_GROUP_SIZE;
  const cal = opts.calibration
    ? calibrateSequentially(
        model,
        tokenizer,
        opts.calibration.documents,
        opts.calibration.maxTokens ?? INT4_CALIBRATION_TOKENS,
        groupSize,
        opts.calibration.activationScaling !== false,
      )
    : null;
  if (cal && cal.tokens === 0) throw new LmflashError('the calibration text has no tokens: pass a text file with some lines of the kind of text the model writes');
  const { blob, tensors } = writeBlob(cal?.model ?? model, tokenizer, { groupSize, bits, embeddingBits, quantized: cal?.quantized, onWeights: opts.onWeights });
  const worst = (key: 'maxRel' | 'rmsRel') =>
    tensors.reduce(
      (best, t) => (t.error && t.error[key] > best.value ? { name: t.name, value: t.error[key] } : best),
      { name: '', value: 0 },
    );
  return {
    blob,
    report: {
      checkpointFormat: format,
      ...(source ? { source } : {}),
      config: model.config,
      groupSize,
      ...(chosen ? { groupSizeReason: chosen.reason } : {}),
      bits,
      embeddingBits,
      calibrationTokens: cal?.tokens ?? 0,
      blobBytes: blob.length,
      tensors,
      worstMaxRel: worst('maxRel'),
      worstRmsRel: worst('rmsRel'),
    },
  };
}

/** A model read from any input lmflash imports, before it is quantized. */
export interface LoadedModel {
  model: FloatModel;
  tokenizer: TokenizerData;
  format: ConvertReport['checkpointFormat'];
  source?: string;
}

/** Reads a llama2.c checkpoint and its tokenizer.bin. */
export async function loadCheckpoint(checkpointPath: string, tokenizerPath: string): Promise<LoadedModel> {
  const [checkpoint, tokenizerBin] = await Promise.all([
    readInputFile(checkpointPath, 'checkpoint'),
    readInputFile(tokenizerPath, 'tokenizer'),
  ]);
  const model = aboutFile(checkpointPath, () => readLlama2cCheckpoint(checkpoint));
  const tokenizer = aboutFile(tokenizerPath, () => tokenizerFromBin(readTokenizerBin(tokenizerBin, model.config.vocabSize)));
  return { model, tokenizer, format: model.format };
}

/** Reads both files and converts them. Does not write anything. */
export async function convertCheckpoint(
  checkpointPath: string,
  tokenizerPath: string,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  const { model, tokenizer, format } = await loadCheckpoint(checkpointPath, tokenizerPath);
  return convertFloatModel(model, tokenizer, format, opts);
}

/**
 * An ONNX model and its tokenizer (from the file's lmflash metadata, or
 * `tokenizerPath`). External data files are read next to the model.
 */
export async function loadOnnxFile(onnxPath: string, tokenizerPath: string | undefined, opts: ConvertOptions = {}): Promise<LoadedModel> {
  const [bytes, tokBytes] = await Promise.all([
    readInputFile(onnxPath, 'ONNX model'),
    tokenizerPath ? readInputFile(tokenizerPath, 'tokenizer') : Promise.resolve(null),
  ]);
  const imported = aboutFile(onnxPath, () => importOnnx(bytes, { readExternal: externalReaderFor(onnxPath), seqLen: opts.seqLen }));
  const vocab = imported.model.config.vocabSize;
  let tokenizer: TokenizerData;
  if (tokBytes) tokenizer = aboutFile(tokenizerPath!, () => tokenizerFromBin(readTokenizerBin(tokBytes, vocab)));
  else if (imported.tokenizerBin) {
    tokenizer = aboutFile(`${onnxPath} (tokenizer in its metadata)`, () => tokenizerFromBin(readTokenizerBin(imported.tokenizerBin!, vocab)));
  } else {
    throw new LmflashError(
      `${onnxPath} carries no tokenizer (only lmflash's ONNX exports do): pass --tokenizer with the model's llama2.c tokenizer.bin`,
    );
  }
  return { model: imported.model, tokenizer, format: 'onnx', source: describeOnnxImport(imported.info) };
}

export async function convertOnnxFile(onnxPath: string, tokenizerPath: string | undefined, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const m = await loadOnnxFile(onnxPath, tokenizerPath, opts);
  return convertFloatModel(m.model, m.tokenizer, 'onnx', opts, m.source);
}

/** Reads a llama2.c checkpoint or, by its .onnx extension, an ONNX model. */
export async function loadModelFile(input: string, tokenizerPath: string | undefined, opts: ConvertOptions = {}): Promise<LoadedModel> {
  if (isOnnxPath(input)) return loadOnnxFile(input, tokenizerPath, opts);
  if (opts.seqLen !== undefined) {
    throw new LmflashError(`--seq-len applies to ONNX models only; a llama2.c checkpoint (${input}) records its own context length`);
  }
  if (!tokenizerPath) {
    throw new LmflashError(`--tokenizer is required to convert the llama2.c checkpoint ${input}: pass the model's tokenizer.bin (e.g. tok512.bin)`);
  }
  return loadCheckpoint(input, tokenizerPath);
}

/** Converts a llama2.c checkpoint or, by its .onnx extension, an ONNX model. */
export async function convertModelFile(input: string, tokenizerPath: string | undefined, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const m = await loadModelFile(input, tokenizerPath, opts);
  return convertFloatModel(m.model, m.tokenizer, m.format, opts, m.source);
}

/** A model from any input lmflash reads (checkpoint, ONNX or transformer blob), with its blob (converted at the default group size when it was not one). */
export interface AnyModel extends LoadedModel {
  groupSize: number;
  /** The weight bits of the input blob (8 and 8 for a checkpoint or ONNX file, converted at int8). */
  bits: BlobBits;
  /** The input blob's int4 matrices as they are stored, by tensor name (empty when it has none): rewriting them keeps their bytes. */
  quantized4: Map<string, QuantizedMatrix4>;
  blob: Buffer;
}

export async function loadAnyModel(input: string, tokenizerPath: string | undefined): Promise<AnyModel> {
  const head = await readInputFile(input, 'model');
  if (head.subarray(0, 4).toString('latin1') === BLOB_MAGIC) {
    if (blobArch(head) === ARCH_NGRAM) throw new LmflashError(`${input} is an N-gram blob: this command needs a transformer model`);
    if (tokenizerPath) throw new LmflashError(`${input} is an lmflash blob, which carries its tokenizer: drop --tokenizer`);
    const view = aboutFile(input, () => readBlob(head));
    return {
      model: blobToFloatModel(view),
      tokenizer: view.tokenizer,
      format: 'v1',
      source: 'lmflash blob',
      groupSize: view.config.groupSize,
      bits: blobBits(view),
      quantized4: quantizedMatrices4(view),
      blob: head,
    };
  }
  const loaded = await loadModelFile(input, tokenizerPath);
  const groupSize = DEFAULT_GROUP_SIZE;
  const bits: BlobBits = { bits: 8, embeddingBits: 8 };
  return { ...loaded, groupSize, bits, quantized4: new Map(), blob: convertFloatModel(loaded.model, loaded.tokenizer, loaded.format, { groupSize }).blob };
}

