import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint, readTokenizerBin, type Llama2cCheckpoint } from '../src/llama2c.js';
import { getWeight, modelTensorSpecs, type FloatModel } from '../src/model.js';
import { ReferenceModel } from '../src/reference.js';
import { writeLegacy, writeV1, writeV2 } from '../src/llama2c-writers.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

const raw = readFileSync(STORIES_MODEL);
const model = readLlama2cCheckpoint(raw);

/** Bitwise equality of float arrays (much faster than a deep toEqual on 30k elements). */
function sameFloats(a: Float32Array | null, b: Float32Array | null): boolean {
  if (!a || !b) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function expectSameWeights(a: FloatModel, b: FloatModel): void {
  expect(b.config).toEqual(a.config);
  for (const spec of modelTensorSpecs(a.config)) {
    expect(sameFloats(getWeight(b.weights, spec), getWeight(a.weights, spec)), spec.name).toBe(true);
  }
}

describe('llama2.c checkpoint reader', () => {
  it('reads the legacy stories260K.bin', () => {
    expect(model.format).toBe('legacy');
    expect(model.config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      seqLen: 512,
      sharedClassifier: true,
      ropeTheta: 10000,
      normEps: 1e-5,
    });
    expect(model.weights.classifier).toBeNull();
    expect(model.weights.layers[4].w3.length).toBe(172 * 64);
    // Spot checks against the raw file: first embedding value, and rms_final right before the RoPE tables.
    expect(model.weights.tokenEmbedding[0]).toBe(raw.readFloatLE(28));
    const finalNormOffset = raw.length - 4 * (512 * 8) - 4 * 64;
    expect(model.weights.finalNorm[63]).toBe(raw.readFloatLE(finalNormOffset + 4 * 63));
    // Writing it back in the legacy layout reproduces the file except the RoPE tables.
    const again = writeLegacy(model);
    expect(again.length).toBe(raw.length);
    expect(again.subarray(0, finalNormOffset + 256).equals(raw.subarray(0, finalNormOffset + 256))).toBe(true);
  });

  it('reads a legacy file with an unshared classifier (negative vocab_size, wcls appended)', () => {
    const buf = Buffer.concat([raw, Buffer.from(model.weights.tokenEmbedding.buffer.slice(0))]);
    buf.writeInt32LE(-512, 20);
    const m = readLlama2cCheckpoint(buf);
    expect(m.config.sharedClassifier).toBe(false);
    expect(sameFloats(m.weights.classifier, model.weights.tokenEmbedding)).toBe(true);
    expect(m.weights.classifier).not.toBe(m.weights.tokenEmbedding);
    // The classifier equals the embedding, so the logits must be identical to the shared model's.
    const a = new ReferenceModel(model, { maxPositions: 4 });
    const b = new ReferenceModel(m, { maxPositions: 4 });
    for (const [pos, tok] of [1, 403, 407].entries()) expect(sameFloats(b.forward(tok, pos), a.forward(tok, pos))).toBe(true);
  });

  it('reads export.py version 1 files, shared and unshared', () => {
    const v1 = readLlama2cCheckpoint(writeV1(model));
    expect(v1.format).toBe('v1');
    expectSameWeights(model, v1);
    const unshared: FloatModel = {
      config: { ...model.config, sharedClassifier: false },
      weights: { ...model.weights, classifier: model.weights.tokenEmbedding.map((x) => -x) },
    };
    expectSameWeights(unshared, readLlama2cCheckpoint(writeV1(unshared)));
  });

  it('reads export.py version 2 (Q8_0) files within the group quantization error', () => {
    const gs = 64;
    const buf = writeV2(model, gs);
    expect(buf.readInt32LE(37)).toBe(gs);
    const v2: Llama2cCheckpoint = readLlama2cCheckpoint(buf);
    expect(v2.format).toBe('v2');
    expect(v2.groupSize).toBe(gs);
    expect(v2.config).toEqual(model.config);
    for (const spec of modelTensorSpecs(model.config)) {
      const orig = getWeight(model.weights, spec);
      const back = getWeight(v2.weights, spec);
      if (spec.kind === 'vector') {
        expect(sameFloats(back, orig), spec.name).toBe(true); // norms stay float32
        continue;
      }
      // Groups run over the flattened tensor (they straddle w2's 172-column rows).
      for (let g = 0; g < orig.length / gs; g++) {
        let m = 0;
        for (let i = g * gs; i < (g + 1) * gs; i++) m = Math.max(m, Math.abs(orig[i]));
        const halfStep = (Math.fround(m / 127) / 2) * (1 + 1e-5);
        for (let i = g * gs; i < (g + 1) * gs; i++) {
          if (Math.abs(orig[i] - back[i]) > halfStep) {
            throw new Error(`${spec.name}[${i}]: ${back[i]} is more than half a step (${halfStep}) from ${orig[i]}`);
          }
        }
      }
    }
  });

  it('explains truncated, corrupt and unknown files', () => {
    expect(() => readLlama2cCheckpoint(Buffer.alloc(10))).toThrow(/10 bytes, too short/);
    expect(() => readLlama2cCheckpoint(raw.subarray(0, raw.length - 4))).toThrow(
      'checkpoint is 1056536 bytes but a legacy checkpoint with dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, ' +
        'vocab_size=512, seq_len=512 needs 1056540 (or 1187612 with an unshared classifier)',
    );
    const negative = Buffer.from(raw);
    negative.writeInt32LE(-512, 20);
    expect(() => readLlama2cCheckpoint(negative)).toThrow(/needs 1187612, as its negative vocab_size announces an unshared classifier/);
    expect(() => readLlama2cCheckpoint(readFileSync(STORIES_TOKENIZER))).toThrow(/not a llama2.c checkpoint: it lacks the "ak42" magic/);
    const v1 = writeV1(model);
    expect(() => readLlama2cCheckpoint(v1.subarray(0, 100))).toThrow(/shorter than the 256-byte header of a version 1/);
    expect(() => readLlama2cCheckpoint(v1.subarray(0, v1.length - 1))).toThrow(/but a version 1 checkpoint with dim=64.* needs 1040384/);
    const v3 = Buffer.from(v1);
    v3.writeInt32LE(3, 4);
    expect(() => readLlama2cCheckpoint(v3)).toThrow(/"ak42" magic but version 3/);
    const badDims = Buffer.from(v1);
    badDims.writeInt32LE(7, 20); // n_heads 7 does not divide dim 64
    expect(() => readLlama2cCheckpoint(badDims)).toThrow(/nonsense dimensions.*dim 64 is not a multiple of n_heads 7/);
    const v2 = writeV2(model, 64);
    v2.writeInt32LE(48, 37);
    expect(() => readLlama2cCheckpoint(v2)).toThrow(/group size 48, which does not divide every tensor/);
  });
});

describe('tokenizer.bin reader', () => {
  const tokBuf = readFileSync(STORIES_TOKENIZER);

  it('reads tok512.bin', () => {
    const t = readTokenizerBin(tokBuf, 512);
    expect(t.maxTokenLength).toBe(7);
    expect(t.pieces.length).toBe(512);
    expect(Buffer.from(t.pieces[1]).toString()).toBe('\n<s>\n');
    expect(Buffer.from(t.pieces[259]).toString()).toBe(' t');
    expect(t.scores[260]).toBe(-1);
  });

  it('refuses a tokenizer whose size does not match the model', () => {
    expect(() => readTokenizerBin(tokBuf, 32000)).toThrow(
      'tokenizer has 512 tokens but the model expects 32000: pass the tokenizer.bin that was trained with this model',
    );
  });

  it('explains truncated or foreign files', () => {
    expect(() => readTokenizerBin(tokBuf.subarray(0, tokBuf.length - 3), 512)).toThrow(/token 511 .* claims \d+ bytes.*truncated/);
    expect(() => readTokenizerBin(tokBuf.subarray(0, 2), 512)).toThrow(/too short/);
    expect(() => readTokenizerBin(raw, 512)).toThrow(/not a llama2.c tokenizer.bin|not plausible/);
  });
});
