/**
 * Flashing throughput against the virtual board (lmf-sim --flash --pace):
 * `lmflash flash --model` (esptool-js, flasher stub, MD5 check) at 115200
 * and 921600 baud, with and without compression, and `lmflash upload-model`
 * through the running firmware at 115200. A pseudo-terminal has no baud
 * rate, so the virtual board paces its side of the line to the rate its UART
 * is set to (10 bits a byte, both ways); the figures are the model's bytes
 * over the time its write took (connection and stub upload excluded), as a
 * fraction of the line's 8N1 byte rate. Compression can push the fraction
 * above 1; an int8 blob deflates only to ~90 %.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { uploadModel } from '../host/commands/upload-model.js';
import { flash } from '../host/flash.js';
import { startFlashSim, writeFlashImage, writeSyntheticBuild } from '../host/flash-sim.js';

const quiet = { out: () => {}, err: () => {} };

export async function flashFigures(blobPath: string): Promise<[string, string, string][]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmflash-bench-flash-'));
  const rows: [string, string, string][] = [];
  const bytes = readFileSync(blobPath).length;
  try {
    const build = writeSyntheticBuild(path.join(dir, 'build'));
    for (const baud of [115200, 921600]) {
      for (const compress of [true, false]) {
        const image = path.join(dir, `flash-${baud}-${compress}.bin`);
        writeFlashImage(image, 4 << 20, build);
        const sim = await startFlashSim({ image, args: ['--pace'] });
        try {
          const r = await flash({ port: sim.path, model: blobPath, baud, compress, progress: false }, quiet);
          const model = r.files.find((f) => f.name === 'model')!;
          const rate = model.bytes / model.seconds;
          rows.push([
            `flash --model @ ${baud}${compress ? ', deflate' : ''}`,
            `${(rate / 1024).toFixed(1)} KiB/s`,
            `${((rate * 10) / baud).toFixed(2)} of the line rate; ${bytes} B in ${model.seconds.toFixed(1)} s${compress ? ` (${model.sent} B sent)` : ''}, connect+stub ${r.connectSeconds.toFixed(1)} s; paced virtual board`,
          ]);
        } finally {
          await sim.stop();
        }
      }
    }
    const image = path.join(dir, 'flash-upload.bin');
    writeFlashImage(image, 4 << 20, build);
    const sim = await startFlashSim({ image, args: ['--pace'] });
    try {
      const r = await uploadModel({ port: sim.path, model: blobPath, progress: false }, quiet);
      const rate = r.bytes / r.seconds;
      rows.push(['upload-model @ 115200', `${(rate / 1024).toFixed(1)} KiB/s`, `${((rate * 10) / 115200).toFixed(2)} of the line rate; ${r.bytes} B in ${r.seconds.toFixed(1)} s through the firmware (framed, CRC per chunk, read back), paced`]);
    } finally {
      await sim.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

// `node dist/bench/flash.js BLOB`: these figures alone
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const blob = process.argv[2];
  if (!blob) {
    console.error('usage: node dist/bench/flash.js MODEL.blob');
    process.exit(2);
  }
  for (const [name, value, note] of await flashFigures(blob)) console.log(`${name.padEnd(34)} ${value.padStart(12)}  ${note}`);
}
