/**
 * ESP32-S3 firmware images (components/bootloader_support/include/esp_app_format.h;
 * esptool bin_image.py): a 24-byte header (magic 0xE9, segment count, SPI
 * mode, speed/size, entry, chip id 9, chip revisions, hash_appended), then
 * segments {u32 load address, u32 length, data}, zero padding so that the
 * XOR-0xEF checksum is the last byte of a 16-byte block, then, when
 * hash_appended is 1, the SHA-256 of everything before it. The same checks
 * as the boot ROM and the 2nd-stage bootloader make, so that lmflash refuses
 * an image the board would not boot before writing it.
 */
import { createHash } from 'node:crypto';
import { LmflashError } from '../src/errors.js';

export const ESP_IMAGE_MAGIC = 0xe9;
export const ESP32S3_CHIP_ID = 9;
const CHECKSUM_SEED = 0xef;
const APP_DESC_MAGIC = 0xabcd5432;

export interface EspSegment {
  address: number;
  data: Uint8Array;
}

export interface EspImage {
  chipId: number;
  entry: number;
  segments: EspSegment[];
  spiMode: number;
  spiSpeedSize: number;
  minChipRevFull: number;
  maxChipRevFull: number;
  hashAppended: boolean;
  /** Bytes the image takes (checksum and hash included). */
  length: number;
  /** From the esp_app_desc_t at the start of the first segment, when there is one. */
  app?: { projectName: string; version: string; idfVersion: string };
}

/** Where a segment may load on an ESP32-S3 (esptool's MEMORY_MAP for the S3; low addresses are esptool's padding segments). */
const S3_MEMORY: [number, number][] = [
  [0x00000000, 0x00010000],
  [0x3c000000, 0x3e000000],
  [0x3fc88000, 0x3fd00000],
  [0x40370000, 0x403e0000],
  [0x42000000, 0x44000000],
  [0x50000000, 0x50002000],
  [0x600fe000, 0x60100000],
];

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8');
}

/** Parses and verifies an image; `what` names it in errors ("the app image build/lmflash.bin"). */
export function parseEspImage(bin: Uint8Array, what = 'the image'): EspImage {
  const buf = Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength);
  const bad = (why: string) => new LmflashError(`${what} ${why}`);
  if (buf.length < 24) throw bad(`is ${buf.length} bytes, shorter than an image header`);
  if (buf[0] !== ESP_IMAGE_MAGIC) throw bad(`is not an ESP firmware image (first byte 0x${buf[0].toString(16)}, expected 0xe9)`);
  const chipId = buf.readUInt16LE(12);
  if (chipId !== ESP32S3_CHIP_ID) throw bad(`is built for chip id ${chipId}, not the ESP32-S3 (9): run \`idf.py set-target esp32s3\` and build again`);
  const count = buf[1];
  if (count === 0 || count > 16) throw bad(`has ${count} segments (1 to 16 allowed): it is corrupt`);
  const segments: EspSegment[] = [];
  let pos = 24;
  let checksum = CHECKSUM_SEED;
  for (let i = 0; i < count; i++) {
    if (pos + 8 > buf.length) throw bad(`is truncated (segment ${i} header): build it again`);
    const address = buf.readUInt32LE(pos);
    const len = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (len % 4 !== 0) throw bad(`has segment ${i} of ${len} bytes, not a multiple of 4: it is corrupt`);
    if (pos + len > buf.length) throw bad(`is truncated (segment ${i} needs ${len} bytes): build it again`);
    if (!S3_MEMORY.some(([lo, hi]) => address >= lo && address < hi && len <= hi - address))
      throw bad(`loads segment ${i} to 0x${address.toString(16)}, which is not ESP32-S3 memory`);
    const data = buf.subarray(pos, pos + len);
    for (const b of data) checksum ^= b;
    segments.push({ address, data });
    pos += len;
  }
  const csumAt = ((pos + 1 + 15) & ~15) - 1;
  if (csumAt >= buf.length) throw bad('is truncated before its checksum: build it again');
  if (buf[csumAt] !== checksum) throw bad(`fails its checksum (computed 0x${checksum.toString(16)}, stored 0x${buf[csumAt].toString(16)}): it is corrupt; build it again`);
  const hashAppended = buf[23] === 1;
  let length = csumAt + 1;
  if (hashAppended) {
    if (length + 32 > buf.length) throw bad('is truncated in its SHA-256: build it again');
    const sha = createHash('sha256').update(buf.subarray(0, length)).digest();
    if (!sha.equals(buf.subarray(length, length + 32))) throw bad('fails its SHA-256 check: it is corrupt; build it again');
    length += 32;
  }
  const image: EspImage = {
    chipId,
    entry: buf.readUInt32LE(4),
    segments,
    spiMode: buf[2],
    spiSpeedSize: buf[3],
    minChipRevFull: buf.readUInt16LE(15),
    maxChipRevFull: buf.readUInt16LE(17),
    hashAppended,
    length,
  };
  const first = segments[0]?.data;
  if (first && first.length >= 144 && Buffer.from(first).readUInt32LE(0) === APP_DESC_MAGIC) {
    image.app = { version: cString(first.subarray(16, 48)), projectName: cString(first.subarray(48, 80)), idfVersion: cString(first.subarray(112, 144)) };
  }
  return image;
}

export interface BuildImageOptions {
  entry: number;
  segments: EspSegment[];
  chipId?: number;
  /** 2 = DIO */
  spiMode?: number;
  /** low nibble speed (0xF = 80 MHz), high nibble size (1 = 2 MB) */
  spiSpeedSize?: number;
  hashAppended?: boolean;
  minChipRevFull?: number;
  maxChipRevFull?: number;
}

/** Builds an image as esptool elf2image lays it out (tests and the bench make synthetic firmware with it). */
export function buildEspImage(o: BuildImageOptions): Buffer {
  const header = Buffer.alloc(24);
  header[0] = ESP_IMAGE_MAGIC;
  header[1] = o.segments.length;
  header[2] = o.spiMode ?? 2;
  header[3] = o.spiSpeedSize ?? 0x1f;
  header.writeUInt32LE(o.entry >>> 0, 4);
  header[8] = 0xee;
  header.writeUInt16LE(o.chipId ?? ESP32S3_CHIP_ID, 12);
  header[14] = 0;
  header.writeUInt16LE(o.minChipRevFull ?? 0, 15);
  header.writeUInt16LE(o.maxChipRevFull ?? 99, 17);
  header[23] = o.hashAppended === false ? 0 : 1;
  const parts: Buffer[] = [header];
  let checksum = CHECKSUM_SEED;
  for (const s of o.segments) {
    if (s.data.length % 4 !== 0) throw new RangeError('segment lengths must be multiples of 4');
    const sh = Buffer.alloc(8);
    sh.writeUInt32LE(s.address >>> 0, 0);
    sh.writeUInt32LE(s.data.length, 4);
    parts.push(sh, Buffer.from(s.data));
    for (const b of s.data) checksum ^= b;
  }
  let body = Buffer.concat(parts);
  const padded = ((body.length + 1 + 15) & ~15) - 1;
  body = Buffer.concat([body, Buffer.alloc(padded - body.length), Buffer.from([checksum])]);
  if (o.hashAppended !== false) body = Buffer.concat([body, createHash('sha256').update(body).digest()]);
  return body;
}

/** An esp_app_desc_t (the first bytes of an app's first DROM segment). */
export function appDescription(projectName: string, version: string, idfVersion = 'v5.5.5'): Buffer {
  const d = Buffer.alloc(256);
  d.writeUInt32LE(APP_DESC_MAGIC, 0);
  d.write(version.slice(0, 31), 16);
  d.write(projectName.slice(0, 31), 48);
  d.write('00:00:00', 80);
  d.write('Jan  1 2025', 96);
  d.write(idfVersion.slice(0, 31), 112);
  return d;
}
