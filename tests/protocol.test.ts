/** The serial protocol's codec (src/protocol.ts) against docs/protocol.md. */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  MAX_ENCODED,
  MAX_PAYLOAD,
  ProtocolError,
  boardVersionMessage,
  cobsDecode,
  cobsEncode,
  coreFloat,
  crc32,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  frameMessage,
  hostVersionProblem,
  maxPromptBytes,
  type Message,
} from '../src/protocol.js';

const bytes = (...b: number[]) => Buffer.from(b);
const fill = (n: number, v: (i: number) => number) => Buffer.from(Array.from({ length: n }, (_, i) => v(i)));

describe('COBS', () => {
  it('encodes the textbook examples', () => {
    expect(cobsEncode(bytes())).toEqual(bytes(0x01));
    expect(cobsEncode(bytes(0x00))).toEqual(bytes(0x01, 0x01));
    expect(cobsEncode(bytes(0x00, 0x00))).toEqual(bytes(0x01, 0x01, 0x01));
    expect(cobsEncode(bytes(0x11, 0x22, 0x00, 0x33))).toEqual(bytes(0x03, 0x11, 0x22, 0x02, 0x33));
    expect(cobsEncode(bytes(0x11, 0x00, 0x00, 0x00))).toEqual(bytes(0x02, 0x11, 0x01, 0x01, 0x01));
  });

  it('splits runs of 254 non-zero bytes like the board does (FF … then a new block)', () => {
    const run254 = fill(254, (i) => i + 1);
    const enc254 = cobsEncode(run254);
    expect(enc254[0]).toBe(0xff);
    expect(enc254.length).toBe(256); // FF, 254 bytes, then the empty last block 01
    expect(enc254[255]).toBe(0x01);
    const run255 = fill(255, (i) => (i % 255) + 1);
    const enc255 = cobsEncode(run255);
    expect(enc255.length).toBe(257);
    expect(enc255[0]).toBe(0xff);
    expect(enc255[255]).toBe(0x02);
    // 254 non-zero bytes then a zero: the zero is carried by the next block
    const withZero = Buffer.concat([run254, bytes(0)]);
    expect(cobsDecode(cobsEncode(withZero))).toEqual(withZero);
    // a decoder also accepts FF blocks that end the input without the trailing 01
    expect(cobsDecode(enc254.subarray(0, 255))).toEqual(run254);
  });

  it('round-trips zero runs, long blocks and random data, and never emits 0x00', () => {
    const cases = [
      bytes(),
      fill(1, () => 0),
      fill(600, () => 0),
      fill(253, () => 7),
      fill(254, () => 7),
      fill(255, () => 7),
      fill(508, () => 9),
      fill(1028, (i) => (i * 37) & 0xff),
      fill(1028, (i) => (i % 300 === 0 ? 0 : 0x41)),
    ];
    let seed = 1;
    for (let k = 0; k < 200; k++) {
      const n = (seed = (seed * 1103515245 + 12345) >>> 0) % 1100;
      cases.push(fill(n, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24) & (k % 2 ? 0xff : 0x03)));
    }
    for (const c of cases) {
      const enc = cobsEncode(c);
      expect(enc.includes(0)).toBe(false);
      expect(enc.length).toBeLessThanOrEqual(c.length + Math.floor(c.length / 254) + 1);
      expect(cobsDecode(enc)).toEqual(c);
    }
  });

  it('refuses malformed input', () => {
    expect(cobsDecode(bytes(0x05, 0x11, 0x22))).toBeNull(); // block runs past the end
    expect(cobsDecode(bytes(0x03, 0x11, 0x00))).toBeNull(); // a zero inside
    expect(cobsDecode(bytes(0x00))).toBeNull();
  });
});

describe('frames', () => {
  it('CRC32 is zlib\'s IEEE CRC, little-endian after the payload', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const payload = bytes(0x05, 0, 0x34, 0x12, 0xaa);
    const frame = encodeFrame(payload);
    expect(frame[frame.length - 1]).toBe(0);
    const decoded = cobsDecode(frame.subarray(0, -1))!;
    expect(decoded.subarray(0, 5)).toEqual(payload);
    expect(decoded.readUInt32LE(5)).toBe(zlibCrc32(payload));
  });

  it('decodes frames split across any chunking, and back-to-back frames', () => {
    const payloads = [bytes(0x86, 0, 1, 0), fill(MAX_PAYLOAD, (i) => i & 0xff), bytes(0x87, 0, 0xff, 0xff, 0, 0, 0)];
    const wire = Buffer.concat(payloads.map(encodeFrame));
    for (const chunk of [1, 2, 7, 255, 1000, wire.length]) {
      const d = new FrameDecoder();
      const got: Buffer[] = [];
      for (let i = 0; i < wire.length; i += chunk) got.push(...d.push(wire.subarray(i, i + chunk)));
      expect(got).toEqual(payloads);
      expect(d.errors).toBe(0);
    }
  });

  it('drops and counts bad CRC, short, non-COBS and overlong frames; ignores empty ones', () => {
    const d = new FrameDecoder();
    d.salvage = false;
    const good = encodeFrame(bytes(0x86, 0, 9, 0, 1, 2));
    const badCrc = Buffer.from(good);
    badCrc[3] ^= 0x01;
    const short = Buffer.concat([cobsEncode(bytes(1, 2, 3)), bytes(0)]); // 3 bytes: less than header + CRC
    const notCobs = bytes(0x09, 0x01, 0x02, 0x00);
    const overlong = Buffer.concat([fill(MAX_ENCODED + 10, () => 0x41), bytes(0)]);
    const out = d.push(Buffer.concat([bytes(0, 0, 0), badCrc, short, notCobs, overlong, good]));
    expect(out).toEqual([bytes(0x86, 0, 9, 0, 1, 2)]);
    expect(d.errors).toBe(4);
  });

  it('a payload over 1024 bytes does not go out, and one that arrives is dropped', () => {
    expect(() => encodeFrame(fill(MAX_PAYLOAD + 1, () => 1))).toThrow(/at most 1024/);
    // hand-made: a valid COBS + CRC frame of 1025 bytes of payload
    const p = fill(MAX_PAYLOAD + 1, () => 1);
    const withCrc = Buffer.alloc(p.length + 4);
    p.copy(withCrc);
    withCrc.writeUInt32LE(crc32(p), p.length);
    const d = new FrameDecoder();
    expect(d.push(Buffer.concat([cobsEncode(withCrc), bytes(0)]))).toEqual([]);
    expect(d.errors).toBe(1);
  });

  it('resynchronises at the next 0x00 after garbage and joining mid-frame', () => {
    const a = encodeFrame(bytes(0x86, 0, 1, 0, 0x61));
    const b = encodeFrame(bytes(0x86, 0, 2, 0, 0x62));
    const d = new FrameDecoder();
    d.salvage = false;
    // join in the middle of frame a, then noise with its own zero, then b
    const got = d.push(Buffer.concat([a.subarray(3), Buffer.from('rst:0x1 (POWERON),boot:0x8\r\n'), bytes(0), b]));
    expect(got).toEqual([bytes(0x86, 0, 2, 0, 0x62)]);
    expect(d.errors).toBe(2);
  });

  it('salvages a frame glued to text with no 0x00 between (a banner before a HELLO reply)', () => {
    const reply = frameMessage({ type: 'helloReply', id: 7, major: 1, minor: 0, maxPayload: 1024, board: 'esp32s3' });
    const banner = Buffer.from('\r\nlmflash virtual board ready: model dim 64. Type a prompt, or /help.\r\n> ');
    const d = new FrameDecoder();
    const got = d.push(Buffer.concat([banner, reply]));
    expect(got.length).toBe(1);
    expect(decodeMessage(got[0])).toMatchObject({ type: 'helloReply', id: 7, board: 'esp32s3' });
    expect(d.errors).toBe(1);
    expect(d.droppedBytes).toBe(banner.length);
    // garbage that holds no frame is still just dropped
    expect(d.push(Buffer.concat([banner, bytes(0)]))).toEqual([]);
    expect(d.errors).toBe(2);
  });
});

describe('messages', () => {
  const prompt = Buffer.from('Once upon a time, 小猫 🐱', 'utf8');
  const all: Message[] = [
    { type: 'hello', id: 1, major: 1, minor: 0 },
    { type: 'info', id: 2 },
    { type: 'generate', id: 3, params: { temperature: 0.5, topP: 0.875, topK: 40, repeatPenalty: 1.25, maxTokens: 256, seed: 0xfffffffe, flags: 0 }, prompt },
    { type: 'generate', id: 4, params: { temperature: 0, topP: 1, topK: 0, repeatPenalty: 1, maxTokens: 1, seed: 0, flags: 0 }, prompt: Buffer.alloc(0) },
    { type: 'generate', id: 10, params: { temperature: 0, topP: 1, topK: 0, repeatPenalty: 1.5, maxTokens: 9, seed: 3, flags: 1, repeatWindow: 16, banned: [0, 7, 511] }, prompt },
    { type: 'cancel', id: 5, target: 3 },
    { type: 'ping', id: 6, data: fill(64, (i) => i) },
    { type: 'reset', id: 7 },
    { type: 'console', id: 0xffff },
    { type: 'helloReply', id: 1, major: 1, minor: 3, maxPayload: 1024, board: 'ESP32-S3 DevKitC-1 «N16R8»' },
    { type: 'infoReply', id: 2, info: { protocol: '1.0', model: { dim: 64 }, ctx: 512, rx_errors: 0 } },
    { type: 'token', id: 3, token: 261, bytes: Buffer.from([0xe5, 0xb0]) },
    { type: 'token', id: 3, token: 2, bytes: Buffer.alloc(0) },
    { type: 'done', id: 3, stats: { promptTokens: 5, generatedTokens: 30, timeToFirstTokenUs: 1234, totalUs: 99999, reason: 'cancelled', reasonCode: 2 } },
    { type: 'error', id: 3, code: 4, message: 'the prompt does not fit the context of 512 tokens: shorten it' },
    { type: 'pong', id: 6, data: Buffer.from('lmflash') },
    { type: 'ok', id: 7 },
    { type: 'unknown', id: 9, code: 0x42, body: bytes(1, 2, 3) },
  ];

  it('every message type round-trips through frame encode/decode', () => {
    const d = new FrameDecoder();
    const wire = Buffer.concat(all.map(frameMessage));
    const back = d.push(wire).map(decodeMessage);
    expect(back).toEqual(all);
  });

  it('lays out bodies as the doc says', () => {
    const gen = encodeMessage(all[2]);
    expect([...gen.subarray(0, 4)]).toEqual([0x03, 0x00, 0x03, 0x00]);
    expect(gen.readFloatLE(4)).toBe(0.5);
    expect(gen.readFloatLE(8)).toBe(0.875);
    expect(gen.readUInt32LE(12)).toBe(40);
    expect(gen.readFloatLE(16)).toBe(1.25);
    expect(gen.readUInt32LE(20)).toBe(256);
    expect(gen.readUInt32LE(24)).toBe(0xfffffffe);
    expect(gen.readUInt32LE(28)).toBe(0);
    expect(gen.subarray(32)).toEqual(prompt);
    expect(encodeMessage(all[0])).toEqual(Buffer.concat([bytes(0x01, 0, 1, 0), Buffer.from('LMFP'), bytes(1, 0)]));
    expect(encodeMessage(all[5])).toEqual(bytes(0x04, 0, 5, 0, 3, 0));
    const done = encodeMessage(all[13]);
    expect(done.length).toBe(4 + 17);
    expect(done[20]).toBe(2);
  });

  it('ignores fields a newer minor appends, refuses bodies that are too short', () => {
    const done = Buffer.concat([encodeMessage(all[13]), bytes(9, 9, 9)]);
    expect(decodeMessage(done)).toEqual(all[13]);
    expect(() => decodeMessage(bytes(0x84, 0, 1, 0, 1, 2))).toThrow(ProtocolError);
    expect(() => decodeMessage(bytes(0x83, 0, 1, 0, 1))).toThrow(/malformed TOKEN/);
    expect(() => decodeMessage(Buffer.concat([bytes(0x81, 0, 1, 0), Buffer.from('LMFX'), bytes(1, 0, 0, 4)]))).toThrow(/LMFP/);
    expect(() => decodeMessage(Buffer.concat([bytes(0x82, 0, 1, 0), Buffer.from('[1]')]))).toThrow(/not a JSON object/);
  });

  it('1.2: banned ids and the repeat window go in a block after the fixed fields, flagged by bit 0', () => {
    const params = { temperature: 0, topP: 1, topK: 0, repeatPenalty: 1, maxTokens: 1, seed: 0 };
    const plain = encodeMessage({ type: 'generate', id: 1, params, prompt: Buffer.from('hi') });
    expect(plain.readUInt32LE(28)).toBe(0); // what a 1.1 host sends, and a 1.1 board reads
    expect(plain.length).toBe(4 + 28 + 2);
    const gen = encodeMessage({ type: 'generate', id: 1, params: { ...params, banned: [0, 300] }, prompt: Buffer.from('hi') });
    expect(gen.readUInt32LE(28)).toBe(1);
    expect(gen.readUInt32LE(32)).toBe(64); // the default window when only --ban is given
    expect(gen.readUInt32LE(36)).toBe(2);
    expect([gen.readUInt32LE(40), gen.readUInt32LE(44)]).toEqual([0, 300]);
    expect(gen.subarray(48).toString()).toBe('hi');
    expect(maxPromptBytes(1024, { ...params, banned: [0, 300] })).toBe(992 - 16);
    const tooMany = Buffer.concat([gen.subarray(0, 36), bytes(17, 0, 0, 0)]);
    expect(() => decodeMessage(tooMany)).toThrow(/17 banned ids, at most 16/);
  });

  it('a prompt fits one GENERATE up to 992 bytes', () => {
    expect(maxPromptBytes()).toBe(992);
    const params = { temperature: 0, topP: 1, topK: 0, repeatPenalty: 1, maxTokens: 1, seed: 0 };
    expect(encodeMessage({ type: 'generate', id: 1, params, prompt: Buffer.alloc(992, 0x61) }).length).toBe(MAX_PAYLOAD);
    expect(() => encodeMessage({ type: 'generate', id: 1, params, prompt: Buffer.alloc(993, 0x61) })).toThrow(/over the 1024-byte/);
  });
});

describe('versions', () => {
  it('same major talks, whatever the minors', () => {
    expect(hostVersionProblem({ major: 1, minor: 7 })).toBeNull();
    expect(hostVersionProblem({ major: 1, minor: 0 }, { major: 1, minor: 2 })).toBeNull();
  });

  it('a different major says which side to update', () => {
    expect(hostVersionProblem({ major: 2, minor: 0 })).toBe('the board speaks protocol 2.0, this lmflash 1.2: update lmflash (`npm install -g lmflash@latest`)');
    expect(hostVersionProblem({ major: 0, minor: 9 })).toMatch(/board speaks protocol 0\.9, this lmflash 1\.2: update the board's firmware with `lmflash flash`/);
    expect(boardVersionMessage({ major: 2, minor: 0 })).toBe(
      'host speaks protocol 2.0, this firmware 1.2: update the firmware with `lmflash flash`, or use an lmflash that speaks 1.x',
    );
  });
});

describe('coreFloat', () => {
  it('rounds decimals to float32 the way lmf-run parses options', () => {
    expect(coreFloat('0.8')).toBe(Math.fround(0.8));
    expect(coreFloat(0.9)).toBe(Math.fround(0.9));
    expect(coreFloat('1')).toBe(1);
    expect(coreFloat('1.1')).toBe(Math.fround(1 + Math.fround(0.1)));
    // at most 6 fraction digits count, as in app.c
    expect(coreFloat('0.12345678')).toBe(Math.fround(Math.fround(123456) / 1e6));
    expect(coreFloat('-2.5')).toBe(-2.5);
  });
});
