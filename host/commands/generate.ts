/**
 * `lmflash generate --model M -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] [--json]`:
 * one-shot generation on the native core. Text streams to stdout as tokens
 * arrive (whole UTF-8 characters only); stats go to stderr so that stdout can
 * be piped.
 */
import { randomInt } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { InvalidArgumentError, type Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import type { CliIO } from '../io.js';
import { parseCoreStats, runNative } from '../native.js';
import { parsePositiveInt } from './inspect.js';

export interface SamplingOptions {
  temp: number;
  topK: number;
  topP: number;
  seed: number;
  repeatPenalty: number;
  ban?: string;
}

export function parseNumberIn(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+(\.\d+)?$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`);
    return n;
  };
}

function parseWhole(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new InvalidArgumentError('expected a whole number from 0 to 4294967295');
  return Number(value);
}

/** The core's command-line options for these sampling settings. */
export function samplingArgs(o: SamplingOptions): string[] {
  const args = ['--temp', String(o.temp), '--top-k', String(o.topK), '--top-p', String(o.topP), '--seed', String(o.seed)];
  if (o.repeatPenalty !== 1) args.push('--repeat-penalty', String(o.repeatPenalty));
  if (o.ban) args.push('--ban', o.ban);
  return args;
}

export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('-n, --steps <n>', 'tokens to generate (stops early at the end of a story or the context)', parsePositiveInt, 256)
    .option('-t, --temp <t>', 'temperature; 0 always picks the likeliest token', parseNumberIn(0, 100), 0.8)
    .option('-k, --top-k <k>', 'sample from the k likeliest tokens only (0 = off)', parseWhole, 0)
    .option('--top-p <p>', 'sample from the smallest set of tokens whose probability reaches p (1 = off)', parseNumberIn(0.01, 1), 0.9)
    .option('-s, --seed <s>', 'random seed (default: a new one each run, printed with the stats)', parseWhole)
    .option('--repeat-penalty <r>', 'discourage recently used tokens (1 = off, 1.1 is mild)', parseNumberIn(0.01, 100), 1)
    .option('--ban <ids>', 'comma-separated token ids never to sample');
}

interface GenerateOpts extends Omit<SamplingOptions, 'seed'> {
  model?: string;
  prompt: string;
  steps: number;
  seed?: number;
  json?: boolean;
  echo: boolean;
  ctx?: number;
}

export function register(program: Command, io: CliIO): void {
  const cmd = program
    .command('generate')
    .description('generate text from a prompt, streaming tokens as they come')
    .requiredOption('-m, --model <blob>', 'run this blob on the native decoder (the same C core as the board)')
    .option('-p, --prompt <text>', 'the prompt', '')
    .option('--ctx <n>', 'context length (default: the model\'s)', parsePositiveInt)
    .option('--json', 'print prompt ids, generated ids, text and stats as one JSON object')
    .option('--no-echo', 'print only the generated text, not the prompt before it');
  addSamplingOptions(cmd).action(async (opts: GenerateOpts) => {
    const seed = opts.seed ?? randomInt(0, 2 ** 31);
    const args = ['-p', opts.prompt, '-n', String(opts.steps), ...samplingArgs({ ...opts, seed })];
    if (opts.ctx) args.push('--ctx', String(opts.ctx));
    if (opts.echo && !opts.json) io.out(opts.prompt);
    await generateNative(opts.model!, args, { seed, json: !!opts.json }, io);
  });
}

async function generateNative(model: string, args: string[], o: { seed: number; json: boolean }, io: CliIO): Promise<void> {
  const decoder = new StringDecoder('utf8');
  const json: Buffer[] = [];
  const start = process.hrtime.bigint();
  const run = await runNative(model, o.json ? [...args, '--json'] : args, (chunk) => {
    if (o.json) json.push(chunk);
    else io.out(decoder.write(chunk));
  });
  const end = process.hrtime.bigint();
  const core = parseCoreStats(run.stderr);
  const seconds = Number(end - start) / 1e9;
  const stats = {
    prompt_tokens: core.prompt_tokens ?? 0,
    generated_tokens: core.generated_tokens ?? 0,
    seconds: Number(seconds.toFixed(4)),
    tokens_per_second: core.generated_tokens ? Number((core.generated_tokens / seconds).toFixed(1)) : 0,
    seed: o.seed,
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
  io.err(`\n[${stats.generated_tokens} tokens after a ${stats.prompt_tokens}-token prompt, ${stats.tokens_per_second} tok/s, seed ${o.seed}]\n`);
}
