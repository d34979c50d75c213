/**
 * The native decoder (firmware/ports/host, built by `npm run build` into
 * build/native/lmf-run): the same C core the board runs, as a child process.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LmflashError } from '../src/errors.js';
import { checkInputFile } from '../src/input-file.js';

/** The project root: two levels above this file, whether it runs from host/ or dist/host/. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new LmflashError('cannot find the lmflash project folder (no package.json above host/)');
    dir = up;
  }
  return dir;
}

export function nativeRunnerPath(): string {
  const exe = path.join(projectRoot(), 'build', 'native', 'lmf-run');
  if (!existsSync(exe))
    throw new LmflashError(`the native decoder is not built (${exe} is missing): run \`npm run build\` in ${projectRoot()}`);
  return exe;
}

export interface NativeRun {
  code: number;
  stderr: string;
}

/**
 * Runs lmf-run MODEL ARGS, handing stdout chunks to onStdout as they arrive
 * (tokens stream), and resolves with the exit code and stderr. A non-zero exit
 * becomes an LmflashError carrying the core's own message.
 */
export function runNative(model: string, args: string[], onStdout: (chunk: Buffer) => void): Promise<NativeRun> {
  const exe = nativeRunnerPath();
  checkInputFile(model, 'model'); // the core maps it: a pipe or a folder would fail as "No such device"
  return new Promise((resolve, reject) => {
    const child = spawn(exe, [model, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const err: Buffer[] = [];
    child.stdout.on('data', onStdout);
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new LmflashError(`cannot start ${exe}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return resolve({ code, stderr });
      const said = stderr.split('\n').find((l) => l.startsWith('lmf-run: '));
      if (said) return reject(new LmflashError(said.slice('lmf-run: '.length)));
      reject(new LmflashError(`the native decoder failed (${signal ? `signal ${signal}` : `exit ${code}`}): ${stderr.trim() || 'no message'}`));
    });
  });
}

/** Runs lmf-run to completion and returns all of stdout. */
export async function runNativeCollect(model: string, args: string[]): Promise<{ stdout: Buffer; stderr: string }> {
  const chunks: Buffer[] = [];
  const r = await runNative(model, args, (c) => chunks.push(c));
  return { stdout: Buffer.concat(chunks), stderr: r.stderr };
}

/**
 * Runs lmf-run and hands its stdout to onRow in records of `rowBytes` bytes
 * (one position's logits, say) as they arrive: one record is held at a time,
 * so memory stays flat however much the core writes. The row passed to onRow
 * is reused for the next record: copy what you keep. Resolves with the number
 * of records; a trailing partial record is an error.
 */
export async function runNativeRows(model: string, args: string[], rowBytes: number, onRow: (row: Float32Array) => void): Promise<{ rows: number; stderr: string }> {
  const row = new Float32Array(rowBytes / 4);
  const rowView = new Uint8Array(row.buffer);
  let filled = 0;
  let rows = 0;
  let failed: unknown = null; // a throw inside a stream handler would escape the promise
  const r = await runNative(model, args, (chunk) => {
    let at = 0;
    while (at < chunk.length && failed === null) {
      const n = Math.min(rowBytes - filled, chunk.length - at);
      rowView.set(chunk.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === rowBytes) {
        try {
          onRow(row);
        } catch (e) {
          failed = e;
        }
        rows++;
        filled = 0;
      }
    }
  });
  if (failed !== null) throw failed;
  if (filled !== 0) throw new LmflashError(`the native decoder's output ended inside a record (${filled} of ${rowBytes} bytes)`);
  return { rows, stderr: r.stderr };
}

/** The key=value pairs of the core's closing `lmf:` stats line. */
export function parseCoreStats(stderr: string): Record<string, number> {
  const line = stderr.split('\n').find((l) => l.startsWith('lmf: '));
  const stats: Record<string, number> = {};
  if (!line) return stats;
  for (const m of line.matchAll(/(\w+)=(\d+)/g)) stats[m[1]] = Number(m[2]);
  return stats;
}
