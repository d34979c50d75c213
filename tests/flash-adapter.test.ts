/**
 * host/esptool-adapter.ts as esptool-js 0.7.0 uses it (ESP32S3-FACTS §1.3–1.5),
 * over a recording binding: every modem-line change reaches the port with
 * both DTR and RTS (esptool-js sends partial objects; @serialport fills the
 * missing line with "asserted"), the reset sequences are esptool's, USB ids
 * are numbers so that the USB-Serial-JTAG reset is chosen for 303a:1001, and
 * the baud rate changes in place. Also the image and partition-table tools.
 */
import type { BindingInterface, BindingPortInterface, OpenOptions, SetOptions } from '@serialport/bindings-interface';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ClassicReset, CustomReset, ESPLoader, Transport, UsbJtagSerialReset } from 'esptool-js';
import { describe, expect, it } from 'vitest';
import { buildEspImage, parseEspImage } from '../host/esp-image.js';
import { EsptoolPort } from '../host/esptool-adapter.js';
import { HARD_RESET_SEQUENCE } from '../host/flash.js';
import { buildPartitionTable, findModelPartition, modelStoreLayout, parsePartitionCsv, parsePartitionTable } from '../host/partition-table.js';
import { PROJECT_ROOT } from './paths.js';

/** A binding that records what the adapter asks of the port. */
function recordingBinding(): { binding: BindingInterface; sets: SetOptions[]; bauds: number[]; opens: number } {
  const rec = { sets: [] as SetOptions[], bauds: [] as number[], opens: 0 };
  const binding = {
    async list() {
      return [];
    },
    async open(options: OpenOptions): Promise<BindingPortInterface> {
      rec.opens++;
      let closed: ((e: Error) => void) | null = null;
      const port: BindingPortInterface = {
        openOptions: { ...options } as BindingPortInterface['openOptions'],
        isOpen: true,
        async close() {
          port.isOpen = false;
          closed?.(Object.assign(new Error('Canceled'), { canceled: true }));
        },
        read: () => new Promise((_, reject) => (closed = reject)),
        async write() {},
        async update(o) {
          rec.bauds.push(o.baudRate);
        },
        async set(o) {
          rec.sets.push({ ...o });
        },
        async get() {
          return { cts: false, dsr: false, dcd: false };
        },
        async getBaudRate() {
          return { baudRate: options.baudRate };
        },
        async flush() {},
        async drain() {},
      };
      return port;
    },
  } as unknown as BindingInterface;
  return Object.assign(rec, { binding });
}

const lines = (sets: SetOptions[]) => sets.map((s) => `${s.dtr ? 'D' : 'd'}${s.rts ? 'R' : 'r'}`).join(' ');

async function openWith(ids: { usbVendorId?: number; usbProductId?: number } = {}) {
  const rec = recordingBinding();
  const port = new EsptoolPort('/dev/ttyFAKE0', { ...ids, binding: rec.binding });
  const transport = new Transport(port as unknown as SerialPort, false);
  (transport as unknown as { trace(m: string): void }).trace = () => {};
  await transport.connect(115200);
  return { rec, port, transport };
}

describe('esptool adapter', () => {
  it('gives esptool-js its info before open, with numeric USB ids', () => {
    const port = new EsptoolPort('/dev/ttyACM0', { usbVendorId: 0x303a, usbProductId: 0x1001 });
    expect(port.getInfo()).toEqual({ usbVendorId: 0x303a, usbProductId: 0x1001 });
    const transport = new Transport(port as unknown as SerialPort, false);
    const loader = new ESPLoader({ transport, baudrate: 460800, terminal: { clean() {}, write() {}, writeLine() {} } });
    expect(loader.constructResetSequence('default_reset')[0]).toBeInstanceOf(UsbJtagSerialReset);
    const uart = new ESPLoader({ transport: new Transport(new EsptoolPort('/dev/ttyUSB0', { usbVendorId: 0x10c4, usbProductId: 0xea60 }) as unknown as SerialPort), baudrate: 460800, terminal: { clean() {}, write() {}, writeLine() {} } });
    expect(uart.constructResetSequence('default_reset')[0]).toBeInstanceOf(ClassicReset);
  });

  it('sends both lines on every change: the classic reset into download mode', async () => {
    const { rec, transport } = await openWith();
    expect(rec.sets).toEqual([]); // opening touches no line
    await new ClassicReset(transport, 50).reset();
    expect(lines(rec.sets)).toBe('dR Dr dr'); // EN low; IO0 low as EN rises; both released
    for (const s of rec.sets) expect(typeof s.dtr === 'boolean' && typeof s.rts === 'boolean').toBe(true);
    await transport.disconnect();
  });

  it("sends esptool's USB-Serial-JTAG sequence with both lines each time", async () => {
    const { rec, transport } = await openWith({ usbVendorId: 0x303a, usbProductId: 0x1001 });
    await new UsbJtagSerialReset(transport).reset();
    // each setRTS is followed by a re-send of the last DTR (esptool's usbser.sys workaround); the
    // port opened with both lines raised by the OS, so the first RTS change still shows DTR up
    expect(lines(rec.sets)).toBe('Dr dr dr Dr Dr Dr DR DR dR dR dR dr dr dr');
    await transport.disconnect();
  });

  it('resets into the app with EN pulsed and IO0 released (not esptool-js hard_reset)', async () => {
    const { rec, transport } = await openWith();
    await new ClassicReset(transport, 50).reset();
    rec.sets.length = 0;
    await new CustomReset(transport, HARD_RESET_SEQUENCE).reset();
    expect(lines(rec.sets)).toBe('dr dR dR dr dr');
    await transport.disconnect();
  });

  it('changes the baud rate in place, so esptool-js does not reopen the port', async () => {
    const { rec, transport } = await openWith();
    expect(await transport.changeBaudrate(921600)).toBe(false);
    expect(rec.bauds).toEqual([921600]);
    expect(rec.opens).toBe(1);
    await transport.disconnect();
  });
});

describe('images and partition tables', () => {
  it("reads the firmware's partitions-*.csv as gen_esp32part.py does, and round-trips the binary with its MD5", () => {
    for (const size of ['4MB', '8MB', '16MB']) {
      const csv = path.join(PROJECT_ROOT, 'firmware', 'esp32s3', `partitions-${size}.csv`);
      let parts;
      try {
        parts = parsePartitionCsv(readFileSync(csv, 'utf8'));
      } catch {
        continue; // the ESP-IDF app's tables are not there (yet)
      }
      const model = findModelPartition(parts);
      expect(model.offset % 0x10000).toBe(0);
      expect(model.offset + model.size).toBe(Number.parseInt(size, 10) << 20);
      const bin = buildPartitionTable(parts);
      expect(bin.length).toBe(0xc00);
      expect(parsePartitionTable(bin)).toEqual(parts);
      bin[5] ^= 1;
      expect(() => parsePartitionTable(bin)).toThrow(/fails its MD5 check/);
      const { slot1, journal } = modelStoreLayout(model.size);
      expect(slot1 % 0x10000).toBe(0);
      expect(journal).toBe(model.size - 4096);
    }
  });

  it('checks images as the bootloader does', () => {
    const img = buildEspImage({ entry: 0x40375000, segments: [{ address: 0x3c020020, data: Buffer.alloc(64, 7) }, { address: 0x40374000, data: Buffer.alloc(32, 9) }] });
    expect(parseEspImage(img).segments.map((s) => s.address)).toEqual([0x3c020020, 0x40374000]);
    const bad = Buffer.from(img);
    bad[40] ^= 1;
    expect(() => parseEspImage(bad, 'the app')).toThrow(/the app fails its checksum/);
    expect(() => parseEspImage(buildEspImage({ entry: 0, segments: [{ address: 0x20000000, data: Buffer.alloc(4) }] }))).toThrow(/not ESP32-S3 memory/);
    expect(() => parseEspImage(img.subarray(0, 50))).toThrow(/truncated/);
  });
});
