/**
 * ESP-IDF partition tables (components/partition_table/gen_esp32part.py,
 * bootloader_support/include/esp_flash_partitions.h): the binary at 0x8000
 * (32-byte entries `<2sBBLL16sL` with magic AA 50, then an MD5 entry EB EB +
 * 14×FF + MD5 of the entries before it, padded with FF to 0xC00 bytes), the
 * CSV it is made from, and where lmflash keeps models in it.
 */
import { createHash } from 'node:crypto';
import { LmflashError } from '../src/errors.js';

export const PARTITION_TABLE_OFFSET = 0x8000;
export const PARTITION_TABLE_SIZE = 0xc00;
const ENTRY = 32;
const MAGIC = 0x50aa;
const MD5_MAGIC = 0xebeb;

/** The partition the firmware runs the model from (firmware/esp32s3/main/model_partition.h). */
export const MODEL_PARTITION = { label: 'model', type: 0x40, subtype: 0x00 } as const;

export interface Partition {
  label: string;
  type: number;
  subtype: number;
  offset: number;
  size: number;
  flags: number;
}

/** Parses and checks a partition table binary (its MD5 included, when it has one). */
export function parsePartitionTable(bin: Uint8Array, where = 'the partition table'): Partition[] {
  const buf = Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength);
  const parts: Partition[] = [];
  for (let i = 0; i + ENTRY <= Math.min(buf.length, PARTITION_TABLE_SIZE); i += ENTRY) {
    const magic = buf.readUInt16LE(i);
    if (magic === 0xffff) break;
    if (magic === MD5_MAGIC) {
      const md5 = createHash('md5').update(buf.subarray(0, i)).digest();
      if (!buf.subarray(i + 2, i + 16).every((b) => b === 0xff) || !md5.equals(buf.subarray(i + 16, i + 32))) {
        throw new LmflashError(`${where} fails its MD5 check: it is corrupt; rebuild the firmware (\`idf.py build\`) or flash it again`);
      }
      continue;
    }
    if (magic !== MAGIC) throw new LmflashError(`${where} is not a partition table (entry ${i / ENTRY} has magic 0x${magic.toString(16)}, expected 0x50aa)`);
    const label = buf.subarray(i + 12, i + 28);
    const end = label.indexOf(0);
    parts.push({
      type: buf[i + 2],
      subtype: buf[i + 3],
      offset: buf.readUInt32LE(i + 4),
      size: buf.readUInt32LE(i + 8),
      label: label.subarray(0, end < 0 ? 16 : end).toString('utf8'),
      flags: buf.readUInt32LE(i + 28),
    });
  }
  if (parts.length === 0) throw new LmflashError(`${where} is empty (erased flash?): flash the firmware first (\`lmflash flash --firmware BUILD_DIR\`)`);
  return parts;
}

/** The binary of a table, with its MD5 entry, padded to 0xC00 bytes. */
export function buildPartitionTable(parts: Partition[]): Buffer {
  const out = Buffer.alloc(PARTITION_TABLE_SIZE, 0xff);
  parts.forEach((p, n) => {
    const i = n * ENTRY;
    out.writeUInt16LE(MAGIC, i);
    out[i + 2] = p.type;
    out[i + 3] = p.subtype;
    out.writeUInt32LE(p.offset, i + 4);
    out.writeUInt32LE(p.size, i + 8);
    out.fill(0, i + 12, i + 28);
    out.write(p.label, i + 12, 16, 'utf8');
    out.writeUInt32LE(p.flags, i + 28);
  });
  const at = parts.length * ENTRY;
  out.writeUInt16LE(MD5_MAGIC, at);
  createHash('md5').update(out.subarray(0, at)).digest().copy(out, at + 16);
  return out;
}

const TYPES: Record<string, number> = { app: 0x00, data: 0x01 };
const SUBTYPES: Record<string, Record<string, number>> = {
  app: { factory: 0x00, test: 0x20, ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`ota_${i}`, 0x10 + i])) },
  data: { ota: 0x00, phy: 0x01, nvs: 0x02, coredump: 0x03, nvs_keys: 0x04, efuse: 0x05, undefined: 0x06, esphttpd: 0x80, fat: 0x81, spiffs: 0x82, littlefs: 0x83 },
};

function parseNumber(text: string, what: string): number {
  const m = /^(0x[0-9a-f]+|\d+)\s*([km])?$/i.exec(text.trim());
  if (!m) throw new LmflashError(`partition CSV: cannot read ${what} "${text}"`);
  const n = Number(m[1]);
  return m[2] ? n * (m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024) : n;
}

/**
 * A partitions.csv (`Name, Type, SubType, Offset, Size, Flags`) as
 * gen_esp32part.py reads it: names or numbers for type and subtype, K/M
 * sizes, blank offsets placed after the previous partition (app partitions
 * on 64 KiB, others on 4 KiB), the first one after the table at 0x9000.
 */
export function parsePartitionCsv(text: string): Partition[] {
  const parts: Partition[] = [];
  let next = PARTITION_TABLE_OFFSET + 0x1000;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const f = line.split(',').map((s) => s.trim());
    if (f.length < 5) throw new LmflashError(`partition CSV: "${line}" has fewer than 5 fields`);
    const [label, typeText, subText, offText, sizeText, flagText = ''] = f;
    const type = typeText in TYPES ? TYPES[typeText] : parseNumber(typeText, 'a type');
    const subtypes = SUBTYPES[typeText] ?? {};
    const subtype = subText in subtypes ? subtypes[subText] : subText === '' ? 0 : parseNumber(subText, 'a subtype');
    const align = type === 0 ? 0x10000 : 0x1000;
    const offset = offText ? parseNumber(offText, 'an offset') : Math.ceil(next / align) * align;
    const size = parseNumber(sizeText, 'a size');
    const flags = (flagText.includes('encrypted') ? 1 : 0) | (flagText.includes('readonly') ? 2 : 0);
    parts.push({ label, type, subtype, offset, size, flags });
    next = offset + size;
  }
  return parts;
}

/** The model partition, or an error that says what is wrong with the table. */
export function findModelPartition(parts: Partition[], where = 'the partition table'): Partition {
  const p = parts.find((x) => x.label === MODEL_PARTITION.label);
  if (!p) {
    throw new LmflashError(
      `${where} has no \`model\` partition (partitions: ${parts.map((x) => x.label).join(', ')}): build the firmware with lmflash's partitions-*.csv (firmware/esp32s3)`,
    );
  }
  if (p.type !== MODEL_PARTITION.type || p.subtype !== MODEL_PARTITION.subtype) {
    throw new LmflashError(
      `the \`model\` partition in ${where} has type 0x${p.type.toString(16)} subtype 0x${p.subtype.toString(16)}; the firmware looks for type 0x40 subtype 0x00: use lmflash's partitions-*.csv`,
    );
  }
  return p;
}

/** The app partition the bootloader starts (factory, else ota_0). */
export function findAppPartition(parts: Partition[]): Partition | undefined {
  return parts.find((p) => p.type === 0 && p.subtype === 0) ?? parts.find((p) => p.type === 0 && p.subtype === 0x10);
}

/**
 * The model store inside the model partition (firmware/core/include/lmf/model_upload.h):
 * slot 0 at 0, slot 1 at `slot1`, the commit journal in the last 4 KiB sector.
 */
export function modelStoreLayout(partitionSize: number): { slot1: number; journal: number } {
  const journal = Math.max(0, partitionSize - 4096) & ~0xfff;
  return { journal, slot1: Math.floor(journal / 2 / 0x10000) * 0x10000 };
}
