/**
 * Writing firmware and model to an ESP32-S3 through its boot ROM's serial
 * download mode, with esptool-js 0.7.0 (docs/flashing.md):
 *
 *   reset into download mode (DTR/RTS) → SYNC → chip detection → flasher
 *   stub → baud change → compressed writes (FLASH_DEFL_*) → MD5 of every
 *   region → reset into the app (EN pulse with IO0 released).
 *
 * What goes where comes from the ESP-IDF build folder's flasher_args.json
 * (bootloader, partition table, app) and, for the model, from the partition
 * table: the `model` partition, read from the build folder or, with --model
 * alone, back from the board. Every file is checked before anything is
 * written: images as the bootloader checks them (esp-image.ts), the model as
 * the firmware checks it (readBlob), and every size against its partition
 * and the flash.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ESPLoader, Transport, type IEspLoaderTerminal } from 'esptool-js';
import { readBlob } from '../src/blob.js';
import { checkModelFitsBoard, detectedBoard } from '../src/boards.js';
import { LmflashError } from '../src/errors.js';
import { checkInputFile } from '../src/input-file.js';
import { ARCH_NGRAM, blobArch, readNgramBlob } from '../src/ngram.js';
import { parseEspImage, type EspImage } from './esp-image.js';
import { EsptoolPort, virtualLinesPath, type LineState } from './esptool-adapter.js';
import { writeSyntheticBuild } from './flash-sim.js';
import type { CliIO } from './io.js';
import { Progress } from './progress.js';
import {
  findAppPartition,
  findModelPartition,
  modelStoreLayout,
  parsePartitionTable,
  PARTITION_TABLE_OFFSET,
  PARTITION_TABLE_SIZE,
  type Partition,
} from './partition-table.js';
import { listPorts, resolvePort } from './serial.js';

/** The baud rate the ROM listens at after reset. */
export const ROM_BAUD = 115200;
/**
 * Reset into the app at the end: EN pulsed low with IO0 (DTR) released.
 * esptool-js's own "hard_reset" only lowers RTS (ESP32S3-FACTS §1.6): on a
 * USB-UART board that leaves the chip where it was, with IO0 still held low.
 */
export const HARD_RESET_SEQUENCE = 'D0|R1|W100|R0';

export interface FlashFile {
  /** What it is: bootloader, partition-table, app, model, model store journal, or a flasher_args.json key. */
  name: string;
  address: number;
  data: Uint8Array;
  /** Where it came from, for messages. */
  source?: string;
}

export interface BuildDir {
  dir: string;
  files: FlashFile[];
  partitions: Partition[];
  app: EspImage;
  flashSettings: { flash_mode?: string; flash_size?: string; flash_freq?: string };
}

interface FlasherArgs {
  flash_files?: Record<string, string>;
  flash_settings?: { flash_mode?: string; flash_size?: string; flash_freq?: string };
  bootloader?: { offset: string; file: string };
  'partition-table'?: { offset: string; file: string };
  app?: { offset: string; file: string };
  extra_esptool_args?: { chip?: string };
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Reads an ESP-IDF build folder: flasher_args.json, the files it lists, and
 * checks them (images, partition table, offsets) without touching a board.
 */
export function readBuildDir(dir: string): BuildDir {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LmflashError(`no such build folder ${dir}: pass the \`build\` folder of the ESP-IDF app (firmware/esp32s3/build after \`idf.py build\`)`);
  const argsPath = path.join(dir, 'flasher_args.json');
  if (!existsSync(argsPath)) {
    throw new LmflashError(
      `${dir} has no flasher_args.json, so it is not an ESP-IDF build folder (or the build did not finish): ` +
        'build the firmware with `idf.py build` in firmware/esp32s3 and pass its `build` folder, e.g. --firmware firmware/esp32s3/build',
    );
  }
  checkInputFile(argsPath);
  let args: FlasherArgs;
  try {
    args = JSON.parse(readFileSync(argsPath, 'utf8')) as FlasherArgs;
  } catch (e) {
    throw new LmflashError(`${argsPath} is not valid JSON (${(e as Error).message}): build the firmware again`);
  }
  const chip = args.extra_esptool_args?.chip;
  if (chip && chip !== 'esp32s3') throw new LmflashError(`${dir} was built for ${chip}, not the ESP32-S3: run \`idf.py set-target esp32s3\` and build again`);
  const entries = Object.entries(args.flash_files ?? {});
  if (entries.length === 0) throw new LmflashError(`${argsPath} lists no flash_files: build the firmware again`);
  const named = new Map<number, string>();
  for (const key of ['bootloader', 'partition-table', 'app'] as const) {
    const e = args[key];
    if (!e) throw new LmflashError(`${argsPath} has no "${key}" entry: it is not from an ESP-IDF app build; build the firmware again`);
    named.set(Number(e.offset), key);
  }
  const files: FlashFile[] = entries.map(([offset, rel]) => {
    const address = Number(offset);
    if (!Number.isInteger(address) || address < 0) throw new LmflashError(`${argsPath} has a bad offset "${offset}"`);
    const file = path.join(dir, rel);
    if (!existsSync(file)) throw new LmflashError(`${argsPath} lists ${rel} at ${offset}, but ${file} is missing: build the firmware again`);
    checkInputFile(file);
    return { name: named.get(address) ?? rel, address, data: readFileSync(file), source: file };
  });
  for (const key of ['bootloader', 'partition-table', 'app']) {
    if (!files.some((f) => f.name === key)) throw new LmflashError(`${argsPath}: the ${key} offset is not among its flash_files: build the firmware again`);
  }
  const get = (name: string) => files.find((f) => f.name === name)!;
  const boot = get('bootloader');
  if (boot.address !== 0) throw new LmflashError(`${argsPath} puts the bootloader at ${hex(boot.address)}; the ESP32-S3 boots from 0x0: is the build for another chip?`);
  parseEspImage(boot.data, `the bootloader ${boot.source}`);
  if (boot.data.length > PARTITION_TABLE_OFFSET) throw new LmflashError(`the bootloader (${boot.data.length} bytes) runs into the partition table at 0x8000: shrink it (bootloader log level, optimisation)`);
  const table = get('partition-table');
  if (table.address !== PARTITION_TABLE_OFFSET) throw new LmflashError(`the partition table is at ${hex(table.address)}; lmflash expects the default 0x8000 (CONFIG_PARTITION_TABLE_OFFSET)`);
  const partitions = parsePartitionTable(table.data, `the partition table ${table.source}`);
  const appFile = get('app');
  const app = parseEspImage(appFile.data, `the app image ${appFile.source}`);
  const appPart = findAppPartition(partitions);
  if (!appPart) throw new LmflashError(`the partition table ${table.source} has no factory or ota_0 app partition: use lmflash's partitions-*.csv`);
  if (appPart.offset !== appFile.address) throw new LmflashError(`flasher_args.json puts the app at ${hex(appFile.address)} but the partition table's app partition \`${appPart.label}\` is at ${hex(appPart.offset)}: build again`);
  if (appFile.data.length > appPart.size) throw new LmflashError(`the app image is ${appFile.data.length} bytes, larger than its partition \`${appPart.label}\` (${appPart.size}): enlarge the partition or shrink the app`);
  return { dir, files, partitions, app, flashSettings: args.flash_settings ?? {} };
}

/**
 * A model needs RAM the board may not have (a transformer its KV cache, an
 * N-gram 12 bytes a word of its vocabulary): refuse, before writing, a model
 * that could not start on the board esptool found.
 */
async function refuseIfModelCannotRun(blob: Uint8Array, source: string, flashSize: string, features: string[]): Promise<void> {
  const board = detectedBoard(flashSize, features);
  const view = blobArch(blob) === ARCH_NGRAM ? readNgramBlob(blob) : readBlob(blob);
  const problems = checkModelFitsBoard(view, board).filter((p) => p.kind !== 'flash');
  if (problems.length === 0) return;
  throw new LmflashError(
    `the model ${source} cannot run on this board (looks like ${board.id}: ${board.name}): ${problems.map((p) => p.message).join('; ')}; ` +
      'nothing was written (if the board has PSRAM outside the chip package, which esptool cannot see, pass --skip-ram-check)',
  );
}

/** Reads and fully checks a blob; returns exactly its bytes. */
export function readModelFile(file: string): Buffer {
  checkInputFile(file, 'model');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new LmflashError(`cannot read the model ${file}: ${(e as Error).message}`);
  }
  try {
    const view = blobArch(bytes) === ARCH_NGRAM ? readNgramBlob(bytes) : readBlob(bytes);
    return bytes.subarray(0, view.fileSize);
  } catch (e) {
    throw new LmflashError(`the model ${file} fails its checks (${(e as Error).message}); nothing was written`);
  }
}

/** The model's writes: the blob at the start of the partition, and an erased commit journal (slot 0 becomes the model the board runs). */
export function modelFiles(blob: Uint8Array, part: Partition, source: string): FlashFile[] {
  const { journal } = modelStoreLayout(part.size);
  if (blob.length > journal) {
    throw new LmflashError(
      `the model ${source} is ${blob.length.toLocaleString('en')} bytes but the \`model\` partition holds ${journal.toLocaleString('en')} ` +
        `(${part.size.toLocaleString('en')} less the 4 KiB commit journal): nothing was written; use a smaller model, or a board with more flash and the matching partitions-*.csv`,
    );
  }
  return [
    { name: 'model', address: part.offset, data: blob, source },
    { name: 'model store journal', address: part.offset + journal, data: new Uint8Array(4096).fill(0xff) },
  ];
}

// ---------------------------------------------------------------- errors

const STUB_STATUS: Record<number, string> = {
  0xc0: 'bad data length',
  0xc1: 'checksum error: the data was damaged on the way',
  0xc4: 'the flash chip refused the write',
  0xc6: 'not in flash mode',
  0xc7: 'the compressed data would not inflate: it was damaged on the way',
  0xc9: 'too much data',
};

const CONNECT_HINT =
  'put it in download mode by hand: hold BOOT, press and release RESET, release BOOT, then run the command again; ' +
  'if it still fails, try another USB cable (some only charge) or a lower --baud (e.g. 115200)';

/** An esptool-js error as a sentence saying what to do. */
export function explainEsptoolError(e: unknown, portPath: string): Error {
  if (e instanceof LmflashError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/Failed to connect/i.test(msg)) return new LmflashError(`no answer from the ESP32-S3 bootloader on ${portPath} (the reset into download mode did not take): ${CONNECT_HINT}`);
  const m = /Failed to (write[^]*?) failed with status (\d+),(\d+)/.exec(msg);
  if (m) {
    const code = Number(m[2]);
    const seq = /seq (\d+)/.exec(m[1]);
    const what = STUB_STATUS[code] ?? `status 0x${code.toString(16)}`;
    const advice = code === 0xc1 || code === 0xc7 ? 'the line is unreliable: try a lower --baud (e.g. --baud 115200) and a shorter or better USB cable' : 'run the command again; if it keeps failing, try --erase-all';
    return new LmflashError(`the board rejected block ${seq ? seq[1] : '?'} three times (${what}): ${advice}`);
  }
  if (/Invalid head of packet|Serial data stream stopped|No serial data received|invalid response|Invalid SLIP/i.test(msg)) {
    return new LmflashError(`the bootloader stopped answering or its reply was garbled (${msg.trim()}): try a lower --baud and another USB cable, then run the command again`);
  }
  if (/Unexpected chip|chip id|magic/i.test(msg)) return new LmflashError(`the chip on ${portPath} is not an ESP32-S3 (${msg.trim()}): lmflash firmware runs on the ESP32-S3 only`);
  return new LmflashError(`flashing failed: ${msg.trim()}`);
}

// ---------------------------------------------------------------- flashing

export interface FlashOptions {
  port?: string;
  firmware?: string;
  model?: string;
  baud: number;
  eraseAll?: boolean;
  verify?: boolean;
  compress?: boolean;
  /** Do not refuse a model the detected board seems to lack the RAM for. */
  skipRamCheck?: boolean;
  /** A bar per file on stderr (redrawn in place when tty). */
  progress?: boolean;
  tty?: boolean;
  /** Print esptool-js's own messages. */
  verbose?: boolean;
  /** After writing: reset into the app (default) or stay in the flasher stub. */
  resetAfter?: boolean;
  /** Override the USB ids that choose the reset sequence (tests). */
  usbIds?: { vendorId?: number; productId?: number };
  /** Every modem-line change (tests). */
  onLines?: (l: LineState) => void;
}

export interface FlashedFile {
  name: string;
  address: number;
  bytes: number;
  /** Bytes sent over the line (compressed when compressing). */
  sent: number;
  seconds: number;
  md5: string;
  verified: boolean;
}

export interface FlashResult {
  port: string;
  chip: string;
  flashSize: string;
  connectSeconds: number;
  files: FlashedFile[];
  /** Blocks the board rejected (damaged on the line) and got again. */
  resentBlocks: number;
}

function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

/** esptool pads every file to a multiple of 4 with 0xFF before writing it. */
function padded(data: Uint8Array): Uint8Array {
  if (data.length % 4 === 0) return data;
  const out = new Uint8Array(data.length + (4 - (data.length % 4))).fill(0xff);
  out.set(data);
  return out;
}

function flashBytes(size: string): number {
  const m = /^(\d+)(KB|MB)$/.exec(size);
  return m ? Number(m[1]) * (m[2] === 'MB' ? 1 << 20 : 1024) : -1;
}

async function usbIdsOf(portPath: string): Promise<{ vendorId?: number; productId?: number }> {
  try {
    const p = (await listPorts({ all: true })).find((x) => x.path === portPath);
    return p ? { vendorId: p.vendorId, productId: p.productId } : {};
  } catch {
    return {};
  }
}

class Interrupted extends LmflashError {}

/** A promise that rejects on Ctrl-C (SIGINT), while installed. */
function interruptOnCtrlC(): { promise: Promise<never>; dispose(): void } {
  let onSignal = () => {};
  const promise = new Promise<never>((_, reject) => {
    onSignal = () => reject(new Interrupted('interrupted (Ctrl-C)'));
  });
  promise.catch(() => undefined);
  process.once('SIGINT', onSignal);
  return { promise, dispose: () => process.off('SIGINT', onSignal) };
}

/** What a flash that stopped early leaves on the board, in words. */
export function afterFailureState(done: string[], writing: string | null): string {
  const firmware = ['bootloader', 'partition-table', 'app'];
  if (!writing) {
    return done.length === 0 ? 'nothing was written, so it runs what it ran before' : `${done.join(', ')} were written in full`;
  }
  const wrote = done.length ? `${done.join(', ')} were written, ` : '';
  if (firmware.includes(writing)) return `${wrote}the ${writing} only in part, so its firmware is incomplete and it will stay in its bootloader: run the same \`lmflash flash\` again`;
  return `${wrote}the ${writing} only in part: its firmware runs but without a usable model; run the same \`lmflash flash\` again (or \`lmflash upload-model\`)`;
}

/** Resets a board left in download mode into its app, saying so; a board that does not answer any more gets the manual way. */
async function resetAfterFailure(loader: ESPLoader, io: CliIO, state: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([loader.after('custom_reset', false, HARD_RESET_SEQUENCE), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), 3000)))]);
    io.err(`reset: the board restarts out of download mode; ${state}\n`);
  } catch {
    io.err(`lmflash: could not reset the board out of download mode (${state}): press its RESET button, or run \`lmflash reset\`\n`);
  } finally {
    clearTimeout(timer);
  }
}

/** `lmflash reset`: EN pulsed with IO0 released, so that a board left in its bootloader (download mode) runs its app. */
export async function resetBoard(o: { port?: string }, io: CliIO): Promise<string> {
  const portPath = await resolvePort(o.port);
  const ids = await usbIdsOf(portPath);
  const port = new EsptoolPort(portPath, { usbVendorId: ids.vendorId, usbProductId: ids.productId });
  const transport = new Transport(port as unknown as SerialPort, false);
  (transport as unknown as { trace(m: string): void }).trace = () => {};
  const terminal: IEspLoaderTerminal = { clean() {}, writeLine() {}, write() {} };
  try {
    await transport.connect(ROM_BAUD);
    const loader = new ESPLoader({ transport, baudrate: ROM_BAUD, romBaudrate: ROM_BAUD, terminal });
    await loader.after('custom_reset', false, HARD_RESET_SEQUENCE);
  } catch (e) {
    throw explainEsptoolError(e, portPath);
  } finally {
    try {
      await transport.disconnect();
    } catch {
      await port.close();
    }
  }
  io.err(`reset: the board on ${portPath} restarts into its firmware\n`);
  return portPath;
}

/** `--firmware virtual`: the firmware of lmflash's virtual board, built here (no ESP-IDF needed). */
export const VIRTUAL_FIRMWARE = 'virtual';

/** The virtual board's firmware, made in a temporary build folder and read back with every check a real build gets. */
function virtualBuild(): BuildDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmflash-virtual-firmware-'));
  try {
    writeSyntheticBuild(dir, { flashSize: '4MB', version: 'virtual-board' });
    return { ...readBuildDir(dir), dir: 'the virtual firmware' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The virtual board listens for its modem lines beside its pty: a real port has no such channel. */
function isVirtualBoard(portPath: string): boolean {
  return existsSync(virtualLinesPath(portPath));
}

export async function flash(o: FlashOptions, io: CliIO): Promise<FlashResult> {
  if (!o.firmware && !o.model) throw new LmflashError('say what to flash: --firmware BUILD_DIR (bootloader, partition table, app), --firmware virtual (the virtual board), --model MODEL.blob, or both');
  // everything that can be checked without the board, before touching it
  const virtual = o.firmware === VIRTUAL_FIRMWARE;
  const build = o.firmware ? (virtual ? virtualBuild() : readBuildDir(o.firmware)) : null;
  const blob = o.model ? readModelFile(o.model) : null;
  let files: FlashFile[] = build ? [...build.files] : [];
  if (build && blob) {
    const part = findModelPartition(build.partitions, `the partition table of ${build.dir}`);
    const model = modelFiles(blob, part, o.model!);
    files = files.filter((f) => f.address < part.offset || f.address >= part.offset + part.size); // the build's own model image, if any, gives way
    files.push(...model);
  }
  if (build) {
    io.err(`firmware: ${build.app.app ? `${build.app.app.projectName} ${build.app.app.version} (ESP-IDF ${build.app.app.idfVersion}), ` : ''}${files.filter((f) => f.name !== 'model' && f.name !== 'model store journal').map((f) => `${f.name} @ ${hex(f.address)}`).join(', ')}\n`);
  }

  const portPath = await resolvePort(o.port);
  if (virtual && !isVirtualBoard(portPath)) {
    throw new LmflashError(
      `--firmware virtual is the firmware of lmflash's virtual board (\`lmflash sim --flash IMAGE\`), and ${portPath} is not one: its images hold no real code. ` +
        'For an ESP32-S3 build firmware/esp32s3 with `idf.py build` and pass --firmware firmware/esp32s3/build; nothing was written',
    );
  }
  const ids = o.usbIds ?? (await usbIdsOf(portPath));
  const port = new EsptoolPort(portPath, { usbVendorId: ids.vendorId, usbProductId: ids.productId, onLines: o.onLines });
  let resent = 0;
  let currentFile = '';
  const terminal: IEspLoaderTerminal = {
    clean() {},
    writeLine(line: string) {
      const retry = /block (\d+) write failed \((.*)\), retrying/i.exec(line);
      if (retry) {
        resent++;
        const status = /status (\d+),/.exec(retry[2]);
        const why = status ? (STUB_STATUS[Number(status[1])] ?? `status 0x${Number(status[1]).toString(16)}`) : retry[2].replace(/^\w*Error: /, '');
        io.err(`\nlmflash: block ${retry[1]} of the ${currentFile} was rejected by the board (${why}): sending it again\n`);
      } else if (o.verbose && !line.startsWith('Debug:')) io.err(`esptool: ${line}\n`);
    },
    write(text: string) {
      if (o.verbose && !text.startsWith('Debug:')) io.err(text);
    },
  };
  const transport = new Transport(port as unknown as SerialPort, false);
  // esptool-js traces some events with console.log whatever its tracing flag says: keep stdout clean
  (transport as unknown as { trace(m: string): void }).trace = (m: string) => {
    if (o.verbose) io.err(`esptool: ${m}\n`);
  };
  const loader = new ESPLoader({ transport, baudrate: o.baud, romBaudrate: ROM_BAUD, terminal, debugLogging: true });
  const result: FlashResult = { port: portPath, chip: '', flashSize: '', connectSeconds: 0, files: [], resentBlocks: 0 };
  const t0 = performance.now();
  /** Set once the board was reset into download mode: from then on it must be reset back, whatever happens. */
  let inDownloadMode = false;
  /** The file being written when a failure or Ctrl-C came, if any. */
  let writing: string | null = null;
  const interrupt = interruptOnCtrlC();
  const work = (async () => {
    try {
      io.err(`connecting to ${portPath} (reset into download mode)...\n`);
      inDownloadMode = true;
      result.chip = await loader.main('default_reset');
    } catch (e) {
      throw explainEsptoolError(e, portPath);
    }
    result.connectSeconds = (performance.now() - t0) / 1000;
    const size = await loader.detectFlashSize();
    if (!size) throw new LmflashError('cannot read the size of the flash chip (its JEDEC id is unknown): is the flash connected? try again');
    result.flashSize = size;
    const total = flashBytes(size);
    io.err(`connected: ${result.chip}, ${size} flash, ${loader.IS_STUB ? 'flasher stub running' : 'ROM loader'}, ${o.baud} baud\n`);
    if (blob && !o.skipRamCheck) await refuseIfModelCannotRun(blob, o.model!, size, await loader.chip.getChipFeatures(loader));

    if (blob && !build) {
      // the board's own partition table says where the model goes
      const table = await loader.readFlash(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE);
      let parts: Partition[];
      try {
        parts = parsePartitionTable(table, 'the partition table on the board');
      } catch (e) {
        throw new LmflashError(`${(e as Error).message}; nothing was written`);
      }
      const part = findModelPartition(parts, 'the partition table on the board');
      files = modelFiles(blob, part, o.model!);
      if (part.offset + part.size > total) throw new LmflashError(`the board's \`model\` partition ends at ${hex(part.offset + part.size)} but its flash is ${size}: flash the firmware built for this flash size first`);
    }
    if (build) {
      const over = build.partitions.find((p) => p.offset + p.size > total);
      if (over) {
        throw new LmflashError(
          `partition \`${over.label}\` ends at ${hex(over.offset + over.size)} but this board has ${size} of flash: build the firmware with the partitions-*.csv for ${size} (firmware/esp32s3); nothing was written`,
        );
      }
    }
    for (const f of files) {
      if (f.address + f.data.length > total) throw new LmflashError(`the ${f.name} (${f.data.length} bytes at ${hex(f.address)}) does not fit the board's ${size} flash; nothing was written`);
    }

    const progress = new Progress(io, !!o.tty);
    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      currentFile = f.name;
      let sentTotal = 0;
      const t = performance.now();
      progress.begin();
      writing = f.name;
      await loader.writeFlash({
        fileArray: [{ data: f.data instanceof Buffer ? new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.length) : f.data, address: f.address }],
        flashMode: 'keep', // "keep" for all three: esptool-js 0.7.0 would leave a stale SHA-256 on a patched bootloader (FACTS §1.6)
        flashFreq: 'keep',
        flashSize: 'keep',
        eraseAll: i === 0 && !!o.eraseAll,
        compress: o.compress !== false,
        reportProgress: (_i, written, totalSent) => {
          sentTotal = totalSent;
          if (o.progress !== false) progress.update(f.name, Math.round((written / Math.max(totalSent, 1)) * f.data.length), f.data.length, written === totalSent);
        },
      });
      result.files.push({ name: f.name, address: f.address, bytes: f.data.length, sent: sentTotal, seconds: (performance.now() - t) / 1000, md5: md5(padded(f.data)), verified: false });
      writing = null;
    }
    if (o.verify !== false) {
      for (const r of result.files) {
        const onBoard = await loader.flashMd5sum(r.address, padded(files.find((f) => f.address === r.address)!.data).length);
        if (onBoard !== r.md5) {
          throw new LmflashError(
            `verification failed: the ${r.name} at ${hex(r.address)} (${r.bytes} bytes) reads back with MD5 ${onBoard}, expected ${r.md5}: ` +
              'the flash did not keep what was sent; run the command again with --erase-all; if it fails again the board\'s flash may be damaged',
          );
        }
        r.verified = true;
        io.err(`verified ${r.name.padEnd(20)} ${hex(r.address).padEnd(9)} MD5 ${r.md5}\n`);
      }
    }
    result.resentBlocks = resent;
    if (o.resetAfter !== false) {
      await loader.after('custom_reset', false, HARD_RESET_SEQUENCE);
      inDownloadMode = false;
      io.err('reset: the board restarts into its firmware\n');
    }
  })();
  work.catch(() => undefined); // after Ctrl-C it fails on the closed port, unheard
  try {
    await Promise.race([work, interrupt.promise]);
  } catch (e) {
    const err = explainEsptoolError(e, portPath);
    // A refused, failed or interrupted flash must not leave the chip in its bootloader.
    if (inDownloadMode && o.resetAfter !== false) await resetAfterFailure(loader, io, afterFailureState(result.files.map((f) => f.name), writing));
    throw err;
  } finally {
    interrupt.dispose();
    try {
      await transport.disconnect();
    } catch {
      await port.close();
    }
  }
  return result;
}
