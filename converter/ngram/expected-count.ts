/**
 * Weighted n-gram counts: the counter for a teacher's expected counts.
 *
 * Every sentence is walked as countNgrams walks it (`<s> w1 … wk </s>`, each
 * window inside one sentence), but at each position the next token may be
 * any number of candidates, each with a weight: the real next token, and the
 * teacher's likely next tokens with their probabilities. A candidate w after
 * the context `<s> w1 … wp` adds its weight to every n-gram that ends in w:
 * (w), (wp w), (wp-1 wp w), … up to the order. The real token, with weight
 * 1 and no teacher, gives exactly countNgrams' counts (tested).
 *
 * Modified Kneser-Ney needs whole counts (its discounts come from how many
 * n-grams were seen once, twice, three times). We scale and round: every
 * weight is multiplied by `scale` and each n-gram's total is rounded at the
 * end; an n-gram whose total rounds to 0 is dropped. The real token's
 * weight × scale must be at least 1, so every n-gram of the text survives;
 * then what is kept is a closed trie: an n-gram's total is at most its
 * suffix's (every candidate that adds to one adds to the other), and its
 * prefix is an n-gram of the text.
 */
import { LmflashError } from '../../src/errors.js';
import { KeyTable, unigramLevel, type CountLevel, type CorpusTokens, type NgramCounts } from './count.js';

/** A candidate next token and its weight (before scaling). */
export interface Candidate {
  token: number;
  weight: number;
}

/**
 * The candidates at position p of sentence s (p = 0: after `<s>`; p = length:
 * where `</s>` is the real next token). Must include the real token.
 */
export type CandidatesAt = (sentence: number, position: number, real: number) => Candidate[];

class GrowingLevel {
  prefix: number[] = [];
  word: number[] = [];
  suffix: number[] = [];
  total: number[] = [];
  table = new KeyTable(1 << 16);
}

/** Counts, weighted by `candidates`, scaled by `scale` and rounded (see the file comment). */
export function countExpected(corpus: CorpusTokens, order: number, candidates: CandidatesAt, scale: number): NgramCounts {
  const { vocabSize: V, bos, eos } = corpus;
  if (!Number.isInteger(order) || order < 1 || order > 5) throw new LmflashError(`--order must be 1 to 5, not ${order}`);
  if (!(scale > 0)) throw new LmflashError(`the count scale must be positive, not ${scale}`);
  const unigram = new Float64Array(V);
  const levels: GrowingLevel[] = Array.from({ length: order - 1 }, () => new GrowingLevel());
  /** id of the n-gram (order ≥ 2) ending with `word` after context id `ctx`, created when new. */
  const idOf = (n: number, ctx: number, word: number, suffix: number): number => {
    const lv = levels[n - 2];
    const key = ctx * V + word;
    let id = lv.table.get(key);
    if (id < 0) {
      id = lv.total.length;
      lv.table.insert(key, id);
      lv.prefix.push(ctx);
      lv.word.push(word);
      lv.suffix.push(suffix);
      lv.total.push(0);
    }
    return id;
  };
  let tokens = 0;
  const ctx = new Int32Array(order); // ctx[n]: id of the order-n n-gram ending at the current position (the context for order n+1)
  corpus.sentences.forEach((s, si) => {
    unigram[bos] += scale;
    ctx[1] = bos;
    let have = 1; // orders of context available: the sentence so far, <s> included
    for (let p = 0; p <= s.length; p++) {
      const real = p < s.length ? s[p] : eos;
      if (p < s.length && (!(real >= 0 && real < V) || real === bos || real === eos))
        throw new LmflashError(`token ${real} cannot stand inside a sentence (vocabulary of ${V}, <s> ${bos}, </s> ${eos})`);
      tokens++;
      let realIds: number[] = [];
      let sawReal = false;
      for (const c of candidates(si, p, real)) {
        const w = c.token;
        if (!(w >= 0 && w < V) || w === bos) throw new LmflashError(`candidate token ${w} cannot be predicted`);
        const weight = c.weight * scale;
        if (!(weight >= 0)) throw new LmflashError(`candidate weight ${c.weight} is not a non-negative number`);
        if (w === real) {
          if (weight < 1) throw new LmflashError(`the real token's weight × scale is ${weight}, below 1: raise the scale or the real-count weight`);
          sawReal = true;
        }
        if (weight === 0) continue;
        unigram[w] += weight;
        let below = w;
        const ids: number[] = [w];
        for (let n = 2; n <= Math.min(order, have + 1); n++) {
          const id = idOf(n, ctx[n - 1], w, below);
          levels[n - 2].total[id] += weight;
          ids.push(id);
          below = id;
        }
        if (w === real) realIds = ids;
      }
      if (!sawReal) throw new Error('internal error: the candidates must include the real next token');
      if (real === eos) break;
      // the real n-grams ending here are the contexts of the next position
      for (let n = 1; n < order && n <= realIds.length; n++) ctx[n] = realIds[n - 1];
      have = Math.min(order - 1, have + 1);
    }
  });
  return roundCounts(corpus, order, unigram, levels, tokens);
}

/** Rounds every total, drops the n-grams that round to 0 and renumbers the rest densely. */
function roundCounts(corpus: CorpusTokens, order: number, unigram: Float64Array, grow: GrowingLevel[], tokens: number): NgramCounts {
  const V = corpus.vocabSize;
  const uni = unigramLevel(Float64Array.from(unigram, Math.round));
  const levels: CountLevel[] = [uni];
  // unigram ids stay token ids (a token that rounds to 0 keeps its row with count 0, as an unseen token does)
  let below = Int32Array.from({ length: V }, (_, i) => i);
  for (let n = 2; n <= order; n++) {
    const g = grow[n - 2];
    const newId = new Int32Array(g.total.length).fill(-1);
    let size = 0;
    for (let i = 0; i < g.total.length; i++) if (Math.round(g.total[i]) > 0) newId[i] = size++;
    const lv: CountLevel = { order: n, size, prefix: new Int32Array(size), word: new Int32Array(size), suffix: new Int32Array(size), count: new Float64Array(size) };
    for (let i = 0; i < g.total.length; i++) {
      const k = newId[i];
      if (k < 0) continue;
      lv.prefix[k] = below[g.prefix[i]];
      lv.suffix[k] = below[g.suffix[i]];
      lv.word[k] = g.word[i];
      lv.count[k] = Math.round(g.total[i]);
      if (lv.prefix[k] < 0 || lv.suffix[k] < 0) throw new Error(`internal error: an order-${n} n-gram survived rounding without its parts`);
    }
    levels.push(lv);
    below = newId;
  }
  return { order, vocabSize: V, bos: corpus.bos, eos: corpus.eos, unk: corpus.unk, tokens, sentences: corpus.sentences.length, levels };
}
