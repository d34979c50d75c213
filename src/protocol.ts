/**
 * The serial protocol, version 1.0 (docs/protocol.md): framing (COBS over
 * payload ‖ CRC32, ended by 0x00), a streaming frame decoder, and builders and
 * parsers for every message. Pure functions over bytes: no I/O here, so the
 * board's C side (firmware/core/src/protocol.c) and this file can be checked
 * against each other byte for byte.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { LmflashError } from './errors.js';

export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 2;
export const MAGIC = Buffer.from('LMFP', 'ascii');
/** type, reserved, u16 id. */
export const HEADER_BYTES = 4;
/** Largest payload (header and body, CRC not counted). */
export const MAX_PAYLOAD = 1024;
const CRC_BYTES = 4;
/** The smallest frame worth decoding: a header and its CRC. */
const MIN_DECODED = HEADER_BYTES + CRC_BYTES;
/** COBS adds one code byte per 254 data bytes (and one at the start). */
export const MAX_ENCODED = MAX_PAYLOAD + CRC_BYTES + Math.ceil((MAX_PAYLOAD + CRC_BYTES) / 254) + 1;
/** GENERATE's fixed fields before the prompt: 7 × 4 bytes. */
export const GENERATE_FIXED_BYTES = 28;
/** 1.2: GENERATE flags bit 0: a sampling block (repeat window, banned ids) follows the fixed fields. */
export const GENERATE_SAMPLING = 1;
/** The first minor version whose boards read GENERATE's sampling block. */
export const SAMPLING_MINOR = 2;
/** Banned ids a GENERATE (and the core) carries at most. */
export const MAX_BANNED = 16;
/** The core's repetition window when none is given. */
export const DEFAULT_REPEAT_WINDOW = 64;

export const MsgType = {
  HELLO: 0x01,
  INFO: 0x02,
  GENERATE: 0x03,
  CANCEL: 0x04,
  PING: 0x05,
  RESET: 0x06,
  CONSOLE: 0x07,
  HELLO_REPLY: 0x81,
  INFO_REPLY: 0x82,
  TOKEN: 0x83,
  DONE: 0x84,
  ERROR: 0x85,
  PONG: 0x86,
  OK: 0x87,
  // 1.1: model upload
  UPLOAD_BEGIN: 0x08,
  UPLOAD_DATA: 0x09,
  UPLOAD_COMMIT: 0x0a,
  UPLOAD_ABORT: 0x0b,
  UPLOAD_STATUS: 0x88,
  UPLOAD_DONE: 0x89,
} as const;

export const ErrorCode = {
  VERSION: 1,
  BUSY: 2,
  BAD_REQUEST: 3,
  PROMPT_TOO_LONG: 4,
  UNKNOWN_TYPE: 5,
  NO_MODEL: 6,
  // 1.1: model upload
  TOO_BIG: 7,
  UPLOAD_STATE: 8,
  UPLOAD_CORRUPT: 9,
  FLASH: 10,
  MODEL_INVALID: 11,
} as const;

export const ERROR_NAMES: Record<number, string> = {
  1: 'VERSION',
  2: 'BUSY',
  3: 'BAD_REQUEST',
  4: 'PROMPT_TOO_LONG',
  5: 'UNKNOWN_TYPE',
  6: 'NO_MODEL',
  7: 'TOO_BIG',
  8: 'UPLOAD_STATE',
  9: 'UPLOAD_CORRUPT',
  10: 'FLASH',
  11: 'MODEL_INVALID',
};

/** UPLOAD_BEGIN flags: discard a partial upload of the same model and start again. */
export const UPLOAD_RESTART = 1;
/** UPLOAD_DATA: u32 offset, u32 crc32, then at most this many bytes (a full payload). */
export const UPLOAD_CHUNK_MAX = MAX_PAYLOAD - HEADER_BYTES - 8;

export interface UploadStatus {
  /** Where in the model partition the new model goes. */
  slotOffset: number;
  /** Bytes that slot holds. */
  capacity: number;
  /** Bytes already written and read back, from offset 0. */
  received: number;
  /** CRC-32 of those bytes as the flash holds them. */
  receivedCrc: number;
  /** The largest UPLOAD_DATA chunk the board takes. */
  maxChunk: number;
}

export const DoneReason = { MAX_TOKENS: 0, END_OF_TEXT: 1, CANCELLED: 2, CONTEXT_FULL: 3 } as const;
export type DoneReasonName = 'max_tokens' | 'end_of_text' | 'cancelled' | 'context_full' | 'unknown';
const REASON_NAMES: DoneReasonName[] = ['max_tokens', 'end_of_text', 'cancelled', 'context_full'];

export function doneReasonName(code: number): DoneReasonName {
  return REASON_NAMES[code] ?? 'unknown';
}

// ---------------------------------------------------------------- framing

/** CRC-32 (IEEE 802.3, as zlib) of `data`. */
export function crc32(data: Uint8Array): number {
  return zlibCrc32(data) >>> 0;
}

/**
 * COBS: each block is a code byte (1 + the count of non-zero bytes that
 * follow, at most 254) and those bytes; a code below 0xFF stands for a zero
 * after its block, except at the very end. Like the board's encoder, a block
 * that fills up (code 0xFF) is always followed by a new one, so 254 non-zero
 * bytes encode as FF … 01.
 */
export function cobsEncode(input: Uint8Array): Buffer {
  const out = Buffer.alloc(input.length + Math.floor(input.length / 254) + 1);
  let codeAt = 0;
  let o = 1;
  let code = 1;
  for (const byte of input) {
    if (byte === 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
      continue;
    }
    out[o++] = byte;
    if (++code === 0xff) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    }
  }
  out[codeAt] = code;
  return out.subarray(0, o);
}

/** Undoes cobsEncode; null when `input` is not valid COBS (a zero inside, a block cut short). */
export function cobsDecode(input: Uint8Array): Buffer | null {
  const out = Buffer.alloc(input.length);
  let i = 0;
  let o = 0;
  while (i < input.length) {
    const code = input[i++];
    if (code === 0) return null;
    const end = i + code - 1;
    if (end > input.length) return null;
    for (; i < end; i++) {
      if (input[i] === 0) return null;
      out[o++] = input[i];
    }
    if (code < 0xff && i < input.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}

/** A payload as it goes on the wire: COBS(payload ‖ CRC32 LE) 0x00. */
export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`a frame payload is at most ${MAX_PAYLOAD} bytes (got ${payload.length})`);
  const withCrc = Buffer.alloc(payload.length + CRC_BYTES);
  withCrc.set(payload, 0);
  withCrc.writeUInt32LE(crc32(payload), payload.length);
  const cobs = cobsEncode(withCrc);
  const frame = Buffer.alloc(cobs.length + 1);
  cobs.copy(frame);
  return frame; // the last byte stays 0x00
}

/**
 * Turns a byte stream into frame payloads. Bytes between two zeros are one
 * frame; frames that are too long, not COBS, shorter than a header plus CRC
 * or fail their CRC are dropped and counted, never thrown: the line may carry
 * boot logs, console text or noise, and the next 0x00 resynchronises.
 */
export class FrameDecoder {
  /** Frames dropped since the start (the board's `rx_errors`). */
  errors = 0;
  /** Bytes that were part of dropped frames (boot log, banner, noise). */
  droppedBytes = 0;
  private raw = Buffer.alloc(MAX_ENCODED);
  /** Recover a good frame from the end of a bad one (see finish()). */
  salvage = true;
  private rawLen = 0;
  private overflowed = false;

  /** Feeds bytes; returns the payloads (CRC removed) of the frames they completed. */
  push(chunk: Uint8Array): Buffer[] {
    const frames: Buffer[] = [];
    let start = 0;
    for (;;) {
      const zero = chunk.indexOf(0, start);
      this.append(chunk.subarray(start, zero < 0 ? chunk.length : zero));
      if (zero < 0) return frames;
      const frame = this.finish();
      if (frame) frames.push(frame);
      start = zero + 1;
    }
  }

  /** Forgets a partial frame (e.g. console text before an expected reply). */
  reset(): void {
    this.droppedBytes += this.rawLen;
    this.rawLen = 0;
    this.overflowed = false;
  }

  /** Bytes waiting for their 0x00. */
  get pending(): number {
    return this.rawLen;
  }

  private append(bytes: Uint8Array): void {
    if (this.overflowed) {
      this.droppedBytes += bytes.length;
      return;
    }
    if (this.rawLen + bytes.length > this.raw.length) {
      // too long for any valid frame: skip everything up to the next 0x00
      this.overflowed = true;
      this.droppedBytes += this.rawLen + bytes.length;
      this.rawLen = 0;
      return;
    }
    this.raw.set(bytes, this.rawLen);
    this.rawLen += bytes.length;
  }

  private finish(): Buffer | null {
    if (this.overflowed) {
      this.overflowed = false;
      this.errors++;
      return null;
    }
    if (this.rawLen === 0) return null; // an empty frame: a separator
    const raw = this.raw.subarray(0, this.rawLen);
    this.rawLen = 0;
    const whole = checkedPayload(raw);
    if (whole) return whole;
    // Text with no 0x00 after it (a boot log, the banner a board prints when
    // a host appears) glues itself to the front of the next frame. Look for a
    // valid frame that ends here and starts later: the garbage is dropped
    // and counted, the frame is kept.
    const start = this.salvage ? salvageStart(raw) : -1;
    if (start < 0) return this.drop(raw.length);
    this.errors++;
    this.droppedBytes += start;
    return checkedPayload(raw.subarray(start));
  }

  private drop(bytes: number): null {
    this.errors++;
    this.droppedBytes += bytes;
    return null;
  }
}

/** The payload of one complete COBS frame (no 0x00) if it decodes and its CRC holds, else null. */
function checkedPayload(raw: Uint8Array): Buffer | null {
  const decoded = cobsDecode(raw);
  if (!decoded || decoded.length < MIN_DECODED || decoded.length > MAX_PAYLOAD + CRC_BYTES) return null;
  const payload = decoded.subarray(0, decoded.length - CRC_BYTES);
  if (crc32(payload) !== decoded.readUInt32LE(payload.length)) return null;
  return Buffer.from(payload); // a copy, independent of the decoder's buffer
}

/**
 * The first offset > 0 from which `raw` is a valid frame, or -1. A COBS frame
 * is a chain of code bytes that lands exactly on the end, so one backward pass
 * finds the offsets where such a chain starts; only those get the CRC check.
 */
function salvageStart(raw: Uint8Array): number {
  const n = raw.length;
  const lands = new Uint8Array(n + 1);
  lands[n] = 1;
  for (let i = n - 1; i >= 0; i--) lands[i] = i + raw[i] <= n && lands[i + raw[i]] ? 1 : 0;
  for (let i = 1; i + MIN_DECODED < n; i++) if (lands[i] && checkedPayload(raw.subarray(i))) return i;
  return -1;
}

// ---------------------------------------------------------------- messages

export interface GenerateParams {
  temperature: number;
  topP: number;
  topK: number;
  repeatPenalty: number;
  maxTokens: number;
  seed: number;
  /** Bit 0 (GENERATE_SAMPLING) is set by the encoder when repeatWindow or banned is given; other bits reserved. */
  flags?: number;
  /** 1.2: recent tokens the repetition penalty looks at (default 64). */
  repeatWindow?: number;
  /** 1.2: token ids never to sample (at most MAX_BANNED). */
  banned?: number[];
}

/** Does this GENERATE need protocol 1.2's sampling block? */
export function needsSamplingBlock(p: GenerateParams): boolean {
  return p.repeatWindow !== undefined || (p.banned !== undefined && p.banned.length > 0);
}

/** The sampling block's bytes (empty when not needed). */
function samplingBlock(p: GenerateParams): Buffer {
  if (!needsSamplingBlock(p)) return Buffer.alloc(0);
  const banned = p.banned ?? [];
  return Buffer.concat([u32(p.repeatWindow ?? DEFAULT_REPEAT_WINDOW), u32(banned.length), ...banned.map(u32)]);
}

export interface DoneStats {
  promptTokens: number;
  generatedTokens: number;
  timeToFirstTokenUs: number;
  totalUs: number;
  reason: DoneReasonName;
  reasonCode: number;
}

/** Every message of protocol 1.1, by the name the doc gives it; board replies end in `Reply` where the names clash. */
export type Message =
  | { type: 'hello'; id: number; major: number; minor: number }
  | { type: 'info'; id: number }
  | { type: 'generate'; id: number; params: GenerateParams; prompt: Buffer }
  | { type: 'cancel'; id: number; target: number }
  | { type: 'ping'; id: number; data: Buffer }
  | { type: 'reset'; id: number }
  | { type: 'console'; id: number }
  | { type: 'helloReply'; id: number; major: number; minor: number; maxPayload: number; board: string }
  | { type: 'infoReply'; id: number; info: Record<string, unknown> }
  | { type: 'token'; id: number; token: number; bytes: Buffer }
  | { type: 'done'; id: number; stats: DoneStats }
  | { type: 'error'; id: number; code: number; message: string }
  | { type: 'pong'; id: number; data: Buffer }
  | { type: 'ok'; id: number }
  // 1.1: model upload
  | { type: 'uploadBegin'; id: number; size: number; crc: number; flags: number }
  | { type: 'uploadData'; id: number; offset: number; crc: number; data: Buffer }
  | { type: 'uploadCommit'; id: number; size: number; crc: number }
  | { type: 'uploadAbort'; id: number }
  | ({ type: 'uploadStatus'; id: number } & UploadStatus)
  | { type: 'uploadDone'; id: number; size: number; crc: number; slotOffset: number; sequence: number }
  /** A type this version does not know (a newer minor may add some): ignore it. */
  | { type: 'unknown'; id: number; code: number; body: Buffer };

export type MessageName = Message['type'];

const TYPE_CODES: Record<Exclude<MessageName, 'unknown'>, number> = {
  hello: MsgType.HELLO,
  info: MsgType.INFO,
  generate: MsgType.GENERATE,
  cancel: MsgType.CANCEL,
  ping: MsgType.PING,
  reset: MsgType.RESET,
  console: MsgType.CONSOLE,
  helloReply: MsgType.HELLO_REPLY,
  infoReply: MsgType.INFO_REPLY,
  token: MsgType.TOKEN,
  done: MsgType.DONE,
  error: MsgType.ERROR,
  pong: MsgType.PONG,
  ok: MsgType.OK,
  uploadBegin: MsgType.UPLOAD_BEGIN,
  uploadData: MsgType.UPLOAD_DATA,
  uploadCommit: MsgType.UPLOAD_COMMIT,
  uploadAbort: MsgType.UPLOAD_ABORT,
  uploadStatus: MsgType.UPLOAD_STATUS,
  uploadDone: MsgType.UPLOAD_DONE,
};

/** A body that does not match its type: a bug or a corrupted-but-CRC-valid frame on the other side. */
export class ProtocolError extends LmflashError {
  override name = 'ProtocolError';
}

function f32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v & 0xffff);
  return b;
}

function versionBody(major: number, minor: number): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([major & 0xff, minor & 0xff])]);
}

function encodeBody(m: Message): Buffer {
  switch (m.type) {
    case 'hello':
      return versionBody(m.major, m.minor);
    case 'info':
    case 'reset':
    case 'console':
    case 'ok':
    case 'uploadAbort':
      return Buffer.alloc(0);
    case 'uploadBegin':
      return Buffer.concat([u32(m.size), u32(m.crc), u32(m.flags)]);
    case 'uploadData':
      return Buffer.concat([u32(m.offset), u32(m.crc), m.data]);
    case 'uploadCommit':
      return Buffer.concat([u32(m.size), u32(m.crc)]);
    case 'uploadStatus':
      return Buffer.concat([u32(m.slotOffset), u32(m.capacity), u32(m.received), u32(m.receivedCrc), u16(m.maxChunk), u16(0)]);
    case 'uploadDone':
      return Buffer.concat([u32(m.size), u32(m.crc), u32(m.slotOffset), u32(m.sequence)]);
    case 'generate': {
      const p = m.params;
      const flags = ((p.flags ?? 0) & ~GENERATE_SAMPLING) | (needsSamplingBlock(p) ? GENERATE_SAMPLING : 0);
      return Buffer.concat([f32(p.temperature), f32(p.topP), u32(p.topK), f32(p.repeatPenalty), u32(p.maxTokens), u32(p.seed), u32(flags), samplingBlock(p), m.prompt]);
    }
    case 'cancel':
      return u16(m.target);
    case 'ping':
    case 'pong':
      return Buffer.from(m.data);
    case 'helloReply':
      return Buffer.concat([versionBody(m.major, m.minor), u16(m.maxPayload), Buffer.from(m.board, 'utf8')]);
    case 'infoReply':
      return Buffer.from(JSON.stringify(m.info), 'utf8');
    case 'token':
      return Buffer.concat([u32(m.token), m.bytes]);
    case 'done': {
      const s = m.stats;
      return Buffer.concat([u32(s.promptTokens), u32(s.generatedTokens), u32(s.timeToFirstTokenUs), u32(s.totalUs), Buffer.from([s.reasonCode])]);
    }
    case 'error':
      return Buffer.concat([u16(m.code), Buffer.from(m.message, 'utf8')]);
    case 'unknown':
      return m.body;
  }
}

/** A message as a frame payload (header and body, no CRC). */
export function encodeMessage(m: Message): Buffer {
  const code = m.type === 'unknown' ? m.code : TYPE_CODES[m.type];
  const header = Buffer.from([code, 0, m.id & 0xff, (m.id >> 8) & 0xff]);
  const payload = Buffer.concat([header, encodeBody(m)]);
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`a ${m.type} message of ${payload.length} bytes is over the ${MAX_PAYLOAD}-byte payload limit`);
  return payload;
}

/** A message ready for the wire: encodeFrame(encodeMessage(m)). */
export function frameMessage(m: Message): Buffer {
  return encodeFrame(encodeMessage(m));
}

function need(body: Buffer, n: number, what: string): void {
  if (body.length < n) throw new ProtocolError(`malformed ${what} message: ${body.length} bytes of body, at least ${n} expected`);
}

function readVersion(body: Buffer, what: string): { major: number; minor: number } {
  need(body, 6, what);
  if (!body.subarray(0, 4).equals(MAGIC)) throw new ProtocolError(`malformed ${what} message: it does not start with "LMFP"`);
  return { major: body[4], minor: body[5] };
}

/**
 * A frame payload as a message. Bodies longer than this version knows are
 * accepted and the extra bytes ignored (a newer minor adds fields at the end);
 * shorter ones throw ProtocolError.
 */
export function decodeMessage(payload: Buffer): Message {
  if (payload.length < HEADER_BYTES) throw new ProtocolError(`a frame of ${payload.length} bytes is shorter than a message header`);
  const code = payload[0];
  const id = payload.readUInt16LE(2);
  const body = payload.subarray(HEADER_BYTES);
  switch (code) {
    case MsgType.HELLO:
      return { type: 'hello', id, ...readVersion(body, 'HELLO') };
    case MsgType.INFO:
      return { type: 'info', id };
    case MsgType.GENERATE: {
      need(body, GENERATE_FIXED_BYTES, 'GENERATE');
      const params: GenerateParams = {
        temperature: body.readFloatLE(0),
        topP: body.readFloatLE(4),
        topK: body.readUInt32LE(8),
        repeatPenalty: body.readFloatLE(12),
        maxTokens: body.readUInt32LE(16),
        seed: body.readUInt32LE(20),
        flags: body.readUInt32LE(24),
      };
      let promptAt = GENERATE_FIXED_BYTES;
      if (params.flags! & GENERATE_SAMPLING) {
        need(body, promptAt + 8, 'GENERATE');
        params.repeatWindow = body.readUInt32LE(promptAt);
        const n = body.readUInt32LE(promptAt + 4);
        if (n > MAX_BANNED) throw new ProtocolError(`malformed GENERATE message: ${n} banned ids, at most ${MAX_BANNED}`);
        need(body, promptAt + 8 + 4 * n, 'GENERATE');
        params.banned = Array.from({ length: n }, (_, i) => body.readUInt32LE(promptAt + 8 + 4 * i));
        promptAt += 8 + 4 * n;
      }
      return { type: 'generate', id, params, prompt: Buffer.from(body.subarray(promptAt)) };
    }
    case MsgType.CANCEL:
      need(body, 2, 'CANCEL');
      return { type: 'cancel', id, target: body.readUInt16LE(0) };
    case MsgType.PING:
      return { type: 'ping', id, data: Buffer.from(body) };
    case MsgType.RESET:
      return { type: 'reset', id };
    case MsgType.CONSOLE:
      return { type: 'console', id };
    case MsgType.HELLO_REPLY: {
      const v = readVersion(body, 'HELLO reply');
      need(body, 8, 'HELLO reply');
      return { type: 'helloReply', id, ...v, maxPayload: body.readUInt16LE(6), board: body.subarray(8).toString('utf8') };
    }
    case MsgType.INFO_REPLY:
      return { type: 'infoReply', id, info: parseInfoJson(body) };
    case MsgType.TOKEN:
      need(body, 4, 'TOKEN');
      return { type: 'token', id, token: body.readUInt32LE(0), bytes: Buffer.from(body.subarray(4)) };
    case MsgType.DONE: {
      need(body, 17, 'DONE');
      const reasonCode = body[16];
      return {
        type: 'done',
        id,
        stats: {
          promptTokens: body.readUInt32LE(0),
          generatedTokens: body.readUInt32LE(4),
          timeToFirstTokenUs: body.readUInt32LE(8),
          totalUs: body.readUInt32LE(12),
          reason: doneReasonName(reasonCode),
          reasonCode,
        },
      };
    }
    case MsgType.ERROR:
      need(body, 2, 'ERROR');
      return { type: 'error', id, code: body.readUInt16LE(0), message: body.subarray(2).toString('utf8') };
    case MsgType.PONG:
      return { type: 'pong', id, data: Buffer.from(body) };
    case MsgType.OK:
      return { type: 'ok', id };
    case MsgType.UPLOAD_BEGIN:
      need(body, 12, 'UPLOAD_BEGIN');
      return { type: 'uploadBegin', id, size: body.readUInt32LE(0), crc: body.readUInt32LE(4), flags: body.readUInt32LE(8) };
    case MsgType.UPLOAD_DATA:
      need(body, 8, 'UPLOAD_DATA');
      return { type: 'uploadData', id, offset: body.readUInt32LE(0), crc: body.readUInt32LE(4), data: Buffer.from(body.subarray(8)) };
    case MsgType.UPLOAD_COMMIT:
      need(body, 8, 'UPLOAD_COMMIT');
      return { type: 'uploadCommit', id, size: body.readUInt32LE(0), crc: body.readUInt32LE(4) };
    case MsgType.UPLOAD_ABORT:
      return { type: 'uploadAbort', id };
    case MsgType.UPLOAD_STATUS:
      need(body, 18, 'UPLOAD_STATUS');
      return {
        type: 'uploadStatus',
        id,
        slotOffset: body.readUInt32LE(0),
        capacity: body.readUInt32LE(4),
        received: body.readUInt32LE(8),
        receivedCrc: body.readUInt32LE(12),
        maxChunk: body.readUInt16LE(16),
      };
    case MsgType.UPLOAD_DONE:
      need(body, 16, 'UPLOAD_DONE');
      return { type: 'uploadDone', id, size: body.readUInt32LE(0), crc: body.readUInt32LE(4), slotOffset: body.readUInt32LE(8), sequence: body.readUInt32LE(12) };
    default:
      return { type: 'unknown', id, code, body: Buffer.from(body) };
  }
}

function parseInfoJson(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ProtocolError('malformed INFO reply: its body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ProtocolError('malformed INFO reply: its body is not a JSON object');
  return parsed as Record<string, unknown>;
}

/** The longest prompt (bytes) one GENERATE can carry under a payload limit. */
export function maxPromptBytes(maxPayload = MAX_PAYLOAD, params?: GenerateParams): number {
  return Math.min(maxPayload, MAX_PAYLOAD) - HEADER_BYTES - GENERATE_FIXED_BYTES - (params ? samplingBlock(params).length : 0);
}

// ---------------------------------------------------------------- versions

export interface Version {
  major: number;
  minor: number;
}

export const HOST_VERSION: Version = { major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR };

/**
 * What the board says (as ERROR VERSION) to a HELLO whose major differs from
 * its own: docs/protocol.md, Versions. Kept here so tests and a board written
 * in TypeScript use the doc's exact words.
 */
export function boardVersionMessage(host: Version, board: Version = HOST_VERSION): string {
  return `host speaks protocol ${host.major}.${host.minor}, this firmware ${board.major}.${board.minor}: update the firmware with \`lmflash flash\`, or use an lmflash that speaks ${board.major}.x`;
}

/**
 * Checks a board's HELLO reply against this host: null when they can talk
 * (same major; minors may differ), else a sentence saying which side to update.
 */
export function hostVersionProblem(board: Version, host: Version = HOST_VERSION): string | null {
  if (board.major === host.major) return null;
  const both = `the board speaks protocol ${board.major}.${board.minor}, this lmflash ${host.major}.${host.minor}`;
  if (board.major > host.major) return `${both}: update lmflash (\`npm install -g lmflash@latest\`)`;
  return `${both}: update the board's firmware with \`lmflash flash\``;
}

// ---------------------------------------------------------------- float fields

/**
 * The float32 that lmf-run's option parser makes of a decimal number
 * (firmware/core/src/app.c parse_float: whole + frac / 10^digits, in float,
 * at most 6 fraction digits). Sending this value in GENERATE makes a board
 * sample with exactly the temperature/top-p/penalty that `lmf-run -t 0.8`
 * uses, so the same seed gives the same tokens. Each step is one IEEE float
 * operation; doing it in double and rounding to float gives the same result
 * (53 ≥ 2·24 + 2 bits).
 */
export function coreFloat(value: number | string): number {
  const text = typeof value === 'number' ? String(value) : value;
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(text);
  if (!m || (m[2] === '' && !m[3])) return Math.fround(Number(text)); // exponent notation etc.: plain rounding
  const fracDigits = (m[3] ?? '').slice(0, 6);
  const whole = Math.fround(Number(m[2] || '0'));
  const scale = Math.fround(10 ** fracDigits.length);
  const frac = Math.fround(Number(fracDigits || '0'));
  const v = Math.fround(whole + Math.fround(frac / scale));
  return m[1] ? -v : v;
}
