/**
 * The serial path against what a new user and other programs do, end to end
 * over a real pseudo-terminal to the virtual board (the firmware's C
 * session): protocol 1.2's sampling controls (banned ids, repetition window)
 * against lmf-run with the same options, and another program on the port.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoardClient, BoardError } from '../host/board-client.js';
import { collectReply, generateParams } from '../host/commands/generate.js';
import { closePort, openPort } from '../host/serial.js';
import { startSim, type Sim } from '../host/sim.js';
import { ErrorCode } from '../src/protocol.js';
import { cli } from './cli-helpers.js';
import { coreJson, runCore, storiesBlob } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

let blob: string;
let sim: Sim;

beforeAll(async () => {
  blob = await storiesBlob();
  sim = await startSim({ model: blob });
});
afterAll(async () => {
  await sim?.stop();
});

const PROMPT = 'Once upon a time';

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('--ban and --repeat-window over serial', () => {
  it('generate --sim and --port with --ban give lmf-run --ban\'s tokens (and the banned ids never appear)', async () => {
    const free = coreJson(blob, ['-p', PROMPT, '-n', '40', '-t', '0']).generated_tokens;
    const ban = [...new Set(free.slice(0, 3))].join(',');
    const core = coreJson(blob, ['-p', PROMPT, '-n', '40', '-t', '0', '--ban', ban]);
    expect(core.generated_tokens).not.toEqual(free); // the ban changes the reply
    for (const where of [['--sim', '-m', blob], ['--port', sim.path]]) {
      const r = await cli('generate', ...where, '-p', PROMPT, '-n', '40', '-t', '0', '--ban', ban, '--json');
      expect(r.err).toBe('');
      const j = JSON.parse(r.out);
      expect(j.generated_tokens).toEqual(core.generated_tokens);
      expect(j.text).toBe(core.text);
      for (const id of ban.split(',').map(Number)) expect(j.generated_tokens).not.toContain(id);
    }
  });

  it('the repetition window goes over serial: sampled with penalty, window and bans, --sim matches lmf-run', async () => {
    const s = ['-t', '0.9', '-k', '40', '--top-p', '0.95', '-s', '99', '--repeat-penalty', '1.8', '--repeat-window', '4', '--ban', '0,1,13'];
    const core = coreJson(blob, ['-p', 'Tom and Lily', '-n', '60', ...s]);
    const wide = coreJson(blob, ['-p', 'Tom and Lily', '-n', '60', ...s.map((v) => (v === '4' ? '64' : v))]);
    expect(core.generated_tokens).not.toEqual(wide.generated_tokens); // the window matters here
    const j = JSON.parse((await cli('generate', '--sim', '-m', blob, '-p', 'Tom and Lily', '-n', '60', ...s, '--json')).out);
    expect(j.generated_tokens).toEqual(core.generated_tokens);
  });

  it('refuses ids outside the vocabulary: the host when it knows the vocabulary, the board with an ERROR', async () => {
    const viaSim = await cli('generate', '--sim', '-m', blob, '-p', 'x', '--ban', '3,512');
    expect(viaSim.code).toBe(1);
    expect(viaSim.err).toMatch(/banned token id 512 is outside the model's vocabulary: ids go from 0 to 511/);
    const native = await cli('generate', '-m', blob, '-p', 'x', '--ban', '512');
    expect(native.code).not.toBe(0);
    expect(native.err).toMatch(/--ban id 512 is outside the vocabulary: ids go from 0 to 511/);
    // a host that does not check: the board itself answers BAD_REQUEST
    const port = await openPort(sim.path);
    const client = new BoardClient(port, { name: sim.path, closeStream: () => closePort(port) });
    try {
      await client.connect();
      const gen = client.generate('x', generateParams({ temp: 0, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 1, ban: [7, 4096] }, 5));
      const err = await collectReply(gen, () => {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BoardError);
      expect((err as BoardError).code).toBe(ErrorCode.BAD_REQUEST);
      expect((err as BoardError).message).toMatch(/banned token id 4096 is outside the vocabulary: ids go from 0 to 511/);
      // and the board still serves
      const ok = await collectReply(client.generate('x', generateParams({ temp: 0, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 1, ban: [7] }, 5)), () => {});
      expect(ok.stats.generatedTokens).toBe(5);
    } finally {
      await client.close();
    }
  });

  it('the help shows the 16-id cap, and a 17th id is refused', async () => {
    for (const cmd of ['generate', 'chat']) expect((await cli(cmd, '--help')).out).toMatch(/--ban <ids>\s+comma-separated token ids never to\s+sample, at most 16/);
    const r = await cli('generate', '-m', blob, '-p', 'x', '--ban', Array.from({ length: 17 }, (_, i) => i).join(','));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/at most 16 token ids \(got 17\)/);
  });
});

describe('chat and the console', () => {
  it('chat --ban, /ban and /rep change the next reply as lmf-run\'s options do', async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/lmflash.js'), 'chat', '--port', sim.path, '-t', '0', '-n', '20', '--ban', '5'], {
      stdio: 'pipe',
      env: { ...process.env, LMFLASH_HISTORY: '/dev/null' },
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      child.stdin.write(`${PROMPT}\n`);
      await until(() => /\[20 tokens/.test(err));
      const first = coreJson(blob, ['-p', PROMPT, '-n', '20', '-t', '0', '--ban', '5']);
      const free = coreJson(blob, ['-p', PROMPT, '-n', '20', '-t', '0']).generated_tokens;
      const more = [...new Set(free.filter((id) => id !== 5).slice(0, 2))];
      child.stdin.write(`/ban ${more.join(',')}\n/ban 600\n/rep 1.5 8\n${PROMPT}\n/ban clear\n/quit\n`);
      expect(await exit).toBe(0);
      const second = coreJson(blob, ['-p', PROMPT, '-n', '20', '-t', '0', '--ban', [5, ...more].join(','), '--repeat-penalty', '1.5', '--repeat-window', '8']);
      expect(out).toBe(first.text + '\n' + second.text + '\n');
      expect(err).toMatch(new RegExp(`repeat window 64, banned 5,${more.join(',')}\n`));
      expect(err).toMatch(/\/ban: banned token id 600 is outside the model's vocabulary: ids go from 0 to 511/);
      expect(err).toMatch(/repeat penalty 1\.5, max 20, seed \d+, repeat window 8, banned 5,/);
      expect(err).toMatch(/banned none\n/);
    } finally {
      child.kill();
    }
  });

  it('console mode: /ban 0 bans, /ban lists, /ban clear empties, /rep sets penalty and window', async () => {
    const s = await startSim({ model: blob });
    const port = await openPort(s.path);
    let text = '';
    port.on('data', (c: Buffer) => (text += c.toString('latin1')));
    try {
      port.write('\r');
      await until(() => text.includes('> '));
      const free = coreJson(blob, ['-p', PROMPT, '-n', '12', '-t', '0']).generated_tokens;
      port.write(`/temp 0\r/max 12\r/ban ${free[0]},${free[1]}\r`);
      await until(() => text.includes(`banned ${free[0]},${free[1]}\r\n`));
      port.write('/ban 512\r');
      await until(() => text.includes('token id 512 is outside the vocabulary: ids go from 0 to 511'));
      port.write('/rep 1.3 8\r');
      await until(() => text.includes('repeat penalty 1.30 over 8'));
      text = '';
      port.write(`${PROMPT}\r`);
      await until(() => /\[12 tokens, [\d.]+ tok\/s\]\r\n> $/.test(text));
      const core = coreJson(blob, ['-p', PROMPT, '-n', '12', '-t', '0', '--ban', `${free[0]},${free[1]}`, '--repeat-penalty', '1.3', '--repeat-window', '8']);
      expect(text).toContain(`${core.text}\r\n[12 tokens`);
      port.write('/ban clear\r/ban\r/help\r');
      await until(() => text.includes('Ctrl-C'));
      expect(text).toMatch(/banned none\r\n/);
      expect(text).toMatch(/\/ban ID .*up to 16/);
    } finally {
      await closePort(port);
      await s.stop();
    }
  });
});

describe('lmf-run', () => {
  it('refuses a banned id outside the vocabulary', () => {
    const r = runCore(blob, ['-p', 'x', '--ban', '0,999']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--ban id 999 is outside the vocabulary: ids go from 0 to 511/);
  });
});

describe('another program holding the port', () => {
  it('`cat` reading the board\'s port: the error says the port is in use by it', async () => {
    const s = await startSim({ model: blob });
    const cat = spawn('cat', [s.path], { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      await new Promise((r) => setTimeout(r, 200)); // cat has it open
      const r = await cli('generate', '--port', s.path, '-p', 'x', '-n', '2');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(new RegExp(`the port is in use by another program \\(cat, pid ${cat.pid}\\)`));
    } finally {
      cat.kill();
      await s.stop();
    }
  }, 30_000);
});

describe('a host that writes but never reads', () => {
  it('does not slow the board to a crawl: echo is dropped, 270 KB of typing is taken in seconds, and the next host is served', async () => {
    const s = await startSim(); // no model: every line is echoed and answered, none starts a reply
    // lines the console echoes and answers; nobody reads any of it
    const typed = Buffer.from(('x'.repeat(60) + '\r/max 5\r').repeat(4000));
    const fd = openSync(s.path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    try {
      const t0 = Date.now();
      let off = 0;
      while (off < typed.length && Date.now() - t0 < 15_000) {
        try {
          off += writeSync(fd, typed, off, Math.min(4096, typed.length - off));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          await new Promise((r) => setTimeout(r, 5)); // the board has not read what we sent yet
        }
      }
      expect(off).toBe(typed.length); // before: ~20 KB, then 500 ms per echoed byte
    } finally {
      closeSync(fd);
    }
    try {
      const r = await cli('generate', '--port', s.path, '-p', PROMPT, '-n', '8');
      expect(r.err).toMatch(/the board says: no model on this board/); // it answers the next host at once
    } finally {
      await s.stop();
    }
  }, 60_000);
});
