/**
 * The virtual board's modem-line channel (a FIFO per pty) lives in a folder
 * private to the user: the board refuses a folder someone else owns or
 * opened up, and lmflash's adapter never follows a symlink planted there
 * (it would overwrite the link's target) nor writes to anything but a FIFO.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openVirtualLines, virtualLinesDir, virtualLinesPath } from '../host/esptool-adapter.js';
import { startFlashSim } from '../host/flash-sim.js';
import { tempDir } from './native-helpers.js';

const savedTmp = process.env.TMPDIR;
afterEach(() => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
});

/** A fresh TMPDIR for this process, and the line folder in it made as asked. */
function tmpWithLinesDir(mode: number | null): string {
  const tmp = tempDir('lines');
  process.env.TMPDIR = tmp;
  if (mode !== null) {
    mkdirSync(virtualLinesDir());
    chmodSync(virtualLinesDir(), mode);
  }
  return tmp;
}

const PTY = '/dev/pts/lmf-test-999'; // no such pty: the name only has to map to a file in the folder

function mkfifo(p: string): void {
  expect(spawnSync('mkfifo', ['-m', '600', p]).status).toBe(0);
}

describe("lmflash's side of the line channel", () => {
  it('writes to a FIFO in a private folder', () => {
    tmpWithLinesDir(0o700);
    mkfifo(virtualLinesPath(PTY));
    const reader = openSync(virtualLinesPath(PTY), constants.O_RDONLY | constants.O_NONBLOCK);
    const fd = openVirtualLines(PTY);
    expect(fd).toBeGreaterThanOrEqual(0);
    closeSync(fd);
    closeSync(reader);
  });

  it('does not follow a symlink planted where the FIFO goes, nor write to a plain file', () => {
    const tmp = tmpWithLinesDir(0o700);
    const victim = path.join(tmp, 'victim.txt');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, virtualLinesPath(PTY));
    expect(openVirtualLines(PTY)).toBe(-1);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    const other = '/dev/pts/lmf-test-998';
    writeFileSync(virtualLinesPath(other), '');
    expect(openVirtualLines(other)).toBe(-1);
  });

  it('refuses a folder others can write to, or one another user owns', () => {
    tmpWithLinesDir(0o777);
    mkfifo(virtualLinesPath(PTY));
    const reader = openSync(virtualLinesPath(PTY), constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      expect(openVirtualLines(PTY)).toBe(-1);
      chmodSync(virtualLinesDir(), 0o700);
      expect(openVirtualLines(PTY)).not.toBe(-1); // the same FIFO, once the folder is private
      if (process.getuid?.() === 0) {
        chownSync(virtualLinesDir(), 12345, 12345); // as root (CI): a folder someone else owns
        expect(openVirtualLines(PTY)).toBe(-1);
      }
    } finally {
      closeSync(reader);
    }
  });
});

describe("the virtual board's side", () => {
  it('creates the folder private (0700, the user\'s), its FIFO inside', async () => {
    const tmp = tmpWithLinesDir(null);
    const sim = await startFlashSim({ image: path.join(tmp, 'flash.bin'), flashSize: '4MB', env: { ...process.env, TMPDIR: tmp } });
    try {
      const st = statSync(virtualLinesDir());
      expect(st.mode & 0o777).toBe(0o700);
      expect(st.uid).toBe(process.getuid!());
      expect(statSync(virtualLinesPath(sim.path)).isFIFO()).toBe(true);
    } finally {
      await sim.stop();
    }
  });

  it('refuses a line folder that is not private, and says what to do', async () => {
    const tmp = tmpWithLinesDir(0o777);
    const sim = await startFlashSim({ image: path.join(tmp, 'flash.bin'), flashSize: '4MB', env: { ...process.env, TMPDIR: tmp } });
    try {
      const err = await sim.stderrWhen(/no modem lines/);
      expect(err).toMatch(/lmf-sim: no modem lines \(.*lmf-sim-lines-\d+ is not a private folder of this user .*mode 0700\): remove it\)/);
      expect(existsSync(virtualLinesPath(sim.path))).toBe(false);
    } finally {
      await sim.stop();
    }
  });
});
