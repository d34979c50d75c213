/**
 * The Web Serial `SerialPort` that esptool-js 0.7.0 expects, on top of
 * @serialport/stream (docs/flashing.md; ESP32S3-FACTS.md §1.3–1.5):
 *
 * - `getInfo()` works before `open()` (the ESPLoader constructor calls it)
 *   and gives the USB ids as numbers: @serialport lists them as hex strings,
 *   and esptool-js picks its USB-Serial-JTAG reset only for 0x303A:0x1001.
 * - `readable` is a ReadableStream that a new reader is taken from for every
 *   chunk; it becomes null once the port is closed, which ends esptool-js's
 *   read loop.
 * - `setSignals()` gets partial objects ({requestToSend} alone, then
 *   {dataTerminalReady} alone): an omitted line keeps its state. The adapter
 *   keeps both lines and always sends both, because @serialport's set()
 *   fills omitted flags with dtr/rts = true, which would assert a line
 *   behind esptool's back and reset the chip or hold IO0 low.
 * - `setBaudRate()` changes the rate in place, so esptool-js does not close
 *   and reopen the port for CHANGE_BAUDRATE (a reopen can reset a board).
 * - The port opens with hupcl off and without touching the lines (a board
 *   must not reset on open); esptool's reset strategy sets them.
 *
 * A pseudo-terminal has no modem lines (set() fails there). When the port is
 * the virtual board's (lmf-sim --flash), the adapter writes each line change
 * to the board's FIFO instead, where the board runs them through the auto-reset
 * circuit of a USB-UART board (firmware/ports/posix/board.c).
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, realpathSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { autoDetect, type BindingInterface } from '@serialport/bindings-cpp';
import { SerialPortStream } from '@serialport/stream';
import { explainOpenError } from './serial.js';

export interface LineState {
  dtr: boolean;
  rts: boolean;
}

export interface EsptoolPortOptions {
  /** USB ids of the port (from `lmflash ports`): they choose esptool-js's reset sequence. */
  usbVendorId?: number;
  usbProductId?: number;
  binding?: BindingInterface;
  /** Called with both lines after every change (tests, --trace). */
  onLines?: (lines: LineState) => void;
}

interface WebSerialSignals {
  dataTerminalReady?: boolean;
  requestToSend?: boolean;
  break?: boolean;
}

interface WebSerialOpenOptions {
  baudRate: number;
}

/** The per-user folder of the virtual board's line FIFOs (board.c private_lines_dir). */
export function virtualLinesDir(): string {
  return path.join(os.tmpdir(), `lmf-sim-lines-${process.getuid?.() ?? 0}`);
}

/** Where the virtual board listens for DTR/RTS for the pty at `portPath` (board.c open_lines). */
export function virtualLinesPath(portPath: string): string {
  let real = portPath;
  try {
    real = realpathSync(portPath);
  } catch {
    // a path that does not exist has no lines either
  }
  return path.join(virtualLinesDir(), real.replace(/^\//, '').replace(/\//g, '-'));
}

/**
 * Opens the virtual board's line FIFO for the pty at `portPath` for writing,
 * or returns -1 (no board listening, or a place that is not safe to write):
 * the folder must be a real folder of this user with mode 0700, the file a
 * FIFO reached without following a symlink. In a shared temp folder anyone
 * could otherwise plant a symlink there and have lmflash overwrite its target.
 */
export function openVirtualLines(portPath: string): number {
  try {
    const dir = lstatSync(virtualLinesDir());
    const uid = process.getuid?.();
    if (!dir.isDirectory() || (uid !== undefined && dir.uid !== uid) || (dir.mode & 0o077) !== 0) return -1;
  } catch {
    return -1;
  }
  let fd: number;
  try {
    fd = openSync(virtualLinesPath(portPath), constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return -1;
  }
  if (!fstatSync(fd).isFIFO()) {
    closeSync(fd);
    return -1;
  }
  return fd;
}

function noModemLines(e: Error): boolean {
  return /inappropriate ioctl|ENOTTY|EINVAL|invalid argument/i.test(e.message);
}

export class EsptoolPort {
  readable: ReadableStream<Uint8Array> | null = null;
  writable: WritableStream<Uint8Array> | null = null;
  /** The lines as the adapter last set them. The OS raises both when a port opens. */
  lines: LineState = { dtr: true, rts: true };
  /** Every change sent, in order (tests check the reset sequences). */
  readonly lineLog: LineState[] = [];
  private stream: SerialPortStream | null = null;
  private virtualLines: number | null = null;
  private noLines = false;

  constructor(
    readonly path: string,
    private readonly opts: EsptoolPortOptions = {},
  ) {}

  getInfo(): { usbVendorId?: number; usbProductId?: number } {
    return { usbVendorId: this.opts.usbVendorId, usbProductId: this.opts.usbProductId };
  }

  async open(options: WebSerialOpenOptions): Promise<void> {
    if (this.stream?.isOpen) throw new DOMException('The port is already open.', 'InvalidStateError');
    const binding = this.opts.binding ?? autoDetect();
    const stream = new SerialPortStream({ binding, path: this.path, baudRate: options.baudRate, hupcl: false, autoOpen: false });
    await new Promise<void>((resolve, reject) => stream.open((e) => (e ? reject(explainOpenError(this.path, e)) : resolve())));
    this.stream = stream;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        stream.on('data', (chunk: Buffer) => controller.enqueue(new Uint8Array(chunk)));
        const end = () => {
          try {
            controller.close();
          } catch {
            // already closed or cancelled
          }
        };
        stream.once('close', end);
        // 'on', not 'once': the bindings can report more than one error (e.g.
        // EBADF from a read racing the close), and an unheard one would crash
        // the process instead of ending the stream
        stream.on('error', end);
      },
      cancel: () => {
        stream.removeAllListeners('data');
      },
    });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) =>
        new Promise<void>((resolve, reject) => {
          stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), (e) => {
            if (e) return reject(e);
            stream.drain((e2) => (e2 ? reject(e2) : resolve()));
          });
        }),
    });
  }

  async setSignals(signals: WebSerialSignals): Promise<void> {
    const next: LineState = {
      dtr: signals.dataTerminalReady ?? this.lines.dtr,
      rts: signals.requestToSend ?? this.lines.rts,
    };
    this.lines = next;
    this.lineLog.push({ ...next });
    this.opts.onLines?.({ ...next });
    const stream = this.stream;
    if (!stream?.isOpen) throw new DOMException('The port is closed.', 'InvalidStateError');
    if (this.noLines) return this.sendVirtualLines(next);
    try {
      // both, always: set() fills what it is not given with true
      await new Promise<void>((resolve, reject) => stream.set({ dtr: next.dtr, rts: next.rts, brk: signals.break ?? false }, (e) => (e ? reject(e) : resolve())));
    } catch (e) {
      if (!noModemLines(e as Error)) throw e;
      this.noLines = true; // a pseudo-terminal: perhaps the virtual board's
      this.sendVirtualLines(next);
    }
  }

  private sendVirtualLines(l: LineState): void {
    if (this.virtualLines === null) {
      this.virtualLines = openVirtualLines(this.path); // -1: a pty without lines
    }
    if (this.virtualLines < 0) return;
    try {
      writeSync(this.virtualLines, `${l.dtr ? 'D' : 'd'}${l.rts ? 'R' : 'r'}\n`);
    } catch {
      // the board went away
    }
  }

  async setBaudRate(baudRate: number): Promise<void> {
    const stream = this.stream;
    if (!stream?.isOpen) throw new DOMException('The port is closed.', 'InvalidStateError');
    await new Promise<void>((resolve, reject) => stream.update({ baudRate }, (e) => (e ? reject(e) : resolve())));
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    this.readable = null;
    this.writable = null;
    if (this.virtualLines !== null && this.virtualLines >= 0) closeSync(this.virtualLines);
    this.virtualLines = null;
    this.noLines = false;
    if (stream?.isOpen) await new Promise<void>((resolve) => stream.close(() => resolve()));
  }
}
