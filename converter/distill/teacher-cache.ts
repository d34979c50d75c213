/**
 * The teacher's side of transformer distillation: the packed training stream
 * cut into fixed windows, the teacher run once over every window, and each
 * position's softened distribution softmax(z / T) kept as its k most likely
 * tokens (ids and probabilities) plus the mass of the rest (the tail).
 *
 * Expanding a cached row back to a full distribution puts the top-k
 * probabilities where they were and spreads the tail mass evenly over the
 * other V - k tokens, so every row still sums to 1 and the KL term still has
 * a target for every student logit (renormalising the top k instead would
 * tell the student to drive every other token to zero probability). With
 * k = V the expansion is the teacher's distribution exactly, value for value.
 *
 * Why a cache: the teacher forward is a third of a training step's work
 * when teacher and student are the same size, and it is the same every time
 * a window comes round again; the full distributions of stories260K's train
 * split take 338,432 positions × 512 × 4 bytes (693 MB), the top-32 ones
 * 8 % of that (docs/distill-prune.md has the measured figures).
 */
import type { FloatModel } from '../../src/model.js';
import { seededRandom } from '../../src/random.js';
import { stepSeed, type Batch } from '../train/data.js';
import type { Kernels } from '../train/kernels.js';
import { softenInPlace, TransformerPass } from '../train/transformer.js';
import { flatParams } from '../prune-ffn.js';

/** A token stream cut into consecutive windows of `seq` inputs and their next tokens (the remainder shorter than a window is left out). */
export interface Windows {
  count: number;
  seq: number;
  inputs: Int32Array; // [count][seq]
  targets: Int32Array; // [count][seq]
}

export function cutWindows(stream: Int32Array, seq: number): Windows {
  const count = Math.max(0, Math.floor((stream.length - 1) / seq));
  const inputs = new Int32Array(count * seq);
  const targets = new Int32Array(count * seq);
  for (let w = 0; w < count; w++) {
    inputs.set(stream.subarray(w * seq, (w + 1) * seq), w * seq);
    targets.set(stream.subarray(w * seq + 1, (w + 1) * seq + 1), w * seq);
  }
  return { count, seq, inputs, targets };
}

/** The windows of one step: `batch` window indices drawn from the project's PRNG seeded by (seed, step). */
export function windowsOfStep(windows: number, batch: number, seed: number, step: number, out: Int32Array): void {
  const rand = seededRandom(stepSeed(seed, step));
  for (let b = 0; b < batch; b++) out[b] = Math.floor(rand() * windows);
}

/** Copies the chosen windows into a batch. */
export function fillWindows(w: Windows, chosen: Int32Array, into: Batch): void {
  const T = w.seq;
  chosen.forEach((c, b) => {
    into.inputs.set(w.inputs.subarray(c * T, (c + 1) * T), b * T);
    into.targets.set(w.targets.subarray(c * T, (c + 1) * T), b * T);
  });
}

/** Where a step's teacher distributions come from. */
export interface TeacherSource {
  /** Writes softmax(teacher logits / T) [chosen.length · seq][V] for the chosen windows (whose tokens are `inputs`). */
  fill(chosen: Int32Array, inputs: Int32Array, out: Float32Array): void;
  /** Bytes it holds for the teacher's distributions. */
  readonly bytes: number;
  /** Seconds spent running the teacher so far. */
  readonly teacherSeconds: number;
}

/** The teacher's top-k of every position of every window, computed once. */
export class TopKCache implements TeacherSource {
  readonly k: number;
  readonly vocab: number;
  readonly positions: number;
  readonly ids: Uint16Array | Int32Array; // [positions][k]
  readonly probs: Float32Array; // [positions][k]
  readonly tail: Float32Array; // [positions] mass outside the top k
  readonly teacherSeconds: number;
  private readonly seq: number;

  constructor(teacher: FloatModel, w: Windows, k: number, temperature: number, kernels: Kernels, batch = 8, onProgress?: (done: number, total: number) => void) {
    const V = teacher.config.vocabSize;
    this.k = Math.min(k, V);
    this.vocab = V;
    this.seq = w.seq;
    this.positions = w.count * w.seq;
    this.ids = V <= 65536 ? new Uint16Array(this.positions * this.k) : new Int32Array(this.positions * this.k);
    this.probs = new Float32Array(this.positions * this.k);
    this.tail = new Float32Array(this.positions);
    const t0 = performance.now();
    const T = w.seq;
    const B = Math.max(1, Math.min(batch, w.count));
    const pass = new TransformerPass(teacher.config, B, T, kernels, { microBatch: B }); // the whole batch's logits at once
    const params = flatParams(teacher);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T).fill(-1);
    const bestIds = new Int32Array(this.k);
    const bestVals = new Float32Array(this.k);
    for (let w0 = 0; w0 < w.count; w0 += B) {
      const n = Math.min(B, w.count - w0);
      inputs.set(w.inputs.subarray(w0 * T, (w0 + n) * T));
      pass.run(params, inputs, targets, null);
      const probs = pass.logitsOfLastRun;
      softenInPlace(probs, n * T, V, temperature);
      for (let r = 0; r < n * T; r++) this.keepTopK(probs, r * V, (w0 * T + r), bestIds, bestVals);
      onProgress?.(w0 + n, w.count);
    }
    this.teacherSeconds = (performance.now() - t0) / 1000;
  }

  /** Selects the row's k largest probabilities (insertion into a sorted list: most tokens fail the first comparison) and its tail mass. */
  private keepTopK(p: Float32Array, o: number, pos: number, ids: Int32Array, vals: Float32Array): void {
    const k = this.k;
    let n = 0;
    for (let j = 0; j < this.vocab; j++) {
      const v = p[o + j];
      if (n === k && v <= vals[k - 1]) continue;
      let i = n < k ? n++ : k - 1;
      while (i > 0 && vals[i - 1] < v) {
        vals[i] = vals[i - 1];
        ids[i] = ids[i - 1];
        i--;
      }
      vals[i] = v;
      ids[i] = j;
    }
    let kept = 0;
    for (let i = 0; i < k; i++) {
      this.ids[pos * k + i] = ids[i];
      this.probs[pos * k + i] = vals[i];
      kept += vals[i];
    }
    this.tail[pos] = Math.max(0, 1 - kept);
  }

  get bytes(): number {
    return this.ids.byteLength + this.probs.byteLength + this.tail.byteLength;
  }

  fill(chosen: Int32Array, _inputs: Int32Array, out: Float32Array): void {
    const V = this.vocab;
    const k = this.k;
    const T = this.seq;
    const rest = V - k;
    chosen.forEach((c, b) => {
      for (let t = 0; t < T; t++) {
        const pos = c * T + t;
        const o = (b * T + t) * V;
        out.fill(rest > 0 ? this.tail[pos] / rest : 0, o, o + V);
        for (let i = 0; i < k; i++) out[o + this.ids[pos * k + i]] = this.probs[pos * k + i];
      }
    });
  }
}

/** The full distribution, the teacher run again on every step's batch (nothing cached: the reference the cache is measured against). */
export class LiveTeacher implements TeacherSource {
  readonly bytes = 0;
  private seconds = 0;
  private readonly pass: TransformerPass;
  private readonly params: Float32Array;
  private readonly targets: Int32Array;

  constructor(private readonly teacher: FloatModel, batch: number, seq: number, private readonly temperature: number, kernels: Kernels) {
    this.pass = new TransformerPass(teacher.config, batch, seq, kernels, { microBatch: batch }); // the whole batch's logits at once
    this.params = flatParams(teacher);
    this.targets = new Int32Array(batch * seq).fill(-1);
  }

  get teacherSeconds(): number {
    return this.seconds;
  }

  fill(chosen: Int32Array, inputs: Int32Array, out: Float32Array): void {
    const t0 = performance.now();
    const n = chosen.length * this.pass.seq;
    this.pass.run(this.params, inputs, this.targets, null);
    out.set(this.pass.logitsOfLastRun);
    softenInPlace(out, n, this.teacher.config.vocabSize, this.temperature);
    this.seconds += (performance.now() - t0) / 1000;
  }
}

/** Bytes the full softened distributions of `positions` positions would take (float32). */
export function fullDistributionBytes(positions: number, vocab: number): number {
  return positions * vocab * 4;
}
