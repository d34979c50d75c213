/**
 * The N-gram trainer without the C core: counting, modified Kneser-Ney as
 * lmplz estimates it (every distribution sums to one, pruned or not; the
 * adjusted counts and discounts of a corpus small enough to check by hand),
 * the quantizer, the trie layout, the word tokenizer and the blob reader's
 * checks.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { writeArpa } from '../converter/ngram/arpa.js';
import { countNgrams } from '../converter/ngram/count.js';
import { wordCorpus, wordTokenizer, WORD_BOS, WORD_EOS, WORD_UNK } from '../converter/ngram/corpus.js';
import { estimateKneserNey, LOG10_NEVER, pruneThresholds, type NgramModel } from '../converter/ngram/estimate.js';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { binCenters, nearestCenter, quantizeBackoffs, quantizeProbs } from '../converter/ngram/quantize.js';
import { trainNgram } from '../converter/ngram/train.js';
import { buildTrie } from '../converter/ngram/trie.js';
import { fields, NgramLm, readNgramBlob } from '../src/ngram.js';
import { Tokenizer } from '../src/tokenizer.js';
import { SHARED } from './paths.js';

/** A small text with enough repetition for real discounts at every order. */
function corpus(lines = 400): string[] {
  const subjects = ['the king', 'a man', 'his son', 'the people', 'my lord', 'the priest', 'her daughter'];
  const verbs = ['went up to', 'spake unto', 'came into', 'looked upon', 'dwelt in', 'gave', 'took'];
  const objects = ['the city', 'the house of god', 'jerusalem', 'the land', 'them', 'the gate', 'his brethren', 'the field of ephron'];
  let seed = 7;
  const pick = <T>(xs: T[]) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return xs[seed % xs.length];
  };
  return Array.from({ length: lines }, () => `${pick(subjects)} ${pick(verbs)} ${pick(objects)} ${pick(['.', ',', ';', 'and', ':'])} ${pick(subjects)} ${pick(verbs)} ${pick(objects)} .`);
}

/** KJV verses (the shared corpus), in the tests' word rule. */
function kjv(lines: number): string[] {
  return readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').slice(0, lines).map(splitPunctuationLowercase);
}

/** log10 p(w | history) from the estimated model, the backoff way (float64). */
function scorer(m: NgramModel): (history: number[], w: number) => number {
  const V = m.vocabSize;
  const maps = m.levels.map((lv) => {
    const map = new Map<number, number>();
    for (let g = 0; g < lv.size; g++) map.set(lv.order === 1 ? lv.word[g] : lv.prefix[g] * V + lv.word[g], g);
    return map;
  });
  return (history, w) => modelLog10(m, maps, history, w);
}

function modelLog10(m: NgramModel, maps: Map<number, number>[], history: number[], w: number): number {
  const V = m.vocabSize;
  const find = (ngram: number[]) => {
    let id = ngram[0];
    for (let k = 1; k < ngram.length; k++) {
      const x = maps[k].get(id * V + ngram[k]);
      if (x === undefined) return -1;
      id = x;
    }
    return id;
  };
  const h = m.order > 1 ? history.slice(-(m.order - 1)) : [];
  for (let len = h.length; len >= 0; len--) {
    const id = find([...h.slice(h.length - len), w]);
    if (id < 0) continue;
    let lp = m.levels[len].logProb[id];
    for (let k = len + 1; k <= h.length; k++) {
      const c = find(h.slice(h.length - k));
      if (c >= 0) lp += m.levels[k - 1].logBackoff[c];
    }
    return lp;
  }
  throw new Error('unreachable: every token has a unigram');
}

/** Σ_w p(w | context) over the vocabulary without <s>, for every context the model stores (and a few it does not). */
function checkNormalized(m: NgramModel): number {
  const log10p = scorer(m);
  let worst = 0;
  const contexts: number[][] = [[]];
  for (const lv of m.levels.slice(0, m.order - 1)) {
    // rebuild each n-gram's words from the prefix chain
    const words = (n: number, g: number): number[] => (n === 1 ? [g] : [...words(n - 1, m.levels[n - 1].prefix[g]), m.levels[n - 1].word[g]]);
    for (let g = 0; g < lv.size; g += Math.max(1, Math.floor(lv.size / 40))) contexts.push(words(lv.order, g));
  }
  contexts.push([WORD_UNK], [WORD_BOS, WORD_UNK]);
  for (const ctx of contexts) {
    let sum = 0;
    for (let w = 0; w < m.vocabSize; w++) if (w !== m.bos) sum += 10 ** log10p(ctx, w);
    worst = Math.max(worst, Math.abs(sum - 1));
  }
  return worst;
}

describe('modified Kneser-Ney as lmplz', () => {
  it('adjusted counts, counts of counts and discounts of a corpus checked by hand', () => {
    // sentences: <s> a b </s>, <s> c b </s>, <s> a b </s>
    const words = wordCorpus(['a b', 'c b', 'a b']);
    const [a, b, c] = ['a', 'b', 'c'].map((w) => words.words.indexOf(w));
    const counts = countNgrams(words, 2);
    expect(counts.tokens).toBe(9); // 6 words and 3 </s>
    expect(Array.from(counts.levels[0].count)).toEqual(words.words.map((w) => ({ '<unk>': 0, '<s>': 3, '</s>': 3, a: 2, b: 3, c: 1 })[w]));
    const m = estimateKneserNey(counts);
    const modelLog10 = scorer(m);
    // unigram adjusted counts: distinct left neighbours. b: {a, c} = 2; a, c: {<s>} = 1; </s>: {b} = 1; <s> and <unk>: 0
    // -> counts of counts n1 = 3 (a, c, </s>), n2 = 1 (b): too few for discounts, lmplz's fallback
    expect(m.stats[0].countsOfCounts).toEqual([3, 1, 0, 0]);
    expect(m.stats[0].fallback).toBe(true);
    // bigrams keep raw counts: <s> a 2, <s> c 1, a b 2, c b 1, b </s> 3
    expect(m.stats[1].countsOfCounts).toEqual([2, 2, 1, 0]);
    // unigram: Σ a = 5; p(b) = (2 - D2) / 5 + γ / |V| with γ = (3·D1 + D2) / 5 and |V| = 5 (all but <s>)
    const gamma = (3 * 0.5 + 1) / 5;
    expect(10 ** m.levels[0].logProb[b]).toBeCloseTo((2 - 1) / 5 + gamma / 5, 12);
    expect(10 ** m.levels[0].logProb[WORD_UNK]).toBeCloseTo(gamma / 5, 12);
    expect(m.levels[0].logProb[WORD_BOS]).toBe(LOG10_NEVER);
    // bigram discounts from n1..n4 = 2, 2, 1, 0: Y = 1/3, D1 = 1/3, D2 = 3/2, D3+ = 3
    const [d1, d2, d3] = m.stats[1].discounts;
    expect([d1, d2, d3].map((d) => d.toFixed(6))).toEqual(['0.333333', '1.500000', '3.000000']);
    const pa = 10 ** m.levels[0].logProb[a];
    const pb = 10 ** m.levels[0].logProb[b];
    // p(b | a) = (2 - D2) / 2 + γ(a) p(b), γ(a) = D2 / 2
    expect(10 ** modelLog10([a], b)).toBeCloseTo((2 - d2) / 2 + (d2 / 2) * pb, 12);
    // c b: count 1 under context c (Σ = 1)
    expect(10 ** modelLog10([c], b)).toBeCloseTo(1 - d1 + d1 * pb, 12);
    // a word never seen after b backs off with b's γ = D3+ (b </s> has count 3) over Σ = 3
    expect(10 ** modelLog10([b], a)).toBeCloseTo((d3 / 3) * pa, 12);
  });

  it('the discounts of a real corpus come from the counts of counts (Chen & Goodman eq. 26)', () => {
    const m = estimateKneserNey(countNgrams(wordCorpus(kjv(3000)), 5));
    for (const s of m.stats) {
      const [n1, n2, n3, n4] = s.countsOfCounts;
      const y = n1 / (n1 + 2 * n2);
      expect(s.fallback).toBe(false);
      expect(s.discounts[0]).toBeCloseTo(1 - (2 * y * n2) / n1, 12);
      expect(s.discounts[1]).toBeCloseTo(2 - (3 * y * n3) / n2, 12);
      expect(s.discounts[2]).toBeCloseTo(3 - (4 * y * n4) / n3, 12);
    }
  });

  it.each([
    ['order 3', 3, undefined],
    ['order 4', 4, undefined],
    ['order 4 pruned 0 0 1 1', 4, [0, 0, 1, 1]],
    ['order 5 pruned 0 1 2', 5, [0, 1, 2]],
    ['order 1', 1, undefined],
  ] as const)('%s: every distribution sums to one', (_name, order, prune) => {
    const m = estimateKneserNey(countNgrams(wordCorpus(kjv(400)), order), { prune: prune ? [...prune] : undefined });
    expect(checkNormalized(m)).toBeLessThan(1e-9);
  });

  it('pruning drops rare n-grams of the pruned orders and keeps the trie closed', () => {
    const c = countNgrams(wordCorpus(corpus()), 4);
    const full = estimateKneserNey(c);
    const pruned = estimateKneserNey(c, { prune: [0, 0, 1, 1] });
    expect(pruned.levels[1].size).toBe(full.levels[1].size);
    for (const n of [3, 4]) {
      const lv = c.levels[n - 1];
      let kept = 0;
      for (let g = 0; g < lv.size; g++) kept += lv.count[g] > 1 ? 1 : 0;
      expect(pruned.levels[n - 1].size).toBe(kept);
    }
    // every kept n-gram's prefix and suffix are kept (the estimator throws otherwise)
    for (const lv of pruned.levels.slice(1)) for (let g = 0; g < lv.size; g++) expect(lv.suffix[g]).toBeGreaterThanOrEqual(0);
  });

  it('checks --prune as lmplz does', () => {
    expect(pruneThresholds([0, 0, 1], 5)).toEqual([0, 0, 1, 1, 1]);
    expect(pruneThresholds(undefined, 3)).toEqual([0, 0, 0]);
    expect(() => pruneThresholds([1], 2)).toThrow(/cannot drop unigrams/);
    expect(() => pruneThresholds([0, 2, 1], 3)).toThrow(/must not decrease/);
  });
});

describe('quantization (KenLM binning)', () => {
  it('cuts sorted values into equal-count bins centred on their means', () => {
    const v = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(binCenters(v, 4))).toEqual([1.5, 3.5, 5.5, 7.5]);
    expect(Array.from(binCenters(Float64Array.from([1, 2]), 4))).toEqual([1, 1, 1, 2]); // empty bins repeat
    const c = Float32Array.from([-3, -2, -1]);
    expect(nearestCenter(c, -2.4)).toBe(1);
    expect(nearestCenter(c, -2.5)).toBe(0); // tie: the lower
    expect(nearestCenter(c, 5)).toBe(2);
    expect(nearestCenter(c, -9)).toBe(0);
  });

  it('keeps backoff code 0 for exactly 0 and codes every value to its nearest center', () => {
    const values = Float64Array.from({ length: 1000 }, (_, i) => (i % 5 === 0 ? 0 : -Math.log(1 + i)));
    const b = quantizeBackoffs(values, 4);
    expect(b.centers[0]).toBe(0);
    values.forEach((v, i) => (v === 0 ? expect(b.codes[i]).toBe(0) : expect(b.codes[i]).toBeGreaterThan(0)));
    const p = quantizeProbs(values, 3);
    values.forEach((v, i) => {
      const d = Math.abs(p.centers[p.codes[i]] - v);
      for (const c of p.centers) expect(d).toBeLessThanOrEqual(Math.abs(c - v) + 1e-6);
    });
  });
});

describe('the trie', () => {
  it('sorts each order by parent then word, with pointers to contiguous runs of children', () => {
    const m = estimateKneserNey(countNgrams(wordCorpus(corpus(200)), 3));
    const t = buildTrie(m);
    expect(t[0].count).toBe(m.vocabSize);
    for (let n = 1; n < t.length; n++) {
      const parent = t[n - 1];
      const child = t[n];
      expect(parent.pointers[0]).toBe(0);
      expect(parent.pointers[parent.count]).toBe(child.count);
      for (let r = 0; r < parent.count; r++) {
        expect(parent.pointers[r + 1]).toBeGreaterThanOrEqual(parent.pointers[r]);
        for (let k = parent.pointers[r] + 1; k < parent.pointers[r + 1]; k++) expect(child.words[k]).toBeGreaterThan(child.words[k - 1]);
      }
    }
  });

  it('the blob reader gives back every value the writer stored (float32) and every code (8 bits)', () => {
    const lines = corpus(200);
    for (const quantize of [0, 8]) {
      const r = trainNgram(lines, { order: 3, quantize });
      const view = readNgramBlob(r.blob);
      const t = buildTrie(r.model);
      view.levels.forEach((lv, i) => {
        const f = fields(lv);
        expect(lv.count).toBe(t[i].count);
        for (let k = 0; k < lv.count; k++) {
          if (i > 0) expect(f.word(k)).toBe(t[i].words[k]);
          if (quantize === 0 || i === 0) expect(f.prob(k)).toBe(Math.fround(t[i].logProbs[k]));
          else expect(Math.abs(f.prob(k) - t[i].logProbs[k])).toBeLessThan(0.5);
          if (i < 2) expect(f.pointer(k)).toBe(t[i].pointers[k]);
        }
      });
    }
  });
});

describe('the N-gram blob reader', () => {
  const blob = trainNgram(corpus(100), { order: 3, quantize: 8 }).blob;
  const view = readNgramBlob(blob);
  const withCrc = (b: Buffer) => {
    b.writeUInt32LE(crc32(b.subarray(16)), 12);
    return b;
  };
  const descriptor = (order: number) => {
    const table = blob.readUInt32LE(24);
    return blob.readUInt32LE(table + 36) + 16 + 32 * (order - 1);
  };

  it('reads back the config', () => {
    expect(view.config).toMatchObject({ order: 3, vocabSize: view.tokenizer.vocabSize, seqLen: 1024, prune: [0, 0, 0] });
    expect(view.levels.map((l) => l.probBits)).toEqual([32, 8, 8]);
  });

  it('refuses broken pointers, words out of order, fields of bad widths and tables outside the section', () => {
    const d2 = descriptor(2);
    const d3 = descriptor(3);
    const bad = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(blob);
      edit(b);
      return () => readNgramBlob(withCrc(b));
    };
    expect(bad((b) => b.writeUInt32LE(b.readUInt32LE(d3) - 1, d3))).toThrow(/pointers do not cover order 3/);
    expect(bad((b) => (b[d2 + 5] = 17))).toThrow(/probability field of 17 bits/);
    expect(bad((b) => b.writeUInt32LE(blob.length, d2 + 8))).toThrow(/entries lie outside/);
    // swap the words of two siblings: the first run of children with two of them
    const lv = view.levels[1];
    const f = fields(view.levels[0]);
    let r = 0;
    while (f.pointer(r + 1) - f.pointer(r) < 2) r++;
    const k = f.pointer(r);
    expect(
      bad((b) => {
        const words = new Uint32Array(b.buffer, b.byteOffset + lv.entriesOffset, lv.entriesBytes / 4);
        const w1 = fields(lv).word(k);
        const w2 = fields(lv).word(k + 1);
        // word fields are the low bits of each entry: rewrite them in place
        const put = (row: number, w: number) => {
          const bit = row * lv.entryBits;
          for (let i = 0; i < lv.wordBits; i++) {
            const at = bit + i;
            const mask = 1 << at % 32;
            words[Math.floor(at / 32)] = ((w >> i) & 1 ? words[Math.floor(at / 32)] | mask : words[Math.floor(at / 32)] & ~mask) >>> 0;
          }
        };
        put(k, w2);
        put(k + 1, w1);
      }),
    ).toThrow(/words are not increasing/);
  });
});

describe('word tokenizer', () => {
  const words = wordCorpus(['in the beginning god created the heaven and the earth .', 'and god said , let there be light']);
  const tok = new Tokenizer(wordTokenizer(words.words));

  it('encodes whitespace-separated words as they stand, <unk> for the rest', () => {
    const ids = tok.encode('  god\tcreated light \n and  darkness ');
    expect(ids.map((id) => words.words[id])).toEqual(['<s>', 'god', 'created', 'light', 'and', '<unk>']);
    expect(tok.encode('')).toEqual([WORD_BOS]);
    expect(tok.encode('God')).toEqual([WORD_BOS, WORD_UNK]); // words exactly as they stand
  });

  it('decodes with one space between words and none after <s>', () => {
    expect(tok.decodeText(tok.encode('and god said , let there be light'))).toBe('and god said , let there be light');
    expect(tok.decodeText([WORD_EOS])).toBe('');
  });

  it('reads the control names and over-long words in the text as whitespace, as lmplz does', () => {
    const w = wordCorpus([`a <s> b </s> <unk> ${'x'.repeat(2000)} c`]);
    expect(Array.from(w.sentences[0]).map((id) => w.words[id])).toEqual(['a', 'b', 'c']);
    expect(w.skipped).toBe(4);
  });
});

describe('helpers', () => {
  it('the tests\' word rule: punctuation apart, ASCII lowercase, spaces squeezed', () => {
    expect(splitPunctuationLowercase('And God said, Let there be light: and (there) was "LIGHT"!  Don\'t-stop?')).toBe(
      'and god said , let there be light : and ( there ) was " light " ! don\'t-stop ?',
    );
    expect(splitPunctuationLowercase('ÉCOLE Ünter')).toBe('École Ünter');
  });

  it('writes an ARPA file lmplz-style', () => {
    const r = trainNgram(['a b c', 'a b d'], { order: 2, quantize: 0 });
    const words = ['<unk>', '<s>', '</s>', 'a', 'b', 'c', 'd'];
    const arpa = writeArpa(r.model, words);
    expect(arpa).toContain('\\data\\\nngram 1=7\nngram 2=');
    expect(arpa).toMatch(/\n-99\.00000\t<s>\t-?\d/);
    expect(arpa).toMatch(/\n-?\d\.\d+\ta b\n/);
    expect(arpa.trimEnd().endsWith('\\end\\')).toBe(true);
  });

  it('the TypeScript scorer gives the unquantized model\'s probabilities', () => {
    const lines = corpus(300);
    const r = trainNgram(lines, { order: 3, quantize: 0 });
    const lm = new NgramLm(readNgramBlob(r.blob));
    const tok = new Tokenizer(r.tokenizer);
    const log10p = scorer(r.model);
    const ids = [...tok.encode(lines[5]), WORD_EOS];
    ids.slice(0, -1).forEach((id, pos) => {
      lm.forward(id, pos);
      const want = log10p(ids.slice(0, pos + 1), ids[pos + 1]) * Math.LN10;
      expect(lm.logit(ids[pos + 1])).toBeCloseTo(want, 5);
    });
  });
});
