import { crc32 } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { convertBuffers } from '../converter/convert.js';
import {
  BLOB_HEADER_BYTES,
  blobToFloatModel,
  DTYPE_Q8,
  findTensor,
  readBlob,
  ROLES,
  tensorValues,
  writeBlob,
} from '../src/blob.js';
import { readLlama2cCheckpoint, readTokenizerBin } from '../src/llama2c.js';
import { getWeight, modelTensorSpecs, type FloatModel } from '../src/model.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer, tokenizerFromBin } from '../src/tokenizer.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';
import { tinyModel, tinyTokenizer } from './vectors.js';

const checkpoint = readFileSync(STORIES_MODEL);
const tokenizerBin = readFileSync(STORIES_TOKENIZER);
const model = readLlama2cCheckpoint(checkpoint);
const tokenizer = tokenizerFromBin(readTokenizerBin(tokenizerBin, 512));
const g64 = writeBlob(model, tokenizer, { groupSize: 64 });

/** Fixes the CRC after a deliberate edit, so that the structural checks are what fails. */
function withCrc(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32(buf.subarray(16)), 12);
  return buf;
}

/** Every dequantized value is within half a quantization step of the original. */
function expectWithinHalfStep(original: FloatModel, restored: FloatModel, groupSize: number): void {
  for (const spec of modelTensorSpecs(original.config)) {
    const a = getWeight(original.weights, spec);
    const b = getWeight(restored.weights, spec);
    if (spec.kind === 'vector') {
      expect(Array.from(b), spec.name).toEqual(Array.from(a));
      continue;
    }
    for (let r = 0; r < spec.rows; r++) {
      for (let g0 = 0; g0 < spec.cols; g0 += groupSize) {
        const end = Math.min(spec.cols, g0 + groupSize);
        let m = 0;
        for (let c = g0; c < end; c++) m = Math.max(m, Math.abs(a[r * spec.cols + c]));
        const half = (Math.fround(m / 127) / 2) * (1 + 1e-5);
        for (let c = g0; c < end; c++) {
          const i = r * spec.cols + c;
          if (Math.abs(a[i] - b[i]) > half) throw new Error(`${spec.name}[${r}][${c}]: ${b[i]} vs ${a[i]} (half step ${half})`);
        }
      }
    }
  }
}

describe('blob writer and reader', () => {
  it('round-trips stories260K: config, tokenizer, weights within quantization error', () => {
    const view = readBlob(g64.blob);
    expect(view.fileSize).toBe(g64.blob.length);
    expect([view.versionMajor, view.versionMinor, view.arch]).toEqual([1, 0, 1]);
    expect(view.config).toEqual({ ...model.config, groupSize: 64, normEps: Math.fround(1e-5) });
    expect(view.tokenizer).toEqual(tokenizer);
    expectWithinHalfStep(model, blobToFloatModel(view), 64);
    // The blob's tokenizer encodes like the one built from tokenizer.bin.
    expect(new Tokenizer(view.tokenizer).encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('fits stories260K in 320 KB and reports quantization errors per tensor', () => {
    expect(g64.blob.length).toBeLessThanOrEqual(320 * 1024);
    const q8 = g64.tensors.filter((t) => t.dtype === 'q8');
    expect(q8.length).toBe(1 + 5 * 7);
    expect(g64.tensors.length).toBe(1 + 5 * 9 + 1);
    for (const t of q8) {
      expect(t.error!.maxRel).toBeLessThanOrEqual(0.5 / 127 + 1e-6);
      expect(t.error!.rmsRel).toBeLessThan(0.01);
    }
    const g32 = writeBlob(model, tokenizer, { groupSize: 32 });
    expect(g32.blob.length).toBeGreaterThan(g64.blob.length);
    expect(g32.blob.length).toBeLessThanOrEqual(320 * 1024);
  });

  it('lays out the header, CONFIG and every table as the format doc says', () => {
    const b = g64.blob;
    expect(b.subarray(0, 4).toString('latin1')).toBe('LMFB');
    expect(b.readUInt32LE(8)).toBe(b.length);
    expect(b.readUInt32LE(12)).toBe(crc32(b.subarray(16)));
    expect([b.readUInt32LE(16), b.readUInt32LE(20), b.readUInt32LE(24)]).toEqual([1, 3, 64]);
    expect(b.subarray(28, 64).every((x) => x === 0)).toBe(true);
    const config = b.readUInt32LE(64 + 4);
    expect(b.readUInt32LE(64)).toBe(1);
    expect(Array.from({ length: 9 }, (_, i) => b.readUInt32LE(config + 4 * i))).toEqual([64, 172, 5, 8, 4, 512, 512, 64, 1]);
    expect(b.readFloatLE(config + 36)).toBe(10000);
    expect(b.readFloatLE(config + 40)).toBe(Math.fround(1e-5));
    const view = readBlob(b);
    const tok = b.readUInt32LE(64 + 16 + 4);
    for (let f = 24; f <= 52; f += 4) if (f !== 36 && f !== 48) expect(b.readUInt32LE(tok + f) % 16, `tokenizer field ${f}`).toBe(0);
    for (const t of view.tensors) {
      expect(t.dataOffset % 16, t.name).toBe(0);
      if (t.dtype === DTYPE_Q8) {
        expect(t.scaleOffset % 16, t.name).toBe(0);
        expect(t.rowStride % 16).toBe(0);
        // Row padding is zero so kernels may read whole 16-byte blocks.
        for (let r = 0; r < t.rows; r++) {
          const pad = b.subarray(t.dataOffset + r * t.rowStride + t.cols, t.dataOffset + (r + 1) * t.rowStride);
          expect(pad.every((x) => x === 0)).toBe(true);
        }
      }
    }
    const w2 = findTensor(view, ROLES.w2, 3);
    expect([w2.rows, w2.cols, w2.rowStride, w2.groupSize]).toEqual([64, 172, 176, 64]);
    expect(findTensor(view, ROLES.classifier)).toBe(view.tensors[0]);
    expect(tensorValues(view, findTensor(view, ROLES.final_norm))).toEqual(model.weights.finalNorm);
  });

  it('round-trips a model with a separate classifier and tail groups', () => {
    const tiny = tinyModel(7, { sharedClassifier: false });
    const { blob } = writeBlob(tiny, tinyTokenizer(), { groupSize: 16 });
    const view = readBlob(blob);
    expect(view.tensors.at(-1)!.name).toBe('classifier');
    expect(view.tensors.at(-1)!.role).toBe(ROLES.classifier);
    expectWithinHalfStep(tiny, blobToFloatModel(view), 16);
  });

  it('keeps the quantized model close to the float one', () => {
    const f = new ReferenceModel(model, { maxPositions: 32 });
    const q = new ReferenceModel(blobToFloatModel(readBlob(g64.blob)), { maxPositions: 32 });
    let worst = 0;
    [1, 403, 407, 261, 378, 432, 383, 286, 261, 376].forEach((tok, pos) => {
      const a = Float32Array.from(f.forward(tok, pos));
      const b = q.forward(tok, pos);
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    });
    expect(worst).toBeLessThan(0.5); // logits span about ±15
  });

  it('detects corruption and truncation', () => {
    const flipped = Buffer.from(g64.blob);
    flipped[flipped.length >> 1] ^= 0x10;
    expect(() => readBlob(flipped)).toThrow('blob CRC mismatch: the file is corrupt or truncated — convert it again');
    expect(() => readBlob(g64.blob.subarray(0, g64.blob.length - 1))).toThrow(/blob says it is \d+ bytes but only \d+ are present/);
    expect(() => readBlob(g64.blob.subarray(0, 40))).toThrow(/no LMFB magic/);
    expect(() => readBlob(checkpoint)).toThrow(/not an lmflash blob \(no LMFB magic\)/);
    // A partition image longer than the blob is fine.
    expect(readBlob(Buffer.concat([g64.blob, Buffer.alloc(100, 0xff)])).fileSize).toBe(g64.blob.length);
  });

  it('refuses newer format versions and other architectures', () => {
    const v2 = Buffer.from(g64.blob);
    v2.writeUInt16LE(2, 4);
    expect(() => readBlob(v2)).toThrow('blob format version 2 is newer than this lmflash (1): update lmflash');
    const minor = Buffer.from(g64.blob);
    minor.writeUInt16LE(7, 6); // a newer minor version only adds things: accepted
    expect(readBlob(minor).versionMinor).toBe(7);
    const arch = Buffer.from(g64.blob);
    arch.writeUInt32LE(2, 16);
    expect(() => readBlob(withCrc(arch))).toThrow(/architecture 2 is not supported/);
  });

  it('validates offsets, alignment and shapes even when the CRC matches', () => {
    const view = readBlob(g64.blob);
    const tensorsSection = g64.blob.readUInt32LE(64 + 32 + 4);
    const entry = (i: number) => tensorsSection + 16 + 32 * i;

    const outside = Buffer.from(g64.blob);
    outside.writeUInt32LE(g64.blob.length - 16, entry(3) + 24);
    expect(() => readBlob(withCrc(outside))).toThrow(/tensor layers.0.wk data or scales lie outside/);

    const misaligned = Buffer.from(g64.blob);
    misaligned.writeUInt32LE(view.tensors[1].dataOffset + 4, entry(1) + 24);
    expect(() => readBlob(withCrc(misaligned))).toThrow(/layers.0.attn_norm data lies outside .* or is misaligned/);

    const shape = Buffer.from(g64.blob);
    shape.writeUInt32LE(63, entry(2) + 8);
    expect(() => readBlob(withCrc(shape))).toThrow(/tensor 2 is role 3 layer 0 dtype 2 63×64, expected layers.0.wq/);

    const stride = Buffer.from(g64.blob);
    stride.writeUInt32LE(160, entry(8) + 16); // w2 needs 176
    expect(() => readBlob(withCrc(stride))).toThrow(/layers.0.w2 has row stride 160/);

    const section = Buffer.from(g64.blob);
    section.writeUInt32LE(g64.blob.length, 64 + 16 + 8); // TOKENIZER size past the end
    expect(() => readBlob(withCrc(section))).toThrow(/section kind 2 .* lies outside the file/);

    const vocab = Buffer.from(g64.blob);
    vocab.writeUInt32LE(511, vocab.readUInt32LE(64 + 16 + 4));
    expect(() => readBlob(withCrc(vocab))).toThrow(/tokenizer has 511 tokens but the model expects 512/);

    const dims = Buffer.from(g64.blob);
    dims.writeUInt32LE(7, dims.readUInt32LE(64 + 4) + 12); // n_heads
    expect(() => readBlob(withCrc(dims))).toThrow(/dim 64 is not a multiple of n_heads 7/);

    const order = Buffer.from(g64.blob);
    const sorted = order.readUInt32LE(order.readUInt32LE(64 + 16 + 4) + 44);
    const first = order.readUInt32LE(sorted);
    order.writeUInt32LE(order.readUInt32LE(sorted + 4), sorted);
    order.writeUInt32LE(first, sorted + 4);
    expect(() => readBlob(withCrc(order))).toThrow(/sorted index is out of order/);
    expect(BLOB_HEADER_BYTES).toBe(64);
  });

  it('refuses models it cannot store, with reasons', () => {
    expect(() => writeBlob(model, tokenizer, { groupSize: 40 })).toThrow(/multiple of 16/);
    const small = tokenizerFromBin(readTokenizerBin(tokenizerBin, 512));
    const tiny = tinyModel(1);
    expect(() => writeBlob(tiny, small)).toThrow('tokenizer has 512 tokens but the model expects 300');
    const broken = tinyModel(1);
    broken.weights.layers[1].w2[17] = Infinity;
    expect(() => writeBlob(broken, tinyTokenizer())).toThrow(/layers.1.w2 holds Infinity at row 0, column 17/);
  });
});

describe('convertCheckpoint', () => {
  it('converts stories260K and names the worst tensors', () => {
    const { blob, report } = convertBuffers(checkpoint, tokenizerBin, { groupSize: 32 });
    expect(report.checkpointFormat).toBe('legacy');
    expect(report.blobBytes).toBe(blob.length);
    expect(report.groupSize).toBe(32);
    expect(report.worstMaxRel.value).toBeGreaterThan(0);
    expect(report.worstMaxRel.name).toMatch(/^(token_embedding|layers\.\d\.w[qkvo123])$/);
    expect(readBlob(blob).config.groupSize).toBe(32);
  });

  it('names the file an input error is about', () => {
    expect(() =>
      convertBuffers(checkpoint.subarray(0, 1000), tokenizerBin, {}, { checkpoint: 'm.bin', tokenizer: 't.bin' }),
    ).toThrow(/^m\.bin: checkpoint is 1000 bytes but a legacy checkpoint/);
    expect(() => convertBuffers(checkpoint, tokenizerBin.subarray(0, 100), {}, { checkpoint: 'm.bin', tokenizer: 't.bin' })).toThrow(
      /^t\.bin: tokenizer/,
    );
  });
});
