/**
 * The training loop's state machine: one call, one optimizer step (batch from
 * (seed, step), forward+backward, clipping, AdamW at the scheduled rate), plus
 * validation and the best weights so far. No I/O and no clock decisions:
 * the CLI (host/commands/train.ts) owns files, signals and progress.
 */
import type { ModelConfig } from '../../src/model.js';
import { sampleBatch, validationWindows, type Batch } from './data.js';
import type { Kernels } from './kernels.js';
import { adamwStep, clipGradients, learningRateAt, type AdamState, type OptimizerSettings } from './optimizer.js';
import { decayMask, initParams } from './params.js';
import { trainingPass, type GradientPass } from './parallel.js';

export interface TrainSettings {
  /** Windows per step. */
  batch: number;
  /** Tokens per window (at most the model's seq_len). */
  seq: number;
  /** Seeds the initial weights and every step's batch. */
  seed: number;
  /** Optimizer steps of the whole run. */
  steps: number;
  optimizer: OptimizerSettings;
  /** Validate every this many steps (and after the last one). */
  evalEvery: number;
  /** At most this many validation windows (of `seq` tokens) per validation. */
  evalWindows: number;
  /** 1, or 2 to split each step's windows with a worker thread (parallel.ts); part of what decides the result. */
  threads?: number;
}

export interface LogEntry {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Training tokens seen after this step. */
  tokens: number;
  /** Wall-clock seconds of training after this step (not part of the exact-resume promise). */
  seconds: number;
  valLoss?: number;
}

export interface TrainState {
  /** Steps done. */
  step: number;
  tokensSeen: number;
  seconds: number;
  params: Float32Array;
  adam: AdamState;
  log: LogEntry[];
  best: { step: number; valLoss: number; params: Float32Array } | null;
}

export function newTrainState(config: ModelConfig, settings: TrainSettings): TrainState {
  const params = initParams(config, settings.seed);
  return {
    step: 0,
    tokensSeen: 0,
    seconds: 0,
    params,
    adam: { m: new Float32Array(params.length), v: new Float32Array(params.length) },
    log: [],
    best: null,
  };
}

/**
 * What a caller may put in place of the plain from-text training: its own
 * pass (e.g. distillation) and its own batches for each step (e.g. windows
 * whose teacher distributions are cached). Both must be deterministic in the
 * step number, as sampleBatch is, for a resume to be exact.
 */
export interface TrainerCustom {
  pass?: GradientPass;
  fillBatch?(step: number, into: Batch): void;
}

export class Trainer {
  private readonly pass: GradientPass;
  private readonly grads: Float32Array;
  private readonly decay: Uint8Array;
  private readonly batchBuf: Batch;
  private readonly valBatches: Batch[];

  constructor(
    readonly config: ModelConfig,
    readonly settings: TrainSettings,
    private readonly trainStream: Int32Array,
    valStream: Int32Array,
    kernels: Kernels,
    readonly state: TrainState,
    private readonly custom: TrainerCustom = {},
  ) {
    this.pass = custom.pass ?? trainingPass(config, settings.batch, settings.seq, settings.threads ?? 1, kernels);
    this.grads = new Float32Array(state.params.length);
    this.decay = decayMask(config);
    const n = settings.batch * settings.seq;
    this.batchBuf = { inputs: new Int32Array(n), targets: new Int32Array(n) };
    this.valBatches = validationWindows(valStream, settings.batch, settings.seq, settings.evalWindows);
  }

  /** Stops the worker thread, if any. */
  close(): void {
    this.pass.close?.();
  }

  get done(): boolean {
    return this.state.step >= this.settings.steps;
  }

  /** Whether the step just done is one after which to validate. */
  get validationDue(): boolean {
    const s = this.state.step;
    return this.valBatches.length > 0 && (s % this.settings.evalEvery === 0 || s === this.settings.steps);
  }

  /** One optimizer step; returns its log entry (also appended to the state's log). */
  trainStep(): LogEntry {
    const st = this.state;
    const s = this.settings;
    const t0 = performance.now();
    this.fillBatch(st.step);
    const loss = this.pass.run(st.params, this.batchBuf.inputs, this.batchBuf.targets, this.grads);
    const gradNorm = clipGradients(this.grads, s.optimizer.gradClip);
    const lr = learningRateAt(s.optimizer, st.step);
    adamwStep(st.params, this.grads, st.adam, this.decay, s.optimizer, st.step, lr);
    st.step++;
    st.tokensSeen += s.batch * s.seq;
    st.seconds += (performance.now() - t0) / 1000;
    const entry: LogEntry = { step: st.step, loss, lr, gradNorm, tokens: st.tokensSeen, seconds: st.seconds };
    st.log.push(entry);
    return entry;
  }

  private fillBatch(step: number): void {
    const s = this.settings;
    if (this.custom.fillBatch) this.custom.fillBatch(step, this.batchBuf);
    else sampleBatch(this.trainStream, s.batch, s.seq, s.seed, step, this.batchBuf);
  }

  /** Seconds one step's forward+backward takes (the fastest of four timed runs after the JIT warmed up; weights untouched). */
  timeOneStep(): number {
    this.fillBatch(0);
    let seconds = Infinity;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      this.pass.run(this.state.params, this.batchBuf.inputs, this.batchBuf.targets, this.grads);
      if (i > 0) seconds = Math.min(seconds, (performance.now() - t0) / 1000);
    }
    return seconds;
  }

  /** Mean loss per validation token of the current weights. */
  validationLoss(params = this.state.params): number {
    let total = 0;
    let count = 0;
    for (const b of this.valBatches) {
      let n = 0;
      for (const t of b.targets) if (t >= 0) n++;
      total += this.pass.run(params, b.inputs, b.targets, null) * n;
      count += n;
    }
    return count > 0 ? total / count : NaN;
  }

  /** Validates, records the loss in the last log entry, keeps the weights when they are the best so far; true when they are. */
  validate(): { valLoss: number; improved: boolean } {
    const st = this.state;
    const t0 = performance.now();
    const valLoss = this.validationLoss();
    st.seconds += (performance.now() - t0) / 1000;
    const last = st.log[st.log.length - 1];
    if (last) last.valLoss = valLoss;
    const improved = st.best === null || valLoss < st.best.valLoss;
    if (improved) st.best = { step: st.step, valLoss, params: st.params.slice() };
    return { valLoss, improved };
  }
}
