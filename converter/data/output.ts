/**
 * Writing text line by line: buffered appends to a file, and an output that
 * appears only when complete. src/atomic-write.ts does the same for a blob
 * held in memory; a cleaned corpus may not fit in memory, so it is streamed
 * into the temporary file instead.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { LmflashError } from '../../src/errors.js';

const FLUSH_BYTES = 1 << 20;

/** A hidden temporary file name in `dir`, unique per process and call; *.tmp is ignored by git. */
export function tempPath(dir: string, name: string): string {
  return path.join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export class LineWriter {
  private pending: string[] = [];
  private pendingBytes = 0;
  /** Bytes written so far, i.e. the offset of the next line. */
  bytes = 0;
  lines = 0;

  private constructor(
    private readonly handle: FileHandle,
    readonly file: string,
  ) {}

  /** Creates `file`, which must not exist yet. */
  static async create(file: string): Promise<LineWriter> {
    return new LineWriter(await open(file, 'wx'), file);
  }

  /** Appends `line` and a newline. */
  async write(line: string): Promise<void> {
    const n = Buffer.byteLength(line) + 1;
    this.pending.push(line, '\n');
    this.pendingBytes += n;
    this.bytes += n;
    this.lines++;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    await this.handle.write(text);
  }

  /** Flushes and closes; `sync` also waits until the data is on disk. */
  async close(sync = false): Promise<void> {
    try {
      await this.flush();
      if (sync) await this.handle.sync();
    } finally {
      await this.handle.close();
    }
  }
}

function writeError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new LmflashError(`cannot write ${file}: permission denied (${code})`);
  if (code === 'ENOSPC') return new LmflashError(`cannot write ${file}: the disk is full`);
  return e as Error;
}

/**
 * A text file written line by line into a temporary file beside `file` and
 * renamed over it by commit(): readers see the old file or the complete new
 * one, and a failed run leaves nothing behind.
 */
export class AtomicOutput {
  private constructor(
    readonly file: string,
    readonly writer: LineWriter,
  ) {}

  static async open(file: string): Promise<AtomicOutput> {
    const dir = path.dirname(path.resolve(file));
    if (!(await stat(dir).catch(() => null))?.isDirectory()) {
      throw new LmflashError(`cannot write ${file}: folder ${dir} does not exist — create it first or choose another output path`);
    }
    // Found now rather than after the whole corpus has been cleaned.
    if ((await stat(file).catch(() => null))?.isDirectory()) throw new LmflashError(`cannot write ${file}: it is a folder`);
    try {
      return new AtomicOutput(file, await LineWriter.create(tempPath(dir, path.basename(file))));
    } catch (e) {
      throw writeError(file, e);
    }
  }

  async commit(): Promise<void> {
    try {
      await this.writer.close(true);
      await rename(this.writer.file, this.file);
    } catch (e) {
      await unlink(this.writer.file).catch(() => undefined);
      throw writeError(this.file, e);
    }
  }

  async abort(): Promise<void> {
    await this.writer.close().catch(() => undefined);
    await unlink(this.writer.file).catch(() => undefined);
  }
}
