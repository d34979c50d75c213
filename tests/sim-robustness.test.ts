/**
 * The virtual board under abuse, built with ASan and UBSan: garbage bytes,
 * corrupted and over-long frames interleaved with valid requests, a request
 * while it generates, cancel, a host that vanishes mid-reply and comes back,
 * over-long prompts and lines. After each, the next request must be answered
 * correctly, and the sanitizers must stay silent. Real pseudo-terminal, real
 * serialport bindings.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closePort, openPort, type SerialPort } from '../host/serial.js';
import { FrameDecoder, decodeMessage, frameMessage, type GenerateParams, type Message } from '../src/protocol.js';
import { ASAN_DIR, coreJson, storiesBlob } from './native-helpers.js';

const SIM = path.join(ASAN_DIR, 'lmf-sim');

/** A framed-mode link over a real port: send messages or raw bytes, await replies. */
class Link {
  private decoder = new FrameDecoder();
  private inbox: Message[] = [];
  /** Every message received, in order. */
  history: Message[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly port: SerialPort) {
    port.on('data', (chunk: Buffer) => {
      for (const payload of this.decoder.push(chunk)) {
        const m = decodeMessage(payload);
        this.inbox.push(m);
        this.history.push(m);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  send(m: Message | Buffer): Promise<void> {
    const bytes = Buffer.isBuffer(m) ? m : frameMessage(m);
    return new Promise((resolve, reject) => this.port.write(bytes, (e) => (e ? reject(e) : this.port.drain(() => resolve()))));
  }

  /** The next message matching `pred`, skipping others; fails after timeoutMs. */
  async next(pred: (m: Message) => boolean, timeoutMs = 10_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching reply within ${timeoutMs} ms; got ${JSON.stringify(this.inbox.map((m) => m.type))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Tokens of generation `id` until its DONE. */
  async collect(id: number): Promise<{ tokens: number[]; reason: string }> {
    const tokens: number[] = [];
    for (;;) {
      const m = await this.next((x) => x.id === id && (x.type === 'token' || x.type === 'done' || x.type === 'error'));
      if (m.type === 'token') tokens.push(m.token);
      else if (m.type === 'done') return { tokens, reason: m.stats.reason };
      else throw new Error(`board error ${m.type === 'error' ? m.message : ''}`);
    }
  }

  clear(): void {
    this.inbox = [];
  }
}

const greedy = (maxTokens: number, seed = 1): GenerateParams => ({ temperature: 0, topP: 0.9, topK: 0, repeatPenalty: 1, maxTokens, seed });
let blob: string;
let sim: ChildProcess;
let simErr = '';
let portPath: string;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 2 ** 32);
}

async function connect(): Promise<Link> {
  const link = new Link(await openPort(portPath));
  await link.send(Buffer.from([0]));
  await link.send({ type: 'hello', id: 1, major: 1, minor: 0 });
  expect((await link.next((m) => m.type === 'helloReply')).type).toBe('helloReply');
  return link;
}

async function pingWorks(link: Link, id: number): Promise<void> {
  const data = Buffer.from(`ping ${id}`);
  await link.send({ type: 'ping', id, data });
  const pong = await link.next((m) => m.type === 'pong' && m.id === id);
  expect(pong.type === 'pong' && pong.data.equals(data)).toBe(true);
}

beforeAll(async () => {
  blob = await storiesBlob();
  sim = spawn(SIM, [blob, '--ctx', '128'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=1' } });
  sim.stderr!.on('data', (c: Buffer) => (simErr += c.toString()));
  portPath = await new Promise<string>((resolve, reject) => {
    sim.stdout!.on('data', (c: Buffer) => {
      const m = /serving on (\S+)/.exec(c.toString());
      if (m) resolve(m[1]);
    });
    sim.once('exit', (code) => reject(new Error(`lmf-sim exited (${code}): ${simErr}`)));
  });
}, 120_000);

afterAll(async () => {
  // Wait only for a board that started and still runs: one that never
  // started (beforeAll failed first) or already exited will send no 'exit'.
  if (sim && sim.exitCode === null && sim.signalCode === null) {
    const exited = new Promise((r) => sim.once('exit', r));
    sim.kill('SIGTERM');
    await exited;
  }
  expect(simErr).not.toMatch(/Sanitizer|runtime error/);
});

describe('virtual board under ASan/UBSan', () => {
  it('keeps serving through 10,000 garbage bytes and 1,000 corrupted frames', async () => {
    const link = await connect();
    const rand = rng(7);
    let id = 100;
    // garbage in bursts, each ended by a 0x00 so the board resynchronises, then a ping
    let garbage = 0;
    while (garbage < 10_000) {
      const burst = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 400) }, () => Math.floor(rand() * 256)));
      garbage += burst.length;
      await link.send(Buffer.concat([burst, Buffer.from([0])]));
      await pingWorks(link, ++id);
    }
    // valid frames damaged: a flipped bit, a cut, a wrong CRC, an over-long frame
    for (let i = 0; i < 1000; i++) {
      const good = frameMessage({ type: 'ping', id: 5000 + i, data: Buffer.from('x'.repeat(1 + (i % 50))) });
      const bad = Buffer.from(good);
      const kind = i % 4;
      if (kind === 0) bad[Math.floor(rand() * (bad.length - 1))] ^= 1 << Math.floor(rand() * 8) || 1;
      const frame = kind === 1 ? Buffer.concat([bad.subarray(0, Math.floor(bad.length / 2)), Buffer.from([0])]) : kind === 2 ? Buffer.concat([bad.subarray(0, bad.length - 3), Buffer.from([0x55, 0x55, 0])]) : kind === 3 ? Buffer.concat([Buffer.alloc(1500 + i, 0x41), Buffer.from([0])]) : bad;
      await link.send(frame);
      if (i % 10 === 9) await pingWorks(link, ++id);
    }
    await link.send({ type: 'info', id: 9 });
    const info = await link.next((m) => m.type === 'infoReply');
    expect(info.type === 'infoReply' && (info.info.rx_errors as number)).toBeGreaterThanOrEqual(1000);
    // not one damaged ping was taken for a good one
    expect(link.history.filter((m) => m.id >= 5000 && m.id < 6000)).toEqual([]);
    const { tokens } = await (async () => {
      await link.send({ type: 'generate', id: 10, params: greedy(20), prompt: Buffer.from('Once upon a time') });
      return link.collect(10);
    })();
    expect(tokens).toEqual(coreJson(blob, ['-p', 'Once upon a time', '-n', '20', '--ctx', '128']).generated_tokens);
    await closePort(link.port);
  }, 300_000);

  it('answers BUSY to a second request, PING while generating, and stops on CANCEL', async () => {
    const link = await connect();
    await link.send({ type: 'generate', id: 20, params: greedy(100), prompt: Buffer.from('Lily') });
    await link.next((m) => m.type === 'token' && m.id === 20);
    await link.send({ type: 'generate', id: 21, params: greedy(5), prompt: Buffer.from('Tom') });
    const busy = await link.next((m) => m.id === 21);
    expect(busy.type === 'error' && busy.code).toBe(2);
    await pingWorks(link, 22);
    await link.send({ type: 'cancel', id: 23, target: 20 });
    const done = await link.collect(20);
    expect(done.reason).toBe('cancelled');
    expect(done.tokens.length).toBeLessThan(100);
    await link.send({ type: 'generate', id: 24, params: greedy(12), prompt: Buffer.from('Tom') });
    expect((await link.collect(24)).tokens).toEqual(coreJson(blob, ['-p', 'Tom', '-n', '12', '--ctx', '128']).generated_tokens);
    await closePort(link.port);
  }, 60_000);

  it('refuses a prompt longer than the context and a frame longer than the protocol allows', async () => {
    const link = await connect();
    await link.send({ type: 'generate', id: 30, params: greedy(5), prompt: Buffer.from('word '.repeat(180)) });
    const err = await link.next((m) => m.id === 30);
    expect(err.type === 'error' && err.code).toBe(4);
    expect(err.type === 'error' && err.message).toMatch(/does not fit the context of 128 tokens/);
    await link.send(Buffer.concat([Buffer.from([0]), Buffer.alloc(5000, 0x7a), Buffer.from([0])]));
    await pingWorks(link, 31);
    await closePort(link.port);
  }, 60_000);

  it('stops when the host vanishes mid-reply and serves the next host', async () => {
    const first = await connect();
    await first.send({ type: 'generate', id: 40, params: greedy(120), prompt: Buffer.from('Once upon a time') });
    await first.next((m) => m.type === 'token' && m.id === 40);
    await closePort(first.port); // gone, mid-stream
    await new Promise((r) => setTimeout(r, 300));
    const second = await connect();
    await second.send({ type: 'generate', id: 41, params: greedy(16), prompt: Buffer.from('The dog') });
    expect((await second.collect(41)).tokens).toEqual(coreJson(blob, ['-p', 'The dog', '-n', '16', '--ctx', '128']).generated_tokens);
    await closePort(second.port);
  }, 60_000);

  it('survives an over-long console line and garbage typed at the console', async () => {
    const port = await openPort(portPath);
    const chunks: Buffer[] = [];
    port.on('data', (c: Buffer) => chunks.push(c));
    const write = (b: Buffer | string) => new Promise<void>((r) => port.write(b, () => port.drain(() => r())));
    await write('\r');
    await write('a'.repeat(700) + '\r');
    await write(Buffer.from([0x1b, 0x5b, 0x41, 0x07, 0xff, 0xfe, 0x08, 0x7f, 0x03]));
    await write('/max 5\r/temp 0\rOnce upon a time\r');
    await new Promise((r) => setTimeout(r, 1500));
    const text = Buffer.concat(chunks).toString('utf8');
    expect(text).toMatch(/the line was cut to 511 bytes/);
    expect(text).toMatch(/\[5 tokens, [\d.]+ tok\/s\]/);
    await closePort(port);
  }, 60_000);
});
