/**
 * Teacher → N-gram on the stories260K samples, the figures of
 * docs/distill-prune.md: `npm run build && nice node dist/bench/distill-ngram.js`.
 *
 * The teacher's top-64 is computed once on the train split (C core). The
 * top-k (on order 3) and the teacher weight of every order are chosen on a dev part of the train split
 * (line index % 10 == 5, left out of training while choosing), never on the
 * test split; then students and text-only N-grams are trained on the whole
 * train split and scored on the test split (index % 10 == 0) by lmflash
 * eval's scorer.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAnyModel } from '../converter/convert.js';
import { bpeCorpus } from '../converter/ngram/corpus.js';
import { estimateTeacherNgram, type TeacherTopK } from '../converter/ngram/distill.js';
import { trainNgram } from '../converter/ngram/train.js';
import { teacherTopK } from '../host/commands/distill.js';
import { evaluate } from '../host/commands/eval.js';
import { projectRoot } from '../host/native.js';
import { Tokenizer } from '../src/tokenizer.js';

const shared = path.resolve(projectRoot(), '../shared');
const SAMPLES = path.join(shared, 'corpora/stories260K-samples.txt');
const K_MAX = 64;

function topKPrefix(t: TeacherTopK, k: number): TeacherTopK {
  const ids = new Int32Array(t.positions * k);
  const probs = new Float32Array(t.positions * k);
  for (let p = 0; p < t.positions; p++) {
    ids.set(t.ids.subarray(p * K_MAX, p * K_MAX + k), p * k);
    probs.set(t.probs.subarray(p * K_MAX, p * K_MAX + k), p * k);
  }
  return { ids, probs, positions: t.positions };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmflash-bench-distill-'));
  const teacher = await loadAnyModel(path.join(shared, 'models/stories260K.bin'), path.join(shared, 'models/tok512.bin'));
  const tok = teacher.tokenizer;
  const all = readFileSync(SAMPLES, 'utf8').split('\n').map((l) => l.replace(/\r$/, ''));
  const indexed = all.map((line, i) => ({ line, i })).filter((x) => x.line.length > 0);
  const train = indexed.filter((x) => x.i % 10 !== 0);
  const test = indexed.filter((x) => x.i % 10 === 0).map((x) => x.line);
  const file = (name: string, lines: string[]) => {
    const f = path.join(dir, name);
    writeFileSync(f, lines.join('\n') + '\n');
    return f;
  };
  const testFile = file('test.txt', test);
  const devFile = file('dev.txt', train.filter((x) => x.i % 10 === 5).map((x) => x.line));
  const blobFile = path.join(dir, 'teacher.blob');
  writeFileSync(blobFile, teacher.blob);

  const corpus = bpeCorpus(train.map((x) => x.line), new Tokenizer(tok));
  const t0 = performance.now();
  const top = await teacherTopK(blobFile, corpus.sentences, tok, teacher.model.config.seqLen, K_MAX);
  const secs = (performance.now() - t0) / 1000;
  const positions = top.reduce((n, t) => n + t.positions, 0);
  console.log(`teacher top-${K_MAX}: ${positions} positions in ${secs.toFixed(1)} s on the C core (${Math.round(positions / secs)} positions/s)`);

  const ppl = async (blob: Buffer, textFile: string) => {
    const f = path.join(dir, 'm.blob');
    writeFileSync(f, blob);
    return (await evaluate(f, textFile, { split: 'all' })).perplexity;
  };
  const notDev = train.map((x, j) => ({ x, j })).filter(({ x }) => x.i % 10 !== 5).map(({ j }) => j);
  const devCorpus = { ...corpus, sentences: notDev.map((j) => corpus.sentences[j]) };
  // top-k on order 3 (k × α), then the teacher weight α of every order at that k, all on dev
  const ALPHAS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.85];
  const devPpl = async (order: number, k: number, alpha: number) => {
    const devTop = notDev.map((j) => topKPrefix(top[j], k));
    const { blob } = estimateTeacherNgram(devCorpus, devTop, [], tok, { order, topK: k, teacherWeight: alpha, scale: 10 });
    return ppl(blob, devFile);
  };
  const baseDev = async (order: number) => ppl(trainNgram(notDev.map((j) => train[j].line), { order, tokenizer: tok }).blob, devFile);
  let bestK = { k: 16, ppl: Infinity };
  console.log(`dev (order 3): text-only ${(await baseDev(3)).toFixed(4)}`);
  for (const k of [4, 16, 64])
    for (const alpha of [0.25, 0.5, 0.75]) {
      const p = await devPpl(3, k, alpha);
      console.log(`dev (order 3): top-${k}, teacher weight ${alpha}: ${p.toFixed(4)}`);
      if (p < bestK.ppl) bestK = { k, ppl: p };
    }
  const k = bestK.k;
  console.log(`chosen on dev: top-${k}`);
  const fullTop = top.map((t) => topKPrefix(t, k));
  for (const n of [2, 3, 4]) {
    console.log(`dev (order ${n}): text-only ${(await baseDev(n)).toFixed(4)}`);
    let best = { alpha: 0.5, ppl: Infinity };
    for (const alpha of ALPHAS) {
      const p = await devPpl(n, k, alpha);
      console.log(`dev (order ${n}): top-${k}, teacher weight ${alpha}: ${p.toFixed(4)}`);
      if (p < best.ppl) best = { alpha, ppl: p };
    }
    console.log(`chosen on dev for order ${n}: teacher weight ${best.alpha}`);
    const base = trainNgram(train.map((x) => x.line), { order: n, tokenizer: tok });
    const student = estimateTeacherNgram(corpus, fullTop, [], tok, { order: n, topK: k, teacherWeight: best.alpha, scale: 10 });
    const pb = await ppl(base.blob, testFile);
    const ps = await ppl(student.blob, testFile);
    console.log(
      `test, order ${n}: text-only ${pb.toFixed(4)} (${base.blob.length} bytes), teacher student (weight ${best.alpha}) ${ps.toFixed(4)} (${student.blob.length} bytes): ${((100 * (pb - ps)) / pb).toFixed(1)}% lower`,
    );
  }
}

await main();
