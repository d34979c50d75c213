/**
 * AdamW (decoupled weight decay, Loshchilov & Hutter) over the flat parameter
 * buffer, with global-norm gradient clipping and a learning rate that warms
 * up linearly and then follows a cosine down to a floor, as llama2.c's
 * train.py schedules it.
 */

export interface OptimizerSettings {
  learningRate: number;
  /** Learning rate at the end of the cosine. */
  minLearningRate: number;
  warmupSteps: number;
  /** Steps of the whole run (the cosine reaches its floor here). */
  totalSteps: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the gradient's global L2 norm to this (0: no clipping). */
  gradClip: number;
}

/** The learning rate of step `step` (0-based). */
export function learningRateAt(s: OptimizerSettings, step: number): number {
  if (step < s.warmupSteps) return (s.learningRate * (step + 1)) / s.warmupSteps;
  if (step >= s.totalSteps) return s.minLearningRate;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const ratio = (step - s.warmupSteps) / span;
  return s.minLearningRate + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (s.learningRate - s.minLearningRate);
}

export interface AdamState {
  m: Float32Array;
  v: Float32Array;
}

/** Scales `grads` so that their L2 norm is at most `clip`; returns the norm before clipping. */
export function clipGradients(grads: Float32Array, clip: number): number {
  let ss = 0;
  for (let i = 0; i < grads.length; i++) ss += grads[i] * grads[i];
  const norm = Math.sqrt(ss);
  if (clip > 0 && norm > clip) {
    const k = clip / norm;
    for (let i = 0; i < grads.length; i++) grads[i] *= k;
  }
  return norm;
}

/**
 * One AdamW update of `params` at step `step` (0-based; the bias correction
 * uses step + 1). Weight decay applies where decay[i] is 1 (matrices).
 */
export function adamwStep(params: Float32Array, grads: Float32Array, state: AdamState, decay: Uint8Array, s: OptimizerSettings, step: number, lr: number): void {
  const { m, v } = state;
  const b1 = s.beta1;
  const b2 = s.beta2;
  const c1 = 1 - Math.pow(b1, step + 1);
  const c2 = 1 - Math.pow(b2, step + 1);
  const wd = lr * s.weightDecay;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i];
    const mi = b1 * m[i] + (1 - b1) * g;
    const vi = b2 * v[i] + (1 - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let p = params[i];
    if (decay[i]) p -= wd * p;
    params[i] = p - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + s.eps);
  }
}
