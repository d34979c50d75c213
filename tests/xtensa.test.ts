/**
 * The core's port to an emulated ESP8266 CPU (firmware/ports/qemu-xtensa,
 * run by host/qemu.ts): the soft-float and division routines the image links
 * give the host's IEEE-754 results bit for bit, CCOUNT counts instructions / 25,
 * and the real image prints the same bytes as the host's lmf-run.
 * Without the Debian packages it is skipped locally, and fails in CI.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildXtensa, findQemuToolchain, runOnQemu, type XtensaImages } from '../host/qemu.js';
import { runCore, storiesBlob, tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';
import { requireTool } from './required-tools.js';

const COMMON_DIR = path.join(PROJECT_ROOT, 'firmware/ports/qemu-common');
const toolchain = findQemuToolchain();
const missing = `the Xtensa/QEMU toolchain is missing: ${toolchain.missing.join('; ')}; fix: ${toolchain.install}`;

const haveToolchain = requireTool('Xtensa/QEMU toolchain', toolchain.ok ? null : missing);

describe.runIf(haveToolchain)('QEMU lx106 image', () => {
  let images: XtensaImages;

  beforeAll(async () => {
    images = await buildXtensa(PROJECT_ROOT);
  }, 300_000);

  describe('self-test', () => {
    let selftest: { stdout: Buffer; stderr: string; exitCode: number };

    beforeAll(async () => {
      selftest = await runOnQemu({ elf: images.selftestElf, timeoutMs: 60_000 });
    }, 60_000);

    it('prints byte for byte what the same file prints natively (x86-64 SSE)', () => {
      const native = path.join(tempDir('selftest'), 'selftest');
      execFileSync('gcc', ['-std=c11', '-O2', '-ffp-contract=off', '-o', native, path.join(COMMON_DIR, 'selftest.c')]);
      const expected = execFileSync(native);
      expect(selftest.exitCode).toBe(0);
      expect(selftest.stdout.toString('utf8')).toBe(expected.toString('utf8'));
      expect(expected.toString('utf8')).toMatch(/^f32\.div [0-9a-f]{8}$/m); // it did print the hashes
    }, 60_000);

    it('sees CCOUNT advance once per 25 instructions under -icount shift=0', () => {
      const loops = [...selftest.stderr.matchAll(/^calibration (\d+) instructions (\d+) ccount$/gm)].map((m) => ({
        instructions: Number(m[1]),
        ccount: Number(m[2]),
      }));
      expect(loops).toHaveLength(2);
      // Each measurement is exact up to CCOUNT's granularity (25) and the read itself.
      for (const { instructions, ccount } of loops) expect(Math.abs(ccount * 25 - instructions)).toBeLessThanOrEqual(25);
      // The difference cancels any fixed overhead: 2,000,000 more instructions.
      const [a, b] = loops;
      expect(Math.abs((b.ccount - a.ccount) * 25 - (b.instructions - a.instructions))).toBeLessThanOrEqual(25);
    });

    it('prints what each soft-float operation costs (the figures of its README)', () => {
      const cost = Object.fromEntries([...selftest.stderr.matchAll(/^softfloat (\w+) (\d+) instructions$/gm)].map((m) => [m[1], Number(m[2])]));
      expect(Object.keys(cost).sort()).toEqual(['add', 'div', 'i2f', 'mul', 'sub']);
      // a software multiply or add is tens of instructions, a division more, a conversion fewer
      for (const op of ['mul', 'add', 'sub']) expect(cost[op]).toBeGreaterThan(20);
      expect(cost.div).toBeGreaterThan(cost.mul);
      expect(cost.i2f).toBeLessThan(cost.mul);
    });
  });

  describe('lmf-qemu.elf, the core', () => {
    let blob: string;

    beforeAll(async () => {
          blob = await storiesBlob();
    }, 300_000);

    // The image's arena is 512 KiB (main.c); the host gets the same, so both plan the same context.
    it.each([
      ['greedy text', ['-p', 'Once upon a time, there was', '-n', '24']],
      ['sampled JSON', ['-n', '16', '-t', '0.8', '-k', '20', '--json']],
      ['raw logits', ['--tokens', '1,403,407,261,378;1,410', '--logits']],
    ])('%s: same stdout and exit status as the host lmf-run', async (_name, args) => {
      const host = runCore(blob, ['--arena', String(512 * 1024), ...args]);
      const qemu = await runOnQemu({ elf: images.elf, blob, args });
      expect(qemu.exitCode).toBe(host.status);
      expect(qemu.stdout.equals(host.stdout)).toBe(true);
      expect(qemu.stdout.length).toBeGreaterThan(0);
    }, 120_000);

    // The spine's criterion: bit-identical logits and identical tokens on host and lx106 for
    // run.c's three reference prompts (greedy) and a seeded sampled run.
    it.each([
      // as many steps as run.c's reference runs (256, 128 and 128 positions)
      ['once', 'Once upon a time', 252],
      ['park', 'Lily and Tom went to the park. They saw a big dog.', 109],
      ['empty', '', 128],
    ])('%s: greedy tokens and every logit identical on host and lx106', async (_name, prompt, steps) => {
      const gen = ['-p', prompt, '-n', String(steps)];
      const hostJson = runCore(blob, ['--arena', String(512 * 1024), ...gen, '--json']);
      const qemuJson = await runOnQemu({ elf: images.elf, blob, args: [...gen, '--json'] });
      expect(qemuJson.exitCode).toBe(0);
      expect(qemuJson.stdout.toString('utf8')).toBe(hostJson.stdout.toString('utf8'));
      const run = JSON.parse(hostJson.stdout.toString('utf8')) as { prompt_tokens: number[]; generated_tokens: number[] };
      expect(run.generated_tokens.length).toBe(steps);
      // every position's logits, teacher-forced along that greedy run
      const ids = ['--tokens', [...run.prompt_tokens, ...run.generated_tokens].join(','), '--logits'];
      const hostLogits = runCore(blob, ['--arena', String(512 * 1024), ...ids]).stdout;
      const qemuLogits = await runOnQemu({ elf: images.elf, blob, args: ids });
      expect(hostLogits.length).toBe((run.prompt_tokens.length + steps) * 512 * 4);
      expect(qemuLogits.stdout.equals(hostLogits)).toBe(true);
    }, 300_000);

    it('samples the same tokens for a seed (temperature, top-k, top-p, repetition penalty)', async () => {
      const args = ['-p', 'Lily', '-n', '48', '-t', '1.0', '--top-p', '0.9', '-k', '40', '--repeat-penalty', '1.2', '-s', '1234', '--json'];
      const host = runCore(blob, ['--arena', String(512 * 1024), ...args]);
      const qemu = await runOnQemu({ elf: images.elf, blob, args });
      expect(qemu.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
      // the port paints its stack: the whole program, sampling included, stays small
      const stack = Number(/stack_bytes=(\d+)/.exec(qemu.stderr)?.[1]);
      expect(stack).toBeGreaterThan(256);
      expect(stack).toBeLessThan(8192);
      const other = runCore(blob, ['--arena', String(512 * 1024), ...args.slice(0, -2), '-s', '99', '--json']);
      expect(other.stdout.toString('utf8')).not.toBe(host.stdout.toString('utf8')); // the seed matters
    }, 300_000);

    // int4 weights: the nibbles unpacked by the same C on both, then the int8 kernels
    it('int4 layers: greedy tokens and every logit identical on host and lx106', async () => {
      const q4 = await storiesBlob(64, 4);
      const gen = ['-p', 'Once upon a time', '-n', '48', '--json'];
      const hostJson = runCore(q4, ['--arena', String(512 * 1024), ...gen]);
      const qemuJson = await runOnQemu({ elf: images.elf, blob: q4, args: gen });
      expect(qemuJson.exitCode).toBe(0);
      expect(qemuJson.stdout.toString('utf8')).toBe(hostJson.stdout.toString('utf8'));
      const run = JSON.parse(hostJson.stdout.toString('utf8')) as { prompt_tokens: number[]; generated_tokens: number[] };
      expect(run.generated_tokens.length).toBe(48);
      const ids = ['--tokens', [...run.prompt_tokens, ...run.generated_tokens].join(','), '--logits'];
      const hostLogits = runCore(q4, ['--arena', String(512 * 1024), ...ids]).stdout;
      const qemuLogits = await runOnQemu({ elf: images.elf, blob: q4, args: ids });
      expect(hostLogits.length).toBe((run.prompt_tokens.length + 48) * 512 * 4);
      expect(qemuLogits.stdout.equals(hostLogits)).toBe(true);
      // and it is not the int8 model's output (the blob did change)
      expect(runCore(blob, ['--arena', String(512 * 1024), ...ids]).stdout.equals(hostLogits)).toBe(false);
    }, 300_000);

    it('refuses clearly to run without a blob', async () => {
      const r = await runOnQemu({ elf: images.elf, args: ['-n', '1'] });
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/no LMFB blob at 0x50400000/);
    });
  });
});
