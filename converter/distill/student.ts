/**
 * Distilling a transformer teacher into a transformer student with the
 * training engine: the trainer's step loop (AdamW, schedule, validation,
 * best weights, checkpoints) with the batches drawn as whole windows of the
 * packed text (so each has its teacher distributions, teacher-cache.ts) and
 * the loss of transformer.ts's distillationLoss:
 *   alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) · CE(text).
 * alpha = 0 is plain cross-entropy on the same windows, steps and schedule
 * (no teacher is run): the baseline a distilled student is compared with.
 * Validation is always plain cross-entropy on the held-out text.
 */
import type { FloatModel, ModelConfig } from '../../src/model.js';
import { validationWindows, type Batch } from '../train/data.js';
import type { Kernels } from '../train/kernels.js';
import { sharedFloat32, trainingPass, type DistillablePass, type GradientPass } from '../train/parallel.js';
import { Trainer, newTrainState, type TrainSettings, type TrainState } from '../train/trainer.js';
import { TransformerPass, type Distillation } from '../train/transformer.js';
import { cutWindows, fillWindows, LiveTeacher, TopKCache, windowsOfStep, type TeacherSource, type Windows } from './teacher-cache.js';

export interface DistillSettings {
  temperature: number;
  /** weight of the KL term (0: cross-entropy only, no teacher) */
  alpha: number;
  /** teacher distributions: the top k of each cached position, or 'live' (the full distribution, teacher run every step) */
  teacherLogits: { kind: 'cache'; k: number } | { kind: 'live' };
}

/**
 * The training pass with the teacher's distributions of the current batch
 * (plain cross-entropy for validation, which runs without gradients), on
 * as many threads as the trainer would use (teacherProbs: over a
 * SharedArrayBuffer, which both threads read).
 */
class DistillPass implements GradientPass {
  private readonly pass: DistillablePass;
  private readonly distillation: Distillation | null;

  constructor(config: ModelConfig, settings: TrainSettings, kernels: Kernels, teacherProbs: Float32Array | null, d: DistillSettings) {
    this.pass = trainingPass(config, settings.batch, settings.seq, settings.threads ?? 1, kernels, { teacherProbs: teacherProbs ?? undefined });
    this.distillation = teacherProbs && { teacherProbs, temperature: d.temperature, alpha: d.alpha };
  }

  run(params: Float32Array, inputs: Int32Array, targets: Int32Array, grads: Float32Array | null): number {
    this.pass.setDistillation(grads !== null ? this.distillation : null);
    return this.pass.run(params, inputs, targets, grads);
  }

  close(): void {
    this.pass.close?.();
  }
}

export interface DistillRun {
  trainer: Trainer;
  teacher: TeacherSource | null;
  windows: Windows;
  /** seconds the cache took to build (0 when live or no teacher) */
  cacheSeconds: number;
}

export interface DistillSetup {
  teacher: FloatModel;
  student: ModelConfig;
  /** the student's starting weights (flat, trainer layout); default: initParams from the seed */
  init?: Float32Array;
  trainStream: Int32Array;
  valStream: Int32Array;
  settings: TrainSettings;
  distill: DistillSettings;
  kernels: Kernels;
  /** continue this state (a resume) instead of starting */
  resume?: TrainState;
  onCacheProgress?(done: number, total: number): void;
}

/** Windows cut, teacher cached (or set up live), trainer ready; nothing runs the student yet. */
export function openDistillRun(s: DistillSetup): DistillRun {
  const { batch, seq } = s.settings;
  const windows = cutWindows(s.trainStream, seq);
  if (windows.count === 0) throw new RangeError(`the training text has ${s.trainStream.length} tokens, fewer than one window of ${seq + 1}`);
  const V = s.student.vocabSize;
  let teacher: TeacherSource | null = null;
  let cacheSeconds = 0;
  if (s.distill.alpha > 0) {
    if (s.distill.teacherLogits.kind === 'live') teacher = new LiveTeacher(s.teacher, batch, seq, s.distill.temperature, s.kernels);
    else {
      const cache = new TopKCache(s.teacher, windows, s.distill.teacherLogits.k, s.distill.temperature, s.kernels, batch, s.onCacheProgress);
      cacheSeconds = cache.teacherSeconds;
      teacher = cache;
    }
  }
  const teacherProbs = teacher ? sharedFloat32(batch * seq * V) : null;
  const chosen = new Int32Array(batch);
  const fillBatch = (step: number, into: Batch) => {
    windowsOfStep(windows.count, batch, s.settings.seed, step, chosen);
    fillWindows(windows, chosen, into);
    if (teacher && teacherProbs) teacher.fill(chosen, into.inputs, teacherProbs);
  };
  const pass = new DistillPass(s.student, s.settings, s.kernels, teacherProbs, s.distill);
  let state = s.resume ?? newTrainState(s.student, s.settings);
  if (!s.resume && s.init) state = { ...state, params: s.init.slice() };
  const trainer = new Trainer(s.student, s.settings, s.trainStream, s.valStream, s.kernels, state, { pass, fillBatch });
  return { trainer, teacher, windows, cacheSeconds };
}

/** Mean cross-entropy per token of a model on a stream, over consecutive windows (every token scored once): the validation measure. */
export function streamLoss(config: ModelConfig, params: Float32Array, stream: Int32Array, seq: number, kernels: Kernels, maxWindows = 1000): number {
  const batches = validationWindows(stream, 8, seq, maxWindows);
  const pass = new TransformerPass(config, 8, seq, kernels);
  let total = 0;
  let count = 0;
  for (const b of batches) {
    let n = 0;
    for (const t of b.targets) if (t >= 0) n++;
    total += pass.run(params, b.inputs, b.targets, null) * n;
    count += n;
  }
  return count > 0 ? total / count : NaN;
}
