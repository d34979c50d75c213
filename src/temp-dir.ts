/**
 * A private scratch folder for the length of one piece of work: the blobs a
 * command hands to the native core (lmf-run reads a file) live there. It is
 * removed when the work ends, fails, or a signal (Ctrl-C, kill) ends the
 * process, so interrupted commands leave nothing behind in $TMPDIR.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { releaseTemp, trackTemp } from './atomic-write.js';

/** Runs `fn` with a fresh folder `lmflash-PURPOSE-XXXXXX` in the system temp folder, removed afterwards whatever happens. */
export async function withTempDir<T>(purpose: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `lmflash-${purpose}-`));
  trackTemp(dir);
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
    releaseTemp(dir);
  }
}

/** Runs `fn` with `blob` written to a temporary file (for the native core), removed afterwards whatever happens. */
export function withBlobFile<T>(purpose: string, blob: Uint8Array, fn: (file: string) => Promise<T>): Promise<T> {
  return withTempDir(purpose, async (dir) => {
    const file = path.join(dir, 'model.blob');
    await writeFile(file, blob);
    return fn(file);
  });
}
