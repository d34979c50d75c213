/** Mixing sources by weight and the curriculum order: deterministic from the seed, spread evenly, bounded in memory. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanCorpus, DEFAULT_CLEAN, type CleanInput } from '../converter/data/clean.js';
import { LengthOrderSpool } from '../converter/data/curriculum.js';
import { copiesOf, interleave } from '../converter/data/mix.js';
import { LineWriter } from '../converter/data/output.js';

const dir = mkdtempSync(path.join(process.env.LMFLASH_TEST_TMP ?? tmpdir(), 'data-mix-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function* from(items: string[]): AsyncGenerator<string> {
  yield* items;
}

async function collect(gen: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

/** Cleans `inputs` with default options except `extra` into a file; its lines. */
async function clean(inputs: CleanInput[], extra: Partial<typeof DEFAULT_CLEAN>, name: string): Promise<string[]> {
  const file = path.join(dir, name);
  const out = await LineWriter.create(file);
  await cleanCorpus(inputs, out, { ...DEFAULT_CLEAN, tempDir: dir, ...extra });
  await out.close();
  return readFileSync(file, 'utf8').split('\n').slice(0, -1);
}

// Two sources of 40 documents; so alike that these tests turn de-duplication off.
const a = path.join(dir, 'a.txt');
const b = path.join(dir, 'b.txt');
writeFileSync(a, Array.from({ length: 40 }, (_, i) => `Alpha document number ${i} tells of ${'many '.repeat(i % 7)}things.`).join('\n'));
writeFileSync(b, Array.from({ length: 40 }, (_, i) => `Beta story ${i}: the ${['cat', 'dog', 'owl', 'fox'][i % 4]} went home at last.`).join('\n'));

describe('weights', () => {
  it('whole weights give exact copies; fractions sample at their rate, the same for the same seed', () => {
    expect([0, 1, 2, 3].map((i) => copiesOf(3, 1, 0, i))).toEqual([3, 3, 3, 3]);
    for (const w of [0.25, 1.5, 2.7]) {
      const copies = Array.from({ length: 20_000 }, (_, i) => copiesOf(w, 7, 1, i));
      expect(copies.every((c) => c === Math.floor(w) || c === Math.ceil(w))).toBe(true);
      const mean = copies.reduce((a, b) => a + b, 0) / copies.length;
      expect(Math.abs(mean - w)).toBeLessThan(0.02); // standard error ≈ 0.0035
      expect(Array.from({ length: 20_000 }, (_, i) => copiesOf(w, 7, 1, i))).toEqual(copies);
    }
    const seed1 = Array.from({ length: 100 }, (_, i) => copiesOf(0.5, 1, 0, i));
    expect(Array.from({ length: 100 }, (_, i) => copiesOf(0.5, 2, 0, i))).not.toEqual(seed1);
    expect(Array.from({ length: 100 }, (_, i) => copiesOf(0.5, 1, 1, i))).not.toEqual(seed1); // sources sample independently
  });

  it('interleaves sources evenly by their totals', async () => {
    const taken: number[] = [];
    const a = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
    const b = ['b1', 'b2', 'b3'];
    const out = await collect(interleave([{ total: 6, docs: from(a) }, { total: 3, docs: from(b) }], (s) => taken.push(s)));
    expect(out).toEqual(['a1', 'b1', 'a2', 'a3', 'b2', 'a4', 'a5', 'b3', 'a6']);
    expect(taken.filter((s) => s === 1)).toHaveLength(3);
  });
});

describe('mixing in the pipeline', () => {
  it('up- and down-samples deterministically, with copies a whole pass apart', async () => {
    const mix = [
      { path: a, weight: 2 },
      { path: b, weight: 0.5 },
    ];
    const out = await clean(mix, { mix: true, dedup: false, seed: 5 }, 'mixed.txt');
    const alpha = out.filter((l) => l.startsWith('Alpha'));
    const beta = out.filter((l) => l.startsWith('Beta'));
    expect(alpha).toHaveLength(80);
    expect(new Set(alpha).size).toBe(40);
    expect(beta.length).toBe(Array.from({ length: 40 }, (_, i) => copiesOf(0.5, 5, 1, i)).reduce((x, y) => x + y, 0));
    expect(beta.length).toBeGreaterThan(10);
    expect(beta.length).toBeLessThan(30);
    for (const doc of alpha.slice(0, 40)) {
      const [first, second] = out.flatMap((l, i) => (l === doc ? [i] : []));
      expect(second - first).toBeGreaterThan(40); // the second copy is in the second pass
    }
    // beta is spread over the output, not a block at one end
    const betaAt = out.flatMap((l, i) => (l.startsWith('Beta') ? [i] : []));
    expect(betaAt[0]).toBeLessThan(10);
    expect(betaAt.at(-1)).toBeGreaterThan(out.length - 10);
    expect(await clean(mix, { mix: true, dedup: false, seed: 5 }, 'mixed-again.txt')).toEqual(out);
    expect(await clean(mix, { mix: true, dedup: false, seed: 6 }, 'mixed-seed6.txt')).not.toEqual(out);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]); // spools removed
  });

  it('concatenates inputs in order without --mix', async () => {
    const out = await clean([{ path: a, weight: 1 }, { path: b, weight: 1 }], { dedup: false }, 'plain.txt');
    expect(out).toHaveLength(80);
    expect(out.slice(0, 40).every((l) => l.startsWith('Alpha'))).toBe(true);
  });
});

describe('curriculum', () => {
  it('reads the spool back shortest first, ties in written order, any script', async () => {
    const spool = new LengthOrderSpool(await LineWriter.create(path.join(dir, 'spool.tmp')));
    for (const doc of ['a longer document', 'short', '中文也可以', 'tiny!', 'the longest document of them all', 'mid length']) await spool.write(doc);
    expect(await collect(spool.shortestFirst())).toEqual(['short', '中文也可以', 'tiny!', 'mid length', 'a longer document', 'the longest document of them all']);
    rmSync(path.join(dir, 'spool.tmp'));
  });

  it('orders the pipeline output by length, after mixing', async () => {
    const out = await clean([{ path: a, weight: 1 }, { path: b, weight: 1 }], { mix: true, curriculum: 'length', dedup: false }, 'curriculum.txt');
    expect(out).toHaveLength(80);
    expect(out.map((l) => l.length)).toEqual(out.map((l) => l.length).sort((x, y) => x - y));
  });
});
