/**
 * Data parallelism over the machine's second core: a step's windows are
 * split in two halves, this thread runs one, a worker thread (grad-worker.ts)
 * the other, over SharedArrayBuffers, and the two mean gradients are combined
 * weighted by their scored tokens, always in the same order — so a run with
 * 2 threads is as deterministic as a run with 1 (but not bit-equal to it:
 * the sums are grouped differently). Distillation works the same way: the
 * teacher distributions live in a SharedArrayBuffer, each thread reads its
 * half in place.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { projectRoot } from '../../host/native.js';
import type { ModelConfig } from '../../src/model.js';
import type { Kernels } from './kernels.js';
import { paramLayout } from './params.js';
import { TransformerPass, type Distillation, type PassOptions } from './transformer.js';
import { WASM_KERNELS_NAME } from './wasm-kernels.js';

/** What a forward(+backward) over a batch looks like to the trainer. */
export interface GradientPass {
  run(params: Float32Array, inputs: Int32Array, targets: Int32Array, grads: Float32Array | null): number;
  close?(): void;
}

/** A GradientPass that can score the distillation loss instead (TransformerPass.setDistillation). */
export interface DistillablePass extends GradientPass {
  setDistillation(d: Distillation | null): void;
}

const IDLE = 0;
const WORK = 1;
const DONE = 2;
const FAILED = 3;

/** The control block: Int32 [state, withGrads, distill, -] then Float64 [loss, temperature, alpha]. */
const CONTROL_BYTES = 16 + 3 * 8;

export interface WorkerInit {
  config: ModelConfig;
  batch: number;
  seq: number;
  kernels: 'wasm' | 'js';
  microBatch: number | undefined;
  control: SharedArrayBuffer;
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  inputs: SharedArrayBuffer;
  targets: SharedArrayBuffer;
  /** the worker's half of the teacher distributions: [batch·seq][vocab] floats from this byte offset */
  teacher: { buffer: SharedArrayBuffer; byteOffset: number } | null;
}

export interface ParallelOptions extends PassOptions {
  /**
   * The teacher distributions every setDistillation will name, [batch·seq][vocab]
   * over a SharedArrayBuffer (sharedFloat32), so that the worker reads its half in place.
   */
  teacherProbs?: Float32Array;
}

/** A Float32Array over a new SharedArrayBuffer, for ParallelOptions.teacherProbs. */
export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(4 * length));
}

/** The trainer's pass: a TransformerPass on 1 thread, a DataParallelPass on 2. */
export function trainingPass(config: ModelConfig, batch: number, seq: number, threads: number, kernels: Kernels, options: ParallelOptions = {}): DistillablePass {
  if (threads <= 1) return new TransformerPass(config, batch, seq, kernels, options);
  const kind = kernels.name === WASM_KERNELS_NAME ? 'wasm' : 'js';
  return new DataParallelPass(config, batch, seq, kernels, kind, paramLayout(config).total, options);
}

export class DataParallelPass implements DistillablePass {
  private readonly local: TransformerPass;
  private readonly worker: Worker;
  private readonly ctrl: Int32Array;
  private readonly shared64: Float64Array; // [loss, temperature, alpha]
  private readonly params: Float32Array;
  private readonly grads: Float32Array;
  private readonly inputs: Int32Array;
  private readonly targets: Int32Array;
  private readonly half: number;
  private readonly teacherProbs: Float32Array | null;
  /** this thread's distillation, pointing at its half of teacherProbs */
  private readonly localDistill: Distillation | null;
  private error: Error | null = null;

  constructor(config: ModelConfig, batch: number, seq: number, kernels: Kernels, kernelKind: 'wasm' | 'js', paramCount: number, options: ParallelOptions = {}) {
    if (batch < 2) throw new RangeError('two threads need at least 2 windows per step');
    const mine = Math.ceil(batch / 2);
    const theirs = batch - mine;
    this.half = mine * seq;
    const { teacherProbs, ...passOptions } = options;
    // checked here: a worker that fails to start would leave run() waiting for it
    if (passOptions.microBatch !== undefined && theirs % passOptions.microBatch !== 0) throw new RangeError(`a micro-batch of ${passOptions.microBatch} windows does not divide the worker's ${theirs}`);
    this.local = new TransformerPass(config, mine, seq, kernels, passOptions);
    const V = config.vocabSize;
    if (teacherProbs && !(teacherProbs.buffer instanceof SharedArrayBuffer && teacherProbs.length === batch * seq * V)) {
      throw new RangeError(`the teacher distributions of a 2-thread pass are ${batch * seq * V} floats over a SharedArrayBuffer`);
    }
    this.teacherProbs = teacherProbs ?? null;
    this.localDistill = teacherProbs ? { teacherProbs: teacherProbs.subarray(0, this.half * V), temperature: 1, alpha: 0 } : null;
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const init: WorkerInit = {
      config, batch: theirs, seq, kernels: kernelKind, microBatch: passOptions.microBatch, control,
      params: new SharedArrayBuffer(4 * paramCount), grads: new SharedArrayBuffer(4 * paramCount),
      inputs: new SharedArrayBuffer(4 * theirs * seq), targets: new SharedArrayBuffer(4 * theirs * seq),
      teacher: teacherProbs ? { buffer: teacherProbs.buffer as SharedArrayBuffer, byteOffset: teacherProbs.byteOffset + 4 * this.half * V } : null,
    };
    this.ctrl = new Int32Array(control, 0, 4);
    this.shared64 = new Float64Array(control, 16, 3);
    this.params = new Float32Array(init.params);
    this.grads = new Float32Array(init.grads);
    this.inputs = new Int32Array(init.inputs);
    this.targets = new Int32Array(init.targets);
    this.worker = new Worker(path.join(projectRoot(), 'dist', 'converter', 'train', 'grad-worker.js'), { workerData: init });
    this.worker.on('error', (e) => (this.error = e));
    this.worker.unref();
  }

  /** As TransformerPass.setDistillation; d.teacherProbs must be the options' teacherProbs (whose contents may change between runs). */
  setDistillation(d: Distillation | null): void {
    if (d && (d.teacherProbs !== this.teacherProbs || !this.localDistill)) {
      throw new RangeError('a 2-thread pass distils only from the teacherProbs it was constructed with');
    }
    this.ctrl[2] = d ? 1 : 0;
    if (d && this.localDistill) {
      this.localDistill.temperature = this.shared64[1] = d.temperature;
      this.localDistill.alpha = this.shared64[2] = d.alpha;
    }
    this.local.setDistillation(d && this.localDistill);
  }

  run(params: Float32Array, inputs: Int32Array, targets: Int32Array, grads: Float32Array | null): number {
    const h = this.half;
    this.params.set(params);
    this.inputs.set(inputs.subarray(h));
    this.targets.set(targets.subarray(h));
    this.ctrl[1] = grads ? 1 : 0;
    Atomics.store(this.ctrl, 0, WORK);
    Atomics.notify(this.ctrl, 0);
    const mineLoss = this.local.run(params, inputs.subarray(0, h), targets.subarray(0, h), grads); // this half's gradient straight into grads
    while (Atomics.load(this.ctrl, 0) === WORK) Atomics.wait(this.ctrl, 0, WORK, 1000);
    const state = Atomics.load(this.ctrl, 0);
    Atomics.store(this.ctrl, 0, IDLE);
    if (state === FAILED || this.error) throw this.error ?? new Error('the training worker thread failed');
    let nMine = 0;
    let nTheirs = 0;
    for (let i = 0; i < targets.length; i++) if (targets[i] >= 0) i < h ? nMine++ : nTheirs++;
    const total = nMine + nTheirs;
    if (total === 0) {
      grads?.fill(0);
      return 0;
    }
    const a = nMine / total;
    const b = nTheirs / total;
    if (grads) for (let i = 0; i < grads.length; i++) grads[i] = a * grads[i] + b * this.grads[i];
    return a * mineLoss + b * this.shared64[0];
  }

  close(): void {
    void this.worker.terminate();
  }
}

export { IDLE, WORK, DONE, FAILED };
