/**
 * llama2.c checkpoint + tokenizer.bin → lmflash blob, with a per-tensor
 * report of what quantization cost. File handling (reading inputs, naming
 * them in errors) lives here; the formats live in src/.
 */
import { readFile } from 'node:fs/promises';
import { writeBlob, type TensorReport } from '../src/blob.js';
import { LmflashError } from '../src/errors.js';
import { readLlama2cCheckpoint, readTokenizerBin, type CheckpointFormat } from '../src/llama2c.js';
import type { ModelConfig } from '../src/model.js';
import { DEFAULT_GROUP_SIZE } from '../src/quantize.js';
import { tokenizerFromBin } from '../src/tokenizer.js';

export interface ConvertOptions {
  /** Columns per quantization group (default 64). */
  groupSize?: number;
}

export interface ConvertReport {
  checkpointFormat: CheckpointFormat;
  config: ModelConfig;
  groupSize: number;
  blobBytes: number;
  /** Every tensor in blob order; f32 tensors have error null. */
  tensors: TensorReport[];
  /** The q8 tensors with the largest relative max and RMS errors. */
  worstMaxRel: { name: string; value: number };
  worstRmsRel: { name: string; value: number };
}

export interface ConvertResult {
  blob: Buffer;
  report: ConvertReport;
}

/** Prefixes input-format errors with the file they are about. */
function about<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof LmflashError) throw new LmflashError(`${file}: ${err.message}`);
    throw err;
  }
}

/** Reads an input file, turning the usual failures into one clear sentence. */
export async function readInputFile(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LmflashError(`cannot read the ${what} ${file}: no such file`);
    if (code === 'EISDIR') throw new LmflashError(`cannot read the ${what} ${file}: it is a folder, not a file`);
    if (code === 'EACCES' || code === 'EPERM') throw new LmflashError(`cannot read the ${what} ${file}: permission denied`);
    throw err;
  }
}

/** The conversion on bytes already in memory (names are only used in messages). */
export function convertBuffers(
  checkpoint: Uint8Array,
  tokenizerBin: Uint8Array,
  opts: ConvertOptions = {},
  names = { checkpoint: 'checkpoint', tokenizer: 'tokenizer' },
): ConvertResult {
  const groupSize = opts.groupSize ?? DEFAULT_GROUP_SIZE;
  const model = about(names.checkpoint, () => readLlama2cCheckpoint(checkpoint));
  const tokenizer = about(names.tokenizer, () => tokenizerFromBin(readTokenizerBin(tokenizerBin, model.config.vocabSize)));
  const { blob, tensors } = writeBlob(model, tokenizer, { groupSize });
  const worst = (key: 'maxRel' | 'rmsRel') =>
    tensors.reduce(
      (best, t) => (t.error && t.error[key] > best.value ? { name: t.name, value: t.error[key] } : best),
      { name: '', value: 0 },
    );
  return {
    blob,
    report: {
      checkpointFormat: model.format,
      config: model.config,
      groupSize,
      blobBytes: blob.length,
      tensors,
      worstMaxRel: worst('maxRel'),
      worstRmsRel: worst('rmsRel'),
    },
  };
}

/** Reads both files and converts them. Does not write anything. */
export async function convertCheckpoint(
  checkpointPath: string,
  tokenizerPath: string,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  const [checkpoint, tokenizer] = await Promise.all([
    readInputFile(checkpointPath, 'checkpoint'),
    readInputFile(tokenizerPath, 'tokenizer'),
  ]);
  return convertBuffers(checkpoint, tokenizer, opts, { checkpoint: checkpointPath, tokenizer: tokenizerPath });
}
