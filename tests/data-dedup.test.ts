/**
 * De-duplication: the hash tables, exact and repeated-segment removal, and
 * MinHash/LSH near-duplicate detection measured on the KJV.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_NEAR_DUP, ExactDedup, NearDupIndex, SegmentDedup } from '../converter/data/dedup.js';
import { HashMultimap, fmix32 } from '../converter/data/hash.js';
import { MinHasher, lshBands, shingleHashes, type ShingleSpec } from '../converter/data/minhash.js';
import { normalizeLine, wordKey, words } from '../converter/data/normalize.js';
import { SHARED } from './paths.js';

const KJV = path.join(SHARED, 'corpora/kjv-verses.txt');

/** A deterministic stream of 32-bit values (splitmix32). */
function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => fmix32((state = (state + 0x9e3779b9) >>> 0));
}

/** Exact Jaccard similarity of two sorted arrays of distinct values. */
function jaccard(a: Uint32Array, b: Uint32Array): number {
  let common = 0;
  for (let i = 0, j = 0; i < a.length && j < b.length; ) {
    if (a[i] === b[j]) common++, i++, j++;
    else if (a[i] < b[j]) i++;
    else j++;
  }
  return common / (a.length + b.length - common);
}

const shingleSet = (text: string, spec: ShingleSpec) => Uint32Array.from(new Set(shingleHashes(wordKey(text), spec))).sort();

describe('hash tables', () => {
  it('a multimap keeps every value of a key through growth', () => {
    const m = new HashMultimap(4);
    for (let i = 0; i < 5000; i++) m.add(i % 100, i);
    expect(m.size).toBe(5000);
    const valuesOf = (key: number) => {
      const values: number[] = [];
      m.some(key, (v) => (values.push(v), false));
      return values.sort((a, b) => a - b);
    };
    for (const key of [2, 57, 99]) expect(valuesOf(key)).toEqual(Array.from({ length: 50 }, (_, i) => key + 100 * i));
    // 0 marks an empty slot, so key 0 is stored as 1: its lookups also see key 1's values (callers check values)
    expect(valuesOf(0)).toEqual(expect.arrayContaining(Array.from({ length: 50 }, (_, i) => 100 * i)));
    expect(m.some(100, () => true)).toBe(false);
    expect(m.bytes).toBeLessThanOrEqual((5000 / (3 / 8)) * 8); // 8 bytes a slot, load at least 3/8
  });
});

describe('exact duplicates', () => {
  it('ignore case, punctuation and spacing, nothing else', () => {
    const d = new ExactDedup();
    expect(d.repeated(wordKey('Hello, World!'))).toBe(false);
    expect(d.repeated(wordKey('hello   world'))).toBe(true);
    expect(d.repeated(wordKey('hello worlds'))).toBe(false);
    expect(d.repeated(wordKey('world hello'))).toBe(false);
  });
});

describe('repeated segments', () => {
  it('cuts segments seen in an earlier document, not short ones and not repeats within one document', () => {
    const footer = 'Copyright 2024 the maker, all rights reserved.'; // 46 characters
    const d = new SegmentDedup(40);
    expect(d.filter(['First story.', footer, footer])).toEqual({ kept: ['First story.', footer, footer], removed: [] });
    expect(d.filter(['First story.', 'Second story.', 'COPYRIGHT 2024 the maker - all rights reserved'])).toEqual({
      kept: ['First story.', 'Second story.'], // "First story." is shorter than 40 characters
      removed: ['COPYRIGHT 2024 the maker - all rights reserved'],
    });
    const exactly40 = 'a'.repeat(19) + ' ' + 'b'.repeat(20);
    const d40 = new SegmentDedup(40);
    d40.filter([exactly40]);
    expect(d40.filter([exactly40]).removed).toEqual([exactly40]);
    const d41 = new SegmentDedup(41);
    d41.filter([exactly40]);
    expect(d41.filter([exactly40]).removed).toEqual([]);
  });
});

describe('MinHash and LSH', () => {
  it('estimates Jaccard similarity within its standard error', () => {
    const hasher = new MinHasher(128);
    const next = splitmix32(3);
    const errors: number[] = [];
    for (let trial = 0; trial < 200; trial++) {
      // two sets of 100 shingles sharing `common` of them: J = common / (200 - common)
      const common = 20 + (trial % 80);
      const shared = Uint32Array.from({ length: common }, next);
      const a = Uint32Array.from([...shared, ...Array.from({ length: 100 - common }, next)]);
      const b = Uint32Array.from([...shared, ...Array.from({ length: 100 - common }, next)]);
      const sa = hasher.signature(a);
      const sb = hasher.signature(b);
      const estimate = sa.filter((v, i) => v === sb[i]).length / 128;
      const j = common / (200 - common);
      errors.push((estimate - j) / Math.sqrt((j * (1 - j)) / 128));
    }
    const mean = errors.reduce((s, e) => s + e, 0) / errors.length;
    const rms = Math.sqrt(errors.reduce((s, e) => s + e * e, 0) / errors.length);
    expect(Math.abs(mean)).toBeLessThan(0.3); // unbiased
    expect(rms).toBeGreaterThan(0.7); // errors in standard errors: about 1
    expect(rms).toBeLessThan(1.3);
  });

  it('chooses bands that make a pair at the threshold a candidate with probability ≥ 0.99, with as many rows as allow it', () => {
    for (const t of [0.5, 0.65, 0.8, 0.9]) {
      const { bands, rows } = lshBands(128, t);
      const p = (r: number, b: number) => 1 - (1 - t ** r) ** b;
      expect(p(rows, bands), `threshold ${t}`).toBeGreaterThanOrEqual(0.99);
      expect(p(rows + 1, Math.floor(128 / (rows + 1))), `threshold ${t}`).toBeLessThan(0.99);
    }
    expect(lshBands(128, 0.65)).toEqual({ bands: 32, rows: 4 });
  });

  it('flags a lightly edited copy and keeps different text', () => {
    const index = new NearDupIndex(DEFAULT_NEAR_DUP);
    const a = 'And God saw the light, that it was good: and God divided the light from the darkness.';
    expect(index.checkAndAdd(wordKey(a))).toBeNull();
    expect(index.checkAndAdd(wordKey('And God called the light Day, and the darkness he called Night.'))).toBeNull();
    const m = index.checkAndAdd(wordKey(a.replace('divided', 'parted')));
    expect(m?.match).toBe(0);
    expect(m!.similarity).toBeGreaterThanOrEqual(DEFAULT_NEAR_DUP.threshold);
    expect(index.size).toBe(2); // a duplicate is not added
  });

  it('flags at the threshold and not above it', () => {
    const a = wordKey('And God made the firmament, and divided the waters which were under the firmament from the waters above.');
    const b = wordKey('And God made the firmament, and parted the waters which were under the firmament from the waters above.');
    const probe = new NearDupIndex({ ...DEFAULT_NEAR_DUP, threshold: 0.5 });
    probe.checkAndAdd(a);
    const s = probe.checkAndAdd(b)!.similarity;
    expect(s).toBeGreaterThan(0.7);
    const at = new NearDupIndex({ ...DEFAULT_NEAR_DUP, threshold: s });
    at.checkAndAdd(a);
    expect(at.checkAndAdd(b)?.similarity).toBe(s);
    const above = new NearDupIndex({ ...DEFAULT_NEAR_DUP, threshold: s + 0.005 });
    above.checkAndAdd(a);
    expect(above.checkAndAdd(b)).toBeNull();
  });

  /**
   * Planted near-duplicates: 500 distinct KJV verses of at least 15 words,
   * each with 5% of its words (at least one) replaced by other words drawn
   * from the KJV's vocabulary, appended after the whole corpus; the index
   * sees the 31,102 verses and then the 500 copies, with the defaults of
   * `lmflash data clean` (character 5-shingles, 128 permutations, threshold
   * 0.65).
   *
   * Recall: the share of copies flagged.
   *
   * False positive: a KJV verse flagged although its true Jaccard similarity
   * (exact, over the same shingle sets) with every earlier verse is below the
   * threshold. The KJV repeats itself ("And the LORD spake unto Moses,
   * saying,", the offerings of Numbers 7): a verse flagged because it really
   * is that similar to an earlier one is a correct detection, not a false
   * positive. The rate is over all 31,102 verses.
   */
  it('finds ≥ 95% of planted near-duplicates in the KJV with < 1% false positives', () => {
    const verses = readFileSync(KJV, 'utf8').split('\n').map(normalizeLine).filter(Boolean);
    expect(verses).toHaveLength(31_102);
    const next = splitmix32(2024);
    const vocabulary = [...new Set(verses.flatMap((v) => words(v)))];
    const long = verses.flatMap((v, i) => (words(v).length >= 15 ? [i] : []));
    const picked = new Set<number>();
    while (picked.size < 500) picked.add(long[next() % long.length]);
    const planted = [...picked].map((i) => {
      const tokens = verses[i].split(' ');
      const positions = new Set<number>();
      while (positions.size < Math.max(1, Math.round(0.05 * tokens.length))) positions.add(next() % tokens.length);
      for (const p of positions) {
        let w: string;
        do w = vocabulary[next() % vocabulary.length];
        while (w.toLowerCase() === tokens[p].toLowerCase());
        tokens[p] = w;
      }
      return tokens.join(' ');
    });

    const docs = [...verses, ...planted];
    const index = new NearDupIndex(DEFAULT_NEAR_DUP);
    const added: number[] = []; // index entry → document
    const flags = docs.map((d, i) => {
      const m = index.checkAndAdd(wordKey(d));
      if (!m) added.push(i);
      return m && added[m.match];
    });

    const recall = flags.slice(verses.length).filter((m) => m !== null).length / planted.length;
    const { threshold, shingles } = DEFAULT_NEAR_DUP;
    const sets = docs.map((d) => shingleSet(d, shingles));
    const similarToEarlier = (i: number, matched: number) => {
      if (jaccard(sets[i], sets[matched]) >= threshold) return true;
      for (let j = 0; j < i; j++) {
        // J ≥ t needs sizes within a factor t of each other: skip the rest
        const [a, b] = [sets[i].length, sets[j].length];
        if (Math.min(a, b) >= threshold * Math.max(a, b) && jaccard(sets[i], sets[j]) >= threshold) return true;
      }
      return false;
    };
    let flagged = 0;
    let falsePositives = 0;
    for (let i = 0; i < verses.length; i++) {
      if (flags[i] === null) continue;
      flagged++;
      if (!similarToEarlier(i, flags[i]!)) falsePositives++;
    }
    const fpRate = falsePositives / verses.length;
    console.log(
      `near-duplicates (char:5, 128 permutations, threshold ${threshold}): recall ${(100 * recall).toFixed(1)}% of 500 planted; ` +
        `${flagged} KJV verses flagged, ${falsePositives} false positives (${(100 * fpRate).toFixed(2)}% of 31,102)`,
    );
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expect(fpRate).toBeLessThan(0.01);
  });
});
