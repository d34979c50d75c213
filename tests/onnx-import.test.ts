/**
 * Criterion 3: graphs in the shapes PyTorch and Hugging Face exporters write
 * (names, pre-transposed weights, fused QKV / gate-up, rotate-half RoPE,
 * external data) import into the model they were built from, and the
 * imported model's logits match ONNX Runtime's on the graph itself.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportOnnx } from '../converter/onnx-export.js';
import { externalReaderFor, importOnnx, type OnnxImportOptions } from '../converter/onnx-import.js';
import { DT, onnx, tensorFloats } from '../converter/onnx-proto.js';
import { readLlama2cCheckpoint } from '../src/llama2c.js';
import type { FloatModel } from '../src/model.js';
import { tempDir } from './native-helpers.js';
import { hfGraph, llama2cTorchGraph, randomFloats, type BuiltGraph } from './onnx-graphs.js';
import { maxAbsDiff, ortLogits, ortSession, readReferenceRun, referenceLogits } from './onnx-helpers.js';
import { STORIES_MODEL } from './paths.js';

const stories = readLlama2cCheckpoint(readFileSync(STORIES_MODEL));
/** stories260K with a separate (random) classifier, to exercise untied heads. */
const untied: FloatModel = {
  config: { ...stories.config, sharedClassifier: false },
  weights: { ...stories.weights, classifier: randomFloats(stories.config.vocabSize * stories.config.dim, 7, 0.5) },
};
/** A prompt and 40 greedy tokens of the park reference run. */
const tokens = readReferenceRun('park').inputs.slice(0, 40);

function expectSameWeights(got: FloatModel, want: FloatModel): void {
  expect(got.config.sharedClassifier).toBe(want.config.sharedClassifier);
  expect(got.weights.tokenEmbedding).toEqual(want.weights.tokenEmbedding);
  expect(got.weights.finalNorm).toEqual(want.weights.finalNorm);
  expect(got.weights.classifier).toEqual(want.weights.classifier);
  expect(got.weights.layers.length).toBe(want.weights.layers.length);
  got.weights.layers.forEach((l, i) => {
    for (const k of ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as const) {
      expect(l[k], `layer ${i} ${k}`).toEqual(want.weights.layers[i][k]);
    }
  });
}

/** Writes the graph (and its external data) to a folder, imports it from there, and runs it in ONNX Runtime from the file. */
async function importAndRun(name: string, built: BuiltGraph, opts: OnnxImportOptions = {}, batch = [tokens]) {
  const dir = tempDir(`onnx-${name}`);
  const file = path.join(dir, `${name}.onnx`);
  writeFileSync(file, built.bytes);
  for (const [ext, data] of built.external) writeFileSync(path.join(dir, ext), data);
  const imported = importOnnx(readFileSync(file), { readExternal: externalReaderFor(file), ...opts });
  const session = await ortSession(file);
  const ort = await ortLogits(session, batch, built.extraInputs);
  return { imported, ort, file, dir };
}

describe('importing exporter-shaped ONNX graphs', () => {
  it('Hugging Face LlamaForCausalLM: q_proj/k_proj/v_proj, rotate-half RoPE, GQA repeat_kv, tied lm_head, attention_mask', async () => {
    const { imported, ort } = await importAndRun('hf', hfGraph(stories), { seqLen: 512 });
    const { model, info } = imported;
    expect(info.rope).toBe('rotate-half');
    expect(info.ropeThetaSource).toBe('inv_freq');
    expect(info.seqLenSource).toBe('option');
    expect(model.config).toEqual(stories.config); // dims, heads (8 q, 4 kv), rope_theta 10000, norm_eps 1e-5, shared
    expectSameWeights(model, stories); // the rotate-half q/k rows come back in llama2.c's order exactly
    expect(ort.dims).toEqual([1, tokens.length, 512]);
    const err = maxAbsDiff(ort.data, referenceLogits(model, tokens));
    expect(err).toBeLessThanOrEqual(1e-4);
  });

  it('fused qkv_proj and gate_up_proj split by Split, cached cos/sin tables, untied Gemm lm_head, external data', async () => {
    const built = hfGraph(untied, { fusedQkv: true, fusedGateUp: true, rope: 'cached', lmHead: 'gemm', externalData: 'model.onnx.data' });
    expect(built.bytes.length).toBeLessThan(200_000); // the weights really are outside
    const { imported, ort } = await importAndRun('hf-fused', built, {}, [tokens, [...tokens].reverse()]);
    const { model, info } = imported;
    expect(info).toMatchObject({ rope: 'rotate-half', fusedQkv: true, fusedGateUp: true, seqLenSource: 'rope table', ropeThetaSource: 'rope table' });
    expect(model.config).toEqual(untied.config);
    expectSameWeights(model, untied);
    expect(ort.dims).toEqual([2, tokens.length, 512]);
    const S = tokens.length * 512;
    expect(maxAbsDiff(ort.data.subarray(0, S), referenceLogits(model, tokens))).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(ort.data.subarray(S), referenceLogits(model, [...tokens].reverse()))).toBeLessThanOrEqual(1e-4);
  });

  it('llama2.c model.py via torch.onnx.export: interleaved RoPE by reshape/unbind, freqs buffers, mask buffer, tied weights folded into a copy', async () => {
    const { imported, ort } = await importAndRun('llama2c-torch', llama2cTorchGraph(stories));
    const { model, info } = imported;
    expect(info).toMatchObject({ rope: 'interleaved', seqLenSource: 'rope table', ropeThetaSource: 'rope table', lmflashMetadata: false });
    expect(model.config).toEqual(stories.config); // the folded copy of the embedding is recognised as a shared classifier
    expectSameWeights(model, stories);
    expect(maxAbsDiff(ort.data, referenceLogits(model, tokens))).toBeLessThanOrEqual(1e-4);
  });

  it('llama2.c model.py inference path: logits of the last position only, untied output', async () => {
    const { imported, ort } = await importAndRun('llama2c-last', llama2cTorchGraph(untied, { lastOnly: true }));
    expectSameWeights(imported.model, untied);
    expect(ort.dims).toEqual([1, 1, 512]);
    const all = referenceLogits(imported.model, tokens);
    expect(maxAbsDiff(ort.data, all.subarray((tokens.length - 1) * 512))).toBeLessThanOrEqual(1e-4);
  });

  it('a foreign graph that does not record its context length needs --seq-len', () => {
    expect(() => importOnnx(hfGraph(stories).bytes)).toThrow(/does not record its context length .*--seq-len/);
  });
});

describe('other encodings the importer accepts', () => {
  it('fused RMSNormalization (opset 23) nodes instead of the decomposed norm', async () => {
    const m = onnx.ModelProto.decode(exportOnnx(stories));
    const nodes = m.graph!.node!;
    const prefixes = nodes.filter((n) => n.name!.endsWith('/Square')).map((n) => n.name!.slice(0, -'/Square'.length));
    expect(prefixes).toHaveLength(2 * stories.config.nLayers + 1);
    m.graph!.node = nodes.flatMap((n) => {
      const p = prefixes.find((q) => n.name!.startsWith(`${q}/`));
      if (!p) return [n];
      if (n.name !== `${p}/Square`) return [];
      const scale = nodes.find((s) => s.name === `${p}/Scale`)!;
      const fused = {
        name: `${p}/RMSNormalization`,
        opType: 'RMSNormalization',
        input: [n.input![0], scale.input![1]],
        output: scale.output,
        attribute: [{ name: 'epsilon', type: onnx.AttributeProto.AttributeType.FLOAT, f: 1e-5 }],
      };
      return [onnx.NodeProto.create(fused)];
    });
    expect(m.graph!.node.some((n) => n.opType === 'ReduceMean')).toBe(false);
    m.opsetImport = [{ domain: '', version: 23 }];
    m.irVersion = 11;
    m.metadataProps = [];
    const bytes = onnx.ModelProto.encode(m).finish();
    const { model } = importOnnx(bytes);
    expect(model.config).toEqual(stories.config);
    expectSameWeights(model, stories);
    const { data } = await ortLogits(await ortSession(bytes), [tokens]);
    expect(maxAbsDiff(data, referenceLogits(stories, tokens))).toBeLessThanOrEqual(1e-4);
  });

  it('float16, bfloat16 and double initializers, in raw_data or typed fields', () => {
    const half = Uint8Array.of(0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x01, 0x00); // 1, -2, 0.5, 2^-24
    expect(Array.from(tensorFloats({ name: 'h', dims: [4], dataType: DT.FLOAT16, rawData: half }))).toEqual([1, -2, 0.5, 2 ** -24]);
    expect(Array.from(tensorFloats({ name: 'h', dims: [2], dataType: DT.FLOAT16, int32Data: [0x3c00, 0x7c00] }))).toEqual([1, Infinity]);
    expect(Array.from(tensorFloats({ name: 'b', dims: [2], dataType: DT.BFLOAT16, rawData: Uint8Array.of(0x80, 0x3f, 0x40, 0xc0) }))).toEqual([1, -3]);
    const d = new Float64Array([0.25, -1.5]);
    expect(Array.from(tensorFloats({ name: 'd', dims: [2], dataType: DT.DOUBLE, rawData: new Uint8Array(d.buffer) }))).toEqual([0.25, -1.5]);
    expect(Array.from(tensorFloats({ name: 'f', dims: [1, 2], dataType: DT.FLOAT, floatData: [3, 4] }))).toEqual([3, 4]);
  });
});
