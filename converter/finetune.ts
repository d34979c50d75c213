/**
 * LoRA fine-tuning of a frozen model on prompt/completion examples: each step
 * merges the adapters into a copy of the base weights (lora.ts), runs the
 * training engine's forward and backward on a batch of examples with only the
 * completion tokens scored (finetune-data.ts), projects the merged matrices'
 * gradient onto A and B, clips it and takes an AdamW step on the adapters
 * alone. The base weights are only ever read.
 */
import type { FloatModel } from '../src/model.js';
import { drawExamples, fillBatch, type Example } from './finetune-data.js';
import { adapterGradients, initAdapters, loraLayout, mergeAdapters, type LoraLayout, type LoraTarget } from './lora.js';
import type { Batch } from './train/data.js';
import type { Kernels } from './train/kernels.js';
import { adamwStep, clipGradients, learningRateAt, type AdamState, type OptimizerSettings } from './train/optimizer.js';
import { toFloatModel } from './train/params.js';
import { fineTuneOptimizer } from './train/session.js';
import { TransformerPass } from './train/transformer.js';
import { flatParams } from './prune-ffn.js';

export interface FinetuneSettings {
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  steps: number;
  /** examples per step */
  batch: number;
  learningRate: number;
  /** seeds A and every step's examples */
  seed: number;
}

export const DEFAULT_FINETUNE = { steps: 200, batch: 8, learningRate: 3e-3, seed: 1 };

export class LoraFinetune {
  readonly layout: LoraLayout;
  readonly adapters: Float32Array;
  /** positions per window: the longest example's inputs */
  readonly seq: number;
  step = 0;
  private readonly base: Float32Array;
  private readonly merged: Float32Array;
  private readonly grads: Float32Array;
  private readonly adapterGrads: Float32Array;
  private readonly adam: AdamState;
  private readonly noDecay: Uint8Array;
  private readonly opt: OptimizerSettings;
  private readonly pass: TransformerPass;
  private readonly batchBuf: Batch;

  constructor(
    readonly model: FloatModel,
    private readonly train: readonly Example[],
    seq: number,
    readonly settings: FinetuneSettings,
    kernels: Kernels,
  ) {
    const c = model.config;
    this.layout = loraLayout(c, settings.rank, settings.alpha, settings.targets);
    this.adapters = initAdapters(this.layout, settings.seed);
    this.seq = seq;
    this.base = flatParams(model);
    this.merged = new Float32Array(this.base.length);
    this.grads = new Float32Array(this.base.length);
    this.adapterGrads = new Float32Array(this.layout.total);
    this.adam = { m: new Float32Array(this.layout.total), v: new Float32Array(this.layout.total) };
    this.noDecay = new Uint8Array(this.layout.total);
    this.opt = fineTuneOptimizer(settings.learningRate, settings.steps);
    this.pass = new TransformerPass(c, settings.batch, seq, kernels);
    const n = settings.batch * seq;
    this.batchBuf = { inputs: new Int32Array(n), targets: new Int32Array(n) };
  }

  get done(): boolean {
    return this.step >= this.settings.steps;
  }

  /** The base weights as the flat buffer the trainer reads (never written). */
  get baseParams(): Float32Array {
    return this.base;
  }

  /** One AdamW step on the adapters; returns the batch's mean completion loss before it. */
  trainStep(): { loss: number; lr: number; gradNorm: number } {
    const s = this.settings;
    fillBatch(drawExamples(this.train, s.batch, s.seed, this.step), this.seq, this.batchBuf);
    mergeAdapters(this.merged, this.base, this.adapters, this.layout);
    const loss = this.pass.run(this.merged, this.batchBuf.inputs, this.batchBuf.targets, this.grads);
    adapterGradients(this.adapterGrads, this.grads, this.adapters, this.layout);
    const gradNorm = clipGradients(this.adapterGrads, this.opt.gradClip);
    const lr = learningRateAt(this.opt, this.step);
    adamwStep(this.adapters, this.adapterGrads, this.adam, this.noDecay, this.opt, this.step, lr);
    this.step++;
    return { loss, lr, gradNorm };
  }

  /** Mean loss per completion token of `examples`, with the adapters (or, `base`, without). */
  completionLoss(examples: readonly Example[], which: 'adapted' | 'base' = 'adapted'): number {
    const params = which === 'base' ? this.base : this.mergedParams();
    let total = 0;
    let count = 0;
    for (let i = 0; i < examples.length; i += this.settings.batch) {
      fillBatch(examples.slice(i, i + this.settings.batch), this.seq, this.batchBuf);
      let n = 0;
      for (const t of this.batchBuf.targets) if (t >= 0) n++;
      total += this.pass.run(params, this.batchBuf.inputs, this.batchBuf.targets, null) * n;
      count += n;
    }
    return count > 0 ? total / count : NaN;
  }

  /** The base with the current adapters merged, as the flat params.ts buffer (a new copy). */
  mergedParams(): Float32Array {
    const out = new Float32Array(this.base.length);
    mergeAdapters(out, this.base, this.adapters, this.layout);
    return out;
  }

  /** The merged model, what the blob is written from. */
  mergedModel(): FloatModel {
    return toFloatModel(this.model.config, this.mergedParams());
  }
}
