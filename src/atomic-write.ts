/**
 * Writes a file so that readers see either the old content or the complete
 * new one, never a half-written blob (a flashing tool picking up a partial
 * file would fail its CRC at best): write a temporary file in the same folder,
 * flush it to disk, then rename it over the target (atomic on one filesystem).
 *
 * Only a regular file (or a new path) is replaced that way. A symlink is
 * written through: the file it points to is replaced and the link stays. A
 * device or a FIFO (`-o /dev/null`, `-o >(gzip > x.gz)`) is written directly,
 * since renaming over it would replace the device with an ordinary file; `-`
 * is standard output.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { LmflashError } from './errors.js';

/** Where an output goes: replaced through a temporary file, or written directly (stdout, a device, a FIFO). */
export type OutputTarget = { mode: 'replace'; file: string } | { mode: 'direct'; file: string; what: string } | { mode: 'stdout' };

const MAX_LINKS = 40; // as the kernel's ELOOP limit

/** The path a symlink chain ends at, whether or not that file exists yet. */
function followLinks(file: string): string {
  let p = path.resolve(file);
  for (let i = 0; i < MAX_LINKS; i++) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st?.isSymbolicLink()) {
      // Resolve the folder too, so that the temporary file is made beside the real target.
      const dir = path.dirname(p);
      const realDir = statSync(dir, { throwIfNoEntry: false }) ? realpathSync(dir) : dir;
      return path.join(realDir, path.basename(p));
    }
    p = path.resolve(path.dirname(p), readlinkSync(p));
  }
  throw new LmflashError(`cannot write ${file}: too many levels of symbolic links`);
}

/** Decides how `file` is written; refuses folders and sockets and missing folders. */
export function outputTarget(file: string): OutputTarget {
  if (file === '-') return { mode: 'stdout' };
  const real = followLinks(file);
  const st = statSync(real, { throwIfNoEntry: false });
  if (!st) {
    const dir = path.dirname(real);
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new LmflashError(`cannot write ${file}: folder ${path.dirname(path.resolve(file))} does not exist — create it first or choose another output path`);
    }
    return { mode: 'replace', file: real };
  }
  if (st.isFile()) return { mode: 'replace', file: real };
  if (st.isDirectory()) throw new LmflashError(`cannot write ${file}: it is a folder — name a file inside it`);
  if (st.isCharacterDevice() || st.isBlockDevice()) return { mode: 'direct', file: real, what: 'a device' };
  if (st.isFIFO()) return { mode: 'direct', file: real, what: 'a pipe' };
  throw new LmflashError(`cannot write ${file}: it is a socket, not a file — choose a file path`);
}

const TEMP_NAME = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/**
 * Temporary files (and folders: src/temp-dir.ts) this process has made and
 * not yet renamed or removed. A signal that ends the process (Ctrl-C, kill)
 * skips every `finally`, so they are removed by a signal handler that exists
 * while the set is not empty.
 */
const liveTemps = new Set<string>();
const ENDING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function removeTempsOnSignal(sig: NodeJS.Signals): void {
  // A command that handles the signal itself (e.g. training saves a checkpoint on Ctrl-C) goes on and
  // finishes its writes: removing their temps now would make the rename in progress fail.
  if (process.listeners(sig).some((l) => l !== removeTempsOnSignal)) return;
  for (const f of liveTemps) rmSync(f, { recursive: true, force: true });
  liveTemps.clear();
  uninstallSignalHandlers();
  // Die of the signal as if it had not been caught, unless a command handles it itself.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function installSignalHandlers(): void {
  for (const sig of ENDING_SIGNALS) process.on(sig, removeTempsOnSignal);
}

function uninstallSignalHandlers(): void {
  for (const sig of ENDING_SIGNALS) process.off(sig, removeTempsOnSignal);
}

/**
 * A hidden temporary file name in `dir`, unique per process and call; *.tmp
 * is ignored by git. The file is removed if the process is interrupted before
 * releaseTemp() says it was renamed or removed.
 */
export function tempPath(dir: string, name: string): string {
  const file = path.join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  trackTemp(file);
  return file;
}

/** Has `file` (a file or a folder) removed if a signal ends the process before releaseTemp(file). */
export function trackTemp(file: string): void {
  if (liveTemps.size === 0) installSignalHandlers();
  liveTemps.add(file);
}

/** Says a temporary file from tempPath() has been renamed or removed. */
export function releaseTemp(file: string): void {
  if (liveTemps.delete(file) && liveTemps.size === 0) uninstallSignalHandlers();
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
}

/**
 * Removes temporary files of `target` left by writers that were killed before
 * they could rename or delete them (a temp whose PID is no longer running).
 * Temps of live processes are another writer's work in progress and stay.
 * Returns the files removed.
 */
export function removeStaleTemps(target: string): string[] {
  const dir = path.dirname(target);
  const base = path.basename(target);
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || m[1] !== base) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      unlinkSync(path.join(dir, name));
      removed.push(path.join(dir, name));
    } catch {
      // gone already, or not ours to remove: either way nothing to do
    }
  }
  return removed;
}

/** The one-line form of a write failure. */
export function writeError(file: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new LmflashError(`cannot write ${file}: permission denied (${code})`);
  if (code === 'EISDIR') return new LmflashError(`cannot write ${file}: it is a folder`);
  if (code === 'ENOSPC') return new LmflashError(`cannot write ${file}: the disk is full`);
  if (code === 'ENXIO') return new LmflashError(`cannot write ${file}: no such device (or a pipe nobody reads)`);
  if (code === 'EPIPE') return new LmflashError(`cannot write ${file}: the reader of the pipe went away`);
  return err as Error;
}

/**
 * Standard output as a file handle for writers (a pipe, a socket, a terminal
 * or a file: /dev/stdout cannot be reopened when it is a socket).
 */
export const stdoutHandle = {
  write: (data: string | Uint8Array) => new Promise<void>((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve()))),
  sync: async () => undefined,
  close: async () => undefined,
};

export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const target = outputTarget(file);
  if (target.mode === 'stdout') {
    await stdoutHandle.write(data).catch((e) => {
      throw writeError('standard output', e);
    });
    return;
  }
  if (target.mode === 'direct') {
    const handle = await open(target.file, 'w').catch((e) => {
      throw writeError(file, e);
    });
    try {
      await handle.writeFile(data);
    } catch (e) {
      throw writeError(file, e);
    } finally {
      await handle.close();
    }
    return;
  }
  removeStaleTemps(target.file);
  const tmp = tempPath(path.dirname(target.file), path.basename(target.file));
  try {
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, target.file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw writeError(file, err);
  } finally {
    releaseTemp(tmp);
  }
}
