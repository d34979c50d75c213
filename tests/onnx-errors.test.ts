/**
 * Criterion 4: malformed or foreign ONNX gets one clear error that names the
 * op, node or tensor and says what to do; nothing is guessed.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportOnnx } from '../converter/onnx-export.js';
import { externalReaderFor, importOnnx } from '../converter/onnx-import.js';
import { onnx, type ModelProto } from '../converter/onnx-proto.js';
import { runCli } from '../host/program.js';
import { LmflashError } from '../src/errors.js';
import { readLlama2cCheckpoint } from '../src/llama2c.js';
import { tempDir } from './native-helpers.js';
import { hfGraph } from './onnx-graphs.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

const ckpt = readLlama2cCheckpoint(readFileSync(STORIES_MODEL));
const exported = exportOnnx(ckpt, { tokenizerBin: readFileSync(STORIES_TOKENIZER) });

/** The export, changed by `edit`. */
function mutated(edit: (m: ModelProto) => void, base: Uint8Array = exported): Uint8Array {
  const m = onnx.ModelProto.decode(base);
  edit(m);
  return onnx.ModelProto.encode(m).finish();
}

function node(m: ModelProto, name: string) {
  const n = m.graph!.node!.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name}`);
  return n;
}

function initializer(m: ModelProto, name: string) {
  const t = m.graph!.initializer!.find((x) => x.name === name);
  if (!t) throw new Error(`no initializer ${name}`);
  return t;
}

/** The LmflashError message importing `bytes` gives (fails the test on success or on any other exception). */
function importError(bytes: Uint8Array, opts = {}): string {
  try {
    importOnnx(bytes, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(LmflashError);
    return (e as Error).message;
  }
  throw new Error('the import succeeded');
}

describe('malformed ONNX', () => {
  it('truncated or garbage protobuf', () => {
    for (const cut of [10, exported.length >> 1, exported.length - 1]) {
      expect(importError(exported.subarray(0, cut))).toMatch(/^not a valid ONNX model: .*truncated/);
    }
    expect(importError(new Uint8Array(0))).toMatch(/empty/);
    expect(importError(readFileSync(STORIES_MODEL))).toMatch(/not a valid ONNX model/); // a llama2.c checkpoint is not ONNX
  });

  it('missing initializer', () => {
    const bytes = mutated((m) => {
      m.graph!.initializer = m.graph!.initializer!.filter((t) => t.name !== 'layers.2.attention.wk.weight');
    });
    expect(importError(bytes)).toMatch(
      /node "\/layers\.2\/attention\/wk\/Transpose" \(Transpose\) reads "layers\.2\.attention\.wk\.weight", which is neither a graph input, an initializer nor the output of a node: the file is incomplete/,
    );
  });

  it('initializer data that does not fill its dims', () => {
    const bytes = mutated((m) => {
      const t = initializer(m, 'layers.3.attention.wv.weight');
      t.rawData = t.rawData!.subarray(0, t.rawData!.length - 4);
    });
    expect(importError(bytes)).toMatch(/initializer "layers\.3\.attention\.wv\.weight" \(float\) has dims \[32, 64\], i\.e\. 2048 values, but its data holds 8188 bytes: the file is corrupt/);
  });

  it('weights of the wrong shape', () => {
    const wideK = mutated((m) => {
      const t = initializer(m, 'layers.1.attention.wk.weight');
      t.dims = [16, 128]; // same number of values, wrong shape
    });
    expect(importError(wideK)).toMatch(/layer 1 attention: the k weight "layers\.1\.attention\.wk\.weight" has shape \[16, 128\], which does not take the model dim 64/);
    const shortNorm = mutated((m) => {
      const t = initializer(m, 'layers.4.ffn_norm.weight');
      t.dims = [32];
      t.rawData = t.rawData!.subarray(0, 128);
    });
    expect(importError(shortNorm)).toMatch(/layer 4 feed-forward norm: node "\/layers\.4\/ffn_norm\/Scale" \(Mul\) uses "layers\.4\.ffn_norm\.weight" \(shape \[32\]\), which is not part of an RMSNorm with a \[64\] weight/);
    const badHidden = mutated((m) => {
      const t = initializer(m, 'layers.0.feed_forward.w2.weight');
      t.dims = [172, 64]; // transposed the wrong way round
    });
    expect(importError(badHidden)).toMatch(/layer 0 feed-forward: the down \(w2\) weight "layers\.0\.feed_forward\.w2\.weight" has shape \[172, 64\], expected to map 172 features to 64/);
  });

  it('unsupported ops, by name', () => {
    const gelu = mutated((m) => {
      node(m, '/layers.0/feed_forward/Sigmoid').opType = 'Gelu';
    });
    expect(importError(gelu)).toMatch(/^unsupported op Gelu \(node "\/layers\.0\/feed_forward\/Sigmoid" \(Gelu\)\): lmflash reads standard-opset Llama graphs/);
    const fused = mutated((m) => {
      const n = node(m, '/layers.1/attention/Softmax');
      n.domain = 'com.microsoft';
      n.opType = 'MultiHeadAttention';
    });
    expect(importError(fused)).toMatch(/^unsupported op com\.microsoft::MultiHeadAttention \(node "\/layers\.1\/attention\/Softmax"/);
    const tanh = mutated((m) => {
      node(m, '/layers.2/feed_forward/Sigmoid').opType = 'Abs'; // a supported op in the wrong place
    });
    expect(importError(tanh)).toMatch(/layer 2 feed-forward: node "\/layers\.2\/feed_forward\/Sigmoid" \(Abs\) is not part of a SwiGLU feed-forward/);
  });

  it('structures that are not a Llama decoder', () => {
    const layerNorm = mutated((m) => {
      node(m, '/layers.0/attention_norm/Normalize').opType = 'Sub'; // x - mean, LayerNorm style
    });
    expect(importError(layerNorm)).toMatch(/layer 0 attention norm: node "\/layers\.0\/attention_norm\/Normalize" \(Sub\) is not part of an RMSNorm .*LayerNorm/);
    const unmasked = mutated((m) => {
      const n = node(m, '/layers.3/attention/causal_mask');
      n.opType = 'Identity';
      n.input = [n.input![2]];
    });
    expect(importError(unmasked)).toMatch(/layer 3 attention: nothing masks the scores between node "\/layers\.3\/attention\/scores" \(MatMul\) and node "\/layers\.3\/attention\/Softmax" \(Softmax\)/);
    const bias = mutated((m) => {
      const mm = node(m, '/layers.0/attention/wq/MatMul');
      const out = mm.output![0];
      mm.output = [`${out}_nobias`];
      m.graph!.initializer!.push({ name: 'layers.0.attention.wq.bias', dims: [64], dataType: 1, rawData: new Uint8Array(256) });
      m.graph!.node!.push({ name: '/layers.0/attention/wq/Add', opType: 'Add', input: [`${out}_nobias`, 'layers.0.attention.wq.bias'], output: [out] });
    });
    expect(importError(bias)).toMatch(/layer 0 attention: node "\/layers\.0\/attention\/wq\/Add" \(Add\) adds "layers\.0\.attention\.wq\.bias" to the output of node "\/layers\.0\/attention\/wq\/MatMul" \(MatMul\) \(a bias\?\)/);
    const postProcessed = mutated((m) => {
      node(m, '/output/MatMul').output = ['raw_logits'];
      m.graph!.node!.push({ name: '/output/Softmax', opType: 'Softmax', input: ['raw_logits'], output: ['logits'] });
    });
    expect(importError(postProcessed)).toMatch(/the graph output "logits" comes from node "\/output\/Softmax" \(Softmax\); lmflash expects raw logits/);
  });

  it('names that contradict the graph', () => {
    expect(importError(hfGraph(ckpt, { misnameK: true }).bytes, { seqLen: 512 })).toMatch(
      /layer 0 attention: the graph uses "\/model\/layers\.0\/self_attn\/q_proj\/MatMul(_1)?" as layer 0's k weight, but its name says q/,
    );
    const swappedLayers = mutated((m) => {
      for (const t of m.graph!.initializer!) if (t.name === 'layers.1.attention_norm.weight') t.name = 'layers.7.attention_norm.weight';
      for (const n of m.graph!.node!) n.input = n.input!.map((i) => (i === 'layers.1.attention_norm.weight' ? 'layers.7.attention_norm.weight' : i));
    });
    expect(importError(swappedLayers)).toMatch(/the graph uses "layers\.7\.attention_norm\.weight" in layer 1, but its name says layer 7/);
  });

  it('external data that is missing or outside the model folder', () => {
    const dir = tempDir('onnx-ext');
    const file = path.join(dir, 'm.onnx');
    const built = hfGraph(ckpt, { externalData: 'm.onnx.data' });
    writeFileSync(file, built.bytes);
    expect(importError(built.bytes, { readExternal: externalReaderFor(file), seqLen: 512 })).toMatch(
      /initializer "model\.embed_tokens\.weight" keeps its data in "m\.onnx\.data", which does not exist in .*: copy the external data file/,
    );
    const escaping = hfGraph(ckpt, { externalData: '../elsewhere.bin' });
    expect(importError(escaping.bytes, { readExternal: externalReaderFor(file), seqLen: 512 })).toMatch(/names the external data file "\.\.\/elsewhere\.bin", outside the model's folder/);
    writeFileSync(path.join(dir, 'm.onnx.data'), built.external.get('m.onnx.data')!.subarray(0, 1000));
    expect(importError(built.bytes, { readExternal: externalReaderFor(file), seqLen: 512 })).toMatch(/points at bytes .* of the external file "m\.onnx\.data", which has 1000 bytes: the external data file is truncated/);
  });

  it('the CLI prints one line, exits 1 and writes nothing', async () => {
    const dir = tempDir('onnx-cli');
    const write = (name: string, bytes: Uint8Array) => {
      const f = path.join(dir, name);
      writeFileSync(f, bytes);
      return f;
    };
    const cases: [string[], RegExp][] = [
      [['convert', write('cut.onnx', exported.subarray(0, 5000)), '-o', path.join(dir, 'x.blob')], /cut\.onnx: not a valid ONNX model: the protobuf is truncated or corrupt/],
      [['convert', write('hf.onnx', hfGraph(ckpt).bytes), '-o', path.join(dir, 'x.blob'), '--seq-len', '512'], /hf\.onnx carries no tokenizer .*pass --tokenizer/],
      [['convert', path.join(dir, 'hf.onnx'), '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'x.blob')], /hf\.onnx: the model does not record its context length .*pass --seq-len N/],
      [['convert', path.join(dir, 'missing.onnx'), '-o', path.join(dir, 'x.blob')], /cannot read the ONNX model .*missing\.onnx: no such file/],
      [['convert', STORIES_MODEL, '-o', path.join(dir, 'x.blob')], /--tokenizer is required to convert the llama2\.c checkpoint/],
      [['convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--seq-len', '64', '-o', path.join(dir, 'x.blob')], /--seq-len applies to ONNX models only/],
      [['export', 'onnx', path.join(dir, 'cut.onnx'), '-o', path.join(dir, 'x.onnx')], /cut\.onnx: not a valid ONNX model/],
      [['export', 'onnx', STORIES_MODEL, '-t', path.join(dir, 'cut.onnx'), '-o', path.join(dir, 'x.onnx')], /cut\.onnx: tokenizer/],
    ];
    for (const [argv, message] of cases) {
      let err = '';
      const code = await runCli(argv, { out: () => undefined, err: (t) => void (err += t) });
      expect(code, argv.join(' ')).toBe(1);
      expect(err).toMatch(message);
      expect(err.trim().split('\n')).toHaveLength(1);
    }
    const ok = await runCli(['convert', path.join(dir, 'hf.onnx'), '-t', STORIES_TOKENIZER, '--seq-len', '512', '-o', path.join(dir, 'hf.blob')], {
      out: () => undefined,
      err: () => undefined,
    });
    expect(ok).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('x.'))).toEqual([]);
  });
});
