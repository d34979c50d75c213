/**
 * `lmflash chat [--port [P] | --sim [--model M]] [--baud B]`: talk to a board.
 * Each line typed is a prompt; the reply streams back as whole characters.
 * Ctrl-C stops a reply (CANCEL) and returns to the prompt; Ctrl-C twice at an
 * empty prompt quits. Slash commands change the sampling settings the host
 * sends with the next GENERATE.
 */
import { randomInt } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import { BoardError, type Generation } from '../board-client.js';
import type { CliIO } from '../io.js';
import { DEFAULT_BAUD, parseBaud } from '../serial.js';
import { PACE_HELP, simStepDelay } from '../pace.js';
import { openTarget, type Target } from '../target.js';
import { DEFAULT_REPEAT_WINDOW, MAX_BANNED } from '../../src/protocol.js';
import {
  addSamplingOptions,
  boardVocab,
  checkBannedIds,
  collectReply,
  generateParams,
  parseBanList,
  type SamplingOptions,
} from './generate.js';
import { parseNumberIn, parsePositiveInt, parseUint32 } from '../option-parsers.js';

export interface ChatSettings {
  temp: number;
  topK: number;
  topP: number;
  repeatPenalty: number;
  seed: number;
  max: number;
  /** Recent tokens the penalty looks at; undefined: the board's 64. */
  repeatWindow?: number;
  /** Token ids never sampled. */
  banned: number[];
}

const HELP = `Type a prompt and press Enter; the reply streams back.
  /temp T   temperature (0 = always the likeliest token)
  /topk K   sample from the K likeliest tokens (0 = off)
  /topp P   nucleus sampling threshold (1 = off)
  /seed S   seed for the next reply (each reply then uses the next seed)
  /max N    tokens per reply
  /rep R [W] repetition penalty R (1 = off), over the last W tokens
  /ban ID   never sample token ID (e.g. /ban 0, /ban 0,5; at most 16); /ban lists, /ban clear empties
  /info     the board: model, context, memory, counters
  /reset    default settings (also stops the board's reply)
  /quit     leave (or Ctrl-C twice at an empty prompt, or Ctrl-D)
  Ctrl-C    stops the reply being generated
`;

/** Settings changes: the parser for each slash command's argument and where it goes. */
const SETTERS: Record<string, { key: 'temp' | 'topK' | 'topP' | 'seed' | 'max'; parse: (v: string) => number }> = {
  '/temp': { key: 'temp', parse: parseNumberIn(0, 100) },
  '/topk': { key: 'topK', parse: parseUint32 },
  '/topp': { key: 'topP', parse: parseNumberIn(0.01, 1) },
  '/seed': { key: 'seed', parse: parseUint32 },
  '/max': { key: 'max', parse: parsePositiveInt },
};

export function describeSettings(s: ChatSettings): string {
  const window = s.repeatWindow ?? DEFAULT_REPEAT_WINDOW;
  return `temp ${s.temp}, topk ${s.topK}, topp ${s.topP}, repeat penalty ${s.repeatPenalty}, max ${s.max}, seed ${s.seed}, repeat window ${window}, banned ${s.banned.length ? s.banned.join(',') : 'none'}`;
}

/**
 * `/ban` (list), `/ban clear`, `/ban 0,5` (add) and `/rep R [W]`: the message
 * to show, or null when `line` is neither. `vocabSize` (null: unknown) bounds the ids.
 */
export function applySamplingCommand(s: ChatSettings, line: string, vocabSize: number | null): string | null {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  const arg = rest.join(' ');
  try {
    if (cmd === '/ban') {
      if (arg === 'clear') s.banned = [];
      else if (arg) {
        const ids = [...new Set([...s.banned, ...parseBanList(arg)])];
        if (ids.length > MAX_BANNED) return `/ban: at most ${MAX_BANNED} token ids: /ban clear first`;
        if (vocabSize !== null) checkBannedIds(ids, vocabSize);
        s.banned = ids;
      }
      return describeSettings(s);
    }
    if (cmd === '/rep') {
      if (!rest.length || rest.length > 2) return `/rep needs a penalty and optionally a window, e.g. /rep 1.1 64 (now: ${describeSettings(s)})`;
      const penalty = parseNumberIn(0.01, 100)(rest[0]);
      const window = rest[1] === undefined ? s.repeatWindow : parseUint32(rest[1]);
      s.repeatPenalty = penalty;
      s.repeatWindow = window;
      return describeSettings(s);
    }
  } catch (e) {
    return `${cmd}: ${(e as Error).message}`;
  }
  return null;
}

/**
 * Applies a settings command (`/temp 0.5`) to `s`: the message to show, or
 * null when `line` is not a settings command.
 */
export function applySetting(s: ChatSettings, line: string): string | null {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  const setter = SETTERS[cmd];
  if (!setter) return null;
  const arg = rest.join(' ');
  if (!arg) return `${cmd} needs a value (now: ${describeSettings(s)})`;
  try {
    s[setter.key] = setter.parse(arg);
  } catch (e) {
    return `${cmd}: ${(e as Error).message}`;
  }
  return describeSettings(s);
}

/** The stats line after a reply. */
/** The model line of /info, from the board's INFO reply: a transformer's shape or an N-gram's orders. */
export function describeBoardModel(m: Record<string, unknown>): string {
  const n = (v: unknown) => (typeof v === 'number' ? v.toLocaleString('en-US') : '?');
  const tail = `vocab ${n(m.vocab_size)}, trained context ${n(m.seq_len)}, blob ${n(m.blob_bytes)} bytes`;
  if (m.arch === 'ngram') {
    const counts = Array.isArray(m.ngrams) ? m.ngrams.map((c, i) => `${n(c)} ${i + 1}-grams`).join(', ') : null;
    return `model: ${n(m.order)}-gram language model, ${counts ? `${counts}, ` : ''}${tail}`;
  }
  return `model: dim ${n(m.dim)}, hidden ${n(m.hidden_dim)}, ${n(m.n_layers)} layers, ${n(m.n_heads)} heads (${n(m.n_kv_heads)} kv), ${tail}`;
}

export function statsLine(tokens: number, firstMs: number | null, tokPerS: number, seed: number, reason: string): string {
  const stopped = reason === 'cancelled' ? ', stopped' : reason === 'context_full' ? ', context full' : '';
  const first = firstMs === null ? '' : `, first after ${firstMs.toFixed(0)} ms`;
  return `[${tokens} tokens${first}, ${tokPerS.toFixed(1)} tok/s, seed ${seed}${stopped}]`;
}

interface ChatOpts extends Omit<SamplingOptions, 'seed'> {
  port?: string | true;
  sim?: boolean;
  model?: string;
  baud: number;
  steps: number;
  seed?: number;
  history: boolean;
  pace?: string;
}

export function register(program: Command, io: CliIO): void {
  const cmd = program
    .command('chat')
    .description('talk to a board (or the virtual board): each line is a prompt, the reply streams back')
    .option('--port [path]', 'the board\'s serial port (default: the only board plugged in)')
    .option('--sim', 'talk to the virtual board instead (give it a blob with --model)')
    .option('-m, --model <blob>', 'the blob the virtual board runs (with --sim)')
    .option('--pace <board>', PACE_HELP)
    .option('--baud <rate>', 'serial baud rate (USB-Serial-JTAG ignores it)', parseBaud, DEFAULT_BAUD)
    .option('--no-history', `do not keep typed prompts in ${historyFile()}`);
  addSamplingOptions(cmd).action(async (opts: ChatOpts) => {
    if (opts.port !== undefined && opts.sim) throw new LmflashError('--port and --sim are alternatives: choose one');
    if (opts.model && !opts.sim) throw new LmflashError('--model goes with --sim: a board runs the model flashed on it');
    const settings: ChatSettings = {
      temp: opts.temp,
      topK: opts.topK,
      topP: opts.topP,
      repeatPenalty: opts.repeatPenalty,
      seed: opts.seed ?? randomInt(0, 2 ** 31),
      max: opts.steps,
      repeatWindow: opts.repeatWindow,
      banned: opts.ban ?? [],
    };
    const stepDelayUs = await simStepDelay(opts, io);
    const target = await openTarget({ port: opts.port, sim: opts.sim, model: opts.model, baud: opts.baud, stepDelayUs });
    try {
      const vocab = await boardVocab(target.client);
      if (vocab.size !== null) checkBannedIds(settings.banned, vocab.size);
      await new Chat(target, settings, io, opts.history, vocab).run();
    } finally {
      await target.close();
    }
  });
}

function historyFile(): string {
  return process.env.LMFLASH_HISTORY ?? path.join(os.homedir(), '.lmflash_history');
}

function loadHistory(): string[] {
  try {
    // readline wants the newest first
    return readFileSync(historyFile(), 'utf8').split('\n').filter(Boolean).slice(-500).reverse();
  } catch {
    return [];
  }
}

class Chat {
  private readonly defaults: ChatSettings;
  private current: Generation | null = null;
  private ctrlCArmed = false;
  private rl!: readline.Interface;
  private readonly tty = process.stdin.isTTY === true;

  constructor(
    private readonly target: Target,
    private readonly settings: ChatSettings,
    private readonly io: CliIO,
    private readonly keepHistory: boolean,
    private readonly vocab: { size: number | null; unkId: number | null },
  ) {
    this.defaults = { ...settings, banned: [...settings.banned] };
  }

  async run(): Promise<void> {
    const { hello } = this.target.client;
    this.say(`connected to ${hello!.board} on ${this.target.portPath} (protocol ${hello!.major}.${hello!.minor}); /help lists commands, Ctrl-C twice quits\n`);
    this.rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: this.tty,
      prompt: '> ',
      history: this.tty && this.keepHistory ? loadHistory() : [],
      historySize: 500,
    });
    const onInterrupt = () => this.interrupt();
    this.rl.on('SIGINT', onInterrupt); // a terminal: readline turns Ctrl-C into this
    process.on('SIGINT', onInterrupt); // piped stdin: the real signal
    try {
      this.showPrompt();
      for await (const line of this.rl) {
        this.ctrlCArmed = false;
        if ((await this.handle(line)) === 'quit') break;
        this.showPrompt();
      }
    } finally {
      process.off('SIGINT', onInterrupt);
      this.rl.close();
    }
  }

  /** Status lines go to stderr: stdout carries only the board's text. */
  private say(text: string): void {
    this.io.err(text);
  }

  private showPrompt(): void {
    if (this.tty) this.rl.prompt();
  }

  /** Ctrl-C: stop the reply; at an empty prompt, arm, and quit on the second. */
  private interrupt(): void {
    if (this.current) {
      this.current.cancel();
      return;
    }
    if (this.tty && this.rl.line.length > 0) {
      this.rl.write(null, { ctrl: true, name: 'u' }); // clear what was typed, like a shell
      this.ctrlCArmed = false;
      return;
    }
    if (this.ctrlCArmed) {
      this.rl.close(); // ends the for-await loop
      return;
    }
    this.ctrlCArmed = true;
    this.say('\n(Ctrl-C again to quit)\n');
    this.showPrompt();
  }

  private async handle(line: string): Promise<'quit' | void> {
    const text = line.replace(/\r$/, '');
    if (this.tty && this.keepHistory && text.trim()) this.remember(text);
    if (text.startsWith('/')) return this.command(text.trim());
    if (!text) return;
    await this.reply(text);
  }

  private remember(line: string): void {
    try {
      appendFileSync(historyFile(), line.replace(/\n/g, ' ') + '\n', { mode: 0o600 });
    } catch {
      // history is a convenience: a read-only home folder must not stop the chat
    }
  }

  private async command(line: string): Promise<'quit' | void> {
    const [cmd] = line.split(/\s+/);
    const changed = applySetting(this.settings, line) ?? applySamplingCommand(this.settings, line, this.vocab.size);
    if (changed !== null) return this.say(changed + '\n');
    switch (cmd) {
      case '/quit':
      case '/exit':
        return 'quit';
      case '/help':
        return this.say(HELP);
      case '/info':
        return this.info();
      case '/reset':
        await this.target.client.reset();
        Object.assign(this.settings, this.defaults, { banned: [...this.defaults.banned] });
        return this.say(describeSettings(this.settings) + '\n');
      default:
        return this.say(`unknown command ${cmd}: /help lists them\n`);
    }
  }

  private async info(): Promise<void> {
    const i = await this.target.client.info();
    const model = i.model as Record<string, unknown> | null;
    const lines = [`${i.board} (protocol ${i.protocol})`];
    if (model) lines.push(describeBoardModel(model), `context ${i.ctx} tokens in ${i.ram_bytes} bytes of RAM`);
    else lines.push(`no model: ${i.no_model_reason ?? 'the board has none'}`);
    lines.push(`generations ${i.generations}, bad frames received ${i.rx_errors}, write failures ${i.write_failures}`);
    lines.push(`next reply: ${describeSettings(this.settings)}`);
    this.say(lines.join('\n') + '\n');
  }

  /** One GENERATE with the current settings; the next reply uses the next seed. */
  private async reply(prompt: string): Promise<void> {
    const s = this.settings;
    const seed = s.seed;
    const sent = process.hrtime.bigint();
    let gen: Generation;
    try {
      const sampling = { temp: s.temp, topK: s.topK, topP: s.topP, repeatPenalty: s.repeatPenalty, repeatWindow: s.repeatWindow, ban: s.banned, seed };
      gen = this.target.client.generate(prompt, generateParams(sampling, s.max));
    } catch (e) {
      if (e instanceof LmflashError) return this.say(`error: ${e.message}\n`);
      throw e;
    }
    this.current = gen;
    let firstAt: bigint | null = null;
    let endsWithNewline = true;
    try {
      const reply = await collectReply(gen, (t) => {
        firstAt ??= process.hrtime.bigint();
        endsWithNewline = t.endsWith('\n');
        this.io.out(t);
      }, this.vocab.unkId);
      if (!endsWithNewline) this.io.out('\n');
      const st = reply.stats;
      const firstMs = firstAt === null ? null : Number(firstAt - sent) / 1e6;
      const tokPerS = st.totalUs > 0 ? st.generatedTokens / (st.totalUs / 1e6) : 0;
      this.say(statsLine(st.generatedTokens, firstMs, tokPerS, seed, st.reason) + '\n');
      s.seed = (seed + 1) >>> 0;
    } catch (e) {
      if (!endsWithNewline) this.io.out('\n');
      // the board refused this one (BUSY, PROMPT_TOO_LONG, NO_MODEL): say so and carry on
      if (e instanceof BoardError) return this.say(`error: ${e.message}\n`);
      throw e; // the board went away: the chat cannot go on
    } finally {
      this.current = null;
    }
  }
}
