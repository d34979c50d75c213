/**
 * Instructions per token of the core on the emulated ESP32-S3 (QEMU -M sim
 * -cpu esp32s3 with -icount shift=0, firmware/ports/qemu-esp32s3): with the
 * PIE kernels and the hardware FPU, and with the plain C kernels. The same
 * work as the host callgrind row: 256 forwards from "Once upon a time". The
 * driver counts only its generation loop, so loading is excluded. QEMU
 * counts instructions, not cycles: it models no pipeline, cache or flash.
 */
import { buildEsp32s3, findEsp32s3Toolchain, runOnQemu, type Esp32s3Images } from '../host/qemu.js';

type Row = [string, string, string];

async function instructionsPerToken(images: Esp32s3Images, elf: string, blobPath: string): Promise<number> {
  const r = await runOnQemu({ elf, blob: blobPath, args: ['-p', 'Once upon a time', '-n', '252'], target: images.target });
  const forwards = Number(/forwards=(\d+)/.exec(r.stderr)?.[1]);
  const instructions = Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
  if (r.exitCode !== 0 || forwards !== 256 || !instructions) throw new Error(`ESP32-S3 QEMU run failed: ${r.stderr}`);
  return instructions / forwards;
}

export async function esp32s3Figures(root: string, blobPath: string): Promise<Row[]> {
  const tc = findEsp32s3Toolchain(root);
  if (!tc.ok) return [['ESP32-S3 instructions / token', 'n/a', `toolchain missing: ${tc.missing.join('; ')}`]];
  const images = await buildEsp32s3(root);
  const pie = await instructionsPerToken(images, images.elf, blobPath);
  const plain = await instructionsPerToken(images, images.plainElf, blobPath);
  const work = '256 forwards from "Once upon a time", loading excluded; QEMU -icount counts instructions, not cycles';
  return [
    ['ESP32-S3 instructions / token (PIE)', pie.toFixed(0), `${work}; PIE kernels + FPU; goal <= 0.5 M`],
    ['ESP32-S3 instructions / token (C)', plain.toFixed(0), `${work}; C kernels + FPU; PIE is ${(plain / pie).toFixed(2)}x fewer`],
  ];
}
