/**
 * End to end over real pseudo-terminals: the virtual board (build/native/lmf-sim,
 * the firmware's C core and serial session), the real @serialport bindings,
 * and lmflash as a person runs it. The child-process tests run the compiled
 * CLI (bin/lmflash.js → dist/), which `npm test` builds first.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LinuxBinding, type LinuxOpenOptions, type SetOptions } from '@serialport/bindings-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoardClient, BoardError } from '../host/board-client.js';
import { collectReply, generateParams } from '../host/commands/generate.js';
import { closePort, explainOpenError, openPort, pickBoard, type PortEntry } from '../host/serial.js';
import { startSim, type Sim } from '../host/sim.js';
import { openTarget, type Target } from '../host/target.js';
import { ErrorCode } from '../src/protocol.js';
import { coreJson, runCore, storiesBlob } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';
import { cli } from './cli-helpers.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');
let blob: string;
let sim: Sim; // one virtual board for the tests that do not need their own
const started: Sim[] = [];

beforeAll(async () => {
  blob = await storiesBlob();
  sim = await ownSim();
});
afterAll(async () => {
  for (const s of started) await s.stop();
});

/** A virtual board of our own; `stepDelayUs` slows it to a board's pace, so "while a reply runs" is certain. */
async function ownSim(model: string | undefined = blob, stepDelayUs?: number): Promise<Sim> {
  const s = await startSim({ model, stepDelayUs });
  started.push(s);
  return s;
}


/** lmf-run's options for generate's sampling options (as generate --model passes them). */
function coreArgs(prompt: string, n: number, s: { t: string; k: string; p: string; seed: string; r?: string }): string[] {
  const args = ['-p', prompt, '-n', String(n), '--temp', s.t, '--top-k', s.k, '--top-p', s.p, '--seed', s.seed];
  if (s.r) args.push('--repeat-penalty', s.r);
  return args;
}

function cliSampling(s: { t: string; k: string; p: string; seed: string; r?: string }): string[] {
  return ['-t', s.t, '-k', s.k, '--top-p', s.p, '-s', s.seed, ...(s.r ? ['--repeat-penalty', s.r] : [])];
}

async function connectedClient(s: Sim, opts = {}): Promise<{ client: BoardClient; close: () => Promise<void> }> {
  const port = await openPort(s.path);
  const client = new BoardClient(port, { name: s.path, closeStream: () => closePort(port), ...opts });
  await client.connect();
  return { client, close: () => client.close() };
}

const CASES = [
  { name: 'greedy', prompt: 'Once upon a time', n: 40, s: { t: '0', k: '0', p: '0.9', seed: '1' } },
  { name: 'sampled (temp, top-k, top-p, repeat penalty)', prompt: 'Tom and Lily', n: 60, s: { t: '0.9', k: '40', p: '0.95', seed: '1234', r: '1.1' } },
  { name: 'sampled (defaults)', prompt: 'The cat', n: 80, s: { t: '0.8', k: '0', p: '0.9', seed: '77' } },
];

describe('generate on the virtual board gives the native core\'s tokens', () => {
  for (const c of CASES) {
    it(`${c.name}: --sim and --port match lmf-run`, async () => {
      const core = coreJson(blob, coreArgs(c.prompt, c.n, c.s));
      const viaSim = JSON.parse((await cli('generate', '--sim', '-m', blob, '-p', c.prompt, '-n', String(c.n), ...cliSampling(c.s), '--json')).out);
      const viaPort = JSON.parse((await cli('generate', '--port', sim.path, '-p', c.prompt, '-n', String(c.n), ...cliSampling(c.s), '--json')).out);
      for (const j of [viaSim, viaPort]) {
        expect(j.generated_tokens).toEqual(core.generated_tokens);
        expect(j.text).toBe(core.text);
        expect(j.prompt_tokens).toBeNull();
        expect(j.stats).toMatchObject({ prompt_tokens: core.prompt_tokens.length, generated_tokens: core.generated_tokens.length, seed: Number(c.s.seed) });
      }
    });
  }

  it('prints exactly what generate --model prints: prompt, streamed text, the stats line on stderr', async () => {
    const args = ['-p', 'Once upon a time', '-n', '50', '-s', '9'];
    const native = await cli('generate', '-m', blob, ...args);
    const board = await cli('generate', '--port', sim.path, ...args);
    expect(board.code).toBe(0);
    expect(board.out).toBe(native.out);
    expect(board.err).toMatch(/^\n\[50 tokens after a 5-token prompt, [\d.]+ tok\/s, seed 9\]\n$/);
  });

  it('UTF-8: a Chinese and emoji prompt, and raw byte tokens, come out byte-exact', async () => {
    const prompt = '小猫 🐱 说: 你好';
    // temperature 100 samples nearly uniformly: half of stories260K's vocabulary is byte-fallback tokens
    const s = { t: '100', k: '0', p: '1', seed: '5' };
    const core = runCore(blob, coreArgs(prompt, 120, s));
    expect(core.status).toBe(0);
    expect([...core.stdout].some((b) => b >= 0x80)).toBe(true);
    const { client, close } = await connectedClient(sim);
    try {
      const reply = await collectReply(client.generate(prompt, generateParams({ temp: 100, topK: 0, topP: 1, repeatPenalty: 1, seed: 5 }, 120)), () => {});
      expect(reply.bytes.equals(core.stdout)).toBe(true);
    } finally {
      await close();
    }
    // and the CLI's streamed text (whole characters, U+FFFD for broken ones) is the native path's
    const viaPort = await cli('generate', '--port', sim.path, '-p', prompt, '-n', '120', ...cliSampling(s));
    const native = await cli('generate', '-m', blob, '-p', prompt, '-n', '120', ...cliSampling(s));
    expect(viaPort.out).toBe(native.out);
    expect(viaPort.out.startsWith(prompt)).toBe(true);
  });

  it('says where to run, and what does not go over serial', async () => {
    expect((await cli('generate', '-p', 'x')).err).toMatch(/say where to generate: --model M \(the native core\), --sim --model M \(the virtual board\) or --port P/);
    expect((await cli('generate', '--port', sim.path, '--sim', '-p', 'x')).err).toMatch(/--port and --sim are alternatives/);
    expect((await cli('generate', '--port', sim.path, '-m', blob, '-p', 'x')).err).toMatch(/--model does not go with --port/);
    const noModel = await cli('generate', '--sim', '-p', 'x');
    expect(noModel.code).toBe(1);
    expect(noModel.err).toMatch(/^lmflash: error: the board says: no model on this board: flash one with `lmflash flash --model MODEL\.blob`\n$/);
  });
});

describe('the protocol against the virtual board', () => {
  let t: Target;
  let slow: Sim; // 1 ms per forward pass: the long reply below takes 0.4 s
  beforeAll(async () => {
    slow = await ownSim(blob, 1000);
    t = await openTarget({ port: slow.path });
  });
  afterAll(async () => {
    await t?.close();
  });
  const long = generateParams({ temp: 0.8, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 2 }, 500); // 398 tokens, then the end of the story

  it('HELLO and INFO describe the board and its model', async () => {
    expect(t.client.hello).toEqual({ major: 1, minor: 2, maxPayload: 1024, board: 'virtual board' });
    const info = await t.client.info();
    expect(info).toMatchObject({ protocol: '1.2', board: 'virtual board', model: { dim: 64, n_layers: 5, vocab_size: 512, seq_len: 512 }, ctx: 512 });
    expect(typeof info.rx_errors).toBe('number');
  });

  it('PING is answered while a reply streams', async () => {
    const order: string[] = [];
    let pong: Promise<unknown> | null = null;
    for await (const e of t.client.generate('Once upon a time', long)) {
      if (e.type === 'done') order.push('done');
      else if (!pong) pong = t.client.ping(Buffer.from('are you there')).then((r) => order.push(`pong:${r.data.toString()}`));
    }
    await pong;
    expect(order).toContain('pong:are you there');
    expect(order.indexOf('pong:are you there')).toBeLessThan(order.indexOf('done'));
  });

  it('CANCEL mid-reply: DONE says cancelled, and the next request works', async () => {
    const full = coreJson(blob, ['-p', 'Once upon a time', '-n', '500', '-t', '0.8', '-s', '2']).generated_tokens.length;
    let stats = null;
    let tokens = 0;
    const gen = t.client.generate('Once upon a time', long);
    for await (const e of gen) {
      if (e.type === 'done') stats = e.stats;
      else if (++tokens === 3) gen.cancel();
    }
    expect(stats).toMatchObject({ reason: 'cancelled' });
    expect(stats!.generatedTokens).toBeGreaterThanOrEqual(3);
    expect(stats!.generatedTokens).toBeLessThan(full);
    expect(tokens).toBe(stats!.generatedTokens);
    const next = await collectReply(t.client.generate('Tom', generateParams({ temp: 0, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 1 }, 10)), () => {});
    expect(next.stats).toMatchObject({ reason: 'max_tokens', generatedTokens: 10 });
    expect(next.ids).toEqual(coreJson(blob, ['-p', 'Tom', '-n', '10', '-t', '0']).generated_tokens);
  });

  it('a second GENERATE while one runs gets BUSY; RESET mid-reply ends it (DONE cancelled) and answers OK', async () => {
    const first = t.client.generate('Once upon a time', long);
    const events: string[] = [];
    let busy: unknown = null;
    let reset: Promise<unknown> | null = null;
    for await (const e of first) {
      events.push(e.type === 'done' ? `done:${e.stats.reason}` : 'token');
      if (events.length === 1) busy = await collectReply(t.client.generate('Tom', long), () => {}).catch((err) => err);
      else if (events.length === 2) reset = t.client.reset().then(() => events.push('ok'));
    }
    await reset;
    expect(busy).toBeInstanceOf(BoardError);
    expect((busy as BoardError).code).toBe(ErrorCode.BUSY);
    expect((busy as BoardError).message).toBe('the board says: a reply is being generated: send CANCEL or wait for its DONE');
    expect(events.slice(-2).sort()).toEqual(['done:cancelled', 'ok']); // DONE is first on the wire; the iteration may see it after the OK
    expect(events.length).toBeLessThan(50);
  });

  it('a prompt longer than the context: PROMPT_TOO_LONG with what to do', async () => {
    const prompt = '猫'.repeat(330); // 990 bytes, one byte-fallback token each: past 512
    const err = await collectReply(t.client.generate(prompt, long), () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(BoardError);
    expect(err.code).toBe(ErrorCode.PROMPT_TOO_LONG);
    expect(err.message).toMatch(/the prompt does not fit the context of 512 tokens: shorten it/);
  });
});

describe('connecting', () => {
  it('a HELLO of another major gets the doc\'s ERROR VERSION; the board stays usable', async () => {
    const s = await ownSim();
    const port = await openPort(s.path);
    const newer = new BoardClient(port, { name: s.path, version: { major: 2, minor: 0 } });
    await expect(newer.connect()).rejects.toThrow(
      'the board refused this lmflash: host speaks protocol 2.0, this firmware 1.2: update the firmware with `lmflash flash`, or use an lmflash that speaks 1.x',
    );
    await newer.close();
    const current = new BoardClient(port, { name: s.path, closeStream: () => closePort(port) });
    expect((await current.connect()).major).toBe(1);
    await current.close();
  });

  it('CONSOLE returns to console mode: the banner, then a typed line gets a text reply', async () => {
    const s = await ownSim();
    const port = await openPort(s.path);
    const client = new BoardClient(port, { name: s.path });
    await client.connect();
    let text = '';
    port.on('data', (c: Buffer) => (text += c.toString('latin1')));
    await client.toConsole();
    await client.close(); // the client stops listening; the port stays open
    await until(() => text.includes('Type a prompt, or /help.'));
    port.write('/temp 0\r/max 12\rOnce upon a time\r');
    await until(() => /\[12 tokens, [\d.]+ tok\/s\]\r\n> $/.test(text));
    const core = coreJson(blob, ['-p', 'Once upon a time', '-n', '12', '-t', '0']);
    expect(text).toContain(`Once upon a time\r\n${core.text}\r\n[12 tokens`);
    await closePort(port);
  });

  it('opens without touching DTR/RTS: hupcl off, then one set() with both deasserted', async () => {
    // The real bindings, with their open() and set() calls recorded on the way through.
    const real = LinuxBinding; // pseudo-terminals: these tests run on Linux
    const calls: unknown[] = [];
    const binding = {
      list: () => real.list(),
      async open(options: LinuxOpenOptions) {
        calls.push({ open: { hupcl: options.hupcl } });
        const p = await real.open(options);
        const set = p.set.bind(p);
        p.set = async (flags: SetOptions) => {
          calls.push({ set: flags });
          return set(flags);
        };
        return p;
      },
    };
    const port = await openPort(sim.path, { binding });
    try {
      expect(calls).toEqual([{ open: { hupcl: false } }, { set: { brk: false, cts: false, dtr: false, rts: false } }]);
      // the pseudo-terminal has no modem lines (set() fails there with ENOTTY and is
      // skipped), but its termios shows that hupcl is off while we hold it open
      const stty = spawnSync('stty', ['-F', sim.path, '-a'], { encoding: 'utf8' });
      if (stty.status === 0) expect(stty.stdout).toMatch(/(^|\s)-hupcl(\s|$)/);
    } finally {
      await closePort(port);
    }
  });

  it('explains missing and busy ports, and permission problems', async () => {
    expect((await cli('generate', '--port', '/dev/ttyNOPE0', '-p', 'x')).err).toBe(
      'lmflash: error: no such port /dev/ttyNOPE0: run `lmflash ports` to see the serial ports\n',
    );
    const s = await ownSim();
    const holder = await openPort(s.path);
    try {
      expect((await cli('generate', '--port', s.path, '-p', 'x')).err).toMatch(
        /^lmflash: error: port is busy: another program \(a serial monitor\?\) has \/dev\/pts\/\d+ open; close it and try again\n$/,
      );
    } finally {
      await closePort(holder);
    }
    // root cannot be refused, so this one is the bindings' message as Linux words it
    expect(explainOpenError('/dev/ttyACM0', new Error('Error: Permission denied, cannot open /dev/ttyACM0')).message).toBe(
      'permission denied opening /dev/ttyACM0: add yourself to the dialout group (`sudo usermod -aG dialout $USER`, then log out and in)',
    );
  });

  it('picks the only likely board, or says what to do', () => {
    const port = (p: string, likelihood: number, guess: string | null = null): PortEntry => ({ path: p, likelihood, guess });
    expect(pickBoard([port('/dev/ttyS0', 0), port('/dev/ttyACM0', 3, 'ESP32-S3 built-in USB-Serial-JTAG')]).path).toBe('/dev/ttyACM0');
    expect(() => pickBoard([])).toThrow(/no board found: plug the board in with a data USB cable .* or name the port with --port/);
    expect(() => pickBoard([port('/dev/ttyACM0', 3, 'ESP32-S3'), port('/dev/ttyUSB0', 2, 'CP210x')])).toThrow(
      /several ports look like boards: \/dev\/ttyACM0 \(ESP32-S3.*\/dev\/ttyUSB0 \(CP210x.*: choose one with --port/,
    );
  });

  it('a board that vanishes mid-reply is a clear error, not a hang', async () => {
    const s = await ownSim(blob, 1000);
    const { client, close } = await connectedClient(s, { idleMs: 200, deadMs: 300 });
    const t0 = Date.now();
    const frozen = (async () => {
      for await (const e of client.generate('Once upon a time', generateParams({ temp: 0.8, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 2 }, 500)))
        if (e.type === 'token') s.process.kill('SIGSTOP'); // frozen: no more output, no answer to PING
    })();
    await expect(frozen).rejects.toThrow(/stopped answering .*: it may have reset or been unplugged; run the command again/);
    expect(Date.now() - t0).toBeLessThan(3000);
    s.process.kill('SIGCONT');
    await close();
    // a board that is gone for good: the port hangs up
    const gone = await ownSim(blob, 1000);
    // A pseudo-terminal whose master closed may read as endless EOF, which the bindings
    // retry instead of reporting: then the watchdog's PING (or its EIO) finds out.
    const c2 = await connectedClient(gone, { idleMs: 200, deadMs: 300 });
    const killed = (async () => {
      for await (const e of c2.client.generate('Once upon a time', generateParams({ temp: 0.8, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 2 }, 500)))
        if (e.type === 'token') gone.process.kill('SIGKILL');
    })();
    await expect(killed).rejects.toThrow(/went away|stopped answering/);
    await c2.close();
  });
});

/** Spawns the compiled CLI with piped stdio. */
function spawnCli(args: string[]): { child: ChildProcessWithoutNullStreams; out: () => string; err: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: 'pipe', env: { ...process.env, LMFLASH_HISTORY: '/dev/null' } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exit };
}

/** The ids of a process's children, from /proc (no procps needed). */
function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // stat is "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // the process ended meanwhile
      }
    })
    .map(Number);
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('lmflash chat, typed into its stdin', () => {
  it('streams the same text as lmf-run; slash commands change the next reply', async () => {
    const c = spawnCli(['chat', '--port', sim.path, '-s', '11', '-n', '30']);
    try {
      c.child.stdin.write('Once upon a time\n');
      await until(() => /\[30 tokens, first after \d+ ms, [\d.]+ tok\/s, seed 11\]/.test(c.err()));
      const first = coreJson(blob, ['-p', 'Once upon a time', '-n', '30', '-t', '0.8', '-s', '11']);
      expect(c.out()).toBe(first.text + '\n');
      c.child.stdin.write('/temp 0\n/max 15\n/topk 7\nTom\n/info\n/quit\n');
      expect(await c.exit).toBe(0);
      const second = coreJson(blob, ['-p', 'Tom', '-n', '15', '-t', '0', '-k', '7', '-s', '12']);
      expect(c.out()).toBe(first.text + '\n' + second.text + '\n');
      expect(c.err()).toMatch(/temp 0, topk 7, topp 0\.9, repeat penalty 1, max 15, seed 12/);
      expect(c.err()).toMatch(/\[15 tokens, first after \d+ ms, [\d.]+ tok\/s, seed 12\]/);
      expect(c.err()).toMatch(/model: dim 64, hidden 172, 5 layers/);
    } finally {
      c.child.kill();
    }
  });

  it('Ctrl-C during a reply cancels it and the chat goes on; Ctrl-C twice at the prompt quits', async () => {
    const s = await ownSim(blob, 2000); // 2 ms per token: the reply takes ~0.8 s
    const c = spawnCli(['chat', '--port', s.path, '-s', '2', '-n', '500']);
    try {
      c.child.stdin.write('Once upon a time\n');
      await until(() => c.out().length > 0); // the reply is streaming
      c.child.kill('SIGINT');
      await until(() => /\[\d+ tokens, .*seed 2, stopped\]/.test(c.err()));
      const stopped = Number(/\[(\d+) tokens, .*seed 2, stopped\]/.exec(c.err())![1]);
      expect(stopped).toBeLessThan(coreJson(blob, ['-p', 'Once upon a time', '-n', '500', '-s', '2']).generated_tokens.length);
      c.child.stdin.write('/temp 0\n/max 8\nTom\n');
      await until(() => /\[8 tokens, .*seed 3\]/.test(c.err()));
      expect(c.out().endsWith(coreJson(blob, ['-p', 'Tom', '-n', '8', '-t', '0']).text + '\n')).toBe(true);
      c.child.kill('SIGINT');
      await until(() => c.err().includes('(Ctrl-C again to quit)'));
      c.child.kill('SIGINT');
      expect(await c.exit).toBe(0);
    } finally {
      c.child.kill('SIGKILL');
    }
  });
});

describe('lmflash sim and monitor', () => {
  it('`lmflash sim` serves until Ctrl-C; `lmflash monitor` talks to its console and Ctrl-] leaves', async () => {
    const server = spawnCli(['sim', '-m', blob]);
    try {
      await until(() => /serving on \/dev\/pts\/\d+/.test(server.out()));
      const pty = /serving on (\/dev\/pts\/\d+)/.exec(server.out())![1];
      expect(server.out()).toContain(`lmflash chat --port ${pty}`);
      const mon = spawnCli(['monitor', '--port', pty]);
      try {
        mon.child.stdin.write('/help\r');
        await until(() => mon.out().includes('/topk K'));
        mon.child.stdin.write(Buffer.from([0x1d]));
        expect(await mon.exit).toBe(0);
        expect(mon.err()).toMatch(/Ctrl-\] exits/);
      } finally {
        mon.child.kill('SIGKILL');
      }
      const r = await cli('generate', '--port', pty, '-p', 'Tom', '-n', '5', '-t', '0', '--no-echo');
      expect(r.out).toBe(coreJson(blob, ['-p', 'Tom', '-n', '5', '-t', '0']).text);
      const board = childPids(server.child.pid!)[0]; // its lmf-sim
      expect(board).toBeGreaterThan(0);
      server.child.kill('SIGINT');
      expect(await server.exit).toBe(0);
      expect(() => process.kill(board, 0)).toThrow(); // stopped with it
    } finally {
      server.child.kill('SIGTERM'); // not SIGKILL: lmflash stops its virtual board on SIGTERM
    }
  });
});
