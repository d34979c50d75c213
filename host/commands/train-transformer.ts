/**
 * `lmflash train transformer TEXT --tokenizer TOK [--config NAME | shape options] [--steps N | --minutes M] [--resume CKPT] -o model.blob`:
 * trains a Llama-style transformer from scratch with lmflash's own engine
 * (converter/train) on the text's train split, validating on its test split,
 * and writes the best weights as a blob (plus, on request, a llama2.c legacy
 * checkpoint and an ONNX model). Ctrl-C saves a checkpoint to resume from.
 */
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { exportOnnx, tokenizerBinFromData } from '../../converter/onnx-export.js';
import { decodeCheckpoint, type Checkpoint } from '../../converter/train/checkpoint.js';
import { jsKernels, type Kernels } from '../../converter/train/kernels.js';
import { toFloatModel } from '../../converter/train/params.js';
import { PRESET_NAMES, PRESETS } from '../../converter/train/presets.js';
import {
  DEFAULT_OPTIMIZER, modelConfigFor, openSession, splitDocuments, type Session,
} from '../../converter/train/session.js';
import { lossCurveSvg } from '../../converter/train/svg-plot.js';
import type { LogEntry, TrainSettings } from '../../converter/train/trainer.js';
import { loadWasmKernels, wasmKernelsAvailable } from '../../converter/train/wasm-kernels.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { writeBlob } from '../../src/blob.js';
import { LmflashError } from '../../src/errors.js';
import { aboutFile, readInputFile } from '../../src/input-file.js';
import { writeLegacy } from '../../src/llama2c-writers.js';
import { parameterCount } from '../../src/model.js';
import { DEFAULT_GROUP_SIZE } from '../../src/quantize.js';
import type { TokenizerData } from '../../src/tokenizer.js';
import type { CliIO } from '../io.js';
import { runWithCheckpoints } from '../train-progress.js';
import { readTokenizerFile } from './train.js';
import { parseNonNegativeNumber, parsePositiveNumber, parseWholeIn } from '../option-parsers.js';

/** What addShapeOptions parses. */
export interface ShapeOptions {
  dim?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  hidden?: number;
  seq?: number;
}

export interface TrainTransformerOpts extends ShapeOptions {
  tokenizer: string;
  config: string;
  separateClassifier?: boolean;
  steps?: number;
  minutes?: number;
  batch: number;
  lr: number;
  minLr?: number;
  warmup: number;
  weightDecay: number;
  gradClip: number;
  seed: number;
  evalEvery: number;
  evalWindows: number;
  resume?: string;
  checkpoint?: string;
  llama2c?: string;
  onnx?: string;
  plot?: string;
  log?: string;
  kernels: 'wasm' | 'js';
  threads: number;
  groupSize: number;
  output: string;
}

export async function requireFolder(file: string, what: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const s = await stat(dir).catch(() => null);
  if (!s?.isDirectory()) throw new LmflashError(`cannot write the ${what} ${file}: folder ${dir} does not exist — create it first or choose another path`);
}

export function chooseKernels(which: 'wasm' | 'js'): Kernels {
  if (which === 'js') return jsKernels;
  if (!wasmKernelsAvailable()) throw new LmflashError('the WebAssembly training kernels are not built: run `npm run build`, or pass --kernels js (several times slower)');
  return loadWasmKernels();
}

/** Steps that fit in `minutes`, from the speed of two timed forward+backward passes (not applied to the weights). */
function stepsForMinutes(session: Session, minutes: number): number {
  const t = session.trainer;
  const secondsPerStep = t.timeOneStep();
  return Math.max(1, Math.floor((minutes * 60) / secondsPerStep / 1.05)); // 5 % for validation
}

/** The run's products from its best weights (or the last ones when it never validated). */
async function writeOutputs(io: CliIO, session: Session, tokenizer: TokenizerData, opts: TrainTransformerOpts): Promise<{ blobBytes: number; fromStep: number }> {
  const st = session.trainer.state;
  const weights = st.best?.params ?? st.params;
  const model = toFloatModel(session.trainer.config, weights);
  const { blob } = writeBlob(model, tokenizer, { groupSize: opts.groupSize });
  await writeFileAtomic(opts.output, blob);
  if (opts.llama2c) await writeFileAtomic(opts.llama2c, writeLegacy(model));
  if (opts.onnx) await writeFileAtomic(opts.onnx, exportOnnx(model, { tokenizerBin: tokenizerBinFromData(tokenizer), source: 'lmflash train transformer' }));
  return { blobBytes: blob.length, fromStep: st.best?.step ?? st.step };
}

async function writeLog(log: readonly LogEntry[], opts: TrainTransformerOpts, title: string): Promise<void> {
  if (opts.log) await writeFileAtomic(opts.log, Buffer.from(log.map((e) => JSON.stringify(e)).join('\n') + '\n'));
  if (opts.plot) await writeFileAtomic(opts.plot, Buffer.from(lossCurveSvg(log, { title })));
}

export async function trainTransformerCommand(io: CliIO, file: string, opts: TrainTransformerOpts): Promise<void> {
  if (opts.steps !== undefined && opts.minutes !== undefined) throw new LmflashError('--steps and --minutes are alternatives: choose one');
  const checkpointPath = opts.checkpoint ?? `${opts.output.replace(/\.blob$/, '')}.ckpt`;
  const bestPath = checkpointPath.replace(/(\.ckpt)?$/, '.best.ckpt');
  for (const [f, what] of [[opts.output, 'blob'], [checkpointPath, 'checkpoint'], [opts.llama2c, 'llama2.c checkpoint'], [opts.onnx, 'ONNX model'], [opts.plot, 'plot'], [opts.log, 'log']] as const) {
    if (f) await requireFolder(f, what);
  }
  const tokenizer = await readTokenizerFile(opts.tokenizer);
  let resume: Checkpoint | undefined;
  if (opts.resume) {
    const bytes = await readInputFile(opts.resume, 'checkpoint');
    resume = aboutFile(opts.resume, () => decodeCheckpoint(bytes));
  }
  const text = (await readInputFile(file, 'text')).toString('utf8');
  const { train, test } = splitDocuments(text);
  if (train.length === 0) throw new LmflashError(`${file} has no non-empty lines in its train split (lines whose 0-based index % 10 != 0)`);
  const kernels = chooseKernels(opts.kernels);

  let settings: TrainSettings;
  let config;
  if (resume) {
    config = resume.header.config;
    settings = resume.header.settings;
  } else {
    const preset = PRESETS[opts.config];
    if (!preset) throw new LmflashError(`unknown --config ${opts.config}: choose one of ${PRESET_NAMES.join(', ')}`);
    config = modelConfigFor(
      {
        dim: opts.dim ?? preset.dim,
        nLayers: opts.layers ?? preset.nLayers,
        nHeads: opts.heads ?? preset.nHeads,
        nKvHeads: opts.kvHeads ?? (opts.heads ?? preset.nHeads) / (preset.nHeads / preset.nKvHeads),
        hiddenDim: opts.hidden ?? preset.hiddenDim,
        seqLen: opts.seq ?? preset.seqLen,
        sharedClassifier: !opts.separateClassifier,
      },
      tokenizer.vocabSize,
    );
    settings = {
      batch: opts.batch,
      seq: config.seqLen,
      seed: opts.seed,
      steps: opts.steps ?? 1, // --minutes: set below from the measured speed
      optimizer: {
        ...DEFAULT_OPTIMIZER,
        learningRate: opts.lr,
        minLearningRate: opts.minLr ?? opts.lr / 10,
        warmupSteps: opts.warmup,
        weightDecay: opts.weightDecay,
        gradClip: opts.gradClip,
        totalSteps: opts.steps ?? 1,
      },
      evalEvery: opts.evalEvery,
      evalWindows: opts.evalWindows,
      threads: stepThreads(opts.batch, opts.threads),
    };
  }
  const session = openSession({ config, settings, tokenizer, trainDocs: train, testDocs: test, kernels, resume });
  if (!resume && opts.minutes !== undefined) {
    const steps = stepsForMinutes(session, opts.minutes);
    settings.steps = steps;
    settings.optimizer.totalSteps = steps;
  } else if (!resume && opts.steps === undefined) {
    throw new LmflashError('say how long to train: --steps N or --minutes M');
  }
  const t = session.trainer;
  const params = parameterCount(config);
  io.err(
    `train: ${params.toLocaleString('en-US')} parameters (dim ${config.dim}, ${config.nLayers} layers, ${config.nHeads} heads, ${config.nKvHeads} kv heads, hidden ${config.hiddenDim}, ` +
      `vocab ${config.vocabSize}, seq ${config.seqLen}${config.sharedClassifier ? '' : ', separate classifier'}); ${session.trainTokens.toLocaleString('en-US')} training tokens, ` +
      `${session.testTokens.toLocaleString('en-US')} validation tokens; ${settings.steps} steps of ${settings.batch}x${settings.seq} tokens` +
      `${resume ? `, resuming at step ${t.state.step}` : ''}; ${kernelsNote(kernels.name, settings.threads ?? 1)}\n`,
  );

  const title = `lmflash train transformer: ${path.basename(file)}, ${params.toLocaleString('en-US')} parameters`;
  const result = await runWithCheckpoints(io, session, settings.steps, { checkpoint: checkpointPath, best: bestPath }, () => writeLog(t.state.log, opts, title));
  const out = await writeOutputs(io, session, tokenizer, opts);
  const st = t.state;
  const last = st.log[st.log.length - 1];
  const best = st.best ? `best validation loss ${st.best.valLoss.toFixed(4)} (perplexity ${Math.exp(st.best.valLoss).toFixed(3)}) at step ${st.best.step}` : 'not validated (no test-split lines)';
  io.out(
    `${result.stopped ? `interrupted at step ${st.step} of ${settings.steps}` : `trained ${st.step} steps`}: ${st.tokensSeen.toLocaleString('en-US')} tokens in ${st.seconds.toFixed(1)} s ` +
      `(${(st.tokensSeen / Math.max(st.seconds, 1e-9)).toFixed(0)} tokens/s), last training loss ${last ? last.loss.toFixed(4) : 'n/a'}; ${best}\n` +
      `wrote ${opts.output}: ${out.blobBytes.toLocaleString('en-US')} bytes (int8, group size ${opts.groupSize}) from the weights of step ${out.fromStep}\n` +
      `checkpoint ${checkpointPath}${st.best ? `, best ${bestPath}` : ''}` +
      (result.stopped ? `; continue with: --resume ${checkpointPath}\n` : '\n'),
  );
  if (result.stopped) process.exitCode = 130;
}

/**
 * The model-shape options of a transformer that lmflash trains (train
 * transformer, distill's student): each help line starts with `prefix`.
 */
export function addShapeOptions(cmd: Command, prefix: string, seqHelp: string): Command {
  const p = prefix ? `${prefix}: ` : '';
  return cmd
    .option('--dim <n>', `${p}embedding width`, parseWholeIn(2, 4096))
    .option('--layers <n>', `${p}transformer layers`, parseWholeIn(1, 64))
    .option('--heads <n>', `${p}attention heads (must divide --dim)`, parseWholeIn(1, 256))
    .option('--kv-heads <n>', `${p}key/value heads (must divide --heads)`, parseWholeIn(1, 256))
    .option('--hidden <n>', `${p}feed-forward width`, parseWholeIn(1, 16384))
    .option('--seq <n>', `${p}${seqHelp}`, parseWholeIn(2, 4096));
}

/** The --threads option of a command that trains (train transformer, distill's student); help starts with `prefix`. */
export function addThreadsOption(cmd: Command, prefix: string): Command {
  const p = prefix ? `${prefix}: ` : '';
  return cmd.option('--threads <n>', `${p}threads per step: 2 splits each step's windows with a worker thread (part of what decides the result)`, parseWholeIn(1, 2), Math.min(2, os.availableParallelism()));
}

/** The threads a step runs on: --threads, but one when a step has a single window (two threads split the windows). */
export function stepThreads(batch: number, threads: number): number {
  return batch >= 2 ? threads : 1;
}

/** "kernels: NAME, N thread(s)" for a run's header. */
export function kernelsNote(kernels: string, threads: number): string {
  return `kernels: ${kernels}, ${threads} thread${threads > 1 ? 's' : ''}`;
}

export function registerTransformer(train: Command, io: CliIO): void {
  const cmd = train
    .command('transformer')
    .description("a Llama-style transformer trained from scratch by lmflash's own engine on the text's train split (validated on its test split: line % 10 == 0)")
    .argument('<text>', 'UTF-8 text, one document a line')
    .requiredOption('--tokenizer <file>', 'llama2.c tokenizer.bin (e.g. from `lmflash tokenizer train`); its size is the vocabulary')
    .addOption(new Option('--config <name>', 'model shape preset (docs/training.md)').choices(PRESET_NAMES).default('micro'));
  addShapeOptions(cmd, '', 'context length (training window)');
  cmd
    .option('--separate-classifier', 'a classifier of its own instead of the token embedding')
    .option('--steps <n>', 'optimizer steps', parseWholeIn(1, 10_000_000))
    .option('--minutes <m>', 'train for about this long (steps from the measured speed)', parsePositiveNumber)
    .option('--batch <n>', 'windows per step', parseWholeIn(1, 4096), 8)
    .option('--lr <rate>', 'peak learning rate', parsePositiveNumber, DEFAULT_OPTIMIZER.learningRate)
    .option('--min-lr <rate>', 'learning rate at the end of the cosine (default lr / 10)', parseNonNegativeNumber)
    .option('--warmup <steps>', 'linear warm-up steps', parseWholeIn(0, 10_000_000), DEFAULT_OPTIMIZER.warmupSteps)
    .option('--weight-decay <w>', 'AdamW weight decay of the matrices', parseNonNegativeNumber, DEFAULT_OPTIMIZER.weightDecay)
    .option('--grad-clip <norm>', 'clip the gradient norm to this (0: off)', parseNonNegativeNumber, DEFAULT_OPTIMIZER.gradClip)
    .option('--seed <n>', 'seeds the weights and the batches', parseWholeIn(0, 2 ** 32 - 1), 1)
    .option('--eval-every <steps>', 'validate (and save a checkpoint) every this many steps', parseWholeIn(1, 10_000_000), 100)
    .option('--eval-windows <n>', 'at most this many validation windows', parseWholeIn(1, 1_000_000), 1000)
    .option('--resume <checkpoint>', 'continue a run from its checkpoint (same text and tokenizer; shape and settings come from the checkpoint)')
    .option('--checkpoint <file>', 'where to save the run (default: the output name with .ckpt; the best one also as .best.ckpt)')
    .option('--llama2c <file>', 'also write the best weights as a llama2.c legacy checkpoint (run.c reads it)')
    .option('--onnx <file>', 'also write the best weights as ONNX')
    .option('--plot <file.svg>', 'draw the loss curve from the log as SVG')
    .option('--log <file.jsonl>', 'write the training log, one JSON object a step')
    .addOption(new Option('--kernels <which>', 'compute kernels: wasm (WebAssembly SIMD) or js (plain TypeScript)').choices(['wasm', 'js']).default('wasm'))
    .option('--group-size <n>', 'int8 quantization group size of the blob', parseWholeIn(16, 256), DEFAULT_GROUP_SIZE)
    .requiredOption('-o, --output <file>', 'blob to write (replaced atomically)');
  addThreadsOption(cmd, '').action(async (file: string, opts: TrainTransformerOpts) => trainTransformerCommand(io, file, opts));
}
