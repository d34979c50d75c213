/**
 * MinHash signatures over word or character shingles, and the choice of LSH
 * bands. The Jaccard similarity of two shingle sets is the probability that
 * their minima under a random permutation agree, so the share of agreeing
 * signature positions estimates it (standard error about sqrt(J(1-J)/numPerm)).
 */
import { fmix32, hash32 } from './hash.js';

export interface ShingleSpec {
  unit: 'char' | 'word';
  size: number;
}

/**
 * The shingle hashes of a word key (normalize.ts wordKey). Character
 * shingles tolerate small edits best (a changed word spoils only the
 * shingles that overlap it) and need no word boundaries, which Chinese lacks.
 * A text shorter than one shingle is one shingle.
 */
export function shingleHashes(key: string, s: ShingleSpec): Uint32Array {
  if (s.unit === 'char') {
    if (key.length <= s.size) return Uint32Array.of(hash32(key));
    const out = new Uint32Array(key.length - s.size + 1);
    for (let i = 0; i < out.length; i++) out[i] = hash32(key, i, i + s.size);
    return out;
  }
  const wordHashes = key.split(' ').map((w) => hash32(w));
  const n = Math.max(1, wordHashes.length - s.size + 1);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let h = s.size;
    for (let j = i; j < Math.min(i + s.size, wordHashes.length); j++) h = fmix32(h ^ wordHashes[j]);
    out[i] = h;
  }
  return out;
}

/**
 * MinHash by one permutation hashing with optimal densification (Shrivastava,
 * ICML 2017): one hash of each shingle picks a bin and a second is the value
 * whose minimum the bin keeps; an empty bin (short documents leave many)
 * borrows the value of the first non-empty bin along a probe sequence that
 * depends only on the bin, so two documents borrow alike. Each position is
 * then a min-hash of its own, agreeing between two documents with
 * probability equal to their Jaccard similarity, as with numPerm separate
 * permutations, for O(shingles + numPerm) work instead of O(shingles × numPerm).
 */
export class MinHasher {
  constructor(readonly numPerm: number) {}

  signature(shingles: Uint32Array): Uint32Array {
    const k = this.numPerm;
    const sig = new Uint32Array(k);
    const filled = new Uint8Array(k);
    for (let i = 0; i < shingles.length; i++) {
      const bin = Math.floor((fmix32(shingles[i] ^ BIN_SALT) * k) / 2 ** 32);
      const value = fmix32(shingles[i] ^ VALUE_SALT);
      if (!filled[bin] || value < sig[bin]) sig[bin] = value;
      filled[bin] = 1;
    }
    if (shingles.length === 0) return sig; // nothing to borrow from: all zeros, equal for all empty texts
    for (let bin = 0; bin < k; bin++) {
      if (filled[bin]) continue;
      let from = bin;
      for (let attempt = 1; !filled[from]; attempt++) from = fmix32(Math.imul(bin + 1, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca77)) % k;
      sig[bin] = sig[from];
    }
    return sig;
  }
}

// Fixed salts: the same text must get the same signature in every run.
const BIN_SALT = 0x6c6d666c;
const VALUE_SALT = 0x2545f491;

/**
 * LSH: the signature is cut into `bands` bands of `rows` rows; documents
 * sharing any band become candidates, and candidates are then compared on
 * the whole signature. A pair with similarity s becomes a candidate with
 * probability 1 − (1 − s^rows)^bands. Take the most rows (fewest candidates
 * to verify) that still make a pair right at the threshold a candidate with
 * probability ≥ 0.99, so that LSH loses almost nothing the verification
 * would accept.
 */
export function lshBands(numPerm: number, threshold: number): { bands: number; rows: number } {
  for (let rows = numPerm; rows > 1; rows--) {
    const bands = Math.floor(numPerm / rows);
    if (1 - (1 - threshold ** rows) ** bands >= 0.99) return { bands, rows };
  }
  return { bands: numPerm, rows: 1 };
}
