/** Reading the user's input files, with failures said in one sentence. */
import { readFile } from 'node:fs/promises';
import { LmflashError } from './errors.js';

/** Reads a file; `what` ("checkpoint", "tokenizer"…) names it in the error. */
export async function readInputFile(file: string, what?: string): Promise<Buffer> {
  const name = what ? `the ${what} ${file}` : file;
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LmflashError(`cannot read ${name}: no such file`);
    if (code === 'EISDIR') throw new LmflashError(`cannot read ${name}: it is a folder, not a file`);
    if (code === 'EACCES' || code === 'EPERM') throw new LmflashError(`cannot read ${name}: permission denied`);
    throw new LmflashError(`cannot read ${name}: ${(err as Error).message}`);
  }
}

/** Runs f, prefixing the input errors it throws with the file they are about. */
export function aboutFile<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof LmflashError) throw new LmflashError(`${file}: ${err.message}`);
    throw err;
  }
}
