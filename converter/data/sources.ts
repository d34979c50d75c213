/**
 * Reading inputs as a stream of documents: files are read line by line, so
 * that a corpus larger than memory can be cleaned (a document read whole,
 * with --doc-per file, must fit).
 */
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { LmflashError } from '../../src/errors.js';
import { checkInputFile } from '../../src/input-file.js';

export type DocPer = 'line' | 'file';

function readError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (!code) return e as Error;
  const why = code === 'ENOENT' ? 'no such file or folder' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (e as Error).message;
  return new LmflashError(`cannot read ${file}: ${why}`);
}

/** The lines of a text file (UTF-8; \n, \r\n or \r endings). */
export async function* readLines(file: string): AsyncGenerator<string> {
  const rl = readline.createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    yield* rl;
  } catch (e) {
    throw readError(file, e);
  } finally {
    rl.close();
  }
}

/** Non-hidden files under `dir`, depth first in name order, so that every run reads them in the same order. */
async function walk(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files: string[] = [];
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) files.push(...(await walk(p)));
    // A link to a file counts; links to folders are not followed (they can loop).
    else if (e.isFile() || (e.isSymbolicLink() && (await stat(p).catch(() => null))?.isFile())) files.push(p);
  }
  return files;
}

/** The files an input names: itself, or every non-hidden file in the folder and its subfolders. */
export async function listFiles(input: string): Promise<string[]> {
  const st = await stat(input).catch((e) => {
    throw readError(input, e);
  });
  // A pipe (FIFO, <(zcat corpus.gz)) is read as a stream: cleaning reads each input once.
  if (st.isFile() || st.isFIFO()) return [input];
  if (!st.isDirectory()) checkInputFile(input); // throws: a device, a socket

  const files = await walk(input).catch((e) => {
    throw readError(input, e);
  });
  if (files.length === 0) throw new LmflashError(`${input}: the folder holds no files (hidden ones are skipped)`);
  return files;
}

/** A FIFO: read once, as it comes, so its binary check is on what it sends first (binaryStreamGuard). */
export async function isPipe(file: string): Promise<boolean> {
  return (await stat(file).catch(() => null))?.isFIFO() ?? false;
}

/** A NUL byte in the first 4 KiB: an image, an archive or a model, not text. */
export async function looksBinary(file: string): Promise<boolean> {
  const handle = await open(file, 'r').catch((e) => {
    throw readError(file, e);
  });
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    return buffer.subarray(0, bytesRead).includes(0);
  } finally {
    await handle.close();
  }
}

/**
 * The documents of a pipe, held back until its first 4 KiB have been seen:
 * a NUL there means binary (as looksBinary says for a file), and then none
 * is yielded and onBinary is called.
 */
export async function* binaryStreamGuard(docs: AsyncIterable<RawDocument>, onBinary: () => void): AsyncGenerator<RawDocument> {
  const it = docs[Symbol.asyncIterator]();
  const head: RawDocument[] = [];
  let chars = 0;
  while (chars < 4096) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    chars += r.value.lines.reduce((n, l) => n + l.length + 1, 0);
  }
  if (head.some((d) => d.lines.some((l) => l.includes('\0')))) {
    await it.return?.();
    onBinary();
    return;
  }
  yield* head;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}

export interface RawDocument {
  lines: string[];
  /** 1-based number of the document's first line in its file. */
  line: number;
}

/** The documents of a file: each line, or the whole file. */
export async function* readDocuments(file: string, docPer: DocPer): AsyncGenerator<RawDocument> {
  let n = 0;
  if (docPer === 'line') {
    for await (const line of readLines(file)) yield { lines: [line], line: ++n };
    return;
  }
  const lines: string[] = [];
  for await (const line of readLines(file)) lines.push(line);
  yield { lines, line: 1 };
}
