/**
 * A board is never left in its bootloader: a refused or interrupted (Ctrl-C)
 * `flash` resets it into its app and says what it left; `lmflash reset`
 * restarts a board found in download mode; the board client's "no answer"
 * mentions download mode; Ctrl-C during `upload-model` says what the board
 * holds. Against the flashable virtual board (lmf-sim --flash), paced to a
 * real UART's speed for the Ctrl-C cases.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFlashSim, writeFlashImage, writeSyntheticBuild, type FlashSim, type SyntheticBuild } from '../host/flash-sim.js';
import { parsePartitionCsv } from '../host/partition-table.js';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');
const dir = tempDir('flash-reset');
const SMALL = path.join(dir, 'small.blob');
const WIDE = path.join(dir, 'wide.blob'); // ~97 KB
let build: SyntheticBuild;
let smallPartitionBuild: SyntheticBuild;
const sims: FlashSim[] = [];

/** Word lines from a seeded generator: `vocab` distinct words. */
function words(lines: number, vocab: number, seed: number): string {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) >>> 0) >>> 8;
  return Array.from({ length: lines }, () => Array.from({ length: 10 }, () => `w${next() % vocab}`).join(' ')).join('\n') + '\n';
}

async function board(name: string, b: SyntheticBuild, args: string[] = []): Promise<FlashSim> {
  const image = path.join(dir, `${name}.bin`);
  writeFlashImage(image, 4 << 20, b, readFileSync(SMALL));
  const sim = await startFlashSim({ image, args });
  sims.push(sim);
  return sim;
}

/** Whether the board answers as the lmflash firmware with a model (a short generate). */
async function answers(port: string): Promise<{ ok: boolean; err: string }> {
  const g = await cli('generate', '--port', port, '-p', 'w1', '-n', '3', '-s', '1');
  return { ok: g.code === 0, err: g.err };
}

/** Runs the CLI as a process and sends it Ctrl-C once its stderr matches `when`. */
async function interrupted(args: string[], when: RegExp): Promise<{ code: number | null; err: string }> {
  const child = spawn('node', [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let sent = false;
  child.stderr.setEncoding('utf8');
  return new Promise((resolve) => {
    child.stderr.on('data', (c: string) => {
      err += c;
      if (!sent && when.test(err)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (code) => resolve({ code, err }));
  });
}

beforeAll(async () => {
  const small = path.join(dir, 'small.txt');
  const wide = path.join(dir, 'wide.txt');
  writeFileSync(small, words(100, 20, 1));
  writeFileSync(wide, words(3000, 5000, 7));
  expect((await cli('train', 'ngram', small, '--order', '2', '-o', SMALL)).code).toBe(0);
  expect((await cli('train', 'ngram', wide, '--order', '2', '-o', WIDE)).code).toBe(0);
  build = writeSyntheticBuild(path.join(dir, 'build'));
  // a 64 KiB model partition: the small model fits, the wide one does not
  const parts = parsePartitionCsv('nvs, data, nvs, 0x9000, 0x6000\nphy_init, data, phy, 0xf000, 0x1000\nfactory, app, factory, 0x10000, 0x100000\nmodel, 0x40, 0x00, 0x110000, 0x10000\n');
  smallPartitionBuild = writeSyntheticBuild(path.join(dir, 'small-build'), { partitions: parts });
});

afterEach(async () => {
  while (sims.length) await sims.pop()!.stop();
});

describe('after flash stops early, the board runs its app', () => {
  it('a flash refused after connecting (model too big for the partition on the board) resets it, and it answers', async () => {
    const sim = await board('refused', smallPartitionBuild);
    const r = await cli('flash', '--port', sim.path, '--model', WIDE);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/connected: ESP32-S3/);
    expect(r.err).toMatch(/reset: the board restarts out of download mode; nothing was written, so it runs what it ran before/);
    expect(r.err).toMatch(/lmflash: error: .*the `model` partition holds .*nothing was written/);
    const a = await answers(sim.path);
    expect(a.ok, a.err).toBe(true);
  });

  it('Ctrl-C during flash resets the board and says what it left; flashing again works', async () => {
    const sim = await board('ctrl-c', build, ['--pace']);
    const r = await interrupted(['flash', '--port', sim.path, '--firmware', build.dir, '--model', SMALL], /connected: ESP32-S3/);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/lmflash: error: interrupted \(Ctrl-C\)/);
    const state = /reset: the board restarts out of download mode; (.*)/.exec(r.err);
    expect(state, r.err).not.toBeNull();
    // what it says is what the board does
    if (/nothing was written/.test(state![1])) expect((await answers(sim.path)).ok).toBe(true);
    else {
      expect(state![1]).toMatch(/only in part.*run the same `lmflash flash` again/);
      await sim.stderrWhen(/stays in the bootloader|Loaded app/, 5000);
    }
    const again = await cli('flash', '--port', sim.path, '--firmware', build.dir, '--model', SMALL);
    expect(again.code, again.err).toBe(0);
    expect((await answers(sim.path)).ok).toBe(true);
  }, 60_000);
});

describe('lmflash reset', () => {
  it('a board in download mode: the client says so, and `lmflash reset` brings it back into its app', async () => {
    const sim = await board('download', build, ['--download']);
    const before = await answers(sim.path);
    expect(before.ok).toBe(false);
    expect(before.err).toMatch(/no answer from a board .*download mode .*`lmflash reset`/);
    const r = await cli('reset', '--port', sim.path);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/reset: the board on .* restarts into its firmware/);
    const after = await answers(sim.path);
    expect(after.ok, after.err).toBe(true);
  });
});

describe('Ctrl-C during upload-model', () => {
  it('says the board keeps its current model and the next run resumes', async () => {
    const sim = await board('upload', build, ['--pace', '--app-baud', '921600']);
    const r = await interrupted(['upload-model', '--port', sim.path, WIDE], /model upload .*?\]\s+([2-9]\d)%/);
    expect(r.code, r.err).toBe(1);
    const m = /interrupted \(Ctrl-C\) at byte ([\d,]+) of [\d,]+: the board keeps running its current model, .*run the same command again to resume/.exec(r.err);
    expect(m, r.err).not.toBeNull();
    expect((await answers(sim.path)).ok).toBe(true);
    const resumed = await cli('upload-model', '--port', sim.path, WIDE);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.err).toMatch(new RegExp(`resuming an interrupted upload at byte ${m![1]}`));
  }, 60_000);
});
