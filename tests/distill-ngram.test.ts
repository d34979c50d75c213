/**
 * Teacher → N-gram distillation: the weighted counter reduces to the plain
 * one, and on a slice of the stories260K samples the student built from
 * the teacher's expected counts beats the N-gram trained on the slice alone,
 * on held-out lines; the student runs the same on host and under QEMU.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../converter/convert.js';
import { bpeCorpus } from '../converter/ngram/corpus.js';
import { countNgrams } from '../converter/ngram/count.js';
import { countExpected } from '../converter/ngram/expected-count.js';
import { estimateKneserNey } from '../converter/ngram/estimate.js';
import { splitLines } from '../host/commands/eval.js';
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { Tokenizer } from '../src/tokenizer.js';
import { cli } from './cli-helpers.js';
import { runCore, tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const train = splitLines(readFileSync(STORIES_SAMPLES, 'utf8'), 'train');

/** Every n-gram of a counts table as "order:tokens" → count. */
function ngramMap(c: ReturnType<typeof countNgrams>): Map<string, number> {
  const m = new Map<string, number>();
  const spell: string[][] = [];
  c.levels.forEach((lv, n) => {
    spell.push([]);
    for (let g = 0; g < lv.size; g++) {
      const s = n === 0 ? String(lv.word[g]) : `${spell[n - 1][lv.prefix[g]]} ${lv.word[g]}`;
      spell[n].push(s);
      if (lv.count[g] > 0) m.set(`${n + 1}:${s}`, lv.count[g]);
    }
  });
  return m;
}

describe('countExpected', () => {
  it('with only the real tokens at weight 1 gives exactly countNgrams', async () => {
    const { tokenizer } = await loadCheckpoint(STORIES_MODEL, STORIES_TOKENIZER);
    const corpus = bpeCorpus(train.slice(0, 30), new Tokenizer(tokenizer));
    const plain = countNgrams(corpus, 4);
    const weighted = countExpected(corpus, 4, (_s, _p, real) => [{ token: real, weight: 1 }], 1);
    expect(weighted.tokens).toBe(plain.tokens);
    expect(weighted.levels.map((l) => l.size)).toEqual(plain.levels.map((l) => l.size));
    expect(ngramMap(weighted)).toEqual(ngramMap(plain));
    // and a second candidate everywhere adds n-grams, its suffixes included
    const more = countExpected(corpus, 2, (_s, _p, real) => [{ token: real, weight: 1 }, { token: 300, weight: 0.5 }], 2);
    expect(more.levels[1].size).toBeGreaterThan(plain.levels[1].size);
    expect(more.levels[0].count[300]).toBe(2 * plain.levels[0].count[300] + plain.tokens);
  });
});

describe('estimateKneserNey discounts', () => {
  it('come from the counts of counts of the adjusted counts (raw at the top order, distinct left words below)', async () => {
    const { tokenizer } = await loadCheckpoint(STORIES_MODEL, STORIES_TOKENIZER);
    const corpus = bpeCorpus(train.slice(0, 200), new Tokenizer(tokenizer));
    const counts = countNgrams(corpus, 3);
    const m = ngramMap(counts);
    // adjusted counts spelled out independently of the estimator: the top order's and <s>-initial n-grams'
    // own counts, else the number of distinct words seen before the n-gram
    const adjusted = new Map<string, number>();
    for (const [key, c] of m) {
      const [n, spelled] = key.split(':');
      const words = spelled.split(' ');
      if (Number(n) === 3 || words[0] === String(corpus.bos)) adjusted.set(key, c);
      if (Number(n) >= 2) {
        const suffix = `${Number(n) - 1}:${words.slice(1).join(' ')}`;
        adjusted.set(suffix, (adjusted.get(suffix) ?? 0) + 1);
      }
    }
    const model = estimateKneserNey(counts);
    for (const n of [2, 3]) {
      const cc = [0, 0, 0, 0];
      for (const [key, a] of adjusted) if (key.startsWith(`${n}:`) && a >= 1 && a <= 4) cc[a - 1]++;
      expect(model.stats[n - 1].countsOfCounts).toEqual(cc);
      const [n1, n2, n3, n4] = cc;
      const y = n1 / (n1 + 2 * n2);
      const d = [1 - 2 * y * (n2 / n1), 2 - 3 * y * (n3 / n2), 3 - 4 * y * (n4 / n3)];
      model.stats[n - 1].discounts.forEach((v, i) => expect(v).toBeCloseTo(d[i], 12));
    }
  });
});

describe('lmflash distill --ngram', () => {
  const dir = tempDir('distill');
  const sliceFile = path.join(dir, 'slice.txt');
  const heldOutFile = path.join(dir, 'held-out.txt');
  const student = path.join(dir, 'student.blob');
  const baseline = path.join(dir, 'baseline.blob');

  beforeAll(() => {
    writeFileSync(sliceFile, train.slice(0, 80).join('\n') + '\n');
    writeFileSync(heldOutFile, train.slice(80, 110).join('\n') + '\n');
  });

  it('beats the N-gram trained on the same text alone, on held-out lines', async () => {
    const d = await cli('distill', '--teacher', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--ngram', '--order', '3', '--text', sliceFile, '-o', student);
    expect(d.err).toBe('');
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/positions of 80 lines on the C core/);
    const b = await cli('train', 'ngram', sliceFile, '--order', '3', '--tokenizer', STORIES_TOKENIZER, '-o', baseline);
    expect(b.code).toBe(0);
    const ppl = async (blob: string) => {
      const r = await cli('eval', blob, '--text', heldOutFile, '--json');
      expect(r.code).toBe(0);
      return JSON.parse(r.out) as { perplexity: number; tokens: number };
    };
    const s = await ppl(student);
    const t = await ppl(baseline);
    expect(s.tokens).toBe(t.tokens);
    expect(s.perplexity).toBeLessThan(t.perplexity * 0.97);
  }, 120_000);

  it('at order 2 takes the weight chosen for order 2 and is not worse than the text-only bigram', async () => {
    const out = path.join(dir, 'student-2.blob');
    const d = await cli('distill', '--teacher', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--ngram', '--order', '2', '--text', sliceFile, '-o', out);
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/teacher tokens × 0\.1 \+ real token × 0\.9/);
    const base = path.join(dir, 'baseline-2.blob');
    expect((await cli('train', 'ngram', sliceFile, '--order', '2', '--tokenizer', STORIES_TOKENIZER, '-o', base)).code).toBe(0);
    const ppl = async (blob: string) => JSON.parse((await cli('eval', blob, '--text', heldOutFile, '--json')).out).perplexity as number;
    expect(await ppl(out)).toBeLessThanOrEqual(await ppl(base));
  }, 120_000);

  it('builds a student from teacher samples alone, better with more samples', async () => {
    const fromSamples = async (k: number) => {
      const out = path.join(dir, `sampled-${k}.blob`);
      const d = await cli('distill', '--teacher', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--ngram', '--order', '2', '--samples', String(k), '--sample-steps', '128', '-o', out);
      expect(d.err).toBe('');
      expect(d.out).toMatch(new RegExp(`${k} teacher samples: \\d+ sentences`));
      const r = await cli('eval', out, '--text', heldOutFile, '--json');
      return JSON.parse(r.out).perplexity as number;
    };
    const few = await fromSamples(3);
    const more = await fromSamples(24);
    expect(few).toBeLessThan(512 / 2); // better than the uniform guess over tok512
    expect(more).toBeLessThan(few * 0.7);
  }, 60_000);

  const toolchain = findQemuToolchain();
  it.runIf(toolchain.ok || process.env.CI)('the student runs bit-identically on host and under QEMU lx106', async () => {
    expect(existsSync(student)).toBe(true);
    const images = await buildXtensa(PROJECT_ROOT);
    const args = ['-p', 'Once upon a time', '-n', '32', '-t', '0.8', '-s', '7', '--json'];
    const host = runCore(student, ['--arena', String(512 * 1024), ...args]);
    const qemu = await runOnQemu({ elf: images.elf, blob: student, args });
    expect(host.status).toBe(0);
    expect(qemu.exitCode).toBe(0);
    expect(qemu.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
  }, 300_000);

  it('refuses bad input clearly and writes nothing', async () => {
    const bad = tempDir('distill-bad');
    const out = path.join(bad, 'out.blob');
    const base = ['distill', '--teacher', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', out];
    const cases: [string[], RegExp][] = [
      [[...base, '--text', sliceFile], /say how long to train: --steps N or --minutes M/], // without --ngram the student is a transformer
      [[...base, '--ngram'], /--text CORPUS, --samples K/],
      [[...base, '--ngram', '--text', path.join(bad, 'missing.txt')], /missing\.txt/],
      [[...base, '--ngram', '--text', sliceFile, '--teacher-weight', '1.5'], /from 0 to below 1/],
      [[...base, '--ngram', '--text', sliceFile, '--order', '9'], /1 to 5/],
      [['distill', '--teacher', sliceFile, '--ngram', '--text', sliceFile, '-o', out], /--tokenizer is required|slice\.txt/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(...args);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(message);
    }
    expect(readdirSync(bad)).toEqual([]);
  }, 60_000);
});
