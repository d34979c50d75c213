/**
 * N-gram figures for `npm run bench`, on the KJV Bible in the tests' split
 * and word rule (tests/ngram-kjv.test.ts): training speed, flash bytes per
 * n-gram, perplexity of the model that fits a 4 MB partition, and the C
 * core's cost per generated token on the lx106 (QEMU instruction counts, as
 * bench/xtensa.ts measures the transformer).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { trainNgram } from '../converter/ngram/train.js';
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { NgramLm, readNgramBlob } from '../src/ngram.js';
import { Tokenizer } from '../src/tokenizer.js';

export type Row = [string, string, string];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function ngramFigures(root: string, shared: string): Promise<Row[]> {
  const train: string[] = [];
  const test: string[] = [];
  readFileSync(path.join(shared, 'corpora/kjv-verses.txt'), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line) (i % 10 === 0 ? test : train).push(splitPunctuationLowercase(line));
    });
  const words = train.reduce((n, l) => n + l.split(' ').length, 0);
  const rows: Row[] = [];

  // training speed: the whole pipeline (count, estimate, prune, quantize, pack), median of 3
  const times: number[] = [];
  let fits = trainNgram(train, { order: 4, prune: [0, 0, 0, 1] });
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    fits = trainNgram(train, { order: 4, prune: [0, 0, 0, 1] });
    times.push((performance.now() - t0) / 1000);
  }
  rows.push(['N-gram training words / s', (words / median(times)).toFixed(0), `KJV train split (${words} words), order 4, --prune 0 0 0 1, 8-bit: count, estimate, quantize, pack`]);

  const full = trainNgram(train, { order: 4 });
  for (const [name, r] of [['unpruned', full], ['--prune 0 0 0 1', fits]] as const) {
    const ngrams = r.report.orders.reduce((n, o) => n + o.kept, 0);
    rows.push([`N-gram blob bytes / n-gram (${name})`, (r.blob.length / ngrams).toFixed(2), `order 4, 8-bit: ${r.blob.length} bytes for ${ngrams} n-grams (KenLM's 8-bit trie: 5.06 MB unpruned)`]);
  }

  const view = readNgramBlob(fits.blob);
  const lm = new NgramLm(view);
  const tok = new Tokenizer(view.tokenizer);
  let nll = 0;
  let n = 0;
  for (const line of test) {
    const ids = [...tok.encode(line), view.tokenizer.eosId];
    for (let p = 0; p + 1 < ids.length; p++, n++) {
      lm.forward(ids[p], p);
      nll -= lm.logit(ids[p + 1]);
    }
  }
  rows.push(['N-gram test perplexity (4 MB model)', Math.exp(nll / n).toFixed(2), `incl. OOVs, ${n} tokens; ${fits.blob.length} bytes (unpruned order 4: 41.45 in 5.06 MB; KenLM 41.46)`]);

  const tc = findQemuToolchain();
  if (!tc.ok) {
    rows.push(['N-gram lx106 instructions / token', 'n/a', `toolchain missing (${tc.install})`]);
    return rows;
  }
  const blobPath = path.join(os.tmpdir(), `lmflash-bench-kjv4-${process.pid}.blob`);
  writeFileSync(blobPath, fits.blob);
  const { elf } = await buildXtensa(root);
  // </s> banned so that every run generates all 64 tokens
  for (const [name, sampling] of [
    ['greedy', []],
    ['sampled', ['-t', '0.8', '--top-p', '0.9']],
  ] as const) {
    const r = await runOnQemu({ elf, blob: blobPath, args: ['-p', 'and the lord said', '-n', '64', '--ban', '2', ...sampling] });
    const forwards = Number(/forwards=(\d+)/.exec(r.stderr)?.[1]);
    const instructions = Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
    if (r.exitCode !== 0 || !forwards || !instructions) throw new Error(`QEMU run failed: ${r.stderr}`);
    rows.push([
      `N-gram lx106 instructions / token (${name})`,
      (instructions / forwards).toFixed(0),
      `QEMU -icount, 4 MB order-4 model, vocabulary ${view.config.vocabSize}, ${forwards} forwards: lookups and logits${name === 'sampled' ? ' plus softmax and sampling over the vocabulary' : ' plus argmax'}`,
    ]);
  }
  return rows;
}
