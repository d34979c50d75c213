/**
 * Reading the user's input files, with failures said in one sentence. Every
 * command that takes a file checks it here first: lmflash reads its inputs
 * whole, maps them, or hands them to the C core, all of which need a regular
 * file. A FIFO or `<(cat file)` would block such a reader forever and a folder
 * fails with an errno nobody can act on, so both are refused up front.
 */
import { statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { LmflashError } from './errors.js';

function nameOf(file: string, what?: string): string {
  return what ? `the ${what} ${file}` : file;
}

/** What a non-regular file is, in words. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder, not a file';
  if (st.isFIFO()) return 'a pipe (FIFO or <(…)), not a regular file';
  if (st.isSocket()) return 'a socket, not a regular file';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device, not a regular file';
  return 'not a regular file';
}

/**
 * Throws unless `file` is a regular file (a symlink to one counts). Does not
 * open it, so a FIFO is refused without blocking.
 */
export function checkInputFile(file: string, what?: string): void {
  const name = nameOf(file, what);
  let st: Stats;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new LmflashError(`cannot read ${name}: no such file`);
    if (code === 'EACCES' || code === 'EPERM') throw new LmflashError(`cannot read ${name}: permission denied`);
    throw new LmflashError(`cannot read ${name}: ${(err as Error).message}`);
  }
  if (st.isFile()) return;
  const hint = st.isDirectory() ? 'name a file inside it' : 'save it to a file first (e.g. `cat … > input.txt`) and pass that';
  throw new LmflashError(`cannot read ${name}: it is ${kindOf(st)}; ${hint}`);
}

/** Reads a file; `what` ("checkpoint", "tokenizer"…) names it in the error. */
export async function readInputFile(file: string, what?: string): Promise<Buffer> {
  checkInputFile(file, what);
  const name = nameOf(file, what);
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LmflashError(`cannot read ${name}: no such file`);
    if (code === 'EACCES' || code === 'EPERM') throw new LmflashError(`cannot read ${name}: permission denied`);
    throw new LmflashError(`cannot read ${name}: ${(err as Error).message}`);
  }
}

/**
 * Text for training or evaluation: refuses an empty file and anything that
 * is not UTF-8 (an image, an archive, a model file passed by mistake), which
 * would otherwise train or score as garbage and exit 0.
 */
export function decodeInputText(bytes: Uint8Array, name: string): string {
  if (bytes.length === 0) throw new LmflashError(`${name} is empty: give a text file with at least one line`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new LmflashError(`${name} is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(bytes)}): clean it with \`lmflash data clean\` or convert it to UTF-8 first`);
  }
  const nul = text.indexOf('\0');
  if (nul >= 0) throw new LmflashError(`${name} is binary, not text (a NUL byte at character ${nul}): give a text file`);
  return text;
}

/** Reads a text input (see decodeInputText). */
export async function readInputText(file: string, what?: string): Promise<string> {
  return decodeInputText(await readInputFile(file, what), nameOf(file, what));
}

function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    for (let k = 1; k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(i, i + n));
    } catch {
      return i;
    }
    i += n;
  }
  return b.length;
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
