/**
 * The virtual board (firmware/ports/posix, built into build/native/lmf-sim):
 * the board's C core and serial session behind a pseudo-terminal, which a
 * host opens like a real board's port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { LmflashError } from '../src/errors.js';
import { checkInputFile } from '../src/input-file.js';
import { projectRoot } from './native.js';

export interface SimOptions {
  /** The blob the board runs; none: a board with no model (it answers NO_MODEL). */
  model?: string;
  /** RAM the board has for the model's run state (lmf-sim's default: 512 KiB). */
  arenaBytes?: number;
  /** Slow every forward pass down by this much (a board's pace; to try Ctrl-C by hand, or in tests). */
  stepDelayUs?: number;
  /** How long to wait for the `serving on` line. */
  startTimeoutMs?: number;
}

export interface Sim {
  /** The pseudo-terminal to open, e.g. /dev/pts/3. */
  path: string;
  process: ChildProcess;
  /** Stops the virtual board (SIGTERM, then SIGKILL if it lingers). */
  stop(): Promise<void>;
}

export function simPath(): string {
  const exe = path.join(projectRoot(), 'build', 'native', 'lmf-sim');
  if (!existsSync(exe)) throw new LmflashError(`the virtual board is not built (${exe} is missing): run \`npm run build\` in ${projectRoot()}`);
  return exe;
}

const SERVING = /^lmf-sim: serving on (\S+)\s*$/m;

/** Every virtual board this process started, stopped when it exits however it exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const child of running) child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  // Signals that end a process skip 'exit': stop the boards, then die of the
  // signal as if we had not caught it (unless someone else handles it).
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAll();
      if (process.listenerCount(sig) === 1) {
        process.off(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** Starts lmf-sim and resolves once it serves on its pseudo-terminal. */
export function startSim(opts: SimOptions = {}): Promise<Sim> {
  const exe = simPath();
  if (opts.model) checkInputFile(opts.model, 'model'); // before a child that would map it
  const args = opts.model ? [opts.model] : ['--no-model'];
  if (opts.arenaBytes) args.push('--arena', String(opts.arenaBytes));
  if (opts.stepDelayUs) args.push('--step-delay-us', String(opts.stepDelayUs));
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  killAllOnExit();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  };

  return new Promise<Sim>((resolve, reject) => {
    let out = '';
    let err = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      void stop();
      reject(new LmflashError(why));
    };
    const timer = setTimeout(() => fail(`the virtual board did not start within ${(opts.startTimeoutMs ?? 10_000) / 1000} s${err ? `: ${err.trim()}` : ''}`), opts.startTimeoutMs ?? 10_000);
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => (err += c));
    child.stdout!.on('data', (c: string) => {
      out += c;
      const m = SERVING.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume(); // keep draining, so the board never blocks on stdout
      resolve({ path: m[1], process: child, stop });
    });
    child.on('error', (e) => fail(`cannot start ${exe}: ${e.message}`));
    child.on('exit', (code, signal) => {
      const said = err.split('\n').find((l) => l.startsWith('lmf-sim: '));
      fail(said ? said.slice('lmf-sim: '.length) : `the virtual board stopped before serving (${signal ?? `exit ${code}`}): ${err.trim() || 'no message'}`);
    });
  });
}
