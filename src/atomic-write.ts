/**
 * Writes a file so that readers see either the old content or the complete
 * new one, never a half-written blob (a flashing tool picking up a partial
 * file would fail its CRC at best): write a temporary file in the same folder,
 * flush it to disk, then rename it over the target (atomic on one filesystem).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { LmflashError } from './errors.js';

export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const dirStat = await stat(dir).catch(() => null);
  if (!dirStat?.isDirectory()) {
    throw new LmflashError(`cannot write ${file}: folder ${dir} does not exist — create it first or choose another output path`);
  }
  // The name ends in .tmp (ignored by git) and is unique per process and call.
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new LmflashError(`cannot write ${file}: permission denied (${code})`);
    }
    if (code === 'EISDIR') throw new LmflashError(`cannot write ${file}: it is a folder`);
    if (code === 'ENOSPC') throw new LmflashError(`cannot write ${file}: the disk is full`);
    throw err;
  }
}
