/**
 * Instructions per token of the core on the emulated lx106: QEMU with
 * -icount shift=0, where the port's cycle counter reports CCOUNT × 25 =
 * instructions (firmware/ports/qemu-xtensa/README.md). The driver counts
 * only its generation loop, so loading and the CRC check are excluded.
 */
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';

export async function xtensaInstructionsPerToken(root: string, blobPath: string): Promise<{ value: string; note: string }> {
  const tc = findQemuToolchain();
  if (!tc.ok) return { value: 'n/a', note: `toolchain missing (${tc.install})` };
  const { elf } = await buildXtensa(root);
  // 64 greedy steps from BOS: the work the reference figures measure
  const r = await runOnQemu({ elf, blob: blobPath, args: ['-p', '', '-n', '64'] });
  const forwards = Number(/forwards=(\d+)/.exec(r.stderr)?.[1]);
  const instructions = Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
  if (r.exitCode !== 0 || !forwards || !instructions) throw new Error(`QEMU run failed: ${r.stderr}`);
  return {
    value: (instructions / forwards).toFixed(0),
    note: `QEMU -icount, ${forwards} greedy forwards from BOS; target <= 4 M (run.c float: 32.5 M, runq.c int8: 30.3 M)`,
  };
}
