/**
 * Criteria 1 and 2: stories260K exported to ONNX runs in ONNX Runtime with
 * run.c's logits (within 1e-4), and importing the export gives the very blob
 * that converting the checkpoint gives. Also: exports of blobs and ONNX files,
 * batches, and what the metadata holds.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { InferenceSession } from 'onnxruntime-node';
import { convertCheckpoint } from '../converter/convert.js';
import { exportOnnx, META_CONFIG, META_TOKENIZER } from '../converter/onnx-export.js';
import { importOnnx } from '../converter/onnx-import.js';
import { onnx } from '../converter/onnx-proto.js';
import { blobToFloatModel, readBlob } from '../src/blob.js';
import { readLlama2cCheckpoint } from '../src/llama2c.js';
import { argmax } from '../src/reference.js';
import { tempDir } from './native-helpers.js';
import { maxAbsDiff, ortLogits, ortSession, readReferenceRun, referenceLogits } from './onnx-helpers.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';
import { cli } from './cli-helpers.js';

const V = 512;
const ckpt = readLlama2cCheckpoint(readFileSync(STORIES_MODEL));
const tokBin = readFileSync(STORIES_TOKENIZER);
const exported = exportOnnx(ckpt, { tokenizerBin: tokBin });


describe('stories260K exported to ONNX, run by ONNX Runtime', () => {
  let session: InferenceSession;
  beforeAll(async () => {
    session = await ortSession(exported);
  });

  it('has one int64 input [batch, sequence] and float32 logits [batch, sequence, vocab] first', () => {
    const m = onnx.ModelProto.decode(exported);
    const input = m.graph!.input!;
    expect(input.map((i) => i.name)).toEqual(['input_ids']);
    expect(input[0].type!.tensorType!.elemType).toBe(onnx.TensorProto.DataType.INT64);
    expect(input[0].type!.tensorType!.shape!.dim!.map((d) => d.dimParam)).toEqual(['batch', 'sequence']);
    const out = m.graph!.output![0];
    expect(out.name).toBe('logits');
    expect(out.type!.tensorType!.elemType).toBe(onnx.TensorProto.DataType.FLOAT);
    expect(out.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['batch', 'sequence', V]);
    expect(m.opsetImport!.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(new Set(m.graph!.node!.map((n) => n.domain))).toEqual(new Set(['']));
  });

  for (const name of ['once', 'park', 'empty']) {
    it(`reproduces run.c's ${name}.logits.f32 within 1e-4, and its greedy tokens`, async () => {
      const run = readReferenceRun(name);
      const { data, dims } = await ortLogits(session, [run.inputs]);
      expect(dims).toEqual([1, run.inputs.length, V]);
      const err = maxAbsDiff(data, run.logits);
      console.log(`ONNX Runtime vs run.c, ${name} (${run.inputs.length} positions): max |logit error| = ${err.toExponential(3)}`);
      expect(err).toBeLessThanOrEqual(1e-4);
      const greedy: number[] = [];
      for (let p = run.prompt.length - 1; p < run.inputs.length - 1; p++) greedy.push(argmax(data.subarray(p * V, (p + 1) * V)));
      expect(greedy).toEqual(run.generated.slice(0, greedy.length));
    });
  }

  it('runs a batch: each row is what the sequence gives alone', async () => {
    const a = readReferenceRun('once').inputs.slice(0, 48);
    const b = readReferenceRun('park').inputs.slice(0, 48);
    const both = await ortLogits(session, [a, b]);
    const alone = await ortLogits(session, [b]);
    expect(both.dims).toEqual([2, 48, V]);
    expect(maxAbsDiff(both.data.subarray(48 * V), alone.data)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(both.data.subarray(0, 48 * V), readReferenceRun('once').logits.subarray(0, 48 * V))).toBeLessThanOrEqual(1e-4);
  });
});

describe('importing lmflash ONNX exports', () => {
  it('gives a blob byte-identical to converting the llama2.c checkpoint (CLI: export onnx, then convert)', async () => {
    const dir = tempDir('onnx-roundtrip');
    const onnxFile = path.join(dir, 'stories260K.onnx');
    const viaOnnx = path.join(dir, 'via-onnx.blob');
    const direct = path.join(dir, 'direct.blob');
    const e = await cli('export', 'onnx', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', onnxFile);
    expect(e.err).toBe('');
    expect(e.code).toBe(0);
    expect(e.out).toMatch(/wrote .*stories260K\.onnx: \d+ bytes, ONNX opset 17; .*tokenizer and config in the metadata/);
    const c1 = await cli('convert', onnxFile, '-o', viaOnnx); // no --tokenizer: the export carries it
    expect(c1.err).toBe('');
    expect(c1.code).toBe(0);
    expect(c1.out).toMatch(/ONNX model \(lmflash .*opset 17\), interleaved-pair RoPE/);
    const c2 = await cli('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', direct);
    expect(c2.code).toBe(0);
    const a = readFileSync(viaOnnx);
    const b = readFileSync(direct);
    expect(a.length).toBe(b.length);
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it('reads back the same float model, also without the metadata (config from the graph and its RoPE tables)', async () => {
    const r = importOnnx(exported);
    expect(r.model.config).toEqual(ckpt.config);
    expect(r.model.weights).toEqual(ckpt.weights);
    expect(Buffer.from(r.tokenizerBin!).equals(tokBin)).toBe(true);
    const bare = onnx.ModelProto.decode(exported);
    bare.metadataProps = [];
    const r2 = importOnnx(onnx.ModelProto.encode(bare).finish());
    expect(r2.model.config).toEqual(ckpt.config); // rope_theta 10000, norm_eps 1e-5, seq_len 512 from the graph
    expect(r2.info).toMatchObject({ lmflashMetadata: false, seqLenSource: 'rope table', ropeThetaSource: 'rope table' });
    expect(r2.tokenizerBin).toBeNull();
    // and exporting what was imported writes the same file again
    expect(Buffer.from(exportOnnx(r.model, { tokenizerBin: r.tokenizerBin })).equals(Buffer.from(exported))).toBe(true);
  });

  it('stores the config and the tokenizer.bin in the metadata props', () => {
    const props = new Map(onnx.ModelProto.decode(exported).metadataProps!.map((p) => [p.key, p.value]));
    const cfg = JSON.parse(props.get(META_CONFIG)!);
    expect(cfg).toMatchObject({ dim: 64, hidden_dim: 172, n_layers: 5, n_heads: 8, n_kv_heads: 4, vocab_size: 512, seq_len: 512, rope_theta: 10000, norm_eps: 1e-5, shared_classifier: true, rope: 'interleaved' });
    expect(Buffer.from(props.get(META_TOKENIZER)!, 'base64').equals(tokBin)).toBe(true);
  });
});

describe('exporting blobs', () => {
  it('exports an int8 blob as its dequantized weights and its tokenizer; ONNX Runtime matches the reference on them', async () => {
    const dir = tempDir('onnx-blob');
    const blobFile = path.join(dir, 'stories.blob');
    const onnxFile = path.join(dir, 'from-blob.onnx');
    const { blob } = await convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { groupSize: 32 });
    writeFileSync(blobFile, blob);
    const e = await cli('export', 'onnx', blobFile, '-o', onnxFile);
    expect(e.err).toBe('');
    expect(e.out).toMatch(/lmflash blob \(int8 weights, dequantized\)/);
    const view = readBlob(blob);
    const dequantized = blobToFloatModel(view);
    const imported = importOnnx(readFileSync(onnxFile));
    expect(imported.model.weights).toEqual(dequantized.weights);
    expect(imported.model.config).toEqual(dequantized.config);
    const tokens = readReferenceRun('once').inputs.slice(0, 64);
    const { data } = await ortLogits(await ortSession(onnxFile), [tokens]);
    expect(maxAbsDiff(data, referenceLogits(dequantized, tokens))).toBeLessThanOrEqual(1e-4);
    // the tokenizer survives: converting the export (no --tokenizer) rebuilds the blob's tables
    const back = path.join(dir, 'back.blob');
    const c = await cli('convert', onnxFile, '-o', back, '-g', '32');
    expect(c.code).toBe(0);
    expect(readBlob(readFileSync(back)).tokenizer).toEqual(view.tokenizer);
  });
});
