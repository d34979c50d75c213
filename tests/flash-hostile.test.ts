/**
 * The virtual board's ROM loader, flasher stub, boot checks and model store
 * under hostile input, built with ASan and UBSan (build/asan):
 *  - rom-loader-fuzz (firmware/tests/rom_loader_fuzz.c) feeds the loader a
 *    well-formed esptool session, garbage, and that session's packets damaged
 *    every way (bits, lengths, escapes, opcodes, sizes), plus random partition
 *    tables, images and upload messages;
 *  - the ASan lmf-sim --flash takes garbage and broken SLIP packets over a
 *    real pty in download mode and while its app runs, and is then flashed by
 *    lmflash and answers correctly.
 * The sanitizers must stay silent.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlashSim, writeSyntheticBuild, type FlashSim, type SyntheticBuild } from '../host/flash-sim.js';
import { closePort, openPort } from '../host/serial.js';
import { ASAN_DIR, coreJson, storiesBlob, tempDir } from './native-helpers.js';
import { cli } from './cli-helpers.js';

const ENV = { ...process.env, ASAN_OPTIONS: 'abort_on_error=1:detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' };
let blob: string;
let build: SyntheticBuild;
let sim: FlashSim;


function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 2 ** 32);
}

function slip(p: Uint8Array): Buffer {
  const out: number[] = [0xc0];
  for (const b of p) {
    if (b === 0xc0) out.push(0xdb, 0xdc);
    else if (b === 0xdb) out.push(0xdb, 0xdd);
    else out.push(b);
  }
  out.push(0xc0);
  return Buffer.from(out);
}

/** Garbage, then command packets with lies in them: what a noisy line or a confused tool sends. */
function hostileBytes(seed: number, packets: number): Buffer {
  const rand = rng(seed);
  const parts: Buffer[] = [Buffer.from(Array.from({ length: 5000 }, () => Math.floor(rand() * 256)))];
  for (let i = 0; i < packets; i++) {
    const op = [0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0a, 0x0f, 0x10, 0x11, 0x12, 0x13, 0xd0, 0xd1, 0xd2, 0xd3, Math.floor(rand() * 256)][Math.floor(rand() * 18)];
    const len = Math.floor(rand() * (rand() < 0.1 ? 17000 : 64));
    const p = Buffer.alloc(8 + len);
    p[0] = rand() < 0.9 ? 0 : 1;
    p[1] = op;
    p.writeUInt16LE(rand() < 0.8 ? len : Math.floor(rand() * 65536), 2);
    for (let k = 4; k < p.length; k++) p[k] = Math.floor(rand() * 256);
    if (op === 0xd1 || op === 0xd0 || op === 0xd2) p.fill(0, 8, Math.min(p.length, 16)); // do not erase the whole flash or stream 4 GB back
    let s = slip(p);
    if (rand() < 0.2) s = s.subarray(0, Math.floor(rand() * s.length)); // cut
    if (rand() < 0.1 && s.length > 3) s[1 + Math.floor(rand() * (s.length - 2))] = 0xdb; // broken escape
    parts.push(s);
  }
  return Buffer.concat(parts);
}

async function sendAll(portPath: string, bytes: Buffer): Promise<void> {
  const port = await openPort(portPath);
  port.on('data', () => {}); // whatever it answers
  for (let i = 0; i < bytes.length; i += 4096) {
    await new Promise<void>((resolve, reject) => port.write(bytes.subarray(i, i + 4096), (e) => (e ? reject(e) : port.drain(() => resolve()))));
  }
  await new Promise((r) => setTimeout(r, 300));
  await closePort(port);
}

beforeAll(async () => {
  blob = await storiesBlob();
  const dir = tempDir('flash-hostile');
  build = writeSyntheticBuild(path.join(dir, 'build'));
  sim = await startFlashSim({ image: path.join(dir, 'flash.bin'), flashSize: '4MB', buildDir: ASAN_DIR, args: ['--download'], env: ENV });
}, 120_000);

afterAll(async () => {
  await sim?.stop();
  expect(sim.stderr()).not.toMatch(/Sanitizer|runtime error/);
});

describe('ROM loader under ASan/UBSan', () => {
  it('rom-loader-fuzz: a good session answered right before and after garbage, damaged packets, images and uploads', () => {
    for (const seed of ['1', '2', '3']) {
      const r = spawnSync(path.join(ASAN_DIR, 'rom-loader-fuzz'), ['30000', seed], { encoding: 'utf8', env: ENV });
      expect(r.stderr).not.toMatch(/Sanitizer|runtime error/);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/rom-loader-fuzz: ok/);
    }
  }, 120_000);

  it('the virtual board survives garbage and broken packets in download mode and in its app, then flashes and runs right', async () => {
    await sendAll(sim.path, hostileBytes(11, 600));
    const r = await cli('flash', '--port', sim.path, '--firmware', build.dir, '--model', blob, '--baud', '921600');
    expect(r.code, r.err).toBe(0);
    // the app running: garbage, frames, and a SLIP SYNC that sends it back to download mode
    const sync = Buffer.concat([Buffer.from([0, 0x08, 36, 0, 0, 0, 0, 0, 7, 7, 0x12, 0x20]), Buffer.alloc(32, 0x55)]);
    await sendAll(sim.path, Buffer.concat([hostileBytes(12, 300), slip(sync)]));
    expect(await sim.stderrWhen(/a SYNC arrived: taken as IO0 low \+ reset/)).toMatch(/a SYNC arrived: taken as IO0 low \+ reset/);
    const again = await cli('flash', '--port', sim.path, '--model', blob);
    expect(again.code, again.err).toBe(0);
    const g = await cli('generate', '--port', sim.path, '-p', 'Once upon a time', '-n', '20', '-t', '0', '-s', '1', '--json');
    expect(g.code, g.err).toBe(0);
    expect(JSON.parse(g.out).generated_tokens).toEqual(coreJson(blob, ['-p', 'Once upon a time', '-n', '20', '--temp', '0', '--seed', '1']).generated_tokens);
    expect(sim.stderr()).not.toMatch(/Sanitizer|runtime error/);
    expect(readFileSync(build.files[0].file).length).toBeGreaterThan(0);
  }, 120_000);
});
