/**
 * `lmflash distill --teacher MODEL (--student-config PRESET | --dim … ) [--text CORPUS] -o student.blob`:
 * a transformer student trained by the training engine on the distillation
 * loss (converter/distill/student.ts) from the teacher's softened
 * distributions, cached once as top-k (converter/distill/teacher-cache.ts).
 * Without --text, the text is K stories sampled from the teacher on the C
 * core (sequence-level distillation), with the KL term on the teacher's
 * distributions over them as well.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { loadAnyModel } from '../../converter/convert.js';
import { checkInitFromTeacher, initFromTeacher } from '../../converter/distill/init.js';
import { fullDistributionBytes } from '../../converter/distill/teacher-cache.js';
import { openDistillRun, type DistillSettings } from '../../converter/distill/student.js';
import { decodeCheckpoint, type Checkpoint } from '../../converter/train/checkpoint.js';
import { packDocuments } from '../../converter/train/data.js';
import { flatParams } from '../../converter/prune-ffn.js';
import { toFloatModel } from '../../converter/train/params.js';
import { PRESET_NAMES, PRESETS } from '../../converter/train/presets.js';
import {
  DEFAULT_OPTIMIZER, modelConfigFor, splitDocuments, textDigest, tokenizerDigest, type Session,
} from '../../converter/train/session.js';
import { lossCurveSvg } from '../../converter/train/svg-plot.js';
import type { LogEntry, TrainSettings } from '../../converter/train/trainer.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { writeBlob } from '../../src/blob.js';
import { LmflashError } from '../../src/errors.js';
import { aboutFile, readInputFile, readInputText } from '../../src/input-file.js';
import { headSize, parameterCount, type ModelConfig } from '../../src/model.js';
import { Tokenizer, type TokenizerData } from '../../src/tokenizer.js';
import type { CliIO } from '../io.js';
import { Progress, stderrIsTty } from '../progress.js';
import { runWithCheckpoints } from '../train-progress.js';
import { chooseKernels, kernelsNote, requireFolder, stepThreads, type ShapeOptions } from './train-transformer.js';
import { withBlobFile } from '../../src/temp-dir.js';

export interface DistillTransformerOpts extends ShapeOptions {
  teacher: string;
  tokenizer?: string;
  studentConfig?: string;
  window?: number;
  text?: string;
  split: string;
  samples?: number;
  sampleSteps: number;
  seed: number;
  steps?: number;
  minutes?: number;
  temperature: number;
  alpha: number;
  init: string;
  topK?: number;
  teacherLogits: string;
  batch: number;
  threads: number;
  lr?: number;
  warmup?: number;
  weightDecay?: number;
  evalEvery: number;
  evalWindows: number;
  resume?: string;
  checkpoint?: string;
  log?: string;
  plot?: string;
  kernels: 'wasm' | 'js';
  groupSize: number;
  output: string;
}

export const DEFAULT_TOP_K = 32;
export const DEFAULT_SAMPLES = 200;

/** Problems with the options alone, before any file is read. */
function optionProblems(o: DistillTransformerOpts): string[] {
  const p: string[] = [];
  if (o.steps !== undefined && o.minutes !== undefined) p.push('--steps and --minutes are alternatives: choose one');
  if (o.steps === undefined && o.minutes === undefined && !o.resume) p.push('say how long to train: --steps N or --minutes M');
  if (!(o.alpha >= 0 && o.alpha <= 1)) p.push(`--alpha must be from 0 (cross-entropy only) to 1 (KL only), not ${o.alpha}`);
  if (!(o.temperature > 0)) p.push(`--temperature must be above 0, not ${o.temperature}`);
  if (!['random', 'teacher'].includes(o.init)) p.push(`--init must be random or teacher, not "${o.init}"`);
  if (!['cache', 'live'].includes(o.teacherLogits)) p.push(`--teacher-logits must be cache or live, not "${o.teacherLogits}"`);
  if (o.teacherLogits === 'live' && o.topK !== undefined) p.push('--top-k is the cache\'s size: --teacher-logits live keeps the full distribution');
  if (o.text && o.samples !== undefined) p.push('--samples is sequence-level distillation, for when there is no --text: give one or the other');
  if (!['all', 'train'].includes(o.split)) p.push(`--split must be train (or all, the same here: a transformer student trains on the train split and validates on the test split), not "${o.split}"`);
  if (o.studentConfig !== undefined && !PRESETS[o.studentConfig]) p.push(`unknown --student-config ${o.studentConfig}: choose one of ${PRESET_NAMES.join(', ')}`);
  return p;
}

/** The student's shape: the preset's (or else the teacher's), with each given option in its place. */
export function studentConfigFor(teacher: ModelConfig, o: DistillTransformerOpts): ModelConfig {
  const base = o.studentConfig ? { ...PRESETS[o.studentConfig], sharedClassifier: true } : teacher;
  // pruning keeps the head size (RoPE depends on it): a narrower --dim alone means fewer heads
  const keepHeadSize = o.init === 'teacher' && o.dim !== undefined && o.heads === undefined && !o.studentConfig;
  const heads = o.heads ?? (keepHeadSize ? o.dim! / headSize(teacher) : base.nHeads);
  return modelConfigFor(
    {
      dim: o.dim ?? base.dim,
      nLayers: o.layers ?? base.nLayers,
      nHeads: heads,
      nKvHeads: o.kvHeads ?? (heads === base.nHeads ? base.nKvHeads : heads / (base.nHeads / base.nKvHeads)),
      hiddenDim: o.hidden ?? base.hiddenDim,
      seqLen: o.seq ?? Math.min(base.seqLen, teacher.seqLen),
      sharedClassifier: base.sharedClassifier,
    },
    teacher.vocabSize,
  );
}

function digestOf(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** What a checkpoint of this command records beyond `train transformer`'s, and a resume must match. */
interface DistillIdentity {
  teacherDigest: string;
  distill: DistillSettings;
  init: string;
}

export async function distillTransformerCommand(io: CliIO, o: DistillTransformerOpts, teacherSamples: (blobFile: string, tok: TokenizerData) => Promise<Int32Array[]>): Promise<void> {
  const problems = optionProblems(o);
  if (problems.length) throw new LmflashError(problems.join('; '));
  const checkpointPath = o.checkpoint ?? `${o.output.replace(/\.blob$/, '')}.ckpt`;
  for (const [f, what] of [[o.output, 'blob'], [checkpointPath, 'checkpoint'], [o.plot, 'plot'], [o.log, 'log']] as const) {
    if (f) await requireFolder(f, what);
  }
  const teacher = await loadAnyModel(o.teacher, o.tokenizer);
  const tok = teacher.tokenizer;
  if (tok.vocabSize !== teacher.model.config.vocabSize) {
    throw new LmflashError(`the tokenizer has ${tok.vocabSize} tokens but the teacher's vocabulary is ${teacher.model.config.vocabSize}: pass the tokenizer the teacher was trained with`);
  }
  let config = studentConfigFor(teacher.model.config, o);
  const window = o.window ?? Math.min(config.seqLen, 256);
  if (window > config.seqLen) throw new LmflashError(`--window ${window} is longer than the student's context ${config.seqLen}: give a smaller --window or a larger --seq`);
  if (window > teacher.model.config.seqLen) throw new LmflashError(`--window ${window} is longer than the teacher's context ${teacher.model.config.seqLen}: the teacher has no distributions past it`);
  if (o.init === 'teacher') checkInitFromTeacher(teacher.model.config, config);
  const studentParams = parameterCount(config);
  const teacherParams = parameterCount(teacher.model.config);
  if (studentParams > teacherParams) {
    io.err(`warning: the student (${studentParams.toLocaleString('en-US')} parameters) is larger than the teacher (${teacherParams.toLocaleString('en-US')}); distillation usually makes a smaller model\n`);
  }
  const kernels = chooseKernels(o.kernels);

  // the text: the corpus, or stories sampled from the teacher
  let trainDocs: string[] | null = null;
  let sampleLines: string[] = [];
  let trainStream: Int32Array;
  let valStream: Int32Array;
  let textNote: string;
  if (o.text) {
    const { train, test } = splitDocuments(await readInputText(o.text, 'text'));
    if (train.length === 0) throw new LmflashError(`${o.text} has no non-empty lines in its train split (lines whose 0-based index % 10 != 0)`);
    trainDocs = train;
    trainStream = packDocuments(train, tok);
    valStream = packDocuments(test, tok);
    textNote = `${o.text}: ${train.length} train lines (${trainStream.length.toLocaleString('en-US')} tokens), ${test.length} test lines for validation`;
  } else {
    const t0 = performance.now();
    const stories = await withBlobFile('distill', teacher.blob, (blobFile) => teacherSamples(blobFile, tok));
    const pack = (ss: Int32Array[]) => {
      const out = new Int32Array(ss.reduce((n, s) => n + s.length + 1, 0));
      let at = 0;
      for (const s of ss) {
        out[at++] = tok.bosId;
        out.set(s, at);
        at += s.length;
      }
      return out;
    };
    const trainStories = stories.filter((_, i) => i % 10 !== 0);
    const decoder = new Tokenizer(tok);
    sampleLines = trainStories.map((s) => decoder.decodeText(s));
    trainStream = pack(trainStories);
    valStream = pack(stories.filter((_, i) => i % 10 === 0));
    textNote = `no --text: ${o.samples ?? DEFAULT_SAMPLES} stories sampled from the teacher on the C core in ${((performance.now() - t0) / 1000).toFixed(1)} s: ` +
      `${stories.length} sentences, ${trainStream.length.toLocaleString('en-US')} train tokens, every 10th sentence (${valStream.length.toLocaleString('en-US')} tokens) for validation`;
  }
  if (trainStream.length < window + 1) throw new LmflashError(`the training text has ${trainStream.length} tokens, fewer than one window of ${window + 1}: use a longer text (or more --samples) or a smaller --window`);

  const distill: DistillSettings = {
    temperature: o.temperature,
    alpha: o.alpha,
    teacherLogits: o.teacherLogits === 'live' ? { kind: 'live' } : { kind: 'cache', k: Math.min(o.topK ?? DEFAULT_TOP_K, tok.vocabSize) },
  };
  const fromTeacher = o.init === 'teacher';
  const lr = o.lr ?? (fromTeacher ? 1e-3 : DEFAULT_OPTIMIZER.learningRate);
  let settings: TrainSettings = {
    batch: o.batch,
    seq: window,
    seed: o.seed,
    steps: o.steps ?? 1,
    optimizer: {
      ...DEFAULT_OPTIMIZER,
      learningRate: lr,
      minLearningRate: lr / 10,
      warmupSteps: o.warmup ?? (fromTeacher ? 20 : DEFAULT_OPTIMIZER.warmupSteps),
      weightDecay: o.weightDecay ?? (fromTeacher ? 0 : DEFAULT_OPTIMIZER.weightDecay),
      totalSteps: o.steps ?? 1,
    },
    evalEvery: o.evalEvery,
    evalWindows: o.evalWindows,
    threads: stepThreads(o.batch, o.threads),
  };
  const identity: DistillIdentity = { teacherDigest: digestOf(teacher.blob), distill, init: o.init };
  const textId = trainDocs ? textDigest(trainDocs) : digestOf(new Uint8Array(trainStream.buffer));
  let resumed: Checkpoint | undefined;
  if (o.resume) {
    const bytes = await readInputFile(o.resume, 'checkpoint');
    resumed = aboutFile(o.resume, () => decodeCheckpoint(bytes));
    const h = resumed.header as typeof resumed.header & { settings: Partial<DistillIdentity> };
    const shapeKeys = ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'hiddenDim', 'seqLen', 'vocabSize', 'sharedClassifier'] as const;
    if (shapeKeys.some((k) => h.config[k] !== config[k])) throw new LmflashError('the checkpoint is of another student shape: resume with the same shape options');
    if (h.tokenizerDigest !== tokenizerDigest(tok) || h.textDigest !== textId) throw new LmflashError('the checkpoint was trained on another text or tokenizer: resume with the same --text (or --samples and --seed) and teacher');
    if (h.settings.teacherDigest !== identity.teacherDigest || JSON.stringify(h.settings.distill) !== JSON.stringify(distill) || h.settings.init !== o.init) {
      throw new LmflashError('the checkpoint was distilled from another teacher or with other --temperature/--alpha/--top-k/--init: resume with the same ones');
    }
    settings = { ...h.settings } as TrainSettings;
    config = h.config; // as trained (pruning channels rescales norm_eps)
  }

  let init: Float32Array | undefined;
  let initNote = 'random (N(0, 0.02), seed ' + o.seed + ')';
  if (fromTeacher && !resumed) {
    const r = initFromTeacher(teacher.model, config, tok, trainDocs ?? sampleLines, kernels);
    config = r.model.config;
    init = flatParams(r.model);
    const rep = r.report;
    initNote = `the teacher pruned to the student's shape (converter/prune-shape.ts, activation importance on ${rep.calibrationTokens.toLocaleString('en-US')} tokens): ` +
      `layers ${rep.droppedLayers.length ? rep.droppedLayers.join(',') + ' dropped' : 'all kept'}, ${rep.to.nHeads}/${rep.to.nKvHeads} of ${rep.from.nHeads}/${rep.from.nKvHeads} heads, ` +
      `dim ${rep.from.dim} -> ${rep.to.dim}, FFN ${rep.from.hiddenDim} -> ${rep.to.hiddenDim}`;
  }
  const header = {
    config,
    settings: { ...settings, ...identity } as TrainSettings,
    tokenizerDigest: tokenizerDigest(tok),
    textDigest: textId,
  };
  if (resumed) header.settings = resumed.header.settings;

  const bar = new Progress(io, { tty: stderrIsTty(io), unit: 'windows', delayMs: 1000 });
  const run = openDistillRun({
    teacher: teacher.model, student: config, init, trainStream, valStream, settings, distill, kernels, resume: resumed?.state,
    onCacheProgress: (done, total) => bar.update('distill: teacher distributions', done, total, done === total),
  });
  const t = run.trainer;
  if (!resumed && o.minutes !== undefined) {
    const steps = Math.max(1, Math.floor((o.minutes * 60) / t.timeOneStep() / 1.05));
    settings.steps = steps;
    settings.optimizer.totalSteps = steps;
  }
  const positions = run.windows.count * window;
  const cacheNote = !run.teacher
    ? 'alpha 0: cross-entropy only, no teacher'
    : distill.teacherLogits.kind === 'live'
      ? `teacher run on every step's batch (full distributions, nothing cached)`
      : `teacher top-${distill.teacherLogits.k} of ${positions.toLocaleString('en-US')} positions cached in ${run.cacheSeconds.toFixed(1)} s: ` +
        `${(run.teacher.bytes / 2 ** 20).toFixed(1)} MiB (full distributions: ${(fullDistributionBytes(positions, tok.vocabSize) / 2 ** 20).toFixed(1)} MiB)`;
  io.err(
    `distill: student ${studentParams.toLocaleString('en-US')} parameters (dim ${config.dim}, ${config.nLayers} layers, ${config.nHeads}/${config.nKvHeads} heads, hidden ${config.hiddenDim}, seq ${config.seqLen}), ` +
      `teacher ${teacherParams.toLocaleString('en-US')}; T=${o.temperature}, alpha=${o.alpha}; init ${initNote}\n  ${textNote}\n  ${cacheNote}\n` +
      `  ${settings.steps} steps of ${settings.batch}x${window} tokens${resumed ? `, resuming at step ${t.state.step}` : ''}; ${kernelsNote(kernels.name, settings.threads ?? 1)}\n`,
  );

  const session: Session = { trainer: t, header, trainTokens: trainStream.length, testTokens: valStream.length };
  const bestPath = checkpointPath.replace(/(\.ckpt)?$/, '.best.ckpt');
  const title = `lmflash distill: ${path.basename(o.text ?? 'teacher samples')}, ${studentParams.toLocaleString('en-US')} parameters, alpha ${o.alpha}`;
  const writeLog = async (log: readonly LogEntry[]) => {
    if (o.log) await writeFileAtomic(o.log, Buffer.from(log.map((e) => JSON.stringify(e)).join('\n') + '\n'));
    if (o.plot) await writeFileAtomic(o.plot, Buffer.from(lossCurveSvg(log, { title })));
  };
  const result = await runWithCheckpoints(io, session, settings.steps, { checkpoint: checkpointPath, best: bestPath }, () => writeLog(t.state.log));
  const st = t.state;
  const weights = st.best?.params ?? st.params;
  const { blob } = writeBlob(toFloatModel(config, weights), tok, { groupSize: o.groupSize });
  await writeFileAtomic(o.output, blob);
  const last = st.log[st.log.length - 1];
  const best = st.best ? `best validation loss ${st.best.valLoss.toFixed(4)} (perplexity ${Math.exp(st.best.valLoss).toFixed(3)}) at step ${st.best.step}` : 'not validated (no held-out text)';
  const teacherTime = run.teacher ? `; teacher ${(run.cacheSeconds + (distill.teacherLogits.kind === 'live' ? run.teacher.teacherSeconds : 0)).toFixed(1)} s` : '';
  io.out(
    `${result.stopped ? `interrupted at step ${st.step} of ${settings.steps}` : `distilled ${st.step} steps`}: ${st.tokensSeen.toLocaleString('en-US')} tokens in ${st.seconds.toFixed(1)} s${teacherTime}, ` +
      `last training loss ${last ? last.loss.toFixed(4) : 'n/a'}; ${best}\n` +
      `wrote ${o.output}: ${blob.length.toLocaleString('en-US')} bytes (int8, group size ${o.groupSize}), ${studentParams.toLocaleString('en-US')} parameters, from the weights of step ${st.best?.step ?? st.step}\n` +
      `checkpoint ${checkpointPath}; peak memory (RSS) ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB` + (result.stopped ? `; continue with: --resume ${checkpointPath}\n` : '\n'),
  );
  if (result.stopped) process.exitCode = 130;
}
