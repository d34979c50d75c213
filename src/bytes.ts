/**
 * Little helpers for reading and writing little-endian binary files. lmflash's
 * file formats are little-endian and we copy typed arrays byte for byte, so a
 * big-endian host would silently corrupt everything: refuse it up front.
 */
import { endianness } from 'node:os';

if (endianness() !== 'LE') {
  throw new Error('lmflash needs a little-endian host (its file formats are little-endian)');
}

/** A DataView over exactly the bytes of `buf` (which may be a slice of a larger ArrayBuffer). */
export function dataView(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Copies `count` float32 values starting at `offset` (any alignment) into a fresh array. */
export function copyF32(buf: Uint8Array, offset: number, count: number): Float32Array {
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(buf.subarray(offset, offset + count * 4));
  return out;
}

/** Copies `count` uint32 values starting at `offset` into a fresh array. */
export function copyU32(buf: Uint8Array, offset: number, count: number): Uint32Array {
  const out = new Uint32Array(count);
  new Uint8Array(out.buffer).set(buf.subarray(offset, offset + count * 4));
  return out;
}

/** Bytes of a typed array (a view, no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Rounds `n` up to a multiple of `align` (a power of two or any positive integer). */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}
