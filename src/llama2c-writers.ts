/**
 * Writers of llama2.c checkpoint layouts, following export.py
 * (legacy_export, version1_export, version2_export) byte for byte: the
 * trainer exports its models as legacy checkpoints (what run.c reads), and the
 * tests check the readers on files we cannot otherwise get.
 */
import type { FloatModel, LayerWeights } from './model.js';
import { headSize } from './model.js';

function f32(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function params(m: FloatModel, vocab: number): Buffer {
  const c = m.config;
  const b = Buffer.alloc(28);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, vocab, c.seqLen].forEach((v, i) => b.writeInt32LE(v, 4 * i));
  return b;
}

const each = (m: FloatModel, k: keyof LayerWeights) => m.weights.layers.map((l) => l[k]);

/** legacy_export: header with negative vocab for an unshared classifier, run.c order, RoPE tables, wcls. */
export function writeLegacy(m: FloatModel): Buffer {
  const c = m.config;
  const w = m.weights;
  // export.py writes freqs_cos and freqs_sin[:seq_len]; run.c skips them, but they are written as export.py computes them
  const hs = headSize(c);
  const ropeCos = new Float32Array((c.seqLen * hs) / 2);
  const ropeSin = new Float32Array((c.seqLen * hs) / 2);
  for (let pos = 0; pos < c.seqLen; pos++) {
    for (let i = 0; i < hs / 2; i++) {
      const angle = pos / Math.pow(c.ropeTheta, (2 * i) / hs);
      ropeCos[(pos * hs) / 2 + i] = Math.cos(angle);
      ropeSin[(pos * hs) / 2 + i] = Math.sin(angle);
    }
  }
  const parts = [
    params(m, c.sharedClassifier ? c.vocabSize : -c.vocabSize),
    w.tokenEmbedding,
    ...each(m, 'attnNorm'),
    ...each(m, 'wq'),
    ...each(m, 'wk'),
    ...each(m, 'wv'),
    ...each(m, 'wo'),
    ...each(m, 'ffnNorm'),
    ...each(m, 'w1'),
    ...each(m, 'w2'),
    ...each(m, 'w3'),
    w.finalNorm,
    ropeCos,
    ropeSin,
    ...(w.classifier ? [w.classifier] : []),
  ];
  return Buffer.concat(parts.map((p) => (p instanceof Float32Array ? f32(p) : p)));
}

function versionedHeader(m: FloatModel, version: number, groupSize?: number): Buffer {
  const h = Buffer.alloc(256);
  h.writeUInt32LE(0x616b3432, 0);
  h.writeInt32LE(version, 4);
  params(m, m.config.vocabSize).copy(h, 8);
  h[36] = m.config.sharedClassifier ? 1 : 0;
  if (groupSize !== undefined) h.writeInt32LE(groupSize, 37); // struct.pack('i') right after the byte: unaligned
  return h;
}

/** version1_export: norms first, then embedding and matrices, then wcls when unshared. */
export function writeV1(m: FloatModel): Buffer {
  const w = m.weights;
  const tensors = [
    ...each(m, 'attnNorm'),
    ...each(m, 'ffnNorm'),
    w.finalNorm,
    w.tokenEmbedding,
    ...each(m, 'wq'),
    ...each(m, 'wk'),
    ...each(m, 'wv'),
    ...each(m, 'wo'),
    ...each(m, 'w1'),
    ...each(m, 'w2'),
    ...each(m, 'w3'),
    ...(w.classifier ? [w.classifier] : []),
  ];
  return Buffer.concat([versionedHeader(m, 1), ...tensors.map(f32)]);
}

/** torch.round: halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** export.py quantize_q80: groups of `gs` consecutive values of the flattened tensor. */
export function quantizeQ80(w: Float32Array, gs: number): { q: Int8Array; s: Float32Array } {
  const q = new Int8Array(w.length);
  const s = new Float32Array(w.length / gs);
  for (let g = 0; g < s.length; g++) {
    let m = 0;
    for (let i = g * gs; i < (g + 1) * gs; i++) m = Math.max(m, Math.abs(w[i]));
    s[g] = Math.fround(m / 127);
    for (let i = g * gs; i < (g + 1) * gs; i++) q[i] = s[g] === 0 ? 0 : roundHalfEven(Math.fround(w[i] / s[g]));
  }
  return { q, s };
}

/** version2_export: header with group size, fp32 norms, then each matrix as int8 values followed by its scales. */
export function writeV2(m: FloatModel, gs: number): Buffer {
  const w = m.weights;
  const norms = [...each(m, 'attnNorm'), ...each(m, 'ffnNorm'), w.finalNorm];
  const matrices = [
    w.tokenEmbedding,
    ...each(m, 'wq'),
    ...each(m, 'wk'),
    ...each(m, 'wv'),
    ...each(m, 'wo'),
    ...each(m, 'w1'),
    ...each(m, 'w2'),
    ...each(m, 'w3'),
    ...(w.classifier ? [w.classifier] : []),
  ];
  const quantized = matrices.flatMap((t) => {
    const { q, s } = quantizeQ80(t, gs);
    return [Buffer.from(q.buffer), f32(s)];
  });
  return Buffer.concat([versionedHeader(m, 2, gs), ...norms.map(f32), ...quantized]);
}
