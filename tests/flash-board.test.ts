/**
 * `lmflash flash` against the flashable virtual board (lmf-sim --flash): real
 * esptool-js 0.7.0 through host/esptool-adapter.ts, the real serialport
 * bindings, a real pseudo-terminal. The board starts with an erased 4 MB
 * flash; lmflash writes a synthetic but well-formed ESP-IDF build (bootloader,
 * partition table with the firmware's `model` partition, app image with
 * checksum and SHA-256) and the stories260K blob, verifies every region by
 * MD5, resets the board into the app, and the app then answers
 * `lmflash generate --port` with the native core's tokens.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlashSim, writeSyntheticBuild, type FlashSim, type SyntheticBuild } from '../host/flash-sim.js';
import { findModelPartition, modelStoreLayout } from '../host/partition-table.js';
import { coreJson, storiesBlob, tempDir } from './native-helpers.js';
import { cli } from './cli-helpers.js';

let blob: string;
let build: SyntheticBuild;
let image: string;
let sim: FlashSim;


const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

beforeAll(async () => {
  blob = await storiesBlob();
  const dir = tempDir('flash-board');
  build = writeSyntheticBuild(path.join(dir, 'build'));
  image = path.join(dir, 'flash.bin');
  sim = await startFlashSim({ image, flashSize: '4MB' });
});

afterAll(async () => {
  await sim?.stop();
});

describe('lmflash flash on the virtual board', () => {
  it('boots an erased board into the ROM only (nothing to run)', async () => {
    expect(await sim.stderrWhen(/invalid header: 0xffffffff/)).toMatch(/invalid header: 0xffffffff/);
  });

  it('writes firmware and model, verifies them by MD5, resets into the app, and the app generates like the native core', async () => {
    const r = await cli('flash', '--port', sim.path, '--firmware', build.dir, '--model', blob, '--baud', '921600');
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/connected: ESP32-S3 \(QFN56\) \(revision v0\.2\), 4MB flash, flasher stub running, 921600 baud/);
    for (const name of ['bootloader', 'partition-table', 'app', 'model']) expect(r.err).toMatch(new RegExp(`verified ${name}\\s`));
    expect(r.out).toMatch(/flashed bootloader, partition-table, app, model \([\d,]+ bytes in [\d.]+ s, verified\)/);

    // what the virtual board's flash holds, byte for byte, against the files
    const flash = readFileSync(image);
    for (const f of build.files) {
      const data = readFileSync(f.file);
      expect(md5(flash.subarray(f.address, f.address + data.length)), f.name).toBe(md5(data));
    }
    const part = findModelPartition(build.partitions);
    const model = readFileSync(blob);
    expect(md5(flash.subarray(part.offset, part.offset + model.length))).toBe(md5(model));
    const journal = part.offset + modelStoreLayout(part.size).journal;
    expect(flash.subarray(journal, journal + 4096).every((b) => b === 0xff)).toBe(true);

    // after the reset the app runs, with the model found through the flashed partition table
    await new Promise((res) => setTimeout(res, 100));
    expect(await sim.stderrWhen(/Loaded app from partition at offset 0x10000/)).toMatch(/Loaded app from partition at offset 0x10000/);
    expect(sim.stderr()).toMatch(new RegExp(`model: ${model.length} bytes at 0x${part.offset.toString(16)}`));
    const g = await cli('generate', '--port', sim.path, '-p', 'Once upon a time', '-n', '40', '-t', '0', '-s', '1', '--json');
    expect(g.code, g.err).toBe(0);
    const viaBoard = JSON.parse(g.out);
    const native = coreJson(blob, ['-p', 'Once upon a time', '-n', '40', '--temp', '0', '--seed', '1']);
    expect(viaBoard.generated_tokens).toEqual(native.generated_tokens);
    expect(viaBoard.text).toBe(native.text);
  });

  it('--model alone reads the partition table back from the board and rewrites only the model', async () => {
    const before = readFileSync(image);
    const other = await storiesBlob(32);
    const r = await cli('flash', '--port', sim.path, '--model', other, '--baud', '460800');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/flashed model \(/);
    const after = readFileSync(image);
    const part = findModelPartition(build.partitions);
    // nothing outside the model partition changed
    expect(md5(after.subarray(0, part.offset))).toBe(md5(before.subarray(0, part.offset)));
    const model = readFileSync(other);
    expect(md5(after.subarray(part.offset, part.offset + model.length))).toBe(md5(model));
    const g = await cli('generate', '--port', sim.path, '-p', 'Tom had a dog', '-n', '30', '-t', '0', '-s', '1', '--json');
    expect(g.code, g.err).toBe(0);
    expect(JSON.parse(g.out).generated_tokens).toEqual(coreJson(other, ['-p', 'Tom had a dog', '-n', '30', '--temp', '0', '--seed', '1']).generated_tokens);
  });
});
