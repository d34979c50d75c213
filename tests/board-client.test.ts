/**
 * BoardClient's own logic (retries, skipping boot text, routing by id,
 * watchdog) against a scripted board in this process: situations the virtual
 * board cannot be made to produce on demand. The real board is exercised end
 * to end in serial-sim.test.ts.
 */
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { BoardClient, BoardError } from '../host/board-client.js';
import { FrameDecoder, decodeMessage, encodeFrame, frameMessage, type Message } from '../src/protocol.js';

/** Two ends of an in-memory line. */
function line(): { host: Duplex; board: Duplex; hangUp: () => void } {
  const toBoard = new PassThrough();
  const toHost = new PassThrough();
  return {
    host: Duplex.from({ readable: toHost, writable: toBoard }),
    board: Duplex.from({ readable: toBoard, writable: toHost }),
    hangUp: () => toHost.end(), // the host reads end-of-stream, as from a port that closed
  };
}

type Script = (m: Message, send: (m: Message | Buffer) => void) => void;

/** A board that answers each decoded request with `script`. */
function scriptedBoard(board: Duplex, script: Script): { received: Message[] } {
  const d = new FrameDecoder();
  const received: Message[] = [];
  const send = (m: Message | Buffer) => board.write(Buffer.isBuffer(m) ? m : frameMessage(m));
  board.on('data', (c: Buffer) => {
    for (const p of d.push(c)) {
      const m = decodeMessage(p);
      received.push(m);
      if (m.type === 'console') send({ type: 'ok', id: m.id }); // the goodbye of close()
      else script(m, send);
    }
  });
  return { received };
}

const helloReply = (id: number, major = 1): Message => ({ type: 'helloReply', id, major, minor: 0, maxPayload: 1024, board: 'scripted' });
const params = { temperature: 0, topP: 1, topK: 0, repeatPenalty: 1, maxTokens: 3, seed: 1 };
const clients: BoardClient[] = [];
function client(host: Duplex, opts = {}): BoardClient {
  const c = new BoardClient(host, { name: 'test-line', helloTimeoutMs: 50, ...opts });
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

describe('BoardClient.connect', () => {
  it('sends 0x00 before HELLO and skips a boot log until the answer', async () => {
    const { host, board } = line();
    const raw: Buffer[] = [];
    board.on('data', (c: Buffer) => raw.push(c));
    scriptedBoard(board, (m, send) => {
      if (m.type !== 'hello') return;
      send(Buffer.from('ESP-ROM:esp32s3-20210327\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n\x00\x17garbage'));
      send(helloReply(m.id));
    });
    const c = client(host);
    expect(await c.connect()).toEqual({ major: 1, minor: 0, maxPayload: 1024, board: 'scripted' });
    expect(raw[0][0]).toBe(0);
  });

  it('retries HELLO when the board is still booting, and accepts a late answer', async () => {
    const { host, board } = line();
    let hellos = 0;
    scriptedBoard(board, (m, send) => {
      if (m.type !== 'hello') return;
      hellos++;
      if (hellos === 2) setTimeout(() => send(helloReply(m.id)), 60); // answers after the second try timed out
    });
    const c = client(host);
    await c.connect();
    expect(hellos).toBeGreaterThanOrEqual(2);
  });

  it('gives up with what to check when nothing answers', async () => {
    const { host } = line();
    const c = client(host, { helloAttempts: 3, helloTimeoutMs: 20 });
    await expect(c.connect()).rejects.toThrow(/no answer from a board on test-line after 3 tries: is the port in use by another program .*is the lmflash firmware on it/);
  });

  it('a board of another major version says which side to update', async () => {
    const { host, board } = line();
    scriptedBoard(board, (m, send) => m.type === 'hello' && send(helloReply(m.id, 2)));
    await expect(client(host).connect()).rejects.toThrow(/the board speaks protocol 2\.0, this lmflash 1\.2: update lmflash/);
  });
});

describe('BoardClient requests', () => {
  async function connected(script: Script, opts = {}) {
    const { host, board, hangUp } = line();
    const b = scriptedBoard(board, (m, send) => (m.type === 'hello' ? send(helloReply(m.id)) : script(m, send)));
    const c = client(host, opts);
    await c.connect();
    return { c, hangUp, b };
  }

  it('routes replies by id: an INFO answered between two tokens', async () => {
    let genId = 0;
    const { c } = await connected((m, send) => {
      if (m.type === 'generate') {
        genId = m.id;
        send({ type: 'token', id: m.id, token: 10, bytes: Buffer.from('a') });
      } else if (m.type === 'info') {
        send({ type: 'infoReply', id: m.id, info: { ctx: 512 } });
        send({ type: 'token', id: genId, token: 11, bytes: Buffer.from('b') });
        send({ type: 'done', id: genId, stats: { promptTokens: 1, generatedTokens: 2, timeToFirstTokenUs: 1, totalUs: 2, reason: 'max_tokens', reasonCode: 0 } });
      }
    });
    const gen = c.generate('x', params);
    const seen: string[] = [];
    for await (const e of gen) {
      if (e.type === 'token') {
        seen.push(e.bytes.toString());
        if (seen.length === 1) expect(await c.info()).toEqual({ ctx: 512 });
      } else seen.push(`done:${e.stats.generatedTokens}`);
    }
    expect(seen).toEqual(['a', 'b', 'done:2']);
  });

  it('an ERROR answer is thrown with the board\'s words', async () => {
    const { c } = await connected((m, send) => m.type === 'generate' && send({ type: 'error', id: m.id, code: 2, message: 'a reply is being generated: send CANCEL or wait for its DONE' }));
    const iterate = async () => {
      for await (const _ of c.generate('x', params));
    };
    await expect(iterate()).rejects.toThrow(BoardError);
    await expect(iterate()).rejects.toThrow(/the board says: a reply is being generated/);
  });

  it('a board that goes silent mid-reply is an error within idle + dead time, after a PING', async () => {
    const { c, b } = await connected((m, send) => m.type === 'generate' && send({ type: 'token', id: m.id, token: 1, bytes: Buffer.from('x') }), { idleMs: 100, deadMs: 150 });
    const t0 = Date.now();
    const iterate = async () => {
      for await (const _ of c.generate('x', params));
    };
    await expect(iterate()).rejects.toThrow(/the board on test-line stopped answering .*: it may have reset or been unplugged/);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(b.received.some((m) => m.type === 'ping')).toBe(true);
  });

  it('the line closing mid-reply is an error at once', async () => {
    const { c, hangUp } = await connected((m, send) => m.type === 'generate' && send({ type: 'token', id: m.id, token: 1, bytes: Buffer.from('x') }));
    const gen = c.generate('x', params);
    const iterate = async () => {
      for await (const _ of gen) hangUp();
    };
    await expect(iterate()).rejects.toThrow(/went away/);
  });

  it('a reply the parser refuses (a firmware bug) fails its request instead of hanging', async () => {
    const { c } = await connected((m, send) => {
      if (m.type !== 'generate') return;
      send(encodeFrame(Buffer.from([0x84, 0, m.id & 0xff, m.id >> 8, 1, 2]))); // a DONE of 2 bytes
    });
    const iterate = async () => {
      for await (const _ of c.generate('x', params));
    };
    await expect(iterate()).rejects.toThrow(/the board sent a malformed DONE message: 2 bytes of body, at least 17 expected \(a firmware bug/);
  });

  it('refuses a prompt longer than one frame carries', async () => {
    const { c } = await connected(() => {});
    expect(() => c.generate('a'.repeat(993), params)).toThrow(/the prompt is 993 bytes; one request to the board carries at most 992: shorten it/);
  });

  it('a board older than 1.2 is told nothing it cannot read: --ban and --repeat-window are refused with what to update', async () => {
    const { c, b } = await connected((m, send) => {
      if (m.type === 'generate') send({ type: 'done', id: m.id, stats: { promptTokens: 1, generatedTokens: 0, timeToFirstTokenUs: 0, totalUs: 1, reason: 'max_tokens', reasonCode: 0 } });
    }); // its HELLO says 1.0
    expect(() => c.generate('x', { ...params, banned: [0] })).toThrow(/firmware speaks protocol 1\.0, which has no field for banned tokens .*update the firmware with `lmflash flash`/);
    expect(() => c.generate('x', { ...params, repeatWindow: 8 })).toThrow(/needs? 1\.2|they need 1\.2/);
    expect(b.received.filter((m) => m.type === 'generate')).toEqual([]);
    for await (const e of c.generate('x', params)) void e; // everything else still goes, as a 1.1 host sends it
    const sent = b.received.filter((m) => m.type === 'generate');
    expect(sent.length).toBe(1);
    expect(sent[0].type === 'generate' && sent[0].params.flags).toBe(0);
  });
});
