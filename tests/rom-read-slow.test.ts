/**
 * READ_FLASH_SLOW (0x0E), the ROM loader's own flash read that esptool.py
 * uses without its stub (`esptool.py --no-stub read_flash`), on the flashable
 * virtual board. Debian bookworm packages no esptool, so the client here is
 * a small SLIP speaker of the ROM protocol written from esptool's documented
 * format (u32 offset, u32 length <= 64; the answer always carries 64 bytes,
 * then the ROM's 4 status bytes), independent of host/flash.ts and esptool-js.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlashSim, type FlashSim } from '../host/flash-sim.js';
import { closePort, openPort, type SerialPort } from '../host/serial.js';
import { tempDir } from './native-helpers.js';

const FLASH_BYTES = 4 << 20;
let image: Buffer;
let sim: FlashSim;
let port: SerialPort;
const packets: Buffer[] = [];
let waiters: (() => void)[] = [];

function slip(packet: Buffer): Buffer {
  const out: number[] = [0xc0];
  for (const b of packet) {
    if (b === 0xc0) out.push(0xdb, 0xdc);
    else if (b === 0xdb) out.push(0xdb, 0xdd);
    else out.push(b);
  }
  out.push(0xc0);
  return Buffer.from(out);
}

/** A SLIP decoder: frames between 0xC0 bytes, unescaped. */
function slipReader(): (chunk: Buffer) => void {
  let cur: number[] | null = null;
  let esc = false;
  return (chunk) => {
    for (const b of chunk) {
      if (b === 0xc0) {
        if (cur && cur.length) packets.push(Buffer.from(cur));
        cur = [];
        esc = false;
        for (const w of waiters.splice(0)) w();
      } else if (cur) {
        if (esc) {
          cur.push(b === 0xdc ? 0xc0 : b === 0xdd ? 0xdb : -1);
          esc = false;
        } else if (b === 0xdb) esc = true;
        else cur.push(b);
      }
    }
  };
}

function command(op: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head[0] = 0x00;
  head[1] = op;
  head.writeUInt16LE(data.length, 2);
  return slip(Buffer.concat([head, data]));
}

/** The next response to `op`: value, data and the ROM's status bytes (failed flag, error code). */
async function response(op: number, timeoutMs = 3000): Promise<{ value: number; data: Buffer; failed: number; error: number }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const i = packets.findIndex((p) => p.length >= 8 && p[0] === 0x01 && p[1] === op);
    if (i >= 0) {
      const p = packets.splice(0, i + 1)[i];
      const n = p.readUInt16LE(2);
      const body = p.subarray(8, 8 + n);
      return { value: p.readUInt32LE(4), data: body.subarray(0, n - 4), failed: body[n - 4], error: body[n - 3] };
    }
    if (Date.now() > end) throw new Error(`no response to 0x${op.toString(16)}`);
    await new Promise<void>((r) => {
      const t = setTimeout(r, 50);
      waiters.push(() => (clearTimeout(t), r()));
    });
  }
}

async function send(bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => port.write(bytes, (e) => (e ? reject(e) : port.drain(() => resolve()))));
}

function readSlow(offset: number, length: number): Buffer {
  const d = Buffer.alloc(8);
  d.writeUInt32LE(offset, 0);
  d.writeUInt32LE(length, 4);
  return command(0x0e, d);
}

beforeAll(async () => {
  const dir = tempDir('read-slow');
  image = randomBytes(FLASH_BYTES);
  writeFileSync(path.join(dir, 'flash.bin'), image);
  sim = await startFlashSim({ image: path.join(dir, 'flash.bin'), flashSize: '4MB', args: ['--download'] });
  port = await openPort(sim.path);
  port.on('data', slipReader());
  const sync = Buffer.concat([Buffer.from([0x07, 0x07, 0x12, 0x20]), Buffer.alloc(32, 0x55)]);
  await send(command(0x08, sync));
  expect((await response(0x08)).value).toBe(0x20120707); // the ROM, not a stub
  await new Promise((r) => setTimeout(r, 100));
  packets.length = 0; // the other 7 SYNC answers
}, 30_000);

afterAll(async () => {
  if (port) await closePort(port);
  await sim?.stop();
});

describe('READ_FLASH_SLOW in the ROM loader', () => {
  it('reads 64-byte blocks of the flash as the image holds them, at any offset', async () => {
    const got: Buffer[] = [];
    const start = 0x10000 + 5; // unaligned, as esptool allows
    for (let off = start; off < start + 1024; off += 64) {
      await send(readSlow(off, 64));
      const r = await response(0x0e);
      expect([r.failed, r.error]).toEqual([0, 0]);
      expect(r.data.length).toBe(64);
      got.push(r.data);
    }
    expect(Buffer.concat(got)).toEqual(image.subarray(start, start + 1024));
  });

  it('a short last block still answers 64 bytes, the asked ones first; the end of the flash reads', async () => {
    await send(readSlow(FLASH_BYTES - 10, 10));
    const r = await response(0x0e);
    expect(r.failed).toBe(0);
    expect(r.data.length).toBe(64);
    expect(r.data.subarray(0, 10)).toEqual(image.subarray(FLASH_BYTES - 10));
  });

  it('refuses more than 64 bytes and a range past the end of the flash, and keeps answering', async () => {
    await send(readSlow(0, 65));
    expect((await response(0x0e)).failed).toBe(1);
    await send(readSlow(FLASH_BYTES - 8, 16));
    expect((await response(0x0e)).failed).toBe(1);
    await send(readSlow(0, 16));
    const ok = await response(0x0e);
    expect(ok.failed).toBe(0);
    expect(ok.data.subarray(0, 16)).toEqual(image.subarray(0, 16));
  });
});
