/**
 * The ESP32-S3 firmware's two changes to how the forward pass computes, shown
 * on the host with stories260K:
 *  - the two-core split: each matrix product's rows divided between the
 *    caller and a worker (firmware/tests/split_test.c, POSIX threads and
 *    semaphores standing in for the worker task on core 1 and its task
 *    notifications);
 *  - the PIE SIMD kernel, through its C emulation (-DLMF_PIE_EMULATE: 16-byte
 *    blocks, the 40-bit ACCX, the low address bits ignored, saturation).
 * Both must give the single-core portable path's logits bit for bit.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { ASAN_DIR, coreJson, runCore, storiesBlob } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const NATIVE_DIR = path.join(PROJECT_ROOT, 'build/native');

interface SplitRun {
  status: number;
  logits: Buffer;
  stderr: string;
}

function splitTest(exe: string, args: string[], dir = NATIVE_DIR): SplitRun {
  const r = spawnSync(path.join(dir, exe), args, { maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, logits: r.stdout, stderr: r.stderr.toString('utf8') };
}

const stat = (stderr: string, name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(stderr)?.[1]);

let blob: string;
let sequences: { name: string; ids: string }[];
/** The reference: the plain loops on one thread. */
const reference = new Map<string, Buffer>();

beforeAll(async () => {
  blob = await storiesBlob();
  // run.c's reference prompts, greedy, then teacher-forced along that run (as tests/xtensa.test.ts does)
  sequences = [
    ['once', 'Once upon a time', 200],
    ['empty', '', 120],
  ].map(([name, prompt, steps]) => {
    const run = coreJson(blob, ['-p', String(prompt), '-n', String(steps)]);
    return { name: String(name), ids: [...run.prompt_tokens, ...run.generated_tokens].join(',') };
  });
  for (const s of sequences) {
    const r = splitTest('split-test-portable', [blob, '--tokens', s.ids, '--threads', '1', '--logits']);
    expect(r.status, r.stderr).toBe(0);
    reference.set(s.name, r.logits);
  }
}, 300_000);

describe('two-core split and PIE kernel emulation on stories260K', () => {
  it('the single-thread portable reference is what lmf-run computes (every position, every logit)', () => {
    for (const s of sequences) {
      const host = runCore(blob, ['--tokens', s.ids, '--logits']);
      expect(host.status).toBe(0);
      expect(reference.get(s.name)!.length).toBe(s.ids.split(',').length * 512 * 4);
      expect(host.stdout.equals(reference.get(s.name)!)).toBe(true);
    }
  });

  it.each([
    ['split-test', 'SSE2 kernels', 2],
    ['split-test-portable', 'plain loops', 2],
    ['split-test-pie-emu', 'PIE emulation', 1],
    ['split-test-pie-emu', 'PIE emulation', 2],
    ['split-test-pie-emu', 'PIE emulation', 3],
    ['split-test-pie-emu-portable', 'PIE emulation over plain attention loops', 2],
  ])('%s (%s) on %i thread(s): logits bit-identical to one thread of plain loops', (exe, _what, threads) => {
    for (const s of sequences) {
      const r = splitTest(exe, [blob, '--tokens', s.ids, '--threads', String(threads), '--logits']);
      expect(r.status, r.stderr).toBe(0);
      expect(stat(r.stderr, 'mismatched_positions')).toBe(0);
      // every product was split (min-macs 0) and every thread did rows
      expect(stat(r.stderr, 'products_split')).toBe(s.ids.split(',').length * (5 * 7 + 1));
      for (let k = 1; k < threads; k++) expect(stat(r.stderr, `rows_worker${k}`)).toBeGreaterThan(0);
      expect(stat(r.stderr, 'rows_caller')).toBeGreaterThan(0);
      expect(r.logits.equals(reference.get(s.name)!)).toBe(true);
    }
  });

  it('splits only products of at least --min-macs multiply-accumulates, with the same logits', () => {
    const s = sequences[1];
    const r = splitTest('split-test-pie-emu', [blob, '--tokens', s.ids, '--threads', '2', '--min-macs', '20000', '--logits']);
    expect(r.status, r.stderr).toBe(0);
    // only the 512 x 64 classifier reaches 20000
    expect(stat(r.stderr, 'products_split')).toBe(s.ids.split(',').length);
    expect(r.logits.equals(reference.get(s.name)!)).toBe(true);
  });

  it('notices a split that drops rows (negative control)', () => {
    const s = sequences[1];
    const r = splitTest('split-test-pie-emu', [blob, '--tokens', s.ids, '--threads', '2', '--fault']);
    expect(r.status).toBe(1);
    expect(stat(r.stderr, 'mismatched_positions')).toBeGreaterThan(0);
  });

  it("the PIE emulation equals plain loops on random and extreme data, and reads a misaligned pointer as the chip does", () => {
    const r = splitTest('split-test-pie-emu', ['--pie-selftest']);
    expect(r.status, r.stderr).toBe(0);
    expect(stat(r.stderr, 'checks')).toBeGreaterThan(20000);
    expect(stat(r.stderr, 'failures')).toBe(0);
  });

  it('runs clean under AddressSanitizer and UndefinedBehaviorSanitizer (threads, emulation)', () => {
    const s = sequences[1];
    for (const exe of ['split-test-pie-emu', 'split-test']) {
      const r = splitTest(exe, [blob, '--tokens', s.ids.split(',').slice(0, 40).join(','), '--threads', '3'], ASAN_DIR);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/AddressSanitizer|runtime error/);
    }
    expect(splitTest('split-test-pie-emu', ['--pie-selftest'], ASAN_DIR).status).toBe(0);
  });
});

describe.runIf(findQemuToolchain().ok)('the PIE emulation compiled for Xtensa (lx106 under QEMU)', () => {
  it("gives the host's logits bit for bit", async () => {
    const dir = path.join(PROJECT_ROOT, 'build/xtensa-pie-emu');
    execFileSync('cmake', ['-S', path.join(PROJECT_ROOT, 'firmware/ports/qemu-xtensa'), '-B', dir, '-DCMAKE_C_FLAGS=-DLMF_PIE_EMULATE'], { stdio: 'pipe' });
    execFileSync('cmake', ['--build', dir, '-j2', '--target', 'lmf-qemu'], { stdio: 'pipe' });
    const ids = sequences[0].ids.split(',').slice(0, 64).join(',');
    const qemu = await runOnQemu({ elf: path.join(dir, 'lmf-qemu.elf'), blob, args: ['--tokens', ids, '--logits'] });
    expect(qemu.exitCode).toBe(0);
    const host = runCore(blob, ['--arena', String(512 * 1024), '--tokens', ids, '--logits']);
    expect(qemu.stdout.length).toBe(64 * 512 * 4);
    expect(qemu.stdout.equals(host.stdout)).toBe(true);
  }, 300_000);
});
