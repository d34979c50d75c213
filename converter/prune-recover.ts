/**
 * Recovery after pruning: fine-tune the pruned student with the training
 * engine on a distillation loss from the unpruned teacher (transformer.ts
 * distillationLoss: alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) ·
 * cross-entropy on the text). Each step's teacher logits come from the
 * trainer's forward on the teacher's weights over the same batch; nothing is
 * cached, so memory stays two passes' activations.
 */
import type { FloatModel } from '../src/model.js';
import { sampleBatch, type Batch } from './train/data.js';
import type { Kernels } from './train/kernels.js';
import { adamwStep, clipGradients, learningRateAt } from './train/optimizer.js';
import { decayMask, toFloatModel } from './train/params.js';
import { fineTuneOptimizer } from './train/session.js';
import { softenInPlace, TransformerPass } from './train/transformer.js';
import { flatParams } from './prune-ffn.js';

export interface RecoverSettings {
  steps: number;
  batch: number;
  seq: number;
  seed: number;
  temperature: number;
  alpha: number;
  learningRate: number;
}

export const DEFAULT_RECOVER: Omit<RecoverSettings, 'steps'> = { batch: 8, seq: 128, seed: 1, temperature: 2, alpha: 0.5, learningRate: 1e-3 };

export interface RecoverResult {
  model: FloatModel;
  /** distillation loss of each step's batch */
  losses: number[];
  seconds: number;
}

export function recoverByDistillation(
  student: FloatModel, teacher: FloatModel, stream: Int32Array, s: RecoverSettings, kernels: Kernels,
  onStep?: (step: number, loss: number) => void,
): RecoverResult {
  const seq = Math.min(s.seq, student.config.seqLen, stream.length - 1);
  const sPass = new TransformerPass(student.config, s.batch, seq, kernels);
  const tPass = new TransformerPass(teacher.config, s.batch, seq, kernels, { microBatch: s.batch }); // the whole batch's logits at once
  const params = flatParams(student);
  const tParams = flatParams(teacher);
  const grads = new Float32Array(params.length);
  const adam = { m: new Float32Array(params.length), v: new Float32Array(params.length) };
  const decay = decayMask(student.config);
  const opt = fineTuneOptimizer(s.learningRate, s.steps);
  const V = student.config.vocabSize;
  const n = s.batch * seq;
  const batch: Batch = { inputs: new Int32Array(n), targets: new Int32Array(n) };
  const teacherProbs = new Float32Array(n * V);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 0; step < s.steps; step++) {
    sampleBatch(stream, s.batch, seq, s.seed, step, batch);
    tPass.run(tParams, batch.inputs, batch.targets, null);
    teacherProbs.set(tPass.logitsOfLastRun);
    softenInPlace(teacherProbs, n, V, s.temperature);
    sPass.setDistillation({ teacherProbs, temperature: s.temperature, alpha: s.alpha });
    const loss = sPass.run(params, batch.inputs, batch.targets, grads);
    clipGradients(grads, opt.gradClip);
    adamwStep(params, grads, adam, decay, opt, step, learningRateAt(opt, step));
    losses.push(loss);
    onStep?.(step + 1, loss);
  }
  return { model: toFloatModel(student.config, params), losses, seconds: (performance.now() - t0) / 1000 };
}
