/**
 * `lmflash convert <checkpoint|model.onnx> [--tokenizer <file>] -o <out.blob> [--group-size N]
 *   [--bits 4|8] [--embedding-bits 4|8] [--calibrate <text>] [--calibrate-tokens N] [--seq-len N]`
 */
import { InvalidArgumentError, type Command } from 'commander';
import { convertModelFile, INT4_CALIBRATED_GROUP_SIZES, INT4_CALIBRATION_TOKENS, type ConvertReport } from '../../converter/convert.js';
import type { WeightBits } from '../../src/blob.js';
import { splitLines } from './eval.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { readBlob } from '../../src/blob.js';
import { LmflashError } from '../../src/errors.js';
import { readInputFile } from '../../src/input-file.js';
import { DEFAULT_GROUP_SIZE, groupSizeProblem } from '../../src/quantize.js';
import { describeConfig } from '../../src/model.js';
import { type CliIO, reportTo } from '../io.js';
import { nativeRunnerPath } from '../native.js';
import { Progress, stderrIsTty } from '../progress.js';
import { checkTokenizer, defaultCheckText, tokenizerWarning, type TokenizerCheck } from '../tokenizer-check.js';
import { parsePositiveInt } from '../option-parsers.js';

function parseGroupSize(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  const problem = groupSizeProblem(n);
  if (problem) throw new InvalidArgumentError(problem.replace(/^group size \S+ is not allowed: /, ''));
  return n;
}

/** The train split of a calibration text (never the test lines `eval --split test` scores). */
async function readCalibrationText(file: string): Promise<string[]> {
  const text = Buffer.from(await readInputFile(file, 'calibration text')).toString('utf8');
  const docs = splitLines(text, 'train');
  if (docs.length === 0) throw new LmflashError(`${file} has no non-empty lines in its train split (line index % 10 != 0): pass a longer text`);
  return docs;
}

function parseBits(value: string): WeightBits {
  if (value !== '4' && value !== '8') throw new InvalidArgumentError('use 4 or 8');
  return Number(value) as WeightBits;
}

interface ConvertFlags {
  tokenizer?: string;
  output: string;
  groupSize?: number;
  bits: WeightBits;
  embeddingBits?: WeightBits;
  calibrate?: string;
  calibrateTokens?: number;
  seqLen?: number;
  checkText?: string;
  check: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('convert')
    .description('convert a llama2.c checkpoint (legacy, version 1 or version 2) and its tokenizer.bin, or an ONNX model, into an lmflash blob')
    .argument('<checkpoint>', 'llama2.c model .bin (e.g. stories260K.bin), or a Llama-style ONNX model (.onnx, docs/onnx.md)')
    .option('-t, --tokenizer <file>', "the model's llama2.c tokenizer.bin (e.g. tok512.bin); optional for an ONNX file exported by lmflash, which carries it")
    .requiredOption('-o, --output <file>', 'blob to write (a file is replaced atomically; - writes to stdout)')
    .option(
      '-g, --group-size <n>',
      'columns per quantization scale: a multiple of 16 from 16 to 256; smaller is more accurate and larger; ' +
        'a value at least as long as the longest row gives one scale per row ' +
        `(default ${DEFAULT_GROUP_SIZE}; with --calibrate ${INT4_CALIBRATED_GROUP_SIZES[0]}, or the next of ${INT4_CALIBRATED_GROUP_SIZES.slice(1).join(', ')} when a smaller one makes a blob no board holds)`,
      parseGroupSize,
    )
    .option(
      '-b, --bits <n>',
      "bits per weight of the layers' matrices: 8 (int8) or 4 (int4, half the flash; a blob that needs format 1.1 readers)",
      parseBits,
      8 as WeightBits,
    )
    .option(
      '--embedding-bits <n>',
      'bits per weight of the token embedding and classifier: 8 (default: int4 there costs more quality than in any layer matrix) or 4 (the smallest blob)',
      parseBits,
    )
    .option(
      '--calibrate <text>',
      'int4: run the float model over the train split of this text (lines whose index % 10 != 0, as `eval --split train`) and choose the int4 weights layer by layer by output error (activation scaling folded into the norms, GPTQ error feedback, refitted scales) instead of rounding to nearest',
    )
    .option('--calibrate-tokens <n>', `tokens of --calibrate text to run (default ${INT4_CALIBRATION_TOKENS})`, parsePositiveInt)
    .option('--seq-len <n>', 'ONNX input: the context length to record, for a file that does not say (no lmflash metadata, no RoPE table)', parsePositiveInt)
    .option('--check-text <file>', 'text in the model\'s language to check the tokenizer with (default: two English stories lmflash writes)')
    .option('--no-check', 'skip the tokenizer check (scoring a short text with the converted model)')
    .action(async (checkpoint: string, opts: ConvertFlags) => {
      if (opts.calibrateTokens !== undefined && !opts.calibrate) throw new LmflashError('--calibrate-tokens needs --calibrate <text>');
      const calibration = opts.calibrate ? { documents: await readCalibrationText(opts.calibrate), maxTokens: opts.calibrateTokens } : undefined;
      const bar = new Progress(io, { tty: stderrIsTty(io), unit: 'weights', delayMs: 1000 });
      const onWeights = (done: number, total: number) => bar.update('quantizing', done, total, done === total);
      const { blob, report } = await convertModelFile(checkpoint, opts.tokenizer, {
        groupSize: opts.groupSize,
        bits: opts.bits,
        embeddingBits: opts.embeddingBits,
        calibration,
        seqLen: opts.seqLen,
        onWeights,
      });
      // checked before it is written: a check text that cannot be scored leaves nothing behind
      const check = opts.check && nativeBuilt(io) ? await runTokenizerCheck(blob, opts.checkText) : null;
      await writeFileAtomic(opts.output, blob);
      const printReport = reportTo(io, opts.output);
      printReport(formatReport(report, checkpoint, opts.output));
      if (check?.absurd) io.err(tokenizerWarning(check));
      else if (check) printReport(`tokenizer check: perplexity ${check.perplexity.toFixed(1)} on ${check.source} (${check.tokens} tokens; a wrong tokenizer scores above the vocabulary size, ${check.vocabSize})\n`);
    });
}

/** The check runs on the native core: without it (not built), say so and convert anyway. */
function nativeBuilt(io: CliIO): boolean {
  try {
    nativeRunnerPath();
    return true;
  } catch (e) {
    io.err(`lmflash: note: tokenizer check skipped: ${(e as Error).message}\n`);
    return false;
  }
}

/** Scores a short text with the new blob, to tell a wrong tokenizer (host/tokenizer-check.ts). */
async function runTokenizerCheck(blob: Buffer, checkText: string | undefined): Promise<TokenizerCheck> {
  const view = readBlob(blob);
  const text = checkText ? (await readInputFile(checkText, 'check text')).toString('utf8') : defaultCheckText();
  const source = checkText ? checkText : 'two English demo stories';
  const c = await checkTokenizer(blob, view.tokenizer, view.config.vocabSize, view.config.seqLen, text, source);
  if (!c) throw new LmflashError(`${checkText}: no line of it gives two tokens or more to score: give a text of a few sentences (nothing was written)`);
  return c;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** "int8 quantization" or, with int4 in it, which tensors have which. */
function quantizationSummary(r: ConvertReport): string {
  const cal = r.calibrationTokens > 0 ? ` (int4 calibrated on ${r.calibrationTokens} tokens)` : '';
  if (r.bits === 8 && r.embeddingBits === 8) return 'int8 quantization';
  if (r.bits === r.embeddingBits) return `int4 quantization${cal}`;
  return `int${r.bits} layer matrices, int${r.embeddingBits} embedding${r.config.sharedClassifier ? ' (and classifier)' : ' and classifier'}${cal}`;
}

/** Measured on stories260K (docs/blob-format.md, "What int4 costs"). */
const UNCALIBRATED_INT4_NOTE =
  'note: int4 rounded to nearest trades quality for size (stories260K, int4 layers: perplexity 1.129 x float at group 64, 1.075 at group 16; all-int4 1.171 at group 64); ' +
  `\`--calibrate TEXT\` (text of the kind the model writes; group ${INT4_CALIBRATED_GROUP_SIZES[0]} and ${INT4_CALIBRATION_TOKENS} tokens by default) brings it within 5 % (1.047)`;

/** The summary the command prints: model, one line per quantized tensor, worst errors, size. */
export function formatReport(r: ConvertReport, input: string, output: string): string {
  const lines = [
    `${input}: ${r.source ?? `llama2.c ${r.checkpointFormat} checkpoint`}, ${describeConfig(r.config)}, ` +
      `${r.config.sharedClassifier ? 'shared' : 'separate'} classifier`,
    `${quantizationSummary(r)}, group size ${r.groupSize}${r.groupSizeReason ? ` (${r.groupSizeReason})` : ''}; errors relative to each tensor's max |w| and RMS:`,
  ];
  const q8 = r.tensors.filter((t) => t.error);
  const nameWidth = Math.max(6, ...q8.map((t) => t.name.length));
  const shapes = q8.map((t) => `${t.rows}x${t.cols}`);
  const shapeWidth = Math.max(5, ...shapes.map((s) => s.length));
  lines.push(`  ${'tensor'.padEnd(nameWidth)}  ${'shape'.padStart(shapeWidth)}  type  ${'max err'.padStart(8)}  ${'rms err'.padStart(8)}`);
  q8.forEach((t, i) => {
    const e = t.error!;
    lines.push(
      `  ${t.name.padEnd(nameWidth)}  ${shapes[i].padStart(shapeWidth)}  ${t.dtype.padEnd(4)}  ${pct(e.maxRel).padStart(8)}  ${pct(e.rmsRel).padStart(8)}`,
    );
  });
  const f32 = r.tensors.length - q8.length;
  lines.push(`  (${f32} norm vectors kept as f32, exact)`);
  lines.push(`worst: max ${pct(r.worstMaxRel.value)} (${r.worstMaxRel.name}), rms ${pct(r.worstRmsRel.value)} (${r.worstRmsRel.name})`);
  lines.push(`wrote ${output}: ${r.blobBytes} bytes (${(r.blobBytes / 1024).toFixed(1)} KiB)`);
  if ((r.bits === 4 || r.embeddingBits === 4) && r.calibrationTokens === 0) lines.push(UNCALIBRATED_INT4_NOTE);
  return lines.join('\n') + '\n';
}
