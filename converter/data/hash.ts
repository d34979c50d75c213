/**
 * Hashing and the compact tables that keep de-duplication state bounded:
 * 32- and 64-bit keys in typed arrays, never the documents themselves.
 */
import { createHash } from 'node:crypto';

/** MurmurHash3's finalizer: a bijection on 32 bits that spreads every input bit over the output. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A fast 32-bit hash of s[start, end): for shingles, where a rare collision only blurs an estimate. */
export function hash32(s: string, start = 0, end = s.length): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h ^ (end - start));
}

/**
 * A 64-bit hash as two 32-bit halves, for exact-duplicate keys: a collision
 * would silently drop a document, so use a real digest (among 10^8 keys the
 * chance of any collision is below 10^-3).
 */
export function hash64(s: string): [number, number] {
  const d = createHash('md5').update(s).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

/**
 * A multimap from 32-bit keys to 32-bit values with open addressing in two
 * typed arrays: 8 bytes a slot, 11 to 21 bytes an entry at a load between
 * 3/8 and 3/4, instead of the ~80 bytes a JavaScript Map entry costs (and
 * without Map's 2^24-entry limit).
 */
export class HashMultimap {
  private keys: Uint32Array;
  private values: Uint32Array;
  private count = 0;

  constructor(initialSlots = 1 << 12) {
    this.keys = new Uint32Array(initialSlots);
    this.values = new Uint32Array(initialSlots);
  }

  get size(): number {
    return this.count;
  }

  get bytes(): number {
    return this.keys.byteLength + this.values.byteLength;
  }

  /** Adds a value under `key`. Key 0 is stored as 1 (0 marks an empty slot), so their lookups see each other's values. */
  add(key: number, value: number): void {
    if (4 * (this.count + 1) > 3 * this.keys.length) this.grow();
    this.place(key >>> 0 || 1, value); // key 0 marks an empty slot
    this.count++;
  }

  /** Calls `visit` with each value stored under `key` until it returns true; whether it did. */
  some(key: number, visit: (value: number) => boolean): boolean {
    const k = key >>> 0 || 1;
    const mask = this.keys.length - 1;
    for (let i = k & mask; this.keys[i] !== 0; i = (i + 1) & mask) {
      if (this.keys[i] === k && visit(this.values[i])) return true;
    }
    return false;
  }

  private place(key: number, value: number): void {
    const mask = this.keys.length - 1;
    let i = key & mask;
    while (this.keys[i] !== 0) i = (i + 1) & mask;
    this.keys[i] = key;
    this.values[i] = value;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Uint32Array(keys.length * 2);
    this.values = new Uint32Array(values.length * 2);
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.place(keys[i], values[i]);
  }
}

/** A set of 64-bit hashes (see hash64) in a HashMultimap: 11 to 21 bytes a member. */
export class Hash64Set {
  private readonly table = new HashMultimap();

  get bytes(): number {
    return this.table.bytes;
  }

  has([hi, lo]: [number, number]): boolean {
    return this.table.some(hi, (v) => v === lo);
  }

  add([hi, lo]: [number, number]): void {
    this.table.add(hi, lo);
  }
}
