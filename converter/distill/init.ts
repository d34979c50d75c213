/**
 * `--init teacher`: the student starts as the teacher pruned to the
 * student's shape (Minitron: prune, then distill). Until the structured
 * pruner for every dimension (converter/prune-shape.ts) is in, this uses what
 * the project already has: whole layers dropped (the ones whose removal
 * raises the calibration loss least, one at a time) and FFN neurons removed
 * by activation importance (prune-ffn.ts). Width (dim), heads and kv heads
 * must then stay the teacher's.
 */
import { LmflashError } from '../../src/errors.js';
import type { FloatModel, ModelConfig } from '../../src/model.js';
import type { TokenizerData } from '../../src/tokenizer.js';
import { packDocuments, validationWindows } from '../train/data.js';
import type { Kernels } from '../train/kernels.js';
import { TransformerPass } from '../train/transformer.js';
import { activationImportance, flatParams, removeNeurons, topIndices } from '../prune-ffn.js';

export interface InitReport {
  /** teacher layers kept, in order */
  keptLayers: number[];
  hiddenDim: { from: number; to: number };
  calibrationTokens: number;
}

function withLayers(m: FloatModel, keep: number[]): FloatModel {
  return { config: { ...m.config, nLayers: keep.length }, weights: { ...m.weights, layers: keep.map((l) => m.weights.layers[l]) } };
}

/** What keeps the stand-in pruner from reaching the target shape (empty when it can). */
export function initFromTeacherProblems(teacher: ModelConfig, target: ModelConfig): string[] {
  const p: string[] = [];
  for (const k of ['dim', 'nHeads', 'nKvHeads', 'sharedClassifier'] as const) {
    if (teacher[k] !== target[k]) p.push(`${k} ${target[k]} differs from the teacher's ${teacher[k]}`);
  }
  if (target.nLayers > teacher.nLayers) p.push(`${target.nLayers} layers are more than the teacher's ${teacher.nLayers}`);
  if (target.hiddenDim > teacher.hiddenDim) p.push(`hidden ${target.hiddenDim} is wider than the teacher's ${teacher.hiddenDim}`);
  return p;
}

export function initFromTeacher(teacher: FloatModel, target: ModelConfig, tokenizer: TokenizerData, calibration: string[], kernels: Kernels): { model: FloatModel; report: InitReport } {
  const problems = initFromTeacherProblems(teacher.config, target);
  if (problems.length) {
    throw new LmflashError(`--init teacher can only drop layers and FFN neurons so far (${problems.join('; ')}): keep --dim, --heads and --kv-heads the teacher's, or use --init random`);
  }
  const stream = packDocuments(calibration, tokenizer);
  const seq = Math.min(256, teacher.config.seqLen, stream.length - 1);
  const windows = validationWindows(stream, 4, seq, 16);
  let keep = Array.from({ length: teacher.config.nLayers }, (_, l) => l);
  while (keep.length > target.nLayers) {
    let best = -1;
    let bestLoss = Infinity;
    for (const drop of keep) {
      const m = withLayers(teacher, keep.filter((l) => l !== drop));
      const loss = calibrationLoss(m, windows, seq, kernels);
      if (loss < bestLoss) {
        bestLoss = loss;
        best = drop;
      }
    }
    keep = keep.filter((l) => l !== best);
  }
  let model = withLayers(teacher, keep);
  let tokens = 0;
  if (target.hiddenDim < teacher.config.hiddenDim) {
    const ranked = activationImportance(model, tokenizer, calibration, kernels, 256, 64);
    model = removeNeurons(model, ranked.importance.map((s) => topIndices(s, target.hiddenDim)));
    tokens = ranked.tokens;
  }
  model = { config: { ...model.config, seqLen: target.seqLen }, weights: model.weights };
  return { model, report: { keptLayers: keep, hiddenDim: { from: teacher.config.hiddenDim, to: target.hiddenDim }, calibrationTokens: tokens } };
}

function calibrationLoss(m: FloatModel, windows: ReturnType<typeof validationWindows>, seq: number, kernels: Kernels): number {
  const pass = new TransformerPass(m.config, 4, seq, kernels);
  const params = flatParams(m);
  let total = 0;
  let count = 0;
  for (const b of windows) {
    let n = 0;
    for (const t of b.targets) if (t >= 0) n++;
    total += pass.run(params, b.inputs, b.targets, null) * n;
    count += n;
  }
  return total / count;
}
