/**
 * `lmflash upload-model`: a new model through the running firmware
 * (protocol 1.1) on the flashable virtual board, its line paced to 921600
 * baud so that an upload takes long enough to interrupt. The old model
 * (stories260K at group size 64) keeps answering until the new one (group
 * size 32, so INFO tells them apart) is complete and verified; an interrupted
 * upload resumes; a board reset mid-upload boots the old model; chunks that
 * the flash does not keep are detected and sent again.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFlashSim, writeFlashImage, writeSyntheticBuild, type FlashSim, type SyntheticBuild } from '../host/flash-sim.js';
import { findModelPartition, modelStoreLayout, parsePartitionCsv } from '../host/partition-table.js';
import { openTarget } from '../host/target.js';
import { coreJson, storiesBlob, tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';
import { cli } from './cli-helpers.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');
const PACED = ['--pace', '--app-baud', '921600'];
let oldBlob: string;
let newBlob: string;
let build: SyntheticBuild;
let dir: string;
const sims: FlashSim[] = [];


async function board(name: string, args: string[] = PACED, b: SyntheticBuild = build): Promise<{ sim: FlashSim; image: string }> {
  const image = path.join(dir, `${name}.bin`);
  writeFlashImage(image, 4 << 20, b, readFileSync(oldBlob));
  const sim = await startFlashSim({ image, args });
  sims.push(sim);
  return { sim, image };
}

/** The group size of the model the board runs (64: the old one, 32: the new one). */
async function groupSize(port: string): Promise<number> {
  const t = await openTarget({ port });
  try {
    const info = await t.client.info();
    return (info.model as { group_size: number }).group_size;
  } finally {
    await t.close();
  }
}

async function tokensFrom(port: string): Promise<number[]> {
  const g = await cli('generate', '--port', port, '-p', 'The cat', '-n', '25', '-t', '0', '-s', '3', '--json');
  expect(g.code, g.err).toBe(0);
  return JSON.parse(g.out).generated_tokens;
}

const native = (blob: string) => coreJson(blob, ['-p', 'The cat', '-n', '25', '--temp', '0', '--seed', '3']).generated_tokens;

/** Starts `lmflash upload-model` as a process and kills it once its progress reaches `percent`. */
async function interruptedUpload(port: string, blob: string, percent: number): Promise<string> {
  const child = spawn(process.execPath, [CLI, 'upload-model', '--port', port, blob], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      const all = [...err.matchAll(/model upload .*?\]\s+(\d+)%/g)].map((m) => Number(m[1]));
      if (all.some((p) => p >= percent)) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`upload-model ended (${code}) before ${percent}%: ${err}`)));
  });
  await new Promise((r) => child.once('exit', r));
  return err;
}

beforeAll(async () => {
  oldBlob = await storiesBlob(64);
  newBlob = await storiesBlob(32);
  dir = tempDir('upload');
  build = writeSyntheticBuild(path.join(dir, 'build'));
  expect(native(oldBlob)).not.toEqual(native(newBlob)); // the two models are told apart by their tokens too
});

afterEach(async () => {
  while (sims.length) await sims.pop()!.stop();
});

describe('lmflash upload-model', () => {
  it('resumes an interrupted upload, and the board runs the old model until the new one is complete and verified', async () => {
    const { sim, image } = await board('resume');
    expect(await groupSize(sim.path)).toBe(64);
    const err = await interruptedUpload(sim.path, newBlob, 30);
    expect(err).toMatch(/uploading .* beside the model it runs/);
    // half a model on the board: it still runs the old one, and nothing else
    expect(await groupSize(sim.path)).toBe(64);
    expect(await tokensFrom(sim.path)).toEqual(native(oldBlob));

    const r = await cli('upload-model', '--port', sim.path, newBlob);
    expect(r.code, r.err).toBe(0);
    const resumed = /resuming an interrupted upload at byte ([\d,]+) of/.exec(r.err);
    expect(resumed).not.toBeNull();
    expect(Number(resumed![1].replace(/,/g, ''))).toBeGreaterThan(0);
    expect(r.err).toMatch(/verified on the board \(CRC-32 [0-9a-f]{8}\) and committed as model #1 at model partition \+ 0x\w+: the board runs it now/);
    expect(r.out).toMatch(/uploaded .* resumed at byte/);
    expect(await groupSize(sim.path)).toBe(32);
    expect(await tokensFrom(sim.path)).toEqual(native(newBlob));

    // the flash: the new model in slot 1, the old one untouched in slot 0, one commit record
    const part = findModelPartition(build.partitions);
    const { slot1, journal } = modelStoreLayout(part.size);
    const flash = readFileSync(image);
    const oldBytes = readFileSync(oldBlob);
    const newBytes = readFileSync(newBlob);
    expect(flash.subarray(part.offset, part.offset + oldBytes.length).equals(oldBytes)).toBe(true);
    expect(flash.subarray(part.offset + slot1, part.offset + slot1 + newBytes.length).equals(newBytes)).toBe(true);
    expect(flash.subarray(part.offset + journal, part.offset + journal + 4).toString('latin1')).toBe('LMFS');
  }, 120_000);

  it('a reset in the middle of an upload boots the model that was committed, never the half-written one', async () => {
    const { sim, image } = await board('reset-mid-upload');
    await interruptedUpload(sim.path, newBlob, 50);
    await sim.stop();
    sims.pop();
    const again = await startFlashSim({ image, args: PACED });
    sims.push(again);
    expect(await again.stderrWhen(/model: \d+ bytes at 0x110000 \(model partition \+ 0x0\)/)).toMatch(/model: \d+ bytes at 0x110000 \(model partition \+ 0x0\)/);
    expect(await groupSize(again.path)).toBe(64);
    // the board forgot the upload with its RAM: it starts over, and finishes
    const r = await cli('upload-model', '--port', again.path, newBlob);
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toMatch(/resuming/);
    expect(await groupSize(again.path)).toBe(32);
    // and after a reset the committed model is the one that boots
    await again.stop();
    sims.pop();
    const third = await startFlashSim({ image, args: PACED });
    sims.push(third);
    expect(await groupSize(third.path)).toBe(32);
  }, 120_000);

  it('detects a chunk the flash did not keep, sends it again and finishes', async () => {
    const part = findModelPartition(build.partitions);
    const { slot1 } = modelStoreLayout(part.size);
    const bytes = readFileSync(newBlob);
    const at = bytes.findIndex((b, i) => i > 50_000 && (b & 1) === 0);
    const { sim } = await board('flaky-flash', [...PACED, '--fault-flash-once', String(part.offset + slot1 + at)]);
    const r = await cli('upload-model', '--port', sim.path, newBlob);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/lmflash: flash at 0x[0-9a-f]+ did not read back what was written: resume from \d+/);
    expect(r.out).toMatch(/1 chunk\(s\) sent again/);
    expect(await tokensFrom(sim.path)).toEqual(native(newBlob));
  }, 120_000);

  it('gives up on flash that never keeps a chunk, and the board keeps its model', async () => {
    const part = findModelPartition(build.partitions);
    const { slot1 } = modelStoreLayout(part.size);
    const bytes = readFileSync(newBlob);
    const at = bytes.findIndex((b, i) => i > 2000 && (b & 1) === 0);
    const { sim } = await board('worn-flash', ['--fault-flash-stuck', String(part.offset + slot1 + at)]);
    const r = await cli('upload-model', '--port', sim.path, newBlob);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the board kept rejecting the data at byte \d+ \(flash at 0x[0-9a-f]+ did not read back.*\); it keeps its current model/);
    expect(await groupSize(sim.path)).toBe(64);
  }, 60_000);

  it('refuses a model that does not fit beside the running one', async () => {
    const small = parsePartitionCsv('nvs, data, nvs, 0x9000, 0x6000\nphy_init, data, phy, 0xf000, 0x1000\nfactory, app, factory, 0x10000, 0x100000\nmodel, 0x40, 0x00, 0x110000, 0x80000\n');
    const smallBuild = writeSyntheticBuild(path.join(dir, 'small'), { partitions: small });
    const { sim } = await board('small', [], smallBuild);
    const r = await cli('upload-model', '--port', sim.path, newBlob);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the running model \(289312 bytes\) leaves no slot of the model partition \(524288 bytes\) free beside it: flash it with `lmflash flash --model MODEL\.blob`/);
    expect(await groupSize(sim.path)).toBe(64);
  });
});
