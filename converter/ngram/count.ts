/**
 * Counting the n-grams of a tokenized corpus, for every order up to N.
 *
 * Each sentence is `<s> w1 … wk </s>` and every window of 1..N tokens that
 * lies inside one sentence is an n-gram. That is the set KenLM's lmplz builds
 * (it pads with N-1 `<s>` and then folds the n-grams with `<s>` past their
 * first word into the shorter n-gram that starts at `<s>`), without the
 * padding. An n-gram gets an id per order; order 1's ids are the token ids.
 * An n-gram of order n ≥ 2 is stored as its prefix (the (n-1)-gram without
 * its last word), its last word and its suffix (the (n-1)-gram without its
 * first word): the prefix is its parent in the trie, the suffix is where its
 * probability backs off to.
 */
import { LmflashError } from '../../src/errors.js';

/** One order's n-grams, by id. */
export interface CountLevel {
  order: number;
  size: number;
  /** id of the (n-1)-gram prefix (order 1: -1). */
  prefix: Int32Array;
  /** the last token. */
  word: Int32Array;
  /** id of the (n-1)-gram suffix (order 1: -1). */
  suffix: Int32Array;
  /** occurrences in the corpus. */
  count: Float64Array;
}

export interface NgramCounts {
  order: number;
  vocabSize: number;
  bos: number;
  eos: number;
  /** the unknown-word token, or -1 when the vocabulary has none. */
  unk: number;
  /** tokens counted, sentence ends included, sentence starts not (as lmplz reports them). */
  tokens: number;
  sentences: number;
  levels: CountLevel[];
}

/**
 * Open addressing over float64 keys (exact integers below 2^53) to int32
 * values: the n-gram dictionary of one order. Keys are prefix id × V + word.
 */
export class KeyTable {
  private keys: Float64Array;
  private values: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected: number) {
    let cap = 1024;
    while (cap < expected * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
  }

  private static hash(key: number): number {
    const lo = key >>> 0;
    const hi = Math.floor(key / 4294967296) | 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** The value for key, or -1. */
  get(key: number): number {
    for (let i = KeyTable.hash(key) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.keys[i];
      if (k === key) return this.values[i];
      if (k === -1) return -1;
    }
  }

  /** Inserts key → value (the key must be absent). */
  insert(key: number, value: number): void {
    if ((this.size + 1) * 2 > this.keys.length) this.grow();
    let i = KeyTable.hash(key) & this.mask;
    while (this.keys[i] !== -1) i = (i + 1) & this.mask;
    this.keys[i] = key;
    this.values[i] = value;
    this.size++;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Float64Array(keys.length * 2).fill(-1);
    this.values = new Int32Array(keys.length * 2);
    this.mask = this.keys.length - 1;
    this.size = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== -1) this.insert(keys[i], values[i]);
  }
}

export interface CorpusTokens {
  /** every sentence's tokens, without `<s>` and `</s>` */
  sentences: ArrayLike<number>[];
  vocabSize: number;
  bos: number;
  eos: number;
  unk: number;
}

/** Counts every n-gram of orders 1..order. */
export function countNgrams(corpus: CorpusTokens, order: number): NgramCounts {
  const { vocabSize: V, bos, eos } = corpus;
  if (!Number.isInteger(order) || order < 1 || order > 5) throw new LmflashError(`--order must be 1 to 5, not ${order}`);
  // One stream: <s> w… </s> per sentence.
  let total = 0;
  for (const s of corpus.sentences) total += s.length + 2;
  const tok = new Int32Array(total);
  let t = 0;
  let tokens = 0;
  for (const s of corpus.sentences) {
    tok[t++] = bos;
    for (let i = 0; i < s.length; i++) {
      const w = s[i];
      if (!(w >= 0 && w < V) || w === bos || w === eos) throw new LmflashError(`token ${w} cannot stand inside a sentence (vocabulary of ${V}, <s> ${bos}, </s> ${eos})`);
      tok[t++] = w;
    }
    tok[t++] = eos;
    tokens += s.length + 1;
  }

  if (total * V > 2 ** 53) throw new LmflashError(`the corpus (${total} tokens) is too large for a vocabulary of ${V} in this counter`);
  const levels: CountLevel[] = [];
  // order 1: ids are token ids
  const uni = unigramLevel(new Float64Array(V));
  for (let i = 0; i < total; i++) uni.count[tok[i]]++;
  levels.push(uni);

  // at[p]: id of the (n-1)-gram starting at p, -1 where it does not fit in the sentence
  let at = Int32Array.from(tok);
  for (let n = 2; n <= order; n++) {
    const next = new Int32Array(total).fill(-1);
    const table = new KeyTable(Math.min(total, 1 << 20));
    const prefix = new Int32Array(total);
    const word = new Int32Array(total);
    const suffix = new Int32Array(total);
    const count = new Float64Array(total);
    let size = 0;
    for (let p = 0; p + n <= total; p++) {
      const parent = at[p];
      // the (n-1)-gram at p extends unless it is missing or ends the sentence
      if (parent < 0 || tok[p + n - 2] === eos) continue;
      const w = tok[p + n - 1];
      const key = parent * V + w;
      let id = table.get(key);
      if (id < 0) {
        id = size++;
        table.insert(key, id);
        prefix[id] = parent;
        word[id] = w;
        suffix[id] = at[p + 1];
      }
      count[id]++;
      next[p] = id;
    }
    levels.push({ order: n, size, prefix: prefix.slice(0, size), word: word.slice(0, size), suffix: suffix.slice(0, size), count: count.slice(0, size) });
    at = next;
  }
  return { order, vocabSize: V, bos, eos, unk: corpus.unk, tokens, sentences: corpus.sentences.length, levels };
}

/** The order-1 level: one entry per token id, in id order, with these counts. */
export function unigramLevel(count: Float64Array): CountLevel {
  const V = count.length;
  return {
    order: 1,
    size: V,
    prefix: new Int32Array(V).fill(-1),
    word: Int32Array.from({ length: V }, (_, i) => i),
    suffix: new Int32Array(V).fill(-1),
    count,
  };
}
