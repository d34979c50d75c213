/**
 * The flashable virtual board from the host side (`lmflash sim --flash`,
 * `lmflash flash --firmware virtual`, tests and the bench): starting
 * `lmf-sim --flash IMAGE`, the virtual board's firmware as a well-formed
 * ESP-IDF build folder (bootloader, partition table, app image,
 * flasher_args.json, laid out as `idf.py build` lays them out), and flash
 * images written directly.
 *
 * The virtual firmware's images pass every check the ESP32-S3's bootloader
 * makes (headers, segments at S3 addresses, checksums, SHA-256), which is all
 * the virtual board needs to boot them: it then runs the C core itself. Their
 * code is filler, so they must never reach a real chip (host/flash.ts refuses).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LmflashError } from '../src/errors.js';
import { checkInputFile } from '../src/input-file.js';
import { appDescription, buildEspImage } from './esp-image.js';
import { modelStoreLayout, buildPartitionTable, findAppPartition, findModelPartition, parsePartitionCsv, type Partition } from './partition-table.js';
import { projectRoot } from './native.js';

export interface FlashSimOptions {
  /** The flash image file (created erased when missing). */
  image: string;
  /** 4, 8 or 16 MB for a new image. */
  flashSize?: string;
  /** lmf-sim's folder: build/native (default) or build/asan. */
  buildDir?: string;
  /** More lmf-sim options (--pace, --download, faults...). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface FlashSim {
  path: string;
  process: ChildProcess;
  /** What the board said on stderr so far (boot log, faults). */
  stderr(): string;
  /** stderr once it matches `re` (or after timeoutMs: stderr and stdout are separate pipes, either may come first). */
  stderrWhen(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function startFlashSim(o: FlashSimOptions): Promise<FlashSim> {
  const exe = path.join(o.buildDir ?? path.join(projectRoot(), 'build', 'native'), 'lmf-sim');
  if (!existsSync(exe)) throw new LmflashError(`the virtual board is not built (${exe} is missing): run \`npm run build\``);
  if (existsSync(o.image)) checkInputFile(o.image, 'flash image'); // a missing one is created
  const args = ['--flash', o.image, ...(o.flashSize ? ['--flash-size', o.flashSize] : []), ...(o.args ?? [])];
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (err += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  process.once('exit', () => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`lmf-sim --flash did not start: ${err}`));
    }, 15_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (c: string) => {
      out += c;
      const m = /^lmf-sim: serving on (\S+)\s*$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.resume();
      const stderrWhen = async (re: RegExp, timeoutMs = 3000) => {
        const end = Date.now() + timeoutMs;
        while (!re.test(err) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        return err;
      };
      resolve({ path: m[1], process: child, stderr: () => err, stderrWhen, stop });
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`lmf-sim --flash exited (${sig ?? code}): ${err}`));
    });
  });
}

/** Deterministic filler bytes (an app's code and data stand-in). */
function filler(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    b[i] = (s >>> 0) & 0xff;
  }
  return b;
}

export interface SyntheticBuild {
  dir: string;
  partitions: Partition[];
  files: { name: string; address: number; file: string }[];
}

/** The partition table lmflash's firmware uses for this flash size (firmware/esp32s3/partitions-<size>.csv). */
export function firmwarePartitions(flashSize = '4MB'): Partition[] {
  const csv = path.join(projectRoot(), 'firmware', 'esp32s3', `partitions-${flashSize}.csv`);
  if (existsSync(csv)) return parsePartitionCsv(readFileSync(csv, 'utf8'));
  // the layout those files describe, should they be missing
  return parsePartitionCsv(`nvs, data, nvs, 0x9000, 0x6000\nphy_init, data, phy, 0xf000, 0x1000\nfactory, app, factory, 0x10000, 0x100000\nmodel, 0x40, 0x00, 0x110000, ${(Number.parseInt(flashSize, 10) << 20) - 0x110000}\n`);
}

/**
 * A build folder as `idf.py build` leaves it for an ESP32-S3 app called
 * lmflash: bootloader/bootloader.bin, partition_table/partition-table.bin,
 * lmflash.bin and flasher_args.json. The images have real headers,
 * segments at S3 addresses, checksums and SHA-256; the code is filler.
 */
export function writeSyntheticBuild(dir: string, o: { partitions?: Partition[]; flashSize?: string; appBytes?: number; seed?: number; version?: string } = {}): SyntheticBuild {
  const flashSize = o.flashSize ?? '4MB';
  const partitions = o.partitions ?? firmwarePartitions(flashSize);
  const seed = o.seed ?? 1;
  mkdirSync(path.join(dir, 'bootloader'), { recursive: true });
  mkdirSync(path.join(dir, 'partition_table'), { recursive: true });
  const bootloader = buildEspImage({
    entry: 0x403c98d8,
    spiSpeedSize: 0x1f,
    segments: [
      { address: 0x3fce3818, data: filler(0x1000, seed) },
      { address: 0x403c9700, data: filler(0x3800, seed + 1) },
      { address: 0x403cc700, data: filler(0x1400, seed + 2) },
    ],
  });
  const appBytes = o.appBytes ?? 160 * 1024;
  const app = buildEspImage({
    entry: 0x40375a1c,
    spiSpeedSize: 0x1f,
    segments: [
      { address: 0x3c020020, data: Buffer.concat([appDescription('lmflash', o.version ?? 'v0.1.0-synthetic'), filler(Math.floor(appBytes * 0.3 / 4) * 4, seed + 3)]) },
      { address: 0x3fc93000, data: filler(0x2000, seed + 4) },
      { address: 0x40374000, data: filler(0x4000, seed + 5) },
      { address: 0x42000020, data: filler(Math.floor(appBytes * 0.6 / 4) * 4, seed + 6) },
    ],
  });
  const table = buildPartitionTable(partitions);
  const appPart = findAppPartition(partitions);
  if (!appPart) throw new Error('the partition table has no app partition');
  writeFileSync(path.join(dir, 'bootloader', 'bootloader.bin'), bootloader);
  writeFileSync(path.join(dir, 'partition_table', 'partition-table.bin'), table);
  writeFileSync(path.join(dir, 'lmflash.bin'), app);
  const appOffset = `0x${appPart.offset.toString(16)}`;
  const args = {
    write_flash_args: ['--flash_mode', 'dio', '--flash_size', flashSize, '--flash_freq', '80m'],
    flash_settings: { flash_mode: 'dio', flash_size: flashSize, flash_freq: '80m' },
    flash_files: { '0x0': 'bootloader/bootloader.bin', '0x8000': 'partition_table/partition-table.bin', [appOffset]: 'lmflash.bin' },
    bootloader: { offset: '0x0', file: 'bootloader/bootloader.bin', encrypted: 'false' },
    'partition-table': { offset: '0x8000', file: 'partition_table/partition-table.bin', encrypted: 'false' },
    app: { offset: appOffset, file: 'lmflash.bin', encrypted: 'false' },
    extra_esptool_args: { after: 'hard_reset', before: 'default_reset', stub: true, chip: 'esp32s3' },
  };
  writeFileSync(path.join(dir, 'flasher_args.json'), JSON.stringify(args, null, 4));
  return {
    dir,
    partitions,
    files: [
      { name: 'bootloader', address: 0, file: path.join(dir, 'bootloader', 'bootloader.bin') },
      { name: 'partition-table', address: 0x8000, file: path.join(dir, 'partition_table', 'partition-table.bin') },
      { name: 'app', address: appPart.offset, file: path.join(dir, 'lmflash.bin') },
    ],
  };
}

/** A whole flash image with a build's files and, optionally, a model in slot 0 (what `lmflash flash` leaves). */
export function writeFlashImage(file: string, flashBytes: number, build: SyntheticBuild, model?: Uint8Array): Buffer {
  const img = Buffer.alloc(flashBytes, 0xff);
  for (const f of build.files) readFileSync(f.file).copy(img, f.address);
  if (model) {
    const part = findModelPartition(build.partitions);
    if (model.length > modelStoreLayout(part.size).journal) throw new Error('model too big for the partition');
    Buffer.from(model).copy(img, part.offset);
  }
  writeFileSync(file, img);
  return img;
}
