/**
 * De-duplication state, bounded by the number of documents and never by
 * their length: 64-bit hashes for exact duplicates and repeated segments,
 * 8-bit MinHash signatures and LSH bucket entries for near-duplicates.
 * docs/data-cleaning.md gives the bytes per document.
 */
import { Hash64Set, HashMultimap, fmix32, hash64 } from './hash.js';
import { MinHasher, lshBands, shingleHashes, type ShingleSpec } from './minhash.js';
import { wordKey } from './normalize.js';

/** Documents whose word keys (case, punctuation and spacing ignored) are equal. */
export class ExactDedup {
  private readonly seen = new Hash64Set();

  get bytes(): number {
    return this.seen.bytes;
  }

  /** Whether an equal key came before; remembers this one. */
  repeated(key: string): boolean {
    const h = hash64(key);
    if (this.seen.has(h)) return true;
    this.seen.add(h);
    return false;
  }
}

export interface NearDupOptions {
  /** Estimated Jaccard similarity of the shingle sets at or above which a document is a near-duplicate. */
  threshold: number;
  numPerm: number;
  shingles: ShingleSpec;
}

export const DEFAULT_NEAR_DUP: NearDupOptions = { threshold: 0.65, numPerm: 128, shingles: { unit: 'char', size: 5 } };

export interface NearMatch {
  /** Which earlier document, counted from 0 in the order they were added. */
  match: number;
  similarity: number;
}

/**
 * A band bucket takes at most this many documents. A band that many
 * documents share is made of common shingles ("and the", "of the") and is
 * no evidence of near-duplication, while scanning and probing past it would
 * make the work per document grow with the corpus. A document is still filed
 * under its other bands, and a real near-duplicate agrees on several
 * (at the threshold 0.65 with 32 bands of 4 rows, 5.7 on average).
 */
const MAX_BUCKET = 32;

/** How often two different 8-bit stored minima agree anyway. */
const CHANCE = 1 / 256;

/**
 * MinHash + LSH near-duplicate index. Signatures are stored as their low 8
 * bits (b-bit MinHash, Li and König 2010): a quarter of the memory, for a
 * chance agreement of 1/256 between different minima, which the estimate
 * takes out.
 */
export class NearDupIndex {
  private readonly hasher: MinHasher;
  private readonly bands: number;
  private readonly rows: number;
  private readonly buckets = new HashMultimap();
  private signatures: Uint8Array;
  private count = 0;

  constructor(readonly options: NearDupOptions) {
    this.hasher = new MinHasher(options.numPerm);
    ({ bands: this.bands, rows: this.rows } = lshBands(options.numPerm, options.threshold));
    this.signatures = new Uint8Array(options.numPerm * 1024);
  }

  get size(): number {
    return this.count;
  }

  get bytes(): number {
    return this.signatures.byteLength + this.buckets.bytes;
  }

  /** The most similar earlier document at or above the threshold; if there is none, `key` is added and null returned. */
  checkAndAdd(key: string): NearMatch | null {
    const sig = this.hasher.signature(shingleHashes(key, this.options.shingles));
    const checked = new Set<number>();
    const open: number[] = [];
    let best: NearMatch | null = null;
    for (const band of this.bandKeys(sig)) {
      let size = 0;
      this.buckets.some(band, (doc) => {
        size++;
        if (checked.has(doc)) return false;
        checked.add(doc);
        const similarity = this.similarity(sig, doc);
        if (similarity >= this.options.threshold && (!best || similarity > best.similarity)) best = { match: doc, similarity };
        return false;
      });
      if (size < MAX_BUCKET) open.push(band);
    }
    if (best) return best;
    this.add(sig, open);
    return null;
  }

  private bandKeys(sig: Uint32Array): Uint32Array {
    const keys = new Uint32Array(this.bands);
    for (let b = 0; b < this.bands; b++) {
      let h = fmix32(b + 1); // the band number too: equal values in different bands are no evidence
      for (let r = b * this.rows; r < (b + 1) * this.rows; r++) h = fmix32(h ^ sig[r]);
      keys[b] = h;
    }
    return keys;
  }

  private similarity(sig: Uint32Array, doc: number): number {
    const n = this.options.numPerm;
    const stored = this.signatures.subarray(doc * n, (doc + 1) * n);
    let agree = 0;
    for (let p = 0; p < n; p++) if ((sig[p] & 0xff) === stored[p]) agree++;
    return Math.max(0, (agree / n - CHANCE) / (1 - CHANCE));
  }

  /** Stores the signature and files the document under `bands`. */
  private add(sig: Uint32Array, bands: number[]): void {
    const n = this.options.numPerm;
    if ((this.count + 1) * n > this.signatures.length) {
      const grown = new Uint8Array(this.signatures.length * 2);
      grown.set(this.signatures);
      this.signatures = grown;
    }
    for (let p = 0; p < n; p++) this.signatures[this.count * n + p] = sig[p] & 0xff;
    for (const band of bands) this.buckets.add(band, this.count);
    this.count++;
  }

}

/**
 * Sentences or lines repeated across documents (headers, footers, licence
 * lines, "click here to subscribe"): the first occurrence stays, later ones
 * are cut. Segments shorter than minChars are never cut, since short
 * sentences ("And God said,") recur naturally. Repeats inside one document
 * are the repeated-lines filter's business, not this one's.
 */
export class SegmentDedup {
  private readonly seen = new Hash64Set();

  constructor(readonly minChars: number) {}

  get bytes(): number {
    return this.seen.bytes;
  }

  /** Splits the segments into those kept and those seen in an earlier document; remembers these. */
  filter(segments: string[]): { kept: string[]; removed: string[] } {
    const kept: string[] = [];
    const removed: string[] = [];
    const fresh: [number, number][] = [];
    for (const s of segments) {
      const key = s.length >= this.minChars ? wordKey(s) : '';
      if (!key) {
        kept.push(s);
        continue;
      }
      const h = hash64(key);
      if (this.seen.has(h)) removed.push(s);
      else {
        kept.push(s);
        fresh.push(h);
      }
    }
    // Added only now, so that a segment repeated within this document is not cut here.
    for (const h of fresh) if (!this.seen.has(h)) this.seen.add(h);
    return { kept, removed };
  }
}
