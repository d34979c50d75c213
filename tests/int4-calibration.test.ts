/**
 * The pieces of calibrated int4 on stories260K and real train-split text:
 * activation scaling (converter/awq.ts) must not change what the float model
 * computes, and refitting group scales must not increase a matrix's output
 * error on the Hessian it was fitted to.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { applyActivationScaling } from '../converter/awq.js';
import { calibrate } from '../converter/calibrate.js';
import { splitLines } from '../host/commands/eval.js';
import { readLlama2cCheckpoint, readTokenizerBin } from '../src/llama2c.js';
import { dequantizeMatrix4, quantizeMatrix4, quantizeMatrix4Calibrated } from '../src/quantize.js';
import { ReferenceModel } from '../src/reference.js';
import { tokenizerFromBin, Tokenizer } from '../src/tokenizer.js';
import { STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const model = readLlama2cCheckpoint(new Uint8Array(readFileSync(STORIES_MODEL)));
const tokenizer = tokenizerFromBin(readTokenizerBin(new Uint8Array(readFileSync(STORIES_TOKENIZER)), model.config.vocabSize));
const train = splitLines(readFileSync(STORIES_SAMPLES, 'utf8'), 'train');
const cal = calibrate(model, tokenizer, train, 1024);

function outputError(w: Float32Array, dq: Float32Array, rows: number, cols: number, h: Float64Array): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < cols; i++) {
      const di = w[r * cols + i] - dq[r * cols + i];
      for (let j = 0; j < cols; j++) total += di * h[i * cols + j] * (w[r * cols + j] - dq[r * cols + j]);
    }
  }
  return total;
}

describe('calibrated int4 on stories260K', () => {
  it('activation scaling leaves the float model computing the same logits', () => {
    const scaled = applyActivationScaling(model, cal.hessians, 64);
    expect([...scaled.alphas.values()].some((a) => a > 0)).toBe(true); // it did rescale something
    expect(scaled.model.weights.layers[0].attnNorm).not.toEqual(model.weights.layers[0].attnNorm);
    const ids = new Tokenizer(tokenizer).encode(Buffer.from(train[3], 'utf8')).slice(0, 40);
    const a = new ReferenceModel(model, { maxPositions: ids.length });
    const b = new ReferenceModel(scaled.model, { maxPositions: ids.length });
    let worst = 0;
    ids.forEach((id, pos) => {
      const la = a.forward(id, pos).slice();
      const lb = b.forward(id, pos);
      for (let i = 0; i < la.length; i++) worst = Math.max(worst, Math.abs(la[i] - lb[i]));
    });
    expect(worst).toBeLessThan(1e-3);
  });

  it('calibrated rounding moves each layer-0 matrix output less than rounding to nearest', () => {
    const c = model.config;
    const lw = model.weights.layers[0];
    for (const [name, rows, cols] of [['wq', c.dim, c.dim], ['w1', c.hiddenDim, c.dim], ['w2', c.dim, c.hiddenDim]] as const) {
      const h = cal.hessians.get(`layers.0.${name}`)!;
      const nearest = outputError(lw[name], dequantizeMatrix4(quantizeMatrix4(lw[name], rows, cols, 32)), rows, cols, h);
      const calibrated = outputError(lw[name], dequantizeMatrix4(quantizeMatrix4Calibrated(lw[name], rows, cols, 32, h)), rows, cols, h);
      expect(calibrated, name).toBeLessThan(0.8 * nearest);
    }
  });
});
