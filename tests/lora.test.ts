/**
 * LoRA (converter/lora.ts, converter/finetune.ts): the adapters' gradients
 * against central differences on every projection kind, the base weights
 * never written, the merged model computing what the unmerged adapters
 * compute (an independent float64 forward with W x + (alpha/r) B (A x) in
 * every projection, against src/reference.ts on the merged weights), the
 * pairs' prompt masking, and a short fine-tune of stories260K lowering the
 * held-out completion loss.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../converter/convert.js';
import { encodePairs, fillBatch, parsePairs, type Example } from '../converter/finetune-data.js';
import { LoraFinetune } from '../converter/finetune.js';
import { adapterGradients, LORA_TARGETS, loraLayout, mergeAdapters, type LoraLayout } from '../converter/lora.js';
import { flatParams } from '../converter/prune-ffn.js';
import { jsKernels } from '../converter/train/kernels.js';
import { normalSampler, paramLayout, toFloatModel, weightViews } from '../converter/train/params.js';
import { TransformerPass } from '../converter/train/transformer.js';
import { loadWasmKernels } from '../converter/train/wasm-kernels.js';
import { headSize, kvDim, type FloatModel, type ModelConfig } from '../src/model.js';
import { seededRandom } from '../src/random.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer } from '../src/tokenizer.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';
import { randomParams } from './random-params.js';

const tiny: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 11, seqLen: 8, sharedClassifier: false, ropeTheta: 10000, normEps: 1e-5 };

/** A and B both random (B = 0 would make dA zero and the check of dA trivial). */
function randomAdapters(layout: LoraLayout, seed: number, std: number): Float32Array {
  const normal = normalSampler(seed);
  return Float32Array.from({ length: layout.total }, () => std * normal());
}

function randomExamples(n: number, vocab: number, seed: number): Example[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const len = 5 + Math.floor(r() * 4); // 5..8 tokens, inputs up to 7 of the 8 positions
    return { tokens: Int32Array.from({ length: len }, () => Math.floor(r() * vocab)), promptTokens: 2 + Math.floor(r() * 2) };
  });
}

const wasmKernels = loadWasmKernels();

for (const kernels of [jsKernels, wasmKernels]) {
  describe(`LoRA gradients (${kernels.name}): rank 2, alpha 3, all seven projections, GQA`, () => {
    const c = tiny;
    const layout = loraLayout(c, 2, 3, [...LORA_TARGETS]);
    const base = randomParams(c, 11);
    const adapters = randomAdapters(layout, 12, 0.25);
    const B = 3;
    const T = 7;
    const pass = new TransformerPass(c, B, T, kernels);
    const batch = { inputs: new Int32Array(B * T), targets: new Int32Array(B * T) };
    fillBatch(randomExamples(B, c.vocabSize, 13), T, batch);
    const merged = new Float32Array(base.length);
    const loss = (ad: Float32Array) => {
      mergeAdapters(merged, base, ad, layout);
      return pass.run(merged, batch.inputs, batch.targets, null);
    };
    const grads = new Float32Array(base.length);
    mergeAdapters(merged, base, adapters, layout);
    pass.run(merged, batch.inputs, batch.targets, grads);
    const dAd = new Float32Array(layout.total);
    adapterGradients(dAd, grads, adapters, layout);

    for (const key of LORA_TARGETS) {
      for (const which of ['A', 'B'] as const) {
        it(`${which} of ${key} matches central differences (both layers)`, () => {
          const pick = seededRandom(key.charCodeAt(1) * 7 + (which === 'A' ? 1 : 2));
          let checked = 0;
          for (const m of layout.matrices.filter((x) => x.key === key)) {
            const [start, size] = which === 'A' ? [m.aOffset, layout.rank * m.cols] : [m.bOffset, m.rows * layout.rank];
            for (let trial = 0; trial < 4; trial++) {
              const idx = start + Math.floor(pick() * size);
              const orig = adapters[idx];
              const h = 5e-3;
              adapters[idx] = orig + h;
              const up = loss(adapters);
              adapters[idx] = orig - h;
              const down = loss(adapters);
              adapters[idx] = orig;
              const numeric = (up - down) / (2 * h);
              expect(Math.abs(numeric - dAd[idx]), `layer ${m.layer} ${key}.${which}: numeric ${numeric}, analytic ${dAd[idx]}`).toBeLessThanOrEqual(2e-4 + 2e-2 * Math.abs(numeric));
              if (Math.abs(dAd[idx]) > 1e-4) checked++;
            }
          }
          expect(checked).toBeGreaterThanOrEqual(5); // of 8: an all-zero gradient would pass trivially
        });
      }
    }
  });
}

/**
 * Logits of every position of `tokens` in float64, with each adapted
 * projection computed unmerged as W x + scale · B (A x): the adapter forward
 * the merged weights must reproduce (run.c's semantics, as src/reference.ts).
 */
function adapterForwardLogits(model: FloatModel, layout: LoraLayout, ad: Float32Array, tokens: number[]): Float64Array[] {
  const c = model.config;
  const w = model.weights;
  const hs = headSize(c);
  const kv = kvDim(c);
  const lin = (W: Float32Array, layer: number, key: string, x: Float64Array, out: number, inp: number): Float64Array => {
    const y = new Float64Array(out);
    for (let i = 0; i < out; i++) {
      let s = 0;
      for (let j = 0; j < inp; j++) s += W[i * inp + j] * x[j];
      y[i] = s;
    }
    const m = layout.matrices.find((mm) => mm.layer === layer && mm.key === key);
    if (m) {
      const ax = new Float64Array(layout.rank);
      for (let k = 0; k < layout.rank; k++) for (let j = 0; j < inp; j++) ax[k] += ad[m.aOffset + k * inp + j] * x[j];
      for (let i = 0; i < out; i++) for (let k = 0; k < layout.rank; k++) y[i] += layout.scale * ad[m.bOffset + i * layout.rank + k] * ax[k];
    }
    return y;
  };
  const norm = (x: Float64Array, g: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + c.normEps);
    return Float64Array.from(x, (v, j) => g[j] * v * inv);
  };
  const rope = (v: Float64Array, pos: number) => {
    for (let i = 0; i < v.length; i += 2) {
      const freq = 1 / Math.pow(c.ropeTheta, (i % hs) / hs);
      const a = pos * freq;
      const [x0, x1] = [v[i], v[i + 1]];
      v[i] = x0 * Math.cos(a) - x1 * Math.sin(a);
      v[i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  };
  const keys: Float64Array[][] = Array.from({ length: c.nLayers }, () => []);
  const values: Float64Array[][] = Array.from({ length: c.nLayers }, () => []);
  const out: Float64Array[] = [];
  tokens.forEach((tok, pos) => {
    let x = Float64Array.from(w.tokenEmbedding.subarray(tok * c.dim, (tok + 1) * c.dim));
    w.layers.forEach((lw, l) => {
      const xn = norm(x, lw.attnNorm);
      const q = lin(lw.wq, l, 'wq', xn, c.dim, c.dim);
      const k = lin(lw.wk, l, 'wk', xn, kv, c.dim);
      keys[l].push(k);
      values[l].push(lin(lw.wv, l, 'wv', xn, kv, c.dim));
      rope(q, pos);
      rope(k, pos);
      const att = new Float64Array(c.dim);
      for (let h = 0; h < c.nHeads; h++) {
        const kh = Math.floor(h / (c.nHeads / c.nKvHeads)) * hs;
        const sc = keys[l].map((kk) => {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i] * kk[kh + i];
          return s / Math.sqrt(hs);
        });
        const max = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((p, s) => {
          for (let i = 0; i < hs; i++) att[h * hs + i] += (p / z) * values[l][s][kh + i];
        });
      }
      const o = lin(lw.wo, l, 'wo', att, c.dim, c.dim);
      x = Float64Array.from(x, (v, j) => v + o[j]);
      const xn2 = norm(x, lw.ffnNorm);
      const h1 = lin(lw.w1, l, 'w1', xn2, c.hiddenDim, c.dim);
      const h3 = lin(lw.w3, l, 'w3', xn2, c.hiddenDim, c.dim);
      const g = Float64Array.from(h1, (v, i) => (v / (1 + Math.exp(-v))) * h3[i]);
      const down = lin(lw.w2, l, 'w2', g, c.dim, c.hiddenDim);
      x = Float64Array.from(x, (v, j) => v + down[j]);
    });
    const xf = norm(x, w.finalNorm);
    out.push(lin(w.classifier ?? w.tokenEmbedding, -1, '', xf, c.vocabSize, c.dim));
  });
  return out;
}

describe('LoRA on stories260K', () => {
  const tokenizer = () => loadCheckpoint(STORIES_MODEL, STORIES_TOKENIZER);

  it('merged weights compute what the unmerged adapters compute (float rounding), on wq..w3 with trained-size adapters', async () => {
    const { model } = await tokenizer();
    const layout = loraLayout(model.config, 4, 8, [...LORA_TARGETS]);
    const ad = randomAdapters(layout, 21, 0.05);
    const merged = toFloatModel(model.config, (() => {
      const m = new Float32Array(paramLayout(model.config).total);
      mergeAdapters(m, flatParams(model), ad, layout);
      return m;
    })());
    const tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 298, 315, 421];
    const want = adapterForwardLogits(model, layout, ad, tokens);
    const ref = new ReferenceModel(merged);
    const base = new ReferenceModel(model);
    let maxDiff = 0;
    let maxChange = 0;
    tokens.forEach((t, pos) => {
      const got = ref.forward(t, pos);
      const b = base.forward(t, pos);
      for (let i = 0; i < got.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[pos][i]));
        maxChange = Math.max(maxChange, Math.abs(b[i] - want[pos][i]));
      }
    });
    expect(maxChange).toBeGreaterThan(0.1); // the adapters change the model...
    expect(maxDiff).toBeLessThan(1e-3); // ...and the merge changes it the same way (logits of size ~10)
  });

  it('a short fine-tune leaves the base weights bit-identical, changes only the targeted matrices, and lowers the held-out completion loss', async () => {
    const { model, tokenizer: tok } = await tokenizer();
    const dir = tempDir('lora-pairs');
    execFileSync('node', [path.join(PROJECT_ROOT, 'scripts/qa-pairs.mjs'), STORIES_SAMPLES, dir]);
    const train = encodePairs(parsePairs(readFileSync(path.join(dir, 'qa-train.jsonl'), 'utf8'), 'train').slice(0, 400), tok, model.config.seqLen, 'train');
    const held = encodePairs(parsePairs(readFileSync(path.join(dir, 'qa-test.jsonl'), 'utf8'), 'test').slice(0, 24), tok, model.config.seqLen, 'test');
    const seq = Math.max(...[...train, ...held].map((e) => e.tokens.length - 1));
    const before = flatParams(model);
    const ft = new LoraFinetune(model, train, seq, { rank: 2, alpha: 2, targets: ['wq', 'wv', 'w2'], steps: 24, batch: 4, learningRate: 3e-3, seed: 3 }, wasmKernels);
    expect(ft.mergedParams()).toEqual(before); // B = 0: step 0 is the base, bit for bit
    const lossBefore = ft.completionLoss(held, 'base');
    while (!ft.done) ft.trainStep();
    const lossAfter = ft.completionLoss(held, 'adapted');
    console.log(`LoRA rank 2, 24 steps: held-out completion loss ${lossBefore.toFixed(3)} -> ${lossAfter.toFixed(3)}`);
    expect(lossAfter).toBeLessThan(0.6 * lossBefore);
    // frozen: neither the model's arrays nor the trainer's copy of them moved
    expect(Buffer.from(flatParams(model).buffer).equals(Buffer.from(before.buffer))).toBe(true);
    expect(Buffer.from(ft.baseParams.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    const merged = weightViews(model.config, ft.mergedParams());
    const orig = weightViews(model.config, before);
    expect(Buffer.from(merged.tokenEmbedding.buffer, merged.tokenEmbedding.byteOffset, merged.tokenEmbedding.byteLength)
      .equals(Buffer.from(orig.tokenEmbedding.buffer, orig.tokenEmbedding.byteOffset, orig.tokenEmbedding.byteLength))).toBe(true);
    merged.layers.forEach((lw, l) => {
      for (const key of ['attnNorm', 'ffnNorm', 'wk', 'wo', 'w1', 'w3'] as const) expect(lw[key], `layer ${l} ${key}`).toEqual(orig.layers[l][key]);
      for (const key of ['wq', 'wv', 'w2'] as const) expect(lw[key], `layer ${l} ${key}`).not.toEqual(orig.layers[l][key]);
    });
    expect(merged.finalNorm).toEqual(orig.finalNorm);
  }, 60_000);

  it('scores only the completion and the end marker (BOS): the prompt is masked', async () => {
    const { tokenizer: tok } = await tokenizer();
    const [ex] = encodePairs([{ prompt: 'Once upon a time, there was a cat. Q: Who? A:', completion: ' a cat', line: 0 }], tok, 512, 'pairs');
    const t = new Tokenizer(tok);
    const prompt = t.encode('Once upon a time, there was a cat. Q: Who? A:');
    expect(Array.from(ex.tokens.subarray(0, ex.promptTokens))).toEqual(prompt); // the prompt as `generate` encodes it
    expect(t.decodeText(ex.tokens.subarray(ex.promptTokens, ex.tokens.length - 1), ex.tokens[ex.promptTokens - 1])).toBe(' a cat'); // no space added or lost
    const seq = ex.tokens.length + 3;
    const batch = { inputs: new Int32Array(seq), targets: new Int32Array(seq) };
    fillBatch([ex], seq, batch);
    const scored = Array.from(batch.targets).filter((x) => x >= 0);
    const completion = Array.from(ex.tokens.subarray(ex.promptTokens));
    expect(scored).toEqual(completion);
    expect(completion[completion.length - 1]).toBe(tok.bosId);
    expect(completion.length).toBeGreaterThanOrEqual(3); // " a cat" + BOS
  });
});
