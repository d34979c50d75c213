/**
 * Curriculum order: shortest documents first. Sorting needs every document
 * before the first can be written, so the documents go to a spool file and
 * memory holds only each one's (length, offset): 12 bytes a document, and 4
 * more for the sort, about 160 MB for ten million. They are then read back
 * from the spool in that order.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { LineWriter } from './output.js';

export class LengthOrderSpool {
  private lengths = new Uint32Array(1024);
  private offsets = new Float64Array(1024); // a spool may pass 4 GiB
  private count = 0;

  /** `writer`: an empty spool file, which the caller removes when done. */
  constructor(private readonly writer: LineWriter) {}

  async write(doc: string): Promise<void> {
    if (this.count === this.lengths.length) this.grow();
    // Length in UTF-16 code units: about characters, and the same scale for every script (bytes would put Chinese after English).
    this.lengths[this.count] = doc.length;
    this.offsets[this.count++] = this.writer.bytes;
    await this.writer.write(doc);
  }

  /** The documents, shortest first; equal lengths in the order they were written. */
  async *shortestFirst(): AsyncGenerator<string> {
    await this.writer.close();
    const { lengths, offsets, count } = this;
    const order = Uint32Array.from({ length: count }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
    const end = (i: number) => (i + 1 < count ? offsets[i + 1] : this.writer.bytes) - 1; // without the newline
    const fd = openSync(this.writer.file, 'r');
    try {
      let buf = Buffer.alloc(1 << 16);
      for (const i of order) {
        const n = end(i) - offsets[i];
        if (n > buf.length) buf = Buffer.alloc(n);
        readSync(fd, buf, 0, n, offsets[i]);
        yield buf.toString('utf8', 0, n);
      }
    } finally {
      closeSync(fd);
    }
  }

  private grow(): void {
    const lengths = new Uint32Array(this.lengths.length * 2);
    const offsets = new Float64Array(this.offsets.length * 2);
    lengths.set(this.lengths);
    offsets.set(this.offsets);
    this.lengths = lengths;
    this.offsets = offsets;
  }
}
