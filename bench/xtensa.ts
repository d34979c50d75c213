/**
 * Instructions per token of the core on the emulated lx106: QEMU with
 * -icount shift=0, where the port's cycle counter reports CCOUNT × 25 =
 * instructions (firmware/ports/qemu-xtensa/README.md). The driver counts
 * only its generation loop, so loading and the CRC check are excluded.
 */
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';

export interface XtensaFigures {
  instructionsPerToken: { value: string; note: string };
  stackBytes: { value: string; note: string };
}

export async function xtensaFigures(root: string, blobPath: string): Promise<XtensaFigures> {
  const tc = findQemuToolchain();
  if (!tc.ok) {
    const na = { value: 'n/a', note: `toolchain missing (${tc.install})` };
    return { instructionsPerToken: na, stackBytes: na };
  }
  const { elf } = await buildXtensa(root);
  // 64 greedy steps from BOS: the work the reference figures measure
  const r = await runOnQemu({ elf, blob: blobPath, args: ['-p', '', '-n', '64'] });
  const forwards = Number(/forwards=(\d+)/.exec(r.stderr)?.[1]);
  const instructions = Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
  if (r.exitCode !== 0 || !forwards || !instructions) throw new Error(`QEMU run failed: ${r.stderr}`);
  // the deepest path: sampling with every option on, which sorts candidates
  const s = await runOnQemu({ elf, blob: blobPath, args: ['-p', 'Once upon a time', '-n', '32', '-t', '1', '-k', '40', '--top-p', '0.9', '--repeat-penalty', '1.1'] });
  const stack = /stack_bytes=(\d+)/.exec(s.stderr)?.[1];
  return {
    instructionsPerToken: {
      value: (instructions / forwards).toFixed(0),
      note: `QEMU -icount, ${forwards} greedy forwards from BOS; target <= 4 M (run.c float: 32.5 M, runq.c int8: 30.3 M)`,
    },
    stackBytes: { value: stack ?? 'n/a', note: 'lx106 stack high-water mark (painted stack), sampled generation, whole program' },
  };
}
