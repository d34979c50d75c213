/**
 * The check that a blob runs bit-identically on the host core and on the
 * emulated lx106 (vitest's expect: test files only, not the global setup).
 */
import { expect } from 'vitest';
import { buildXtensa, runOnQemu } from '../host/qemu.js';
import { runCore } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

/**
 * A transformer blob on the emulated lx106 against the host core: every logit
 * for `tokens` (lmf-run's `--tokens` syntax, `;` between sequences) and the
 * JSON of a greedy generation from `prompt` must be the same bytes. Returns
 * the host's generation.
 */
export async function expectLx106MatchesHost(blob: string, tokens: string, positions: number, vocabSize: number, prompt: string, steps: number): Promise<{ generated_tokens: number[] }> {
  const images = await buildXtensa(PROJECT_ROOT);
  const arena = ['--arena', String(512 * 1024)];
  const ids = ['--tokens', tokens, '--logits'];
  const host = runCore(blob, [...arena, ...ids]);
  expect(host.status, host.stderr).toBe(0);
  const qemu = await runOnQemu({ elf: images.elf, blob, args: ids });
  expect(qemu.exitCode).toBe(0);
  expect(host.stdout.length).toBe(positions * vocabSize * 4);
  expect(qemu.stdout.equals(host.stdout)).toBe(true);
  const gen = ['-p', prompt, '-n', String(steps), '--json'];
  const hostGen = runCore(blob, [...arena, ...gen]);
  expect(hostGen.status, hostGen.stderr).toBe(0);
  const qemuGen = await runOnQemu({ elf: images.elf, blob, args: gen });
  expect(qemuGen.stdout.toString('utf8')).toBe(hostGen.stdout.toString('utf8'));
  return JSON.parse(hostGen.stdout.toString('utf8')) as { generated_tokens: number[] };
}
