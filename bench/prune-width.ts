/**
 * What width pruning's two halves cost on stories260K, the ablation of
 * docs/distill-prune.md: `npm run build && nice node dist/bench/prune-width.js`.
 *
 * In this blob format removing heads also removes residual channels (dim =
 * n_heads × head size, converter/prune-shape.ts). In the float model both
 * halves can be tried alone: the heads pruneToShape removes silenced (wq
 * rows and wo columns zeroed), or only its channels zeroed everywhere
 * (which is exactly the pruned model's residual with the heads kept), and
 * both (= the pruned model). Perplexity of the trainer's forward pass on 64
 * windows of 256 tokens of the test split; calibration on the train split.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../converter/convert.js';
import { flatParams } from '../converter/prune-ffn.js';
import { pruneToShape, type Importance, type ShapeReport, type ShapeTarget } from '../converter/prune-shape.js';
import { packDocuments, validationWindows } from '../converter/train/data.js';
import { jsKernels } from '../converter/train/kernels.js';
import { TransformerPass } from '../converter/train/transformer.js';
import { loadWasmKernels, wasmKernelsAvailable } from '../converter/train/wasm-kernels.js';
import { splitLines } from '../host/commands/eval.js';
import { projectRoot } from '../host/native.js';
import type { FloatModel, LayerWeights } from '../src/model.js';

const shared = path.resolve(projectRoot(), '../shared');

function zeroed(m: FloatModel, r: ShapeReport, heads: boolean, channels: boolean): FloatModel {
  const c = m.config;
  const D = c.dim;
  const hs = D / c.nHeads;
  const gone = (j: number) => !r.keptChannels.includes(j);
  const layers = m.weights.layers.map((lw0, l) => {
    const lw = Object.fromEntries(Object.entries(lw0).map(([k, v]) => [k, (v as Float32Array).slice()])) as unknown as LayerWeights;
    if (heads) {
      for (let i = 0; i < lw.wq.length; i++) {
        const row = Math.floor(i / D);
        const col = i % D;
        if (!r.keptHeads[l].includes(Math.floor(row / hs))) lw.wq[i] = 0; // wq row of a removed head
        if (!r.keptHeads[l].includes(Math.floor(col / hs))) lw.wo[i] = 0; // wo column of a removed head
      }
    }
    if (channels) {
      for (const k of ['wq', 'wk', 'wv', 'w1', 'w3'] as const) for (let i = 0; i < lw[k].length; i++) if (gone(i % D)) lw[k][i] = 0;
      for (const k of ['wo', 'w2'] as const) {
        const cols = lw[k].length / D;
        for (let i = 0; i < lw[k].length; i++) if (gone((i / cols) | 0)) lw[k][i] = 0;
      }
    }
    return lw;
  });
  const emb = m.weights.tokenEmbedding.slice();
  if (channels) for (let i = 0; i < emb.length; i++) if (gone(i % D)) emb[i] = 0;
  return { config: c, weights: { ...m.weights, tokenEmbedding: emb, layers } };
}

async function main(): Promise<void> {
  const text = readFileSync(path.join(shared, 'corpora/stories260K-samples.txt'), 'utf8');
  const { model, tokenizer } = await loadCheckpoint(path.join(shared, 'models/stories260K.bin'), path.join(shared, 'models/tok512.bin'));
  const kernels = wasmKernelsAvailable() ? loadWasmKernels() : jsKernels;
  const cal = { tokenizer, lines: splitLines(text, 'train'), kernels };
  const stream = packDocuments(splitLines(text, 'test'), tokenizer);
  const perplexity = (m: FloatModel) => {
    const pass = new TransformerPass(m.config, 1, 256, kernels);
    const windows = validationWindows(stream, 1, 256, 64);
    const p = flatParams(m);
    return Math.exp(windows.reduce((s, w) => s + pass.run(p, w.inputs, w.targets, null), 0) / windows.length);
  };
  console.log(`unpruned ${perplexity(model).toFixed(4)}`);
  const targets: ShapeTarget[] = [{ nHeads: 6 }, { nHeads: 4 }, { nHeads: 4, nKvHeads: 4 }];
  for (const imp of ['activation', 'magnitude'] as Importance[]) {
    for (const t of targets) {
      const r = pruneToShape(model, t, imp, cal);
      console.log(
        `${imp} ${JSON.stringify(t)}: heads only ${perplexity(zeroed(model, r.report, true, false)).toFixed(4)}, ` +
          `channels only ${perplexity(zeroed(model, r.report, false, true)).toFixed(4)}, both (the pruned model) ${perplexity(r.model).toFixed(4)}`,
      );
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
