/**
 * Writing text line by line: buffered appends to a file, and an output that
 * appears only when complete. src/atomic-write.ts does the same for a blob
 * held in memory; a cleaned corpus may not fit in memory, so it is streamed
 * into the temporary file instead.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { outputTarget, releaseTemp, removeStaleTemps, stdoutHandle, tempPath, writeError } from '../../src/atomic-write.js';

export { tempPath };

const FLUSH_BYTES = 1 << 20;

export class LineWriter {
  private pending: string[] = [];
  private pendingBytes = 0;
  /** Bytes written so far, i.e. the offset of the next line. */
  bytes = 0;
  lines = 0;

  private constructor(
    private readonly handle: Pick<FileHandle, 'sync' | 'close'> & { write(text: string): Promise<unknown> },
    readonly file: string,
  ) {}

  /** Creates `file`, which must not exist yet. */
  static async create(file: string): Promise<LineWriter> {
    return new LineWriter(await open(file, 'wx'), file);
  }

  /** Writes to a device or a FIFO as it is, or with `-` to stdout. */
  static async open(file: string): Promise<LineWriter> {
    return new LineWriter(file === '-' ? stdoutHandle : await open(file, 'w'), file);
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

/**
 * A text file written line by line into a temporary file beside `file` and
 * renamed over it by commit(): readers see the old file or the complete new
 * one, and a failed run leaves nothing behind.
 */
export class AtomicOutput {
  private constructor(
    readonly file: string,
    readonly writer: LineWriter,
    /** Written in place (stdout, a device, a FIFO): nothing to rename or remove. */
    private readonly direct: boolean,
  ) {}

  static async open(file: string): Promise<AtomicOutput> {
    // Checked now rather than after the whole corpus has been cleaned.
    const target = outputTarget(file);
    try {
      if (target.mode !== 'replace') return new AtomicOutput(file, await LineWriter.open(target.mode === 'stdout' ? '-' : target.file), true);
      removeStaleTemps(target.file);
      const tmp = tempPath(path.dirname(target.file), path.basename(target.file));
      try {
        return new AtomicOutput(target.file, await LineWriter.create(tmp), false);
      } catch (e) {
        releaseTemp(tmp);
        throw e;
      }
    } catch (e) {
      throw writeError(file, e);
    }
  }

  async commit(): Promise<void> {
    try {
      await this.writer.close(!this.direct);
      if (!this.direct) await rename(this.writer.file, this.file);
    } catch (e) {
      if (!this.direct) await unlink(this.writer.file).catch(() => undefined);
      throw writeError(this.file, e);
    } finally {
      if (!this.direct) releaseTemp(this.writer.file);
    }
  }

  async abort(): Promise<void> {
    await this.writer.close().catch(() => undefined);
    if (this.direct) return;
    await unlink(this.writer.file).catch(() => undefined);
    releaseTemp(this.writer.file);
  }
}
