/**
 * ESP32-S3 board profiles (src/boards.ts) and `lmflash inspect --board`: the
 * layouts are the firmware's partition tables, the memory plan follows the
 * firmware's placement rule, the fit check says what is wrong, and the cost
 * model's lx106 figures are what the QEMU build measures today.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readBlob, type BlobView } from '../src/blob.js';
import {
  BOARD_PROFILES,
  checkModelFitsBoard,
  FLASH_LAYOUTS,
  findBoard,
  INTERNAL_RAM,
  matvecShape,
  MODEL_PARTITION,
  modelPartition,
  planOnBoard,
  XTENSA_MEASURED,
} from '../src/boards.js';
import { ramPlan } from '../src/memory-plan.js';
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { storiesBlob } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';
import { cli } from './cli-helpers.js';

const ESP = path.join(PROJECT_ROOT, 'firmware/esp32s3');
const MiB = 1024 * 1024;

/** firmware/esp32s3/partitions-*.csv as entries (comments and blank lines dropped). */
function readCsv(file: string) {
  return readFileSync(path.join(ESP, file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [name, type, subtype, offset, size] = l.split(',').map((f) => f.trim());
      return { name, type, subtype, offset: Number(offset), size: Number(size) };
    });
}

async function runCli(argv: string[]) {
  const r = await cli(...argv);
  return { code: r.code, stdout: r.out, stderr: r.err };
}

let blobFile: string;
let view: BlobView;

beforeAll(async () => {
  blobFile = await storiesBlob();
  view = readBlob(readFileSync(blobFile));
}, 120_000);

describe('flash layouts', () => {
  it.each([4, 8, 16] as const)('%i MB: the profile table is partitions-%iMB.csv, entry for entry', (mb) => {
    const l = FLASH_LAYOUTS[mb];
    expect(l.csv).toBe(`partitions-${mb}MB.csv`);
    expect(readCsv(l.csv)).toEqual(l.partitions);
  });

  it.each([4, 8, 16] as const)('%i MB: aligned, in order, inside the flash, after the partition table', (mb) => {
    const parts = FLASH_LAYOUTS[mb].partitions;
    let end = 0x9000; // the table itself is 0x8000..0x9000
    for (const p of parts) {
      expect(p.offset).toBeGreaterThanOrEqual(end);
      expect(p.offset % (p.type === 'app' ? 0x10000 : 0x1000)).toBe(0);
      expect(p.size % 0x1000).toBe(0);
      end = p.offset + p.size;
    }
    expect(end).toBeLessThanOrEqual(mb * MiB);
    const model = modelPartition(FLASH_LAYOUTS[mb]);
    expect(model.offset % 0x10000).toBe(0); // mmap works in 64 KiB pages
    expect(end).toBe(mb * MiB); // the model partition takes the rest
    expect(Number(model.type)).toBe(MODEL_PARTITION.type);
    expect(Number(model.subtype)).toBe(MODEL_PARTITION.subtype);
  });

  it('the firmware looks the partition up with the same label, type and subtype', () => {
    const h = readFileSync(path.join(ESP, 'main/model_partition.h'), 'utf8');
    expect(h).toContain(`#define LMF_MODEL_PARTITION_LABEL "${MODEL_PARTITION.label}"`);
    expect(h).toContain(`#define LMF_MODEL_PARTITION_TYPE 0x${MODEL_PARTITION.type.toString(16)}`);
    expect(h).toContain(`#define LMF_MODEL_PARTITION_SUBTYPE 0x${MODEL_PARTITION.subtype.toString(16).padStart(2, '0')}`);
  });

  it.each(BOARD_PROFILES.map((b) => [b.id, b] as const))('%s: its sdkconfig.defaults files select its flash size, table and PSRAM mode', (_id, b) => {
    const text = b.sdkconfigDefaults.map((f) => readFileSync(path.join(ESP, f), 'utf8')).join('\n');
    const last = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]).pop();
    const sizes = [...text.matchAll(/^CONFIG_ESPTOOLPY_FLASHSIZE_(\d+)MB=y$/gm)].map((m) => Number(m[1]));
    expect(sizes.pop()).toBe(b.flashMB); // the last file to set it wins
    expect(last('CONFIG_PARTITION_TABLE_CUSTOM_FILENAME')).toBe(`"${FLASH_LAYOUTS[b.flashMB].csv}"`);
    expect(last('CONFIG_SPIRAM')).toBe('y'); // probed at boot, ignored when absent
    expect(last('CONFIG_SPIRAM_IGNORE_NOTFOUND')).toBe('y');
    expect(text.includes('CONFIG_SPIRAM_MODE_OCT=y')).toBe(b.psram?.mode === 'octal');
  });
});

describe('stories260K on each board', () => {
  it('has the shape the cost model was calibrated on', () => {
    const m = matvecShape(view);
    expect(m.blocks).toBe(16288);
    expect(m.rowGroups).toBe(XTENSA_MEASURED.rowGroups);
    expect(m.products).toBe(5 * 7 + 1);
    expect(m.weightBytes).toBeGreaterThan(260608); // int8 rows, plus scales and norms
    expect(m.weightBytes).toBeLessThan(view.fileSize);
  });

  it('without PSRAM: the context is cut to what internal RAM holds; with PSRAM the whole context goes there', () => {
    const budget = INTERNAL_RAM.largestFreeBlockBytes - INTERNAL_RAM.reserveBytes - INTERNAL_RAM.alignSlackBytes;
    const n8 = planOnBoard(view, findBoard('s3-n8'));
    expect(n8.ram.place).toBe('internal');
    expect(n8.ram.context).toBe(n8.ram.maxInternalContext);
    expect(ramPlan(view.config, n8.ram.context).totalBytes).toBeLessThanOrEqual(budget);
    expect(ramPlan(view.config, n8.ram.context + 1).totalBytes).toBeGreaterThan(budget);
    expect(n8.ram.context).toBeGreaterThan(300);
    expect(n8.ram.context).toBeLessThan(512);
    for (const id of ['s3-n8r2', 's3-n16r8', 's3-n4r2', 's3-n8r8']) {
      const p = planOnBoard(view, findBoard(id));
      expect(p.ram.place).toBe('psram');
      expect(p.ram.context).toBe(512);
      expect(p.ram.maxInternalContext).toBe(n8.ram.maxInternalContext);
    }
    // a context that fits internal RAM stays there, PSRAM or not
    expect(planOnBoard(view, findBoard('s3-n16r8'), 256).ram.place).toBe('internal');
  });

  it('fits every profile with no problem at its default context', () => {
    for (const b of BOARD_PROFILES) {
      expect(checkModelFitsBoard(view, b)).toEqual([]);
      const p = planOnBoard(view, b);
      expect(p.flash.fits).toBe(true);
      expect(p.speed!.atStart).toBeGreaterThan(p.speed!.atEnd);
      expect(p.speed!.atStart).toBeGreaterThan(10);
      expect(p.speed!.atStart).toBeLessThan(1000);
      // the range the bandwidth evidence allows brackets the point estimate,
      // and no end of it reads the weights faster than the raw 40 MB/s bus
      const { low, high } = p.speed!.atStartRange;
      expect(low).toBeLessThan(p.speed!.atStart);
      expect(high).toBeGreaterThan(p.speed!.atStart);
      expect(1 / high).toBeGreaterThanOrEqual(p.speed!.memoryMsAtStart / 1000 / 2 - 1e-12);
    }
  });

  it('says what to do when a context or a model does not fit', () => {
    const ram = checkModelFitsBoard(view, findBoard('s3-n8'), 512);
    expect(ram).toHaveLength(1);
    expect(ram[0].kind).toBe('ram');
    expect(ram[0].message).toMatch(/context of 512 tokens needs .* s3-n8 has room for \d+ .*ask for at most \d+, or use a board with PSRAM/);
    expect(checkModelFitsBoard(view, findBoard('s3-n8r2'), 512)).toEqual([]);

    const big: BlobView = { ...view, fileSize: 5 * MiB };
    const flash = checkModelFitsBoard(big, findBoard('s3-n4'));
    expect(flash.map((p) => p.kind)).toEqual(['flash']);
    expect(flash[0].message).toMatch(/5\.00 MiB but the `model` partition of s3-n4 holds 2\.94 MiB .*partitions-4MB\.csv.*more flash \(s3-n8, s3-n8r2, s3-n8r8, s3-n16, s3-n16r8\)/);
    expect(checkModelFitsBoard(big, findBoard('s3-n8'))).toEqual([]);

    const huge: BlobView = { ...view, config: { ...view.config, dim: 4096, hiddenDim: 11008, nHeads: 32, nKvHeads: 32, nLayers: 32 } };
    const none = checkModelFitsBoard(huge, findBoard('s3-n4'));
    expect(none.some((p) => p.kind === 'ram' && /even for a context of 1 token/.test(p.message))).toBe(true);
  });

  it('lmflash inspect --board prints the plan; --json carries it; an unknown profile lists the known ones', async () => {
    const text = await runCli(['inspect', blobFile, '--board', 's3-n8r2']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/board s3-n8r2: ESP32-S3, 8 MB flash, 2 MB quad PSRAM/);
    expect(text.stdout).toMatch(/`model` partition 6\.94 MiB at 0x110000 \(partitions-8MB\.csv\)/);
    expect(text.stdout).toMatch(/context 512: .* in PSRAM/);
    expect(text.stdout).toMatch(/longest context in internal RAM: \d+ tokens/);
    expect(text.stdout).toMatch(/speed \(estimate\): \d+ tok\/s at position 0/);
    expect(text.stdout).toMatch(/fits: yes/);
    const json = await runCli(['inspect', blobFile, '--board', 's3-n4', '--context', '512', '--json']);
    const r = JSON.parse(json.stdout);
    expect(r.board.fits).toBe(false);
    expect(r.board.problems[0].kind).toBe('ram');
    expect(r.board.flash.partitionBytes).toBe(0x2f0000);
    const bad = await runCli(['inspect', blobFile, '--board', 's3-x']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown board profile "s3-x": use one of s3-n4, s3-n4r2, s3-n8/);
  });
});

const toolchain = findQemuToolchain();

describe.runIf(toolchain.ok)('the cost model against the QEMU build', () => {
  it("measures what XTENSA_MEASURED says (instructions per token and per position, within 2 %)", async () => {
    const { elf } = await buildXtensa(PROJECT_ROOT);
    const instructions = async (n: number) => {
      const r = await runOnQemu({ elf, blob: blobFile, args: ['-p', '', '-n', String(n)] });
      expect(r.exitCode).toBe(0);
      return Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
    };
    // n forwards at positions 0..n-1: n a + b n(n-1)/2
    const [i16, i64] = [await instructions(16), await instructions(64)];
    const b = (i64 / 64 - i16 / 16) / ((63 - 15) / 2);
    const a = i16 / 16 - b * 7.5;
    expect(Math.abs(a / XTENSA_MEASURED.instructionsAtPosition0 - 1)).toBeLessThan(0.02);
    expect(Math.abs(b / XTENSA_MEASURED.instructionsPerPosition - 1)).toBeLessThan(0.05);
  }, 300_000);
});
