/**
 * `lmflash generate (--model M | --sim [--model M] | --port [P]) -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] [--json]`:
 * one-shot generation on the native core, the virtual board or a board.
 * Text streams to stdout as tokens arrive (whole UTF-8 characters only);
 * stats go to stderr so that stdout can be piped. The same seed and sampling
 * settings give the same tokens on all three.
 */
import { randomInt } from 'node:crypto';
import { InvalidArgumentError, type Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import { coreFloat, DEFAULT_REPEAT_WINDOW, MAX_BANNED, type DoneStats, type GenerateParams } from '../../src/protocol.js';
import type { BoardClient, Generation } from '../board-client.js';
import type { CliIO } from '../io.js';
import { parseCoreStats, runNative } from '../native.js';
import { PACE_HELP, parsePaceOption, simStepDelay } from '../pace.js';
import { parseBaud } from '../serial.js';
import { TerminalText } from '../terminal-text.js';
import { openTarget } from '../target.js';
import { parseNumberIn, parsePositiveInt, parseUint32 } from '../option-parsers.js';

export interface SamplingOptions {
  temp: number;
  topK: number;
  topP: number;
  seed: number;
  repeatPenalty: number;
  /** Recent tokens the penalty looks at; undefined: the core's 64. */
  repeatWindow?: number;
  /** Token ids never to sample (at most MAX_BANNED). */
  ban?: number[];
}

/** `--ban 0,5,7` → ids: whole numbers, at most MAX_BANNED of them. */
export function parseBanList(value: string): number[] {
  const parts = value.split(/[,\s]+/).filter(Boolean);
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p) || Number(p) > 0xffffffff))
    throw new InvalidArgumentError('expected token ids separated by commas, e.g. 0,5');
  const ids = [...new Set(parts.map(Number))];
  if (ids.length > MAX_BANNED) throw new InvalidArgumentError(`at most ${MAX_BANNED} token ids (got ${ids.length})`);
  return ids;
}

/** Refuses banned ids that a vocabulary of `vocabSize` tokens does not have. */
export function checkBannedIds(ids: readonly number[], vocabSize: number): void {
  const bad = ids.find((id) => id >= vocabSize);
  if (bad !== undefined) throw new LmflashError(`banned token id ${bad} is outside the model's vocabulary: ids go from 0 to ${vocabSize - 1}`);
}

/** What a connected board's INFO says of its vocabulary: its size and `<unk>` id (1.2), null when unknown. */
export async function boardVocab(client: BoardClient): Promise<{ size: number | null; unkId: number | null }> {
  const info = await client.info();
  const model = info.model as { vocab_size?: unknown } | null;
  return {
    size: model && typeof model.vocab_size === 'number' ? model.vocab_size : null,
    unkId: typeof info.unk_id === 'number' ? info.unk_id : null,
  };
}

/** The core's command-line options for these sampling settings. */
export function samplingArgs(o: SamplingOptions): string[] {
  const args = ['--temp', String(o.temp), '--top-k', String(o.topK), '--top-p', String(o.topP), '--seed', String(o.seed)];
  if (o.repeatPenalty !== 1) args.push('--repeat-penalty', String(o.repeatPenalty));
  if (o.repeatWindow !== undefined) args.push('--repeat-window', String(o.repeatWindow));
  if (o.ban?.length) args.push('--ban', o.ban.join(','));
  return args;
}

export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('-n, --steps <n>', 'tokens to generate (stops early at the end of a story or the context)', parsePositiveInt, 256)
    .option('-t, --temp <t>', 'temperature; 0 always picks the likeliest token', parseNumberIn(0, 100), 0.8)
    .option('-k, --top-k <k>', 'sample from the k likeliest tokens only (0 = off)', parseUint32, 0)
    .option('--top-p <p>', 'sample from the smallest set of tokens whose probability reaches p (1 = off)', parseNumberIn(0.01, 1), 0.9)
    .option('-s, --seed <s>', 'random seed (default: a new one each run, printed with the stats)', parseUint32)
    .option('--repeat-penalty <r>', 'discourage recently used tokens (1 = off, 1.1 is mild)', parseNumberIn(0.01, 100), 1)
    .option('--repeat-window <n>', `recent tokens the repetition penalty looks at (default ${DEFAULT_REPEAT_WINDOW})`, parseUint32)
    .option('--ban <ids>', `comma-separated token ids never to sample, at most ${MAX_BANNED} (e.g. 0 for <unk>)`, parseBanList);
}

interface GenerateOpts extends Omit<SamplingOptions, 'seed'> {
  model?: string;
  sim?: boolean;
  port?: string | true;
  baud: number;
  prompt: string;
  steps: number;
  seed?: number;
  json?: boolean;
  echo: boolean;
  ctx?: number;
  pace?: string;
  truncatePrompt?: boolean;
}

/**
 * Writes `prefix` (the echoed prompt) just before the first text, or at
 * flush(): once the core or the board has accepted the prompt. An error
 * before that (a prompt too long, no model) leaves stdout empty.
 */
export function echoBefore(prefix: string, write: (text: string) => void): { write(text: string): void; flush(): void } {
  let pending = prefix;
  const flush = () => {
    if (pending) write(pending);
    pending = '';
  };
  return {
    write(text) {
      flush();
      write(text);
    },
    flush,
  };
}

/**
 * The GENERATE parameters for these settings, with each float made exactly
 * as lmf-run makes it from the same option text (coreFloat), so that a board
 * samples like `generate --model` does.
 */
export function generateParams(o: SamplingOptions, maxTokens: number): GenerateParams {
  return {
    temperature: coreFloat(String(o.temp)),
    topP: coreFloat(String(o.topP)),
    topK: o.topK,
    repeatPenalty: coreFloat(String(o.repeatPenalty)),
    maxTokens,
    seed: o.seed,
    // only when asked for: a board older than protocol 1.2 takes everything else
    ...(o.repeatWindow !== undefined ? { repeatWindow: o.repeatWindow } : {}),
    ...(o.ban?.length ? { banned: o.ban } : {}),
  };
}

/** Exactly one place to run: --model alone, --sim (with or without --model), or --port. */
function checkWhere(o: GenerateOpts): 'native' | 'serial' {
  parsePaceOption(o.pace, o.sim);
  if (o.port !== undefined && o.sim) throw new LmflashError('--port and --sim are alternatives: choose one');
  if (o.port !== undefined && o.model)
    throw new LmflashError('--model does not go with --port: a board runs the model flashed on it (for the virtual board use --sim --model M)');
  if (o.port === undefined && !o.sim && !o.model)
    throw new LmflashError('say where to generate: --model M (the native core), --sim --model M (the virtual board) or --port P (a board)');
  if (o.port === undefined && !o.sim) return 'native';
  if (o.ctx) throw new LmflashError("--ctx works only on the native core: a board's context is what fits its RAM");
  if (o.truncatePrompt) throw new LmflashError('--truncate-prompt works only on the native core (--model without --sim): the board encodes the prompt and refuses one too long; shorten it');
  return 'serial';
}

export function register(program: Command, io: CliIO): void {
  const cmd = program
    .command('generate')
    .description('generate text from a prompt on the native core, the virtual board or a board, streaming tokens as they come')
    .option('-m, --model <blob>', 'the blob to run: on the native decoder (the same C core as the board), or with --sim on the virtual board')
    .option('--sim', 'run on the virtual board (the board\'s firmware on a pseudo-terminal; give the blob with --model)')
    .option('--port [path]', 'run on the board on this serial port, with the model flashed on it (no path: the only board plugged in)')
    .option('--pace <board>', PACE_HELP)
    .option('--baud <rate>', 'serial baud rate (USB-Serial-JTAG ignores it)', parseBaud, 115200)
    .option('-p, --prompt <text>', 'the prompt', '')
    .option('--ctx <n>', 'context length (default: the model\'s; native core only)', parsePositiveInt)
    .option('--truncate-prompt', 'a prompt longer than the context keeps BOS and its end, leaving room for -n tokens (native core only)')
    .option('--json', 'print prompt ids (null over serial), generated ids, text and stats as one JSON object')
    .option('--no-echo', 'print only the generated text, not the prompt before it');
  addSamplingOptions(cmd)
    .addHelpText(
      'after',
      `
Where it runs (exactly one):
  --model M          the native core on this computer
  --sim [--model M]  the virtual board: the firmware's C core behind a pseudo-terminal
  --port [P]         a board on a serial port (it runs the model flashed on it)
The same seed and sampling options give the same tokens on all three.`,
    )
    .action(async (opts: GenerateOpts) => {
      const where = checkWhere(opts);
      const seed = opts.seed ?? randomInt(0, 2 ** 31);
      if (where === 'serial') return generateSerial(opts, seed, io);
      const args = ['-p', opts.prompt, '-n', String(opts.steps), ...samplingArgs({ ...opts, seed })];
      if (opts.ctx) args.push('--ctx', String(opts.ctx));
      if (opts.truncatePrompt) args.push('--truncate-prompt');
      await generateNative(opts.model!, args, { seed, json: !!opts.json, echo: opts.echo && !opts.json ? opts.prompt : '' }, io);
    });
}

/** Runs one GENERATE on a board or the virtual board and prints like generateNative. */
async function generateSerial(opts: GenerateOpts, seed: number, io: CliIO): Promise<void> {
  const stepDelayUs = await simStepDelay(opts, io);
  const target = await openTarget({ port: opts.port, sim: opts.sim, model: opts.model, baud: opts.baud, stepDelayUs });
  try {
    const vocab = await boardVocab(target.client);
    if (opts.ban?.length && vocab.size !== null) checkBannedIds(opts.ban, vocab.size);
    const gen = target.client.generate(opts.prompt, generateParams({ ...opts, seed }, opts.steps));
    const out = echoBefore(opts.echo && !opts.json ? opts.prompt : '', opts.json ? () => {} : io.out);
    const stopOnCtrlC = () => gen.cancel(); // the reply ends with DONE (cancelled) and its stats
    process.once('SIGINT', stopOnCtrlC);
    let reply: SerialReply;
    try {
      reply = await collectReply(gen, out.write, vocab.unkId);
    } finally {
      process.off('SIGINT', stopOnCtrlC);
    }
    out.flush();
    const { stats } = reply;
    if (reply.ids.length !== stats.generatedTokens)
      io.err(`lmflash: warning: ${stats.generatedTokens - reply.ids.length} of ${stats.generatedTokens} tokens were lost on the line; the text is incomplete\n`);
    const seconds = stats.totalUs / 1e6;
    const summary = {
      prompt_tokens: stats.promptTokens,
      generated_tokens: stats.generatedTokens,
      seconds: Number(seconds.toFixed(4)),
      tokens_per_second: stats.generatedTokens && seconds > 0 ? Number((stats.generatedTokens / seconds).toFixed(1)) : 0,
      seed,
      time_to_first_token_ms: Number((stats.timeToFirstTokenUs / 1000).toFixed(3)),
      stop_reason: stats.reason,
    };
    if (opts.json) {
      io.out(JSON.stringify({ prompt_tokens: null, generated_tokens: reply.ids, text: reply.bytes.toString('utf8'), stats: summary }) + '\n');
      return;
    }
    const stopped = stats.reason === 'cancelled' ? ', stopped' : stats.reason === 'context_full' ? ', context full' : '';
    io.err(`\n[${summary.generated_tokens} tokens after a ${summary.prompt_tokens}-token prompt, ${summary.tokens_per_second} tok/s, seed ${seed}${stopped}]\n`);
  } finally {
    await target.close();
  }
}

export interface SerialReply {
  ids: number[];
  bytes: Buffer;
  stats: DoneStats;
}

/**
 * Reads a generation to its DONE, writing its text for a terminal
 * (TerminalText: whole UTF-8 characters as they complete, `<unk>` as U+FFFD)
 * and returning the raw ids and bytes.
 */
export async function collectReply(gen: Generation, write: (text: string) => void, unkId: number | null = null): Promise<SerialReply> {
  const decoder = new TerminalText(unkId);
  const ids: number[] = [];
  const parts: Buffer[] = [];
  for await (const e of gen) {
    if (e.type === 'done') {
      const rest = decoder.end();
      if (rest) write(rest);
      return { ids, bytes: Buffer.concat(parts), stats: e.stats };
    }
    ids.push(e.token);
    parts.push(e.bytes);
    const text = decoder.token(e.token, e.bytes);
    if (text) write(text);
  }
  throw new LmflashError('the board ended a reply without its DONE (a bug in the firmware)');
}

async function generateNative(model: string, args: string[], o: { seed: number; json: boolean; echo: string }, io: CliIO): Promise<void> {
  const decoder = new TerminalText();
  const json: Buffer[] = [];
  const out = echoBefore(o.echo, io.out);
  const start = process.hrtime.bigint();
  // text: lmf-run marks <unk> itself (--show-unk), as the serial path does from the ids
  const run = await runNative(model, o.json ? [...args, '--json'] : [...args, '--show-unk'], (chunk) => {
    if (o.json) json.push(chunk);
    else out.write(decoder.bytes(chunk));
  });
  out.flush();
  const end = process.hrtime.bigint();
  const core = parseCoreStats(run.stderr);
  const seconds = Number(end - start) / 1e9;
  const stats = {
    prompt_tokens: core.prompt_tokens ?? 0,
    generated_tokens: core.generated_tokens ?? 0,
    seconds: Number(seconds.toFixed(4)),
    tokens_per_second: core.generated_tokens ? Number((core.generated_tokens / seconds).toFixed(1)) : 0,
    seed: o.seed,
    ...(core.prompt_dropped ? { prompt_dropped: core.prompt_dropped } : {}),
  };
  if (o.json) {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(Buffer.concat(json).toString('utf8'));
    } catch {
      throw new LmflashError('the native decoder printed malformed JSON (a bug: please report it)');
    }
    delete parsed.ctx;
    io.out(JSON.stringify({ ...parsed, stats }) + '\n');
    return;
  }
  io.out(decoder.end());
  const cut = core.prompt_dropped ? `; --truncate-prompt dropped its first ${core.prompt_dropped} tokens` : '';
  io.err(`\n[${stats.generated_tokens} tokens after a ${stats.prompt_tokens}-token prompt${cut}, ${stats.tokens_per_second} tok/s, seed ${o.seed}]\n`);
}
