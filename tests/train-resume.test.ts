/**
 * Exact resume: a run stopped, saved to checkpoint bytes, read back and
 * continued draws the loss curve of the uninterrupted run bit for bit, and
 * ends with the same weights. Also: the trainer's forward pass is the
 * inference forward pass (src/reference.ts) that scores blobs.
 */
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../converter/train/checkpoint.js';
import { jsKernels } from '../converter/train/kernels.js';
import { toFloatModel } from '../converter/train/params.js';
import { checkpointBytes, openSession, runSession, splitDocuments } from '../converter/train/session.js';
import { softenInPlace, TransformerPass } from '../converter/train/transformer.js';
import { loadWasmKernels } from '../converter/train/wasm-kernels.js';
import { ReferenceModel } from '../src/reference.js';
import { sampleText, storiesTokenizer, tinySettings, tinyShape } from './train-helpers.js';

const tokenizer = storiesTokenizer();
const { train, test } = splitDocuments(sampleText(120));

function session(steps: number, resume?: ReturnType<typeof decodeCheckpoint>) {
  const config = tinyShape(tokenizer.vocabSize, false);
  return openSession({ config, settings: tinySettings(steps), tokenizer, trainDocs: train, testDocs: test, kernels: loadWasmKernels(), resume });
}

describe('exact resume', () => {
  it('continues a stopped run to the same loss curve, validation losses and weights, bit for bit', async () => {
    const whole = session(12);
    await runSession(whole);
    const losses = whole.trainer.state.log.map((e) => e.loss);
    expect(losses).toHaveLength(12);
    expect(losses[11]).toBeLessThan(losses[0]); // it learned something

    const first = session(12);
    let n = 0;
    const r = await runSession(first, { shouldStop: () => ++n >= 7 });
    expect(r.stopped).toBe(true);
    expect(first.trainer.state.step).toBe(7);
    const ckpt = decodeCheckpoint(checkpointBytes(first));
    const second = session(12, ckpt);
    await runSession(second);

    const resumed = second.trainer.state.log;
    expect(resumed.map((e) => e.loss)).toEqual(losses); // toEqual on numbers: exact
    expect(resumed.map((e) => e.valLoss)).toEqual(whole.trainer.state.log.map((e) => e.valLoss));
    expect(Buffer.from(second.trainer.state.params.buffer).equals(Buffer.from(whole.trainer.state.params.buffer))).toBe(true);
    expect(second.trainer.state.best?.step).toBe(whole.trainer.state.best?.step);
  });
});

describe('trainer forward = inference forward', () => {
  it('gives the logits of src/reference.ts at every position of a window', async () => {
    const s = session(6);
    await runSession(s);
    const c = s.trainer.config;
    const model = toFloatModel(c, s.trainer.state.params);
    const ids = Int32Array.from({ length: 32 }, (_, i) => (i * 37 + 1) % c.vocabSize);
    for (const kernels of [jsKernels, loadWasmKernels()]) {
      const pass = new TransformerPass(c, 1, 32, kernels);
      pass.run(s.trainer.state.params, ids, new Int32Array(32).fill(-1), null);
      const logits = pass.logitsOfLastRun;
      const ref = new ReferenceModel(model);
      for (let p = 0; p < 32; p++) {
        const want = ref.forward(ids[p], p);
        for (let v = 0; v < c.vocabSize; v++) expect(Math.abs(logits[p * c.vocabSize + v] - want[v])).toBeLessThan(1e-4);
      }
    }
  });
});

describe('two threads', () => {
  it('give the loss and gradients of one thread (to rounding), the same on every run', async () => {
    const { DataParallelPass } = await import('../converter/train/parallel.js');
    const config = tinyShape(tokenizer.vocabSize, false);
    const flat = session(1).trainer.state.params; // the initial weights
    const inputs = Int32Array.from({ length: 4 * 32 }, (_, i) => (i * 31 + 7) % config.vocabSize);
    const targets = Int32Array.from({ length: 4 * 32 }, (_, i) => (i % 5 === 0 ? -1 : (i * 17 + 3) % config.vocabSize));
    const one = new TransformerPass(config, 4, 32, loadWasmKernels());
    const g1 = new Float32Array(flat.length);
    const l1 = one.run(flat, inputs, targets, g1);
    const two = new DataParallelPass(config, 4, 32, loadWasmKernels(), 'wasm', flat.length);
    const g2 = new Float32Array(flat.length);
    const g3 = new Float32Array(flat.length);
    try {
      const l2 = two.run(flat, inputs, targets, g2);
      const l3 = two.run(flat, inputs, targets, g3);
      expect(l2).toBeCloseTo(l1, 5);
      for (let i = 0; i < g1.length; i++) expect(g2[i]).toBeCloseTo(g1[i], 5);
      expect(l3).toBe(l2);
      expect(Buffer.from(g3.buffer).equals(Buffer.from(g2.buffer))).toBe(true);
      expect(two.run(flat, inputs, targets, null)).toBe(l2); // validation (no gradients) too
    } finally {
      two.close();
    }
  });

  it('distil as one thread does (to rounding), the same on every run, each thread reading its half of the shared teacher distributions', async () => {
    const { DataParallelPass, sharedFloat32 } = await import('../converter/train/parallel.js');
    const config = tinyShape(tokenizer.vocabSize, false);
    const V = config.vocabSize;
    const flat = session(1).trainer.state.params;
    const n = 4 * 32;
    const inputs = Int32Array.from({ length: n }, (_, i) => (i * 29 + 5) % V);
    const targets = Int32Array.from({ length: n }, (_, i) => (i % 7 === 0 || i > 100 ? -1 : (i * 13 + 1) % V)); // the worker's half scored less
    const teacherProbs = sharedFloat32(n * V);
    for (let i = 0; i < teacherProbs.length; i++) teacherProbs[i] = ((i * 2654435761) % 1000) / 100;
    softenInPlace(teacherProbs, n, V, 1);
    const d = { teacherProbs, temperature: 2, alpha: 0.6 };
    const one = new TransformerPass(config, 4, 32, loadWasmKernels());
    one.setDistillation(d);
    const g1 = new Float32Array(flat.length);
    const l1 = one.run(flat, inputs, targets, g1);
    one.setDistillation(null);
    const plain = one.run(flat, inputs, targets, null);
    expect(Math.abs(plain - l1)).toBeGreaterThan(0.1); // the distillation loss is another loss

    const two = new DataParallelPass(config, 4, 32, loadWasmKernels(), 'wasm', flat.length, { teacherProbs });
    const g2 = new Float32Array(flat.length);
    const g3 = new Float32Array(flat.length);
    try {
      two.setDistillation(d);
      const l2 = two.run(flat, inputs, targets, g2);
      const l3 = two.run(flat, inputs, targets, g3);
      expect(Math.abs(l2 - l1) / l1).toBeLessThan(1e-5);
      let scale = 0;
      let worst = 0;
      for (let i = 0; i < g1.length; i++) {
        scale = Math.max(scale, Math.abs(g1[i]));
        worst = Math.max(worst, Math.abs(g2[i] - g1[i]));
      }
      expect(scale).toBeGreaterThan(1e-3);
      expect(worst / scale).toBeLessThan(1e-5);
      expect(l3).toBe(l2);
      expect(Buffer.from(g3.buffer).equals(Buffer.from(g2.buffer))).toBe(true);
      two.setDistillation(null); // back to cross-entropy on both threads
      expect(Math.abs(two.run(flat, inputs, targets, null) - plain) / plain).toBeLessThan(1e-5);
      expect(() => two.setDistillation({ ...d, teacherProbs: teacherProbs.slice() })).toThrow(/constructed with/);
    } finally {
      two.close();
    }
  });

  it('refuse a micro-batch that does not divide the worker\'s windows before starting it', async () => {
    const { DataParallelPass } = await import('../converter/train/parallel.js');
    const config = tinyShape(tokenizer.vocabSize, false);
    // 5 windows: 3 here (divisible by 3), 2 on the worker (not)
    expect(() => new DataParallelPass(config, 5, 32, loadWasmKernels(), 'wasm', 1, { microBatch: 3 })).toThrow(/the worker's 2/);
  });
});
