/**
 * Structured pruning of stories260K to a smaller shape (converter/prune-shape.ts):
 * removing layers, heads (whole kv groups or the same number per group) and
 * residual channels gives exactly the unpruned model with those weights
 * zeroed (a skipped layer, a silent head, a channel that is zero
 * everywhere), the kept heads respect GQA, the documented importances pick
 * what goes, the C core runs the pruned blobs bit-identically on host and
 * under QEMU lx106, and impossible shapes are refused with a clear error.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, loadCheckpoint } from '../converter/convert.js';
import { channelMagnitudeImportance, headMagnitudeImportance, layerMagnitudeImportance, pruneToShape, type ShapeReport } from '../converter/prune-shape.js';
import { flatParams } from '../converter/prune-ffn.js';
import { packDocuments, validationWindows } from '../converter/train/data.js';
import { jsKernels } from '../converter/train/kernels.js';
import { TransformerPass } from '../converter/train/transformer.js';
import { splitLines } from '../host/commands/eval.js';
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { readBlob, writeBlob } from '../src/blob.js';
import { checkModelShapes, configProblems, parameterCount, type FloatModel } from '../src/model.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer, type TokenizerData } from '../src/tokenizer.js';
import { cli } from './cli-helpers.js';
import { runCore, tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const text = readFileSync(STORIES_SAMPLES, 'utf8');
const train = splitLines(text, 'train');

/**
 * The unpruned model with everything the report says is gone set to zero:
 * dropped layers' wo and w2 (the block becomes the identity), removed query
 * heads' wq rows and wo columns, removed kv heads' wk and wv rows, removed
 * FFN neurons, and removed residual channels in every matrix and norm.
 */
function zeroedCopy(m: FloatModel, r: ShapeReport): FloatModel {
  const c = m.config;
  const D = c.dim;
  const hs = D / c.nHeads;
  const H = c.hiddenDim;
  const keptLayers = Array.from({ length: c.nLayers }, (_, l) => l).filter((l) => !r.droppedLayers.includes(l));
  const chGone = (j: number) => !r.keptChannels.includes(j);
  const zeroCols = (a: Float32Array, cols: number, gone: (j: number) => boolean) => {
    for (let i = 0; i < a.length; i++) if (gone(i % cols)) a[i] = 0;
  };
  const zeroRows = (a: Float32Array, cols: number, gone: (i: number) => boolean) => {
    for (let i = 0; i < a.length; i++) if (gone((i / cols) | 0)) a[i] = 0;
  };
  const layers = m.weights.layers.map((lw0, l) => {
    const lw = Object.fromEntries(Object.entries(lw0).map(([k, v]) => [k, (v as Float32Array).slice()])) as typeof lw0;
    const k = keptLayers.indexOf(l);
    if (k < 0) {
      lw.wo.fill(0);
      lw.w2.fill(0);
      return lw;
    }
    const headGone = (row: number) => !r.keptHeads[k].includes((row / hs) | 0);
    const kvGone = (row: number) => !r.keptKvHeads[k].includes((row / hs) | 0);
    const neuronGone = (i: number) => !r.keptNeurons[k].includes(i);
    zeroRows(lw.wq, D, headGone);
    zeroCols(lw.wo, D, headGone);
    zeroRows(lw.wk, D, kvGone);
    zeroRows(lw.wv, D, kvGone);
    zeroRows(lw.w1, D, neuronGone);
    zeroRows(lw.w3, D, neuronGone);
    zeroCols(lw.w2, H, neuronGone);
    for (const a of [lw.wq, lw.wk, lw.wv, lw.w1, lw.w3]) zeroCols(a, D, chGone);
    zeroRows(lw.wo, D, chGone);
    zeroRows(lw.w2, H, chGone);
    zeroCols(lw.attnNorm, D, chGone);
    zeroCols(lw.ffnNorm, D, chGone);
    return lw;
  });
  const emb = m.weights.tokenEmbedding.slice();
  zeroCols(emb, D, chGone);
  const fin = m.weights.finalNorm.slice();
  zeroCols(fin, D, chGone);
  return { config: c, weights: { tokenEmbedding: emb, layers, finalNorm: fin, classifier: null } };
}

/**
 * The float reference's logits of `a` and `b` agree within `tol` times the
 * position's largest logit (at least 1): the rescaled norm gains are rounded
 * to float32, and the residual's rounding grows with the logits' scale (up
 * to about 12 here).
 */
function expectSameLogits(a: FloatModel, b: FloatModel, ids: number[], tol: number): void {
  const ra = new ReferenceModel(a);
  const rb = new ReferenceModel(b);
  let worst = 0;
  ids.forEach((id, pos) => {
    const x = ra.forward(id, pos);
    const y = rb.forward(id, pos);
    let scale = 1;
    for (let i = 0; i < x.length; i++) scale = Math.max(scale, Math.abs(x[i]));
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / scale);
  });
  expect(worst).toBeLessThanOrEqual(tol);
}

/** Mean cross-entropy per token of `m` on the first windows of `stream`. */
function heldOutLoss(m: FloatModel, stream: Int32Array): number {
  const pass = new TransformerPass(m.config, 4, 64, jsKernels);
  const windows = validationWindows(stream, 4, 64, 4);
  const params = flatParams(m);
  return windows.reduce((s, w) => s + pass.run(params, w.inputs, w.targets, null), 0) / windows.length;
}

describe('structured pruning of stories260K to a shape', () => {
  let model: FloatModel;
  let tokenizer: TokenizerData;
  let ids: number[];
  const cal = () => ({ tokenizer, lines: train.slice(0, 100), kernels: jsKernels, seq: 128, maxWindows: 4 });

  beforeAll(async () => {
    const loaded = await loadCheckpoint(STORIES_MODEL, STORIES_TOKENIZER);
    model = loaded.model;
    tokenizer = loaded.tokenizer;
    ids = new Tokenizer(tokenizer).encode(train[3]).slice(0, 20);
    expect(model.config).toMatchObject({ dim: 64, nHeads: 8, nKvHeads: 4, nLayers: 5, hiddenDim: 172 });
  });

  it('removing layers equals skipping them (wo and w2 zeroed), and drops the lowest block influence', () => {
    const r = pruneToShape(model, { nLayers: 3 }, 'activation', cal());
    expect(r.model.config.nLayers).toBe(3);
    expect(r.report.droppedLayers.length).toBe(2);
    const worstKept = Math.min(...r.report.layerScores.filter((_, l) => !r.report.droppedLayers.includes(l)));
    for (const l of r.report.droppedLayers) expect(r.report.layerScores[l]).toBeLessThanOrEqual(worstKept);
    expectSameLogits(r.model, zeroedCopy(model, r.report), ids, 1e-5);
    const mag = pruneToShape(model, { nLayers: 4 }, 'magnitude');
    const scores = layerMagnitudeImportance(model);
    expect(mag.report.droppedLayers).toEqual([Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b])[0]]);
    expectSameLogits(mag.model, zeroedCopy(model, mag.report), ids, 1e-5);
    // block influence keeps the better model: it loses less held-out loss than the weight-norm bound
    const act = pruneToShape(model, { nLayers: 4 }, 'activation', cal());
    const test = packDocuments(splitLines(text, 'test'), tokenizer);
    expect(heldOutLoss(act.model, test)).toBeLessThan(heldOutLoss(mag.model, test));
  });

  it('removing whole kv groups and channels equals zeroing those heads and channels everywhere (norms rescaled)', () => {
    const r = pruneToShape(model, { nHeads: 6 }, 'activation', cal());
    expect(r.model.config).toMatchObject({ dim: 48, nHeads: 6, nKvHeads: 3, hiddenDim: 172, nLayers: 5 });
    expect(configProblems(r.model.config)).toEqual([]);
    checkModelShapes(r.model);
    for (let l = 0; l < 5; l++) {
      // GQA kept: each kept kv head keeps both its query heads, and only them
      expect(r.report.keptHeads[l]).toEqual(r.report.keptKvHeads[l].flatMap((g) => [2 * g, 2 * g + 1]));
    }
    expect(r.report.keptChannels.length).toBe(48);
    expectSameLogits(r.model, zeroedCopy(model, r.report), ids, 1e-5);
  });

  it('removing the same number of query heads from every group keeps every kv head', () => {
    const r = pruneToShape(model, { dim: 32, nKvHeads: 4 }, 'magnitude');
    expect(r.model.config).toMatchObject({ dim: 32, nHeads: 4, nKvHeads: 4 });
    const scores = headMagnitudeImportance(model);
    for (let l = 0; l < 5; l++) {
      expect(r.report.keptKvHeads[l]).toEqual([0, 1, 2, 3]);
      // one head per group: the one with the larger ||wo[:, h]||·||wv||
      expect(r.report.keptHeads[l]).toEqual([0, 1, 2, 3].map((g) => (scores[l][2 * g + 1] > scores[l][2 * g] ? 2 * g + 1 : 2 * g)));
    }
    const ch = channelMagnitudeImportance(model);
    const lowest = Array.from(ch.keys()).sort((a, b) => ch[a] - ch[b]).slice(0, 32);
    expect(r.report.keptChannels.some((j) => lowest.includes(j))).toBe(false);
    expectSameLogits(r.model, zeroedCopy(model, r.report), ids, 1e-5);
  });

  it('all kinds at once (layers, then heads, FFN and channels) equal the zeroed model', () => {
    const r = pruneToShape(model, { nLayers: 4, dim: 48, hiddenDim: 128 }, 'activation', cal());
    expect(r.model.config).toMatchObject({ dim: 48, nHeads: 6, nKvHeads: 3, hiddenDim: 128, nLayers: 4 });
    expectSameLogits(r.model, zeroedCopy(model, r.report), ids, 1e-5);
  });

  it('activation importance differs from magnitude', () => {
    const a = pruneToShape(model, { dim: 48 }, 'activation', cal());
    const m = pruneToShape(model, { dim: 48 }, 'magnitude');
    expect(a.report.keptChannels).not.toEqual(m.report.keptChannels);
  });

  it('refuses impossible shapes with a clear error', () => {
    const cases: [object, RegExp][] = [
      [{ dim: 36 }, /dim 36 is not a multiple of the head size 8: .*8, 16, 24, 32, 40, 48, 56, 64/],
      [{ dim: 48, nHeads: 4 }, /dim 48 and n_heads 4 disagree/],
      [{ nHeads: 5 }, /5 query heads are not whole kv groups of 2/],
      [{ nHeads: 6, nKvHeads: 2 }, /6 query heads cannot be spread over 2 kv heads/],
      [{ nLayers: 0 }, /n_layers 0 must be a whole number from 1 to 5/],
      [{ nLayers: 6 }, /n_layers 6 must be/],
      [{ hiddenDim: 200 }, /hidden_dim 200 must be/],
      [{ dim: 72 }, /dim 72 must be/],
    ];
    for (const [target, msg] of cases) expect(() => pruneToShape(model, target, 'magnitude'), JSON.stringify(target)).toThrow(msg);
    expect(() => pruneToShape(model, { nLayers: 4 }, 'activation')).toThrow(/activation importance needs a calibration text/);
  });

  describe('the C core', () => {
    let blob: string;
    beforeAll(() => {
      const r = pruneToShape(model, { nLayers: 4, dim: 48, hiddenDim: 120 }, 'magnitude');
      blob = path.join(tempDir('prune-shape'), 'shape.blob');
      writeFileSync(blob, writeBlob(r.model, tokenizer, { groupSize: 64 }).blob);
    });

    const toolchain = findQemuToolchain();
    it.runIf(toolchain.ok || process.env.CI)('runs a dim 48, 6-head, 3-kv-head, 4-layer blob bit-identically on host and under QEMU lx106', async () => {
      const images = await buildXtensa(PROJECT_ROOT);
      const args = ['-p', 'Lily and Tom', '-n', '24', '--json'];
      const host = runCore(blob, ['--arena', String(512 * 1024), ...args]);
      expect(host.status).toBe(0);
      const qemu = await runOnQemu({ elf: images.elf, blob, args });
      expect(qemu.exitCode).toBe(0);
      expect(qemu.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
      const tokens = ['--tokens', new Tokenizer(tokenizer).encode(train[0]).join(','), '--logits'];
      const hostLogits = runCore(blob, ['--arena', String(512 * 1024), ...tokens]).stdout;
      const qemuLogits = await runOnQemu({ elf: images.elf, blob, args: tokens });
      expect(hostLogits.length).toBeGreaterThan(0);
      expect(qemuLogits.stdout.equals(hostLogits)).toBe(true);
    }, 300_000);
  });
});

describe('lmflash prune --layers/--heads/--dim and --sweep', () => {
  it('refuses bad input clearly and writes nothing', async () => {
    const dir = tempDir('prune-shape-bad');
    const out = path.join(dir, 'out.blob');
    const plot = path.join(dir, 'plot.svg');
    const m = [STORIES_MODEL, '-t', STORIES_TOKENIZER, '--importance', 'magnitude'];
    const o = ['-o', out];
    const cases: [string[], RegExp][] = [
      [[...m, '--layers', '5', ...o], /--layers 5 would remove every layer: the model has 5, so remove at most 4/],
      [[...m, '--heads', '8', ...o], /--heads 8 would remove every attention head/],
      [[...m, '--heads', '3', ...o], /5 query heads are not whole kv groups of 2.*--kv-heads/],
      [[...m, '--heads', '2', '--kv-heads', '2', ...o], /6 query heads cannot be spread over 2 kv heads/],
      [[...m, '--dim', '36', ...o], /dim 36 is not a multiple of the head size 8/],
      [[...m, '--dim', '64', ...o], /--dim 64 is not smaller than the model's dim 64/],
      [[...m, '--heads', '2', '--dim', '32', ...o], /--heads 2 leaves 6 heads of 8, which is dim 48, not --dim 32/],
      [[...m, '--kv-heads', '2', ...o], /--kv-heads says how the heads .* it needs one of them/],
      [[...m, '--layers', '1'], /-o FILE is required/],
      [[...m, '--layers', '1', '--plot', plot, ...o], /--plot belongs to --sweep/],
      [[STORIES_MODEL, '-t', STORIES_TOKENIZER, '--layers', '1', ...o], /activation importance needs a calibration text/],
      [[...m, '--sweep', '--eval-text', STORIES_SAMPLES, ...o], /--sweep tries its own levels and writes no blob: drop -o/],
      [[...m, '--sweep', '--eval-text', STORIES_SAMPLES, '--ffn', '0.3'], /drop --ffn/],
      [[...m, '--sweep', '--eval-text', STORIES_SAMPLES, '--sweep-levels', '0.2,1.5'], /--sweep-levels must be fractions strictly between 0 and 1/],
      [[...m, '--sweep', '--eval-text', STORIES_SAMPLES, '--sweep-levels', '0.2,x'], /--sweep-levels must be fractions/],
      [[...m, '--sweep', '--eval-text', STORIES_SAMPLES, '--sweep-kinds', 'ffn,vocab'], /--sweep-kinds must be some of ffn, layers, width/],
      [[...m, '--sweep', '--plot', plot], /--sweep measures perplexity: give --eval-text/],
      [[...m, '--sweep', '--eval-text', path.join(dir, 'missing.txt'), '--plot', plot], /missing\.txt/],
    ];
    for (const [args, message] of cases) {
      const r = await cli('prune', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err, args.join(' ')).toMatch(message);
    }
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);

  it('prunes layers, heads and FFN neurons at once and prints the figures before and after', async () => {
    const dir = tempDir('prune-shape-cli');
    const out = path.join(dir, 'out.blob');
    const r = await cli('prune', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--layers', '1', '--heads', '2', '--ffn', '0.3', '--importance', 'magnitude',
      '--eval-text', STORIES_SAMPLES, '--eval-split', 'test', '--eval-limit', '10', '-o', out, '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.after).toMatchObject({ nLayers: 4, dim: 48, nHeads: 6, nKvHeads: 3, hiddenDim: 120, blobBytes: readFileSync(out).length });
    const pruned = readBlob(readFileSync(out)).config;
    expect(rep.after.parameters).toBe(parameterCount(pruned));
    expect(rep.after.parameters).toBe(512 * 48 + 4 * (2 * 48 + 2 * 48 * 48 + 2 * 24 * 48 + 3 * 48 * 120) + 48);
    expect(rep.after.ramBytes).toBeLessThan(rep.before.ramBytes);
    expect(rep.after.perplexity).toBeGreaterThan(rep.before.perplexity);
    expect(rep.after.tokens).toBe(rep.before.tokens);
    expect(rep.shape.droppedLayers.length).toBe(1);
    expect(rep.ffn.keptHidden).toBe(120);
    const text = await cli('prune', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--layers', '1', '--importance', 'magnitude', '-o', out);
    expect(text.out).toMatch(/layers: removed 1 of 5 \(original \d\)/);
    expect(text.out).toMatch(/ {2}layers +5 +4\n/);
  }, 120_000);

  it('--sweep measures each level with each importance and draws the plot', async () => {
    const dir = tempDir('prune-sweep');
    const plot = path.join(dir, 'sweep.svg');
    const cal = path.join(dir, 'cal.txt');
    writeFileSync(cal, train.slice(0, 20).join('\n') + '\n');
    const r = await cli('prune', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--sweep', '--sweep-levels', '0.35,0.3', '--sweep-kinds', 'ffn,layers',
      '--calibrate', cal, '--eval-text', STORIES_SAMPLES, '--eval-split', 'test', '--eval-limit', '5', '--plot', plot, '--json');
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out);
    // ffn: 2 levels × 2 importances, in increasing order; layers: 0.3 and 0.35 both drop 2 of 5 (counted once)
    expect(rep.points.map((p: { kind: string; importance: string; level: number }) => `${p.kind} ${p.importance} ${p.level}`)).toEqual([
      'ffn activation 0.3', 'ffn activation 0.35', 'ffn magnitude 0.3', 'ffn magnitude 0.35', 'layers activation 0.3', 'layers magnitude 0.3',
    ]);
    for (const p of rep.points) {
      expect(p.blobBytes).toBeLessThan(rep.unpruned.blobBytes);
      expect(p.perplexity).toBeGreaterThan(rep.unpruned.perplexity);
      expect(p.recoveredPerplexity).toBe(null);
    }
    // the ffn 30 % point is the blob `prune --ffn 0.3` writes
    expect(rep.points[2]).toMatchObject({ shape: { hiddenDim: 120 }, blobBytes: 237312 });
    const svg = readFileSync(plot, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('FFN neurons, activation');
    expect(svg).toContain('layers, magnitude');
    expect((svg.match(/<circle/g) ?? []).length).toBe(6 + 4); // every point, plus the unpruned start of each line
    expect(readdirSync(dir).sort()).toEqual(['cal.txt', 'sweep.svg']);
  }, 180_000);

  it('--sweep of an int4 blob measures int4 blobs, as `prune` writes them', async () => {
    const dir = tempDir('prune-sweep-q4');
    const src = path.join(dir, 'q4.blob');
    writeFileSync(src, (await convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { bits: 4, embeddingBits: 4 })).blob);
    const r = await cli('prune', src, '--sweep', '--sweep-levels', '0.3', '--sweep-kinds', 'ffn', '--importance', 'magnitude',
      '--eval-text', STORIES_SAMPLES, '--eval-split', 'test', '--eval-limit', '3', '--json');
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.unpruned.blobBytes).toBe(readFileSync(src).length);
    expect(rep.points.length).toBe(1);
    // 30 % of the FFN neurons gone: smaller than the int4 input (an int8 rewrite would be about 1.7 times its size)
    expect(rep.points[0].blobBytes).toBeLessThan(rep.unpruned.blobBytes);
    const pruned = path.join(dir, 'ffn30.blob');
    const one = await cli('prune', src, '--ffn', '0.3', '--importance', 'magnitude', '--eval-text', STORIES_SAMPLES, '--eval-split', 'test', '--eval-limit', '3', '-o', pruned);
    expect(one.code, one.err).toBe(0);
    expect(rep.points[0].blobBytes).toBe(readFileSync(pruned).length);
  }, 180_000);

  it('--sweep --recover measures each point before and after recovery', async () => {
    const dir = tempDir('prune-sweep-recover');
    const plot = path.join(dir, 'sweep.svg');
    const corpus = path.join(dir, 'corpus.txt');
    writeFileSync(corpus, train.slice(0, 100).join('\n') + '\n');
    const r = await cli('prune', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--sweep', '--sweep-levels', '0.4', '--sweep-kinds', 'width', '--importance', 'magnitude',
      '--recover', '--text', corpus, '--steps', '4', '--eval-text', STORIES_SAMPLES, '--eval-split', 'test', '--eval-limit', '5', '--plot', plot, '--json');
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.recoverySteps).toBe(4);
    expect(rep.points.length).toBe(1);
    const p = rep.points[0];
    expect(p.shape).toMatchObject({ dim: 32, nHeads: 4, nKvHeads: 2 });
    // magnitude-pruned to dim 32 the model is near-useless; 4 steps of distillation already help
    expect(p.recoveredPerplexity).toBeLessThan(p.perplexity);
    const svg = readFileSync(plot, 'utf8');
    expect(svg).toContain('heads + channels, magnitude, + 4 steps recovery');
    expect(svg).toContain('stroke-dasharray="6 4"');
  }, 120_000);
});
