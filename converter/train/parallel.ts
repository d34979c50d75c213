/**
 * Data parallelism over the machine's second core: a step's windows are
 * split in two halves, this thread runs one, a worker thread (grad-worker.ts)
 * the other, over SharedArrayBuffers, and the two mean gradients are combined
 * weighted by their scored tokens, always in the same order — so a run with
 * 2 threads is as deterministic as a run with 1 (but not bit-equal to it:
 * the sums are grouped differently).
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { projectRoot } from '../../host/native.js';
import type { ModelConfig } from '../../src/model.js';
import type { Kernels } from './kernels.js';
import { TransformerPass } from './transformer.js';

/** What a forward(+backward) over a batch looks like to the trainer. */
export interface GradientPass {
  run(params: Float32Array, inputs: Int32Array, targets: Int32Array, grads: Float32Array | null): number;
  close?(): void;
}

const IDLE = 0;
const WORK = 1;
const DONE = 2;
const FAILED = 3;

export interface WorkerInit {
  config: ModelConfig;
  batch: number;
  seq: number;
  kernels: 'wasm' | 'js';
  control: SharedArrayBuffer; // Int32 [state, withGrads] + Float64 loss at byte 8
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  inputs: SharedArrayBuffer;
  targets: SharedArrayBuffer;
}

export class DataParallelPass implements GradientPass {
  private readonly local: TransformerPass;
  private readonly worker: Worker;
  private readonly ctrl: Int32Array;
  private readonly loss: Float64Array;
  private readonly params: Float32Array;
  private readonly grads: Float32Array;
  private readonly inputs: Int32Array;
  private readonly targets: Int32Array;
  private readonly localGrads: Float32Array;
  private readonly half: number;
  private error: Error | null = null;

  constructor(config: ModelConfig, batch: number, seq: number, kernels: Kernels, kernelKind: 'wasm' | 'js', paramCount: number) {
    if (batch < 2) throw new RangeError('two threads need at least 2 windows per step');
    const mine = Math.ceil(batch / 2);
    const theirs = batch - mine;
    this.half = mine * seq;
    this.local = new TransformerPass(config, mine, seq, kernels);
    const control = new SharedArrayBuffer(16);
    const init: WorkerInit = {
      config, batch: theirs, seq, kernels: kernelKind, control,
      params: new SharedArrayBuffer(4 * paramCount), grads: new SharedArrayBuffer(4 * paramCount),
      inputs: new SharedArrayBuffer(4 * theirs * seq), targets: new SharedArrayBuffer(4 * theirs * seq),
    };
    this.ctrl = new Int32Array(control, 0, 2);
    this.loss = new Float64Array(control, 8, 1);
    this.params = new Float32Array(init.params);
    this.grads = new Float32Array(init.grads);
    this.inputs = new Int32Array(init.inputs);
    this.targets = new Int32Array(init.targets);
    this.localGrads = new Float32Array(paramCount);
    this.worker = new Worker(path.join(projectRoot(), 'dist', 'converter', 'train', 'grad-worker.js'), { workerData: init });
    this.worker.on('error', (e) => (this.error = e));
    this.worker.unref();
  }

  run(params: Float32Array, inputs: Int32Array, targets: Int32Array, grads: Float32Array | null): number {
    const h = this.half;
    this.params.set(params);
    this.inputs.set(inputs.subarray(h));
    this.targets.set(targets.subarray(h));
    this.ctrl[1] = grads ? 1 : 0;
    Atomics.store(this.ctrl, 0, WORK);
    Atomics.notify(this.ctrl, 0);
    const mineLoss = this.local.run(params, inputs.subarray(0, h), targets.subarray(0, h), grads ? this.localGrads : null);
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
    if (grads) for (let i = 0; i < grads.length; i++) grads[i] = a * this.localGrads[i] + b * this.grads[i];
    return a * mineLoss + b * this.loss[0];
  }

  close(): void {
    void this.worker.terminate();
  }
}

export { IDLE, WORK, DONE, FAILED };
