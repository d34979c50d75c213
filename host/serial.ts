/**
 * Serial ports: listing them with a guess at what is plugged in, picking the
 * board when the user names no port, and opening one without resetting the
 * board (docs/protocol.md, "Flow control and a host that goes away").
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync, existsSync } from 'node:fs';
import path from 'node:path';
import { autoDetect, type BindingInterface, type PortInfo } from '@serialport/bindings-cpp';
import { SerialPortStream } from '@serialport/stream';
import { InvalidArgumentError } from 'commander';
import { LmflashError } from '../src/errors.js';

export const DEFAULT_BAUD = 115200;

export interface PortEntry {
  path: string;
  vendorId?: number;
  productId?: number;
  manufacturer?: string;
  serialNumber?: string;
  /** What the USB ids suggest, or null when they say nothing about a board. */
  guess: string | null;
  /** 3 = surely an ESP32-S3's own USB, 2 = a USB-UART common on ESP32 boards, 1 = a generic USB-UART, 0 = not a board. */
  likelihood: number;
}

interface KnownDevice {
  vendorId: number;
  productIds: number[] | 'any';
  guess: string;
  likelihood: number;
}

/** USB ids of what ESP32-S3 boards present; first match wins. */
const KNOWN_DEVICES: KnownDevice[] = [
  { vendorId: 0x303a, productIds: [0x1001], guess: 'ESP32-S3 built-in USB-Serial-JTAG', likelihood: 3 },
  { vendorId: 0x303a, productIds: 'any', guess: 'Espressif USB device', likelihood: 2 },
  { vendorId: 0x10c4, productIds: [0xea60], guess: 'CP210x USB-UART (common on ESP32 boards)', likelihood: 2 },
  { vendorId: 0x1a86, productIds: [0x7523, 0x55d4], guess: 'CH34x USB-UART (common on ESP32 boards)', likelihood: 2 },
  { vendorId: 0x0403, productIds: [0x6001, 0x6010, 0x6014, 0x6015], guess: 'FTDI USB-UART', likelihood: 1 },
];

export function guessDevice(vendorId?: number, productId?: number): { guess: string | null; likelihood: number } {
  if (vendorId === undefined) return { guess: null, likelihood: 0 };
  for (const d of KNOWN_DEVICES) {
    if (d.vendorId !== vendorId) continue;
    if (d.productIds === 'any' || (productId !== undefined && d.productIds.includes(productId))) return { guess: d.guess, likelihood: d.likelihood };
  }
  return { guess: null, likelihood: 0 };
}

function hexId(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const n = parseInt(v, 16); // the bindings give "303a", not 0x303a
  return Number.isFinite(n) ? n : undefined;
}

function toEntry(p: PortInfo): PortEntry {
  const vendorId = hexId(p.vendorId);
  const productId = hexId(p.productId);
  return { path: p.path, vendorId, productId, manufacturer: p.manufacturer || undefined, serialNumber: p.serialNumber || undefined, ...guessDevice(vendorId, productId) };
}

/** Likeliest board first, then by path. */
export function sortPorts(ports: PortEntry[]): PortEntry[] {
  return [...ports].sort((a, b) => b.likelihood - a.likelihood || a.path.localeCompare(b.path, 'en', { numeric: true }));
}

/**
 * Serial devices from sysfs, for Linux machines without udevadm (containers,
 * minimal installs), where the bindings' list() fails: each tty with a device
 * behind it, and the USB ids of the nearest USB ancestor.
 */
export function listSysfsPorts(root = '/sys/class/tty'): PortInfo[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const ports: PortInfo[] = [];
  for (const name of names) {
    if (!/^(ttyS|ttyWCH|ttyACM|ttyUSB|ttyAMA|ttyMFD|ttyO|ttyXRUSB|rfcomm)/.test(name)) continue;
    const device = path.join(root, name, 'device');
    if (!existsSync(device)) continue;
    const usb = usbAncestor(realpathSync(device));
    const read = (f: string) => (usb ? readFileSync(path.join(usb, f), 'utf8').trim() : undefined);
    const tryRead = (f: string) => {
      try {
        return read(f);
      } catch {
        return undefined;
      }
    };
    ports.push({
      path: `/dev/${name}`,
      manufacturer: tryRead('manufacturer'),
      serialNumber: tryRead('serial'),
      pnpId: undefined,
      locationId: undefined,
      vendorId: tryRead('idVendor'),
      productId: tryRead('idProduct'),
    });
  }
  return ports;
}

function usbAncestor(dir: string): string | null {
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) if (existsSync(path.join(d, 'idVendor'))) return d;
  return null;
}

/**
 * The serial ports of this machine, likeliest board first. Legacy on-board
 * UARTs (/dev/ttyS*, no USB ids: Linux lists 32 of them whether wired or not)
 * are left out unless `all`.
 */
export async function listPorts(opts: { all?: boolean } = {}): Promise<PortEntry[]> {
  let raw: PortInfo[];
  try {
    raw = await autoDetect().list();
  } catch (e) {
    if (process.platform !== 'linux') throw new LmflashError(`cannot list serial ports: ${(e as Error).message}`);
    raw = listSysfsPorts(); // no udevadm here: read sysfs ourselves
  }
  const ports = raw.map(toEntry).filter((p) => opts.all || p.vendorId !== undefined || !/^\/dev\/ttyS\d+$/.test(p.path));
  return sortPorts(ports);
}

export function describePort(p: PortEntry): string {
  const ids = p.vendorId !== undefined ? `${hex4(p.vendorId)}:${p.productId !== undefined ? hex4(p.productId) : '????'}` : 'no USB ids';
  return `${p.path} (${[p.guess ?? 'unknown device', ids, p.manufacturer].filter(Boolean).join(', ')})`;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/**
 * The port to use when the user gave no --port: the only one that looks like
 * a board. None or several: an error that says what to do.
 */
export function pickBoard(ports: PortEntry[]): PortEntry {
  const boards = sortPorts(ports.filter((p) => p.likelihood > 0));
  if (boards.length === 1) return boards[0];
  if (boards.length === 0) {
    const others = ports.length ? ` (serial ports seen, none with a board's USB ids: ${ports.map((p) => p.path).join(', ')})` : '';
    throw new LmflashError(
      `no board found${others}: plug the board in with a data USB cable (some cables only charge) and run \`lmflash ports\`, or name the port with --port`,
    );
  }
  throw new LmflashError(`several ports look like boards: ${boards.map(describePort).join('; ')}: choose one with --port`);
}

/** `--port` as given, or the only board plugged in. */
export async function resolvePort(port: string | undefined): Promise<string> {
  if (port) return port;
  return pickBoard(await listPorts()).path;
}

export type SerialPort = SerialPortStream;

/** A bindings error as a sentence saying what to do. */
export function explainOpenError(portPath: string, e: Error): LmflashError {
  const msg = e.message;
  if (/no such file|ENOENT/i.test(msg)) return new LmflashError(`no such port ${portPath}: run \`lmflash ports\` to see the serial ports`);
  if (/permission denied|EACCES/i.test(msg))
    return new LmflashError(
      `permission denied opening ${portPath}: add yourself to the dialout group (\`sudo usermod -aG dialout $USER\`, then log out and in)`,
    );
  if (/cannot lock|resource temporarily unavailable|busy|EBUSY|EAGAIN|access denied/i.test(msg))
    return new LmflashError(`port is busy: another program (a serial monitor?) has ${portPath} open; close it and try again`);
  if (/not a typewriter|inappropriate ioctl|ENOTTY/i.test(msg)) return new LmflashError(`${portPath} is not a serial port`);
  return new LmflashError(`cannot open ${portPath}: ${msg}`);
}

/** A process that has a file open. */
export interface PortHolder {
  pid: number;
  name: string;
}

/**
 * Other processes of this user that have `portPath` open (Linux: /proc/PID/fd).
 * A program that only reads the port (`cat`, a monitor that did not lock it)
 * opens it without an error to us, then takes the board's answers.
 * Empty where /proc is not there to ask.
 */
export function portHolders(portPath: string): PortHolder[] {
  let target: string;
  let pids: string[];
  try {
    target = realpathSync(portPath);
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid);
  } catch {
    return [];
  }
  const holders: PortHolder[] = [];
  for (const pid of pids) {
    try {
      const fds = readdirSync(`/proc/${pid}/fd`);
      if (!fds.some((fd) => fdTarget(`/proc/${pid}/fd/${fd}`) === target)) continue;
      holders.push({ pid: Number(pid), name: readFileSync(`/proc/${pid}/comm`, 'utf8').trim() });
    } catch {
      // another user's process, or one that ended meanwhile
    }
  }
  return holders;
}

function fdTarget(link: string): string | null {
  try {
    return readlinkSync(link);
  } catch {
    return null;
  }
}

/** True for the error a pseudo-terminal gives when asked to change modem lines it does not have. */
function noModemLines(e: Error): boolean {
  return /inappropriate ioctl|ENOTTY|EINVAL|invalid argument/i.test(e.message);
}

/**
 * Opens a port without resetting the board. On USB-UART boards DTR drives
 * IO0 and RTS drives EN (through the two-transistor auto-reset circuit): a
 * change of one line without the other resets the chip or sends it to the
 * bootloader. The OS raises both at open (harmless: both asserted together
 * is "no reset"), so we
 *  - open with hupcl off, so that closing later does not drop the lines one
 *    by one (and the OS keeps them as they are across opens);
 *  - then deassert DTR and RTS in one call. @serialport/stream's set() merges
 *    our flags over {dtr: true, rts: true}: always pass both.
 * Pseudo-terminals have no modem lines; set() fails there and is skipped.
 */
export async function openPort(portPath: string, opts: { baudRate?: number; binding?: BindingInterface } = {}): Promise<SerialPort> {
  const binding = opts.binding ?? autoDetect();
  const port = new SerialPortStream({ binding, path: portPath, baudRate: opts.baudRate ?? DEFAULT_BAUD, hupcl: false, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(explainOpenError(portPath, e)) : resolve())));
  // A stream error nobody listens for crashes the process; the bindings can
  // raise one after use (EBADF from a read racing the close). Users that care
  // (BoardClient, monitor) add their own listener.
  port.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => port.set({ dtr: false, rts: false }, (e) => (e ? reject(e) : resolve())));
  } catch (e) {
    if (!noModemLines(e as Error)) {
      await closePort(port);
      throw new LmflashError(`cannot set the modem lines of ${portPath}: ${(e as Error).message}`);
    }
  }
  return port;
}

/** Closes a port, ignoring a port that is already closed or gone. */
export function closePort(port: SerialPort): Promise<void> {
  if (!port.isOpen) return Promise.resolve();
  return new Promise((resolve) => port.close(() => resolve()));
}

/** --baud: a positive whole number. */
export function parseBaud(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 50 || Number(value) > 12_000_000) throw new InvalidArgumentError('expected a baud rate such as 115200');
  return Number(value);
}
