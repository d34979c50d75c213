/**
 * Flashing without ESP-IDF: `lmflash sim --flash IMAGE` starts the flashable
 * virtual board, `lmflash flash --firmware virtual --model M` writes the
 * virtual board's firmware (made by lmflash) and a model into it, and the
 * board boots it and answers like the native core. The virtual firmware is
 * refused for anything but a virtual board.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');
const dir = tempDir('flash-virtual');
const BLOB = path.join(dir, 'model.blob');
let sim: ChildProcess | undefined;
let port = '';
let simOut = '';

beforeAll(async () => {
  const text = path.join(dir, 'text.txt');
  const words = ['the', 'board', 'blinks', 'a', 'led', 'and', 'sends', 'tokens', 'over', 'serial'];
  writeFileSync(text, Array.from({ length: 200 }, (_, i) => Array.from({ length: 9 }, (_, k) => words[(i + k * 3 + (i % 4)) % words.length]).join(' ')).join('\n') + '\n');
  expect((await cli('train', 'ngram', text, '--order', '3', '-o', BLOB)).code).toBe(0);
  // the CLI's own `sim --flash`, on a new (erased) flash image
  sim = spawn('node', [CLI, 'sim', '--flash', path.join(dir, 'flash.bin')], { stdio: ['ignore', 'pipe', 'pipe'] });
  sim.stdout!.setEncoding('utf8');
  port = await new Promise<string>((resolve, reject) => {
    sim!.stdout!.on('data', (c: string) => {
      simOut += c;
      const m = /virtual board serving on (\S+)/.exec(simOut);
      if (m && /Ctrl-C stops it/.test(simOut)) resolve(m[1]);
    });
    sim!.once('exit', (code) => reject(new Error(`lmflash sim --flash exited (${code}): ${simOut}`)));
  });
});

afterAll(async () => {
  if (sim && sim.exitCode === null && sim.signalCode === null) {
    const exited = new Promise((r) => sim!.once('exit', r));
    sim.kill('SIGINT');
    await exited;
  }
});

describe('flashing the virtual board without ESP-IDF', () => {
  it('sim --flash says how to flash it with --firmware virtual', () => {
    expect(simOut).toMatch(new RegExp(`lmflash flash --port ${port} --firmware virtual --model MODEL\\.blob`));
  });

  it('flash --firmware virtual --model writes, verifies and boots; the board then generates what the native core does', async () => {
    const f = await cli('flash', '--port', port, '--firmware', 'virtual', '--model', BLOB);
    expect(f.code, f.err).toBe(0);
    expect(f.err).toMatch(/firmware: lmflash virtual-board/);
    expect(f.err).toMatch(/verified app/);
    expect(f.out).toMatch(/flashed bootloader, partition-table, app, model .*verified/);
    const onBoard = await cli('generate', '--port', port, '-p', 'the board', '-n', '20', '--seed', '7', '--json');
    expect(onBoard.code, onBoard.err).toBe(0);
    const native = await cli('generate', '--model', BLOB, '-p', 'the board', '-n', '20', '--seed', '7', '--json');
    expect(JSON.parse(onBoard.out).generated_tokens).toEqual(JSON.parse(native.out).generated_tokens);
    expect(JSON.parse(onBoard.out).generated_tokens.length).toBeGreaterThan(0);
  });

  it('refuses the virtual firmware for a port that is not a virtual board, before touching it', async () => {
    const r = await cli('flash', '--port', '/dev/null', '--firmware', 'virtual');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--firmware virtual is the firmware of lmflash's virtual board .* \/dev\/null is not one.*nothing was written/);
    expect(r.err).not.toMatch(/connecting/);
  });
});
