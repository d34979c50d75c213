/**
 * The shared progress bar (host/progress.ts): what a terminal shows after its
 * in-place redraws, and silence when stderr is not a terminal.
 */
import { describe, expect, it } from 'vitest';
import { formatSeconds, Progress } from '../host/progress.js';

/** What a terminal shows on its last line after `writes`: \r returns to column 0, ESC[K erases to the end of the line. */
function terminalLine(writes: string): string {
  let line = '';
  let col = 0;
  for (let i = 0; i < writes.length; i++) {
    const c = writes[i];
    if (c === '\r') col = 0;
    else if (c === '\n') (line = ''), (col = 0);
    else if (writes.startsWith('\x1b[K', i)) (line = line.slice(0, col)), (i += 2);
    else (line = line.slice(0, col) + c + line.slice(col + 1)), col++;
  }
  return line;
}

describe('progress bar', () => {
  it('leaves no stray characters when a redraw is shorter than the line before (was "0.2 ss", "ETA 4 ss")', async () => {
    let err = '';
    const bar = new Progress({ out: () => undefined, err: (t) => void (err += t) }, true);
    const total = 100 << 20;
    await new Promise((r) => setTimeout(r, 150));
    bar.update('model', 1, total); // a long ETA
    const first = err;
    bar.update('model', total, total, true); // "... 0.2 s": shorter
    const final = err.slice(first.length);
    expect(final.length).toBeLessThan(first.length);
    expect(terminalLine(err)).toBe('');
    expect(terminalLine(err.slice(0, -1))).toBe(final.slice(1, final.indexOf('\x1b')));
    expect(terminalLine(err.slice(0, -1))).toMatch(/100%  100\.00 MiB  [\d.]+ KiB\/s  0\.\d s$/);
  });


  it('says ETAs and times with one unit', () => {
    expect(formatSeconds(4)).toBe('4 s');
    expect(formatSeconds(0.24, 1)).toBe('0.2 s');
    expect(formatSeconds(125)).toBe('2 min 05 s');
  });

  it('draws nothing when not a terminal unless asked for log lines, and nothing before its delay', () => {
    let err = '';
    const io = { out: () => undefined, err: (t: string) => void (err += t) };
    new Progress(io, { tty: false }).update('x', 10, 10, true);
    expect(err).toBe('');
    new Progress(io, { tty: true, delayMs: 60_000 }).update('x', 10, 10, true);
    expect(err).toBe('');
    new Progress(io, false).update('x', 10, 10, true);
    expect(err).toMatch(/^x +\[#{24}\] 100%  0\.0 KiB  [\d.]+ KiB\/s  0\.\d s\n$/);
  });
});
