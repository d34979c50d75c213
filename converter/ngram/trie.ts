/**
 * The estimated model as the blob stores it: per order, the n-grams sorted
 * by parent (their prefix's position in the order below) and then by last
 * word, so that the children of one n-gram — every word that follows it —
 * form one contiguous, word-sorted run of the next order. Each n-gram below
 * the highest order holds a pointer to where its children start; the next
 * entry's pointer is where they end (a sentinel entry closes each order).
 * Values are natural logs: the core adds them as they are.
 */
import type { NgramModel } from './estimate.js';

export interface TrieLevel {
  order: number;
  count: number;
  /** last word of each n-gram, in trie order */
  words: Uint32Array;
  /** ln p(word | prefix) */
  logProbs: Float64Array;
  /** ln γ as a context (orders below the highest; else empty) */
  logBackoffs: Float64Array;
  /** start of each n-gram's children in the next order, plus the end: count + 1 entries (empty at the highest order) */
  pointers: Uint32Array;
}

/** Stable counting sort of ids by key (0 <= key < range). */
function countingSort(ids: Int32Array, key: (id: number) => number, range: number): Int32Array {
  const start = new Int32Array(range + 1);
  for (let i = 0; i < ids.length; i++) start[key(ids[i]) + 1]++;
  for (let k = 0; k < range; k++) start[k + 1] += start[k];
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[start[key(ids[i])]++] = ids[i];
  return out;
}

export function buildTrie(model: NgramModel): TrieLevel[] {
  const N = model.order;
  const levels: TrieLevel[] = [];
  let rank = new Int32Array(0); // position in trie order of each model id, for the order below
  for (let n = 1; n <= N; n++) {
    const lv = model.levels[n - 1];
    let order: Int32Array;
    if (n === 1) {
      // unigrams: one entry per token id, in id order
      order = new Int32Array(model.vocabSize);
      for (let id = 0; id < lv.size; id++) order[lv.word[id]] = id;
    } else {
      const ids = Int32Array.from({ length: lv.size }, (_, i) => i);
      const parentRank = rank;
      order = countingSort(countingSort(ids, (id) => lv.word[id], model.vocabSize), (id) => parentRank[lv.prefix[id]], levels[n - 2].count);
    }
    const count = order.length;
    const words = new Uint32Array(count);
    const logProbs = new Float64Array(count);
    const logBackoffs = new Float64Array(n < N ? count : 0);
    const nextRank = new Int32Array(count);
    for (let r = 0; r < count; r++) {
      const id = order[r];
      nextRank[id] = r;
      words[r] = lv.word[id];
      logProbs[r] = lv.logProb[id] * Math.LN10;
      if (n < N) logBackoffs[r] = lv.logBackoff[id] * Math.LN10;
    }
    levels.push({ order: n, count, words, logProbs, logBackoffs, pointers: new Uint32Array(0) });
    if (n > 1) {
      // the parent order's pointers: where each parent's run of children starts
      const parent = levels[n - 2];
      const ptr = new Uint32Array(parent.count + 1);
      for (let id = 0; id < lv.size; id++) ptr[rank[lv.prefix[id]] + 1]++;
      for (let r = 0; r < parent.count; r++) ptr[r + 1] += ptr[r];
      parent.pointers = ptr;
    }
    rank = nextRank;
  }
  return levels;
}
