/**
 * The figures on the KJV Bible (../shared/corpora/kjv-verses.txt):
 * one verse a line, test = 0-based line index % 10 == 0, train = the rest,
 * words by splitPunctuationLowercase (converter/ngram/pretokenize.ts), one
 * </s> a line counted. KenLM's lmplz (modified Kneser-Ney, default
 * discounts) and query on the same split give the reference perplexities.
 * Then the order-4 model that fits a 4 MB flash partition runs on the C core
 * on the host and under QEMU (lx106) with identical tokens and logits.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeNgramBlob } from '../converter/ngram/blob.js';
import { countNgrams, type NgramCounts } from '../converter/ngram/count.js';
import { wordCorpus, wordTokenizer } from '../converter/ngram/corpus.js';
import { estimateKneserNey } from '../converter/ngram/estimate.js';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { buildTrie } from '../converter/ngram/trie.js';
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { NgramLm, readNgramBlob, type NgramView } from '../src/ngram.js';
import { Tokenizer, type TokenizerData } from '../src/tokenizer.js';
import { runCore, tempDir } from './native-helpers.js';
import { PROJECT_ROOT, SHARED } from './paths.js';

/** KenLM's lmplz + query on the same split and word rule (the figures). */
const KENLM = {
  3: { incl: 47.36, excl: 45.17 },
  4: { incl: 41.46, excl: 39.53 },
  5: { incl: 39.92, excl: 38.05 },
  '4 pruned 0 0 1 1': { incl: 46.61 },
};
const TEST_TOKENS = 94_177;
const TEST_OOV = 438;
/** A 4 MB flash partition. */
const PARTITION = 4 * 1024 * 1024;
const QEMU_ARENA = 512 * 1024;

let train: string[];
let test: string[];
let counts: NgramCounts;
let tokenizer: TokenizerData;

beforeAll(() => {
  train = [];
  test = [];
  readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.length === 0) return;
      (i % 10 === 0 ? test : train).push(splitPunctuationLowercase(line));
    });
  const words = wordCorpus(train);
  tokenizer = wordTokenizer(words.words);
  counts = countNgrams(words, 5); // orders 1..5 once; a lower-order model uses the first levels
}, 60_000);

function blobFor(order: number, valueBits: number, prune?: number[]): Buffer {
  const model = estimateKneserNey({ ...counts, order, levels: counts.levels.slice(0, order) }, { prune });
  return writeNgramBlob(buildTrie(model), tokenizer, { valueBits, seqLen: 1024, prune: prune ?? [], trainingTokens: counts.tokens }).blob;
}

/** Test perplexity with and without OOVs, KenLM query's way (the scorer gives the C core's numbers). */
function perplexity(view: NgramView): { incl: number; excl: number; tokens: number; oov: number } {
  const lm = new NgramLm(view);
  const tok = new Tokenizer(view.tokenizer);
  const { eosId, unkId } = view.tokenizer;
  let nll = 0;
  let nllKnown = 0;
  let tokens = 0;
  let oov = 0;
  for (const line of test) {
    const ids = [...tok.encode(line), eosId];
    for (let p = 0; p + 1 < ids.length; p++) {
      lm.forward(ids[p], p);
      const l = lm.logit(ids[p + 1]);
      nll -= l;
      tokens++;
      if (ids[p + 1] === unkId) oov++;
      else nllKnown -= l;
    }
  }
  return { incl: Math.exp(nll / tokens), excl: Math.exp(nllKnown / (tokens - oov)), tokens, oov };
}

const figures: string[] = [];

describe('KJV perplexity against KenLM', () => {
  it.each([3, 4, 5] as const)('order %i: unquantized within 2% of lmplz/query, 8-bit within 2% of unquantized', (order) => {
    const f32 = readNgramBlob(blobFor(order, 32));
    const q8Blob = blobFor(order, 8);
    const q8 = readNgramBlob(q8Blob);
    const a = perplexity(f32);
    const b = perplexity(q8);
    figures.push(
      `order ${order}: float32 ${a.incl.toFixed(2)} / ${a.excl.toFixed(2)} (${f32.fileSize} bytes), ` +
        `8-bit ${b.incl.toFixed(2)} / ${b.excl.toFixed(2)} (${q8.fileSize} bytes); KenLM ${KENLM[order].incl} / ${KENLM[order].excl}`,
    );
    expect([a.tokens, a.oov]).toEqual([TEST_TOKENS, TEST_OOV]);
    expect(a.incl).toBeLessThanOrEqual(1.02 * KENLM[order].incl);
    expect(a.excl).toBeLessThanOrEqual(1.02 * KENLM[order].excl);
    // it is lmplz's estimate: the same to rounding
    expect(Math.abs(a.incl / KENLM[order].incl - 1)).toBeLessThan(0.001);
    expect(Math.abs(b.incl / a.incl - 1)).toBeLessThan(0.02);
    expect(Math.abs(b.excl / a.excl - 1)).toBeLessThan(0.02);
  }, 120_000);

  it('order 4 pruned as lmplz --prune 0 0 1 1: KenLM\'s perplexity and size', () => {
    const blob = blobFor(4, 8, [0, 0, 1, 1]);
    const p = perplexity(readNgramBlob(blob));
    figures.push(`order 4 --prune 0 0 1 1, 8-bit: ${p.incl.toFixed(2)} / ${p.excl.toFixed(2)} (${blob.length} bytes); KenLM ${KENLM['4 pruned 0 0 1 1'].incl}, 1.97 MB`);
    expect(p.incl).toBeLessThanOrEqual(1.02 * KENLM['4 pruned 0 0 1 1'].incl);
    expect(blob.length).toBeLessThan(2.0e6);
  }, 60_000);
});

describe('the order-4 model in a 4 MB flash partition', () => {
  let fits: string;
  let fitsView: NgramView;

  beforeAll(() => {
    const unpruned = blobFor(4, 8);
    const pruned = blobFor(4, 8, [0, 0, 0, 1]);
    fits = path.join(tempDir('kjv'), 'kjv4-prune0001.blob');
    writeFileSync(fits, pruned);
    fitsView = readNgramBlob(pruned);
    const p = perplexity(fitsView);
    figures.push(
      `order 4, 8-bit: unpruned ${unpruned.length} bytes (over ${PARTITION}); --prune 0 0 0 1: ${pruned.length} bytes, ` +
        `perplexity ${p.incl.toFixed(2)} / ${p.excl.toFixed(2)}`,
    );
    expect(unpruned.length).toBeGreaterThan(PARTITION);
    expect(pruned.length).toBeLessThanOrEqual(PARTITION);
    expect(p.incl).toBeLessThan(44);
  }, 120_000);

  it('the C core gives the TypeScript scorer\'s log-probabilities bit for bit', () => {
    const tok = new Tokenizer(fitsView.tokenizer);
    const V = fitsView.config.vocabSize;
    const seqs = test.slice(0, 6).map((l) => [...tok.encode(l), fitsView.tokenizer.eosId]);
    const r = runCore(fits, ['--tokens', seqs.map((s) => s.join(',')).join(';'), '--logits']);
    expect(r.status).toBe(0);
    const core = new Uint32Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length / 4);
    const lm = new NgramLm(fitsView);
    const row = new Float32Array(V);
    const bits = new Uint32Array(row.buffer);
    let at = 0;
    let differ = 0;
    for (const s of seqs) {
      s.forEach((id, pos) => {
        lm.forward(id, pos);
        lm.logits(row);
        for (let i = 0; i < V; i++) if (bits[i] !== core[at * V + i]) differ++;
        at++;
      });
    }
    expect(at * V).toBe(core.length);
    expect(differ).toBe(0);
  });

  const toolchain = findQemuToolchain();
  if (!toolchain.ok && !process.env.CI) console.log(`skipping the lx106 part of ${path.basename(import.meta.url)}: ${toolchain.missing.join('; ')}`);

  describe.runIf(toolchain.ok || !!process.env.CI)('on the lx106 under QEMU', () => {
    let elf: string;
    beforeAll(async () => {
      if (!toolchain.ok) throw new Error(`the Xtensa/QEMU toolchain is missing: ${toolchain.missing.join('; ')}; fix: ${toolchain.install}`);
      elf = (await buildXtensa(PROJECT_ROOT)).elf;
    }, 300_000);

    it.each([
      ['sampled', ['-p', 'and the lord said unto', '-n', '40', '-t', '0.9', '--top-p', '0.95', '-s', '1234', '--json']],
      ['greedy', ['-p', 'in the beginning', '-n', '40', '--json']],
      ['top-k with a repetition penalty', ['-p', 'jesus wept', '-n', '40', '-t', '1', '-k', '20', '--repeat-penalty', '1.3', '-s', '99', '--json']],
    ])('%s: the same tokens on the host and the lx106, in a 512 KiB arena', async (_name, args) => {
      const host = runCore(fits, ['--arena', String(QEMU_ARENA), ...args]);
      const qemu = await runOnQemu({ elf, blob: fits, args });
      expect(host.status).toBe(0);
      expect(qemu.exitCode).toBe(0);
      expect(qemu.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
      expect(JSON.parse(host.stdout.toString('utf8')).generated_tokens.length).toBeGreaterThan(0);
      const stack = Number(/stack_bytes=(\d+)/.exec(qemu.stderr)?.[1]);
      expect(stack).toBeLessThan(8192);
    }, 120_000);

    it('every logit of a teacher-forced line is identical on the host and the lx106', async () => {
      const tok = new Tokenizer(fitsView.tokenizer);
      const ids = [...tok.encode(test[3]), fitsView.tokenizer.eosId].slice(0, 12);
      const args = ['--tokens', ids.join(','), '--logits'];
      const host = runCore(fits, ['--arena', String(QEMU_ARENA), ...args]);
      const qemu = await runOnQemu({ elf, blob: fits, args });
      expect(host.stdout.length).toBe(ids.length * fitsView.config.vocabSize * 4);
      expect(qemu.stdout.equals(host.stdout)).toBe(true);
    }, 120_000);
  });

  it('prints the figures', () => {
    console.log(['KJV test split (perplexity including / excluding OOVs):', ...figures.map((f) => `  ${f}`)].join('\n'));
  });
});
