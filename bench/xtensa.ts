/**
 * Instructions per token of the core on the emulated lx106: QEMU with
 * -icount shift=0, where the port's cycle counter reports CCOUNT × 25 =
 * instructions (firmware/ports/qemu-xtensa/README.md). The driver counts
 * only its generation loop, so loading and the CRC check are excluded.
 */
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';

export interface XtensaFigures {
  /** 256 forwards from "Once upon a time": the host row's work. */
  instructionsPerToken: { value: string; note: string };
  /** 64 greedy forwards from BOS: the work the run.c/runq.c reference figures measure. */
  fromBos: { value: string; note: string };
  stackBytes: { value: string; note: string };
}

export async function xtensaFigures(root: string, blobPath: string): Promise<XtensaFigures> {
  const tc = findQemuToolchain();
  if (!tc.ok) {
    const na = { value: 'n/a', note: `toolchain missing (${tc.install})` };
    return { instructionsPerToken: na, fromBos: na, stackBytes: na };
  }
  const { elf } = await buildXtensa(root);
  const perToken = async (args: string[]) => {
    const r = await runOnQemu({ elf, blob: blobPath, args });
    const forwards = Number(/forwards=(\d+)/.exec(r.stderr)?.[1]);
    const instructions = Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
    if (r.exitCode !== 0 || !forwards || !instructions) throw new Error(`QEMU run failed: ${r.stderr}`);
    return { forwards, value: (instructions / forwards).toFixed(0) };
  };
  // the host row's work: 256 greedy forwards from "Once upon a time" (5 prompt tokens, 252 generated)
  const same = await perToken(['-p', 'Once upon a time', '-n', '252']);
  // 64 greedy forwards from BOS: the work the reference figures below were measured on
  const bos = await perToken(['-p', '', '-n', '64']);
  // the deepest path: sampling with every option on, which sorts candidates
  const s = await runOnQemu({ elf, blob: blobPath, args: ['-p', 'Once upon a time', '-n', '32', '-t', '1', '-k', '40', '--top-p', '0.9', '--repeat-penalty', '1.1'] });
  const stack = /stack_bytes=(\d+)/.exec(s.stderr)?.[1];
  return {
    instructionsPerToken: {
      value: same.value,
      note: `QEMU -icount, ${same.forwards} greedy forwards from "Once upon a time" (the host row's work); target <= 4 M`,
    },
    fromBos: {
      value: bos.value,
      note: `QEMU -icount, ${bos.forwards} greedy forwards from BOS (run.c float: 32.5 M, runq.c int8: 30.3 M on this work)`,
    },
    stackBytes: { value: stack ?? 'n/a', note: 'lx106 stack high-water mark (painted stack), sampled generation, whole program' },
  };
}
