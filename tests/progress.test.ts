/**
 * The shared progress bar (host/progress.ts): what a terminal shows after its
 * in-place redraws, and silence when stderr is not a terminal.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatSeconds, Progress } from '../host/progress.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT, SHARED, STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

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

/** Runs the CLI on a pseudo-terminal (util-linux `script`), as a person would, and returns what it wrote there. */
function onTerminal(args: string[]): { status: number; screen: string } {
  const cmd = ['node', 'bin/lmflash.js', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qefc', cmd, '/dev/null'], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...process.env, LMFLASH_PROGRESS_DELAY_MS: '0' },
  });
  return { status: r.status ?? -1, screen: r.stdout };
}

describe.skipIf(spawnSync('which', ['script']).status !== 0)('progress bars of the long commands, on a terminal', () => {
  const dir = tempDir('progress');
  const corpus = path.join(SHARED, 'corpora/kjv-verses.txt');
  const bar = (label: string, unit: string) => new RegExp(`\\r${label} +\\[#{24}\\] 100%  [\\d,]+/[\\d,]+ ${unit}  [\\d,]+ ${unit}/s  \\d+\\.\\d s\\x1b\\[K\\r?\\n`);

  it('train ngram, eval, convert and tokenizer train draw a bar that ends at 100 %', () => {
    const blob = path.join(dir, 'kjv2.blob');
    const train = onTerminal(['train', 'ngram', corpus, '--order', '2', '-o', blob]);
    expect(train.status).toBe(0);
    expect(train.screen).toMatch(bar('train ngram: done', 'stages'));
    const ev = onTerminal(['eval', blob, '--text', corpus, '--split', 'test', '--limit', '300']);
    expect(ev.status).toBe(0);
    expect(ev.screen).toMatch(bar('eval', 'positions'));
    const conv = onTerminal(['convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 's.blob')]);
    expect(conv.status).toBe(0);
    expect(conv.screen).toMatch(bar('quantizing', 'weights'));
    const tok = onTerminal(['tokenizer', 'train', STORIES_SAMPLES, '--vocab', '400', '-o', path.join(dir, 't.bin')]);
    expect(tok.status).toBe(0);
    expect(tok.screen).toMatch(bar('bpe merges', 'merges'));
  }, 60_000);

  it('draw nothing when stderr is a pipe', () => {
    const r = spawnSync('node', ['bin/lmflash.js', 'convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 's2.blob')], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      env: { ...process.env, LMFLASH_PROGRESS_DELAY_MS: '0' },
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
