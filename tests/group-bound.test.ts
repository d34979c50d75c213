/**
 * The bound on a quantization group's size that keeps every integer dot
 * product below 2^31 (256 columns: 256 * 127 * 127 < 2^22), so that the
 * ESP32-S3's EE.SRS.ACCX never meets the case where Espressif's sources
 * disagree (saturate or keep the low 32 bits; docs/hardware.md). The writer,
 * the TypeScript reader and the C reader each refuse a larger group with a
 * clear error.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../converter/convert.js';
import { readBlob, SECTION_CONFIG } from '../src/blob.js';
import { crc32 } from '../src/protocol.js';
import { MAX_GROUP_SIZE } from '../src/quantize.js';
import { runCore, tempDir } from './native-helpers.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

/** A copy of a valid blob whose config says group size `g`, with a correct CRC (so only the bound can refuse it). */
function withGroupSize(blob: Buffer, g: number): Buffer {
  const b = Buffer.from(blob);
  const table = b.readUInt32LE(24), count = b.readUInt32LE(20);
  for (let i = 0; i < count; i++) {
    const e = table + 16 * i;
    if (b.readUInt32LE(e) === SECTION_CONFIG) b.writeUInt32LE(g, b.readUInt32LE(e + 4) + 28);
  }
  b.writeUInt32LE(crc32(b.subarray(16)), 12);
  return b;
}

describe('group size bound (every dot product below 2^31)', () => {
  let blob: Buffer;
  beforeAll(async () => {
    blob = (await convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { groupSize: 256 })).blob;
  });

  it('is 256 columns, where the largest possible sum 256 * 127^2 is far below 2^31', () => {
    expect(MAX_GROUP_SIZE).toBe(256);
    expect(MAX_GROUP_SIZE * 127 * 127).toBeLessThan(2 ** 31);
    expect(readBlob(blob).config.groupSize).toBe(256); // the largest allowed group converts and reads
  });

  it('the converter refuses a larger group with a clear error', async () => {
    await expect(convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { groupSize: 272 })).rejects.toThrow(/group size 272 is not allowed: use a multiple of 16 from 16 to 256/);
  });

  it('the TypeScript and C readers refuse a blob that claims a larger group', () => {
    const bad = withGroupSize(blob, 512);
    expect(() => readBlob(bad)).toThrow(/group size 512 is not allowed/);
    const file = path.join(tempDir('group-bound'), 'g512.blob');
    writeFileSync(file, bad);
    const r = runCore(file, ['-n', '1']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/group_size 512 must be a multiple of 16 up to 256 \(larger groups could overflow/);
    // the same bytes with the group size put back are accepted (the edit, not the CRC, is what fails)
    const good = path.join(tempDir('group-bound'), 'g256.blob');
    writeFileSync(good, withGroupSize(blob, 256));
    expect(runCore(good, ['-n', '1']).status).toBe(0);
  });
});
