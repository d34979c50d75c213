/**
 * Where `-o` writes (src/atomic-write.ts): a regular file is replaced through
 * a temporary file; a symlink is written through (the link stays); a device
 * or a FIFO is written directly (never replaced by an ordinary file); `-`
 * is stdout. Temporary files of killed writers are removed by the next write
 * of the same target, and Ctrl-C removes a running writer's own.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');
const dir = tempDir('atomic');
const at = (name: string) => path.join(dir, name);
const TEXT = at('text.txt');
const LINES = Array.from({ length: 200 }, (_, i) => `line ${i} says the board has ${i % 7} leds and ${i % 5} buttons on it`);
const temps = (folder: string) => readdirSync(folder).filter((f) => f.endsWith('.tmp'));

beforeAll(() => writeFileSync(TEXT, LINES.join('\n') + '\n'));

/** A PID that no process has now: one that just exited. */
function deadPid(): number {
  const r = spawnSync('true');
  return r.pid!;
}

describe('-o onto something that is not a regular file', () => {
  it('a character device (1,3: /dev/null\'s) stays a device, written directly', async () => {
    const dev = at('null-device');
    const made = spawnSync('mknod', [dev, 'c', '1', '3']);
    if (made.status !== 0) throw new Error(`mknod needs root here (CI runs as root): ${made.stderr}`);
    const r = await cli('train', 'ngram', TEXT, '--order', '2', '-o', dev);
    expect(r.code, r.err).toBe(0);
    const st = statSync(dev);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(statSync('/dev/null').rdev);
    const d = await cli('data', 'clean', TEXT, '--no-dedup', '-o', dev);
    expect(d.code, d.err).toBe(0);
    expect(statSync(dev).isCharacterDevice()).toBe(true);
    expect(temps(dir)).toEqual([]);
  });

  it('a symlink is written through: the file it points to is replaced, the link stays', async () => {
    const real = at('real.blob');
    const link = at('link.blob');
    writeFileSync(real, 'old');
    symlinkSync('real.blob', link);
    const r = await cli('train', 'ngram', TEXT, '--order', '2', '-o', link);
    expect(r.code, r.err).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('real.blob');
    expect(readFileSync(real).subarray(0, 4).toString('latin1')).not.toBe('old');
    expect(readFileSync(real).length).toBeGreaterThan(100);
    // a dangling link creates its target
    const dangling = at('dangling.txt');
    symlinkSync('made-by-link.txt', dangling);
    const d = await cli('data', 'clean', TEXT, '--no-dedup', '-o', dangling);
    expect(d.code, d.err).toBe(0);
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(readFileSync(at('made-by-link.txt'), 'utf8').split('\n').length).toBe(201);
  });

  it('a FIFO is written directly to its reader', async () => {
    const fifo = at('out.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo]);
    const got: Buffer[] = [];
    reader.stdout.on('data', (c: Buffer) => got.push(c));
    const done = new Promise<void>((resolve) => reader.on('close', () => resolve()));
    const r = await cli('data', 'clean', TEXT, '--no-dedup', '-o', fifo);
    if (r.code !== 0) reader.kill(); // it would wait for a writer forever
    expect(r.code, r.err).toBe(0);
    await done;
    expect(Buffer.concat(got).toString('utf8')).toBe(LINES.join('\n') + '\n');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  }, 10_000);

  it('-o - writes to stdout, the summary to stderr', () => {
    const r = spawnSync('node', [CLI, 'data', 'clean', TEXT, '--no-dedup', '-o', '-'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(LINES.join('\n') + '\n');
    expect(r.stderr).toMatch(/wrote 200 to standard output/);
    expect(existsSync(path.join(PROJECT_ROOT, '-'))).toBe(false);
  });

  it('a folder is refused before any work', async () => {
    const r = await cli('train', 'ngram', TEXT, '--order', '2', '-o', dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot write .*: it is a folder/);
  });
});

describe('temporary files', () => {
  it('the next write removes the temps of killed writers of the same target, and no others', async () => {
    const out = at('model.blob');
    const dead = deadPid();
    const live = spawn('sleep', ['30']);
    try {
      const stale = [at(`.model.blob.${dead}.0badf00d.tmp`), at(`.model.blob.${dead}.12345678.tmp`)];
      const keep = [at(`.model.blob.${live.pid}.0badf00d.tmp`), at(`.other.blob.${dead}.0badf00d.tmp`)];
      for (const f of [...stale, ...keep]) writeFileSync(f, Buffer.alloc(1000));
      const r = await cli('train', 'ngram', TEXT, '--order', '2', '-o', out);
      expect(r.code, r.err).toBe(0);
      for (const f of stale) expect(existsSync(f), f).toBe(false);
      for (const f of keep) expect(existsSync(f), f).toBe(true);
      // data clean's streamed output does the same
      writeFileSync(at(`.clean.txt.${dead}.0badf00d.tmp`), 'x');
      expect((await cli('data', 'clean', TEXT, '-o', at('clean.txt'))).code).toBe(0);
      expect(existsSync(at(`.clean.txt.${dead}.0badf00d.tmp`))).toBe(false);
    } finally {
      live.kill();
    }
  });

  /** Starts a data clean with --mix and --curriculum that lasts, and resolves once its temp output and spools exist. */
  async function longClean(work: string) {
    const big = at('big.txt');
    // different lines, so that nothing is de-duplicated away and the run lasts
    if (!existsSync(big)) writeFileSync(big, Array.from({ length: 400_000 }, (_, i) => `document ${i} tells of ${(i * 7919) % 100_003} small boards and ${i % 977} wires`).join('\n'));
    const child = spawn('node', [CLI, 'data', 'clean', big, '--mix', `${TEXT}:2`, '--curriculum', 'length', '-o', path.join(work, 'out.txt')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (err += c));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 20_000;
    while (temps(work).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(temps(work).length, err).toBeGreaterThanOrEqual(2);
    return { child, exited, err: () => err };
  }

  it('Ctrl-C during data clean removes its temporary output and spool files', async () => {
    const work = tempDir('atomic-sigint');
    const run = await longClean(work);
    run.child.kill('SIGINT');
    const { code, signal } = await run.exited;
    expect(signal === 'SIGINT' || code === 130, `${code} ${signal} ${run.err()}`).toBe(true);
    expect(readdirSync(work)).toEqual([]);
  }, 60_000);

  it('a data clean killed outright (SIGKILL) leaves temps that the next run of the same output removes', async () => {
    const work = tempDir('atomic-sigkill');
    const run = await longClean(work);
    run.child.kill('SIGKILL');
    await run.exited;
    const left = temps(work);
    expect(left.length).toBeGreaterThanOrEqual(2); // the output's temp and a spool
    const next = await cli('data', 'clean', TEXT, '--mix', `${TEXT}:2`, '--curriculum', 'length', '-o', path.join(work, 'out.txt'));
    expect(next.code, next.err).toBe(0);
    expect(temps(work)).toEqual([]);
  }, 60_000);
});
