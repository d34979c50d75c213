/**
 * Interpolated modified Kneser-Ney, as KenLM's lmplz estimates it
 * (lm/builder: adjust_counts, initial_probabilities, interpolate):
 *
 * - adjusted counts: the highest order keeps its counts; a lower-order n-gram
 *   counts the distinct words seen before it (its left extensions), except
 *   one that starts with `<s>`, which nothing precedes: it keeps its count.
 *   `<s>` itself (never predicted) and an unseen `<unk>` count 0;
 * - three discounts per order from that order's counts of counts n1..n4
 *   (Chen & Goodman eq. 26): Y = n1 / (n1 + 2 n2), D_k = k - (k+1) Y n_{k+1} / n_k;
 * - u(w | h) = (a(h w) - D(a(h w))) / Σ_x a(h x), and the mass left over,
 *   γ(h) = Σ_x D(a(h x)) / Σ_x a(h x), goes to the shorter context:
 *   p(w | h) = u(w | h) + γ(h) p(w | h without its first word);
 * - unigrams interpolate with the uniform distribution over the vocabulary
 *   without `<s>` (so `<unk>`, never seen, gets γ(ε) / |V|);
 * - the backoff weight stored with an n-gram is its γ as a context (1 when
 *   it is no context: it ends the sentence or has no extensions).
 *
 * Pruning is lmplz's --prune: a threshold per order (non-decreasing, none for
 * unigrams) drops the n-grams of that order seen at most that many times.
 * A dropped n-gram's adjusted count joins its context's γ instead of being
 * discounted, so every distribution still sums to one, and since an n-gram
 * occurs no more often than its prefix or suffix, what is kept stays a
 * closed trie (every prefix and suffix of a kept n-gram is kept).
 */
import { LmflashError } from '../../src/errors.js';
import type { NgramCounts } from './count.js';

/** log10 probability written for `<s>`, which is never predicted (ARPA's convention). */
export const LOG10_NEVER = -99;

/** lmplz's --discount_fallback defaults, used for an order whose counts of counts cannot give discounts. */
export const FALLBACK_DISCOUNTS: readonly [number, number, number] = [0.5, 1, 1.5];

export interface ModelLevel {
  order: number;
  size: number;
  /** index of the prefix in the order below (order 1: -1) */
  prefix: Int32Array;
  word: Int32Array;
  /** index of the suffix in the order below (order 1: -1) */
  suffix: Int32Array;
  /** log10 p(word | prefix) */
  logProb: Float64Array;
  /** log10 γ(this n-gram as a context); 0 when it is none, and at the highest order */
  logBackoff: Float64Array;
}

export interface OrderStats {
  order: number;
  /** n-grams counted, and kept after pruning */
  counted: number;
  kept: number;
  /** n1..n4 of the adjusted counts */
  countsOfCounts: [number, number, number, number];
  discounts: [number, number, number];
  /** true when n1..n4 could not give discounts and lmplz's fallback was used */
  fallback: boolean;
}

export interface NgramModel {
  order: number;
  vocabSize: number;
  bos: number;
  eos: number;
  unk: number;
  levels: ModelLevel[];
  stats: OrderStats[];
}

/** lmplz's --prune list for `order`: one threshold per order, the last repeated, checked as lmplz does. */
export function pruneThresholds(prune: number[] | undefined, order: number): number[] {
  const t = Array.from({ length: order }, (_, i) => (prune && prune.length ? prune[Math.min(i, prune.length - 1)] : 0));
  if (t.some((v) => !Number.isInteger(v) || v < 0)) throw new LmflashError(`--prune takes whole numbers of at least 0, not ${prune!.join(' ')}`);
  if (t[0] !== 0) throw new LmflashError('--prune cannot drop unigrams: its first threshold must be 0 (e.g. --prune 0 0 1)');
  for (let i = 1; i < order; i++)
    if (t[i] < t[i - 1]) throw new LmflashError(`--prune thresholds must not decrease with the order (${t.join(' ')}): a longer n-gram is never seen more often than its parts`);
  return t;
}

function discountsFor(n: [number, number, number, number]): { d: [number, number, number]; fallback: boolean } {
  const [n1, n2, n3, n4] = n;
  if (n1 > 0 && n2 > 0 && n3 > 0) {
    const y = n1 / (n1 + 2 * n2);
    const d: [number, number, number] = [1 - 2 * y * (n2 / n1), 2 - 3 * y * (n3 / n2), 3 - 4 * y * (n4 / n3)];
    if (d.every((v, i) => v >= 0 && v <= i + 1)) return { d, fallback: false };
  }
  return { d: [...FALLBACK_DISCOUNTS], fallback: true };
}

export interface EstimateOptions {
  /** lmplz --prune thresholds (see pruneThresholds) */
  prune?: number[];
}

export function estimateKneserNey(c: NgramCounts, opts: EstimateOptions = {}): NgramModel {
  const N = c.order;
  const V = c.vocabSize;
  const L = c.levels;
  const thresholds = pruneThresholds(opts.prune, N);

  // -- adjusted counts
  const startsWithBos: Uint8Array[] = [];
  for (let n = 1; n <= N; n++) {
    const lv = L[n - 1];
    const sb = new Uint8Array(lv.size);
    for (let g = 0; g < lv.size; g++) sb[g] = n === 1 ? +(g === c.bos) : startsWithBos[n - 2][lv.prefix[g]];
    startsWithBos.push(sb);
  }
  const adj: Float64Array[] = [];
  for (let n = 1; n <= N; n++) {
    const lv = L[n - 1];
    if (n === N) {
      adj.push(Float64Array.from(lv.count));
    } else {
      const a = new Float64Array(lv.size);
      const up = L[n];
      for (let h = 0; h < up.size; h++) a[up.suffix[h]]++;
      const sb = startsWithBos[n - 1];
      for (let g = 0; g < lv.size; g++) if (sb[g]) a[g] = lv.count[g];
      adj.push(a);
    }
  }
  adj[0][c.bos] = 0;

  // -- pruning marks (raw counts against the order's threshold)
  const pruned: Uint8Array[] = L.map((lv, i) => {
    const p = new Uint8Array(lv.size);
    const t = thresholds[i];
    if (t > 0) for (let g = 0; g < lv.size; g++) p[g] = +(lv.count[g] <= t);
    return p;
  });

  // -- discounts from counts of counts
  const stats: OrderStats[] = [];
  const D: [number, number, number][] = [];
  for (let n = 1; n <= N; n++) {
    const cc: [number, number, number, number] = [0, 0, 0, 0];
    for (const a of adj[n - 1]) if (a >= 1 && a <= 4) cc[a - 1]++;
    const { d, fallback } = discountsFor(cc);
    D.push(d);
    let kept = 0;
    for (const p of pruned[n - 1]) kept += 1 - p;
    stats.push({ order: n, counted: L[n - 1].size, kept, countsOfCounts: cc, discounts: d, fallback });
  }
  const discount = (n: number, a: number) => (a === 0 ? 0 : D[n - 1][Math.min(a, 3) - 1]);

  // -- per context: Σ a (denominator) and the mass left to the shorter context (γ's numerator)
  // context sums of order n live on the order n-1 n-grams (order 1's single context ε separately)
  let denomRoot = 0;
  let leftRoot = 0;
  const uni = adj[0];
  for (let w = 0; w < V; w++) {
    denomRoot += uni[w];
    leftRoot += discount(1, uni[w]);
  }
  if (denomRoot === 0) throw new LmflashError('the training text has no tokens: nothing to estimate');
  const denom: Float64Array[] = [];
  const left: Float64Array[] = [];
  for (let n = 2; n <= N; n++) {
    const lv = L[n - 1];
    const a = adj[n - 1];
    const pr = pruned[n - 1];
    const dn = new Float64Array(L[n - 2].size);
    const lf = new Float64Array(L[n - 2].size);
    for (let g = 0; g < lv.size; g++) {
      dn[lv.prefix[g]] += a[g];
      lf[lv.prefix[g]] += pr[g] ? a[g] : discount(n, a[g]);
    }
    denom.push(dn);
    left.push(lf);
  }
  const gamma = (n: number, ctx: number) => {
    // γ of an order-n n-gram as the context of order n+1
    const dn = denom[n - 1][ctx];
    return dn > 0 ? left[n - 1][ctx] / dn : 1;
  };

  // -- interpolation, order by order
  const prob: Float64Array[] = [];
  const p1 = new Float64Array(V);
  const uniformShare = leftRoot / denomRoot / (V - 1); // γ(ε) / |V|, |V| without <s>
  for (let w = 0; w < V; w++) p1[w] = (uni[w] - discount(1, uni[w])) / denomRoot + uniformShare;
  prob.push(p1);
  for (let n = 2; n <= N; n++) {
    const lv = L[n - 1];
    const a = adj[n - 1];
    const lower = prob[n - 2];
    const p = new Float64Array(lv.size);
    for (let g = 0; g < lv.size; g++) {
      const ctx = lv.prefix[g];
      p[g] = (a[g] - discount(n, a[g])) / denom[n - 2][ctx] + gamma(n - 1, ctx) * lower[lv.suffix[g]];
    }
    prob.push(p);
  }

  // -- keep what survives pruning, renumbered densely
  const newId: Int32Array[] = [];
  const levels: ModelLevel[] = [];
  for (let n = 1; n <= N; n++) {
    const lv = L[n - 1];
    const pr = pruned[n - 1];
    const ids = new Int32Array(lv.size).fill(-1);
    let size = 0;
    for (let g = 0; g < lv.size; g++) if (!pr[g]) ids[g] = size++;
    newId.push(ids);
    const out: ModelLevel = {
      order: n,
      size,
      prefix: new Int32Array(size).fill(-1),
      word: new Int32Array(size),
      suffix: new Int32Array(size).fill(-1),
      logProb: new Float64Array(size),
      logBackoff: new Float64Array(size),
    };
    for (let g = 0; g < lv.size; g++) {
      const k = ids[g];
      if (k < 0) continue;
      out.word[k] = lv.word[g];
      if (n > 1) {
        out.prefix[k] = newId[n - 2][lv.prefix[g]];
        out.suffix[k] = newId[n - 2][lv.suffix[g]];
        if (out.prefix[k] < 0 || out.suffix[k] < 0) throw new Error(`internal error: pruning kept an order-${n} n-gram but not its parts`);
      }
      out.logProb[k] = n === 1 && g === c.bos ? LOG10_NEVER : Math.log10(prob[n - 1][g]);
      out.logBackoff[k] = n < N ? Math.log10(gamma(n, g)) : 0;
    }
    levels.push(out);
  }
  return { order: N, vocabSize: V, bos: c.bos, eos: c.eos, unk: c.unk, levels, stats };
}
