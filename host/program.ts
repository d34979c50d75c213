/**
 * The lmflash command line. Each command lives in host/commands/<name>.ts
 * and exports `register(program, io)`; add a command by writing such a module
 * and listing it in COMMANDS.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { projectRoot } from './native.js';
import { LmflashError } from '../src/errors.js';
import * as chat from './commands/chat.js';
import * as convert from './commands/convert.js';
import * as data from './commands/data.js';
import * as evaluate from './commands/eval.js';
import * as demo from './commands/demo.js';
import * as distill from './commands/distill.js';
import * as exportCmd from './commands/export.js';
import * as finetune from './commands/finetune.js';
import * as flashCmd from './commands/flash.js';
import * as generate from './commands/generate.js';
import * as inspect from './commands/inspect.js';
import * as monitor from './commands/monitor.js';
import * as ports from './commands/ports.js';
import * as prune from './commands/prune.js';
import * as reset from './commands/reset.js';
import * as sim from './commands/sim.js';
import * as tokenizer from './commands/tokenizer.js';
import * as train from './commands/train.js';
import * as uploadModel from './commands/upload-model.js';
import { processIO, type CliIO } from './io.js';

const COMMANDS: { register(program: Command, io: CliIO): void }[] = [convert, inspect, generate, evaluate, exportCmd, ports, sim, chat, monitor, tokenizer, data, train, flashCmd, uploadModel, reset, demo, prune, distill, finetune];

/** lmflash's version, from its package.json. */
export function lmflashVersion(): string {
  return (JSON.parse(readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Output for a command and all its subcommands: commander's own errors
 * (unknown option, missing argument) in lmflash's one format, `lmflash: error: …`.
 */
function configureAll(cmd: Command, io: CliIO): void {
  cmd
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (text, write) => write(text.replace(/^error: /, 'lmflash: error: ')) })
    .exitOverride();
  // Subcommands inherit neither output nor exit handling when made before them: set them on each.
  for (const sub of cmd.commands) configureAll(sub, io);
}

export function buildProgram(io: CliIO = processIO): Command {
  const program = new Command('lmflash')
    .description('Put a tiny language model on an ESP32-S3 and talk to it over serial')
    .version(lmflashVersion(), '-V, --version', 'print the version of lmflash')
    .showHelpAfterError('(run `lmflash help` for usage)');
  for (const c of COMMANDS) c.register(program, io);
  configureAll(program, io);
  return program;
}

/**
 * Runs the CLI on `argv` (without node and script) and returns the exit code.
 * Input problems (LmflashError) print one line; anything else is a bug and
 * says so, with the stack only when LMFLASH_DEBUG is set.
 */
export async function runCli(argv: string[], io: CliIO = processIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    // a command that completed but must report a status (e.g. training stopped by Ctrl-C: 130) sets process.exitCode
    const code = process.exitCode;
    process.exitCode = undefined;
    return typeof code === 'number' ? code : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode; // commander already printed its message
    if (err instanceof LmflashError) {
      io.err(`lmflash: error: ${err.message}\n`);
      return 1;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    io.err(`lmflash: internal error: ${e.message}\n`);
    io.err(process.env.LMFLASH_DEBUG ? `${e.stack}\n` : '(this is a bug in lmflash; set LMFLASH_DEBUG=1 to see where it happened)\n');
    return 2;
  }
}
