import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readBlob } from '../src/blob.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';
import { cli as run } from './cli-helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lmflash-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


describe('lmflash convert', () => {
  it('writes the blob and prints the per-tensor table', async () => {
    const blob = path.join(dir, 'stories.blob');
    const r = await run('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', blob, '--group-size', '32');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/legacy checkpoint, dim=64, hidden_dim=172/);
    expect(r.out).toMatch(/layers\.4\.w2 +64x172 +q8 +\d+\.\d\d% +\d+\.\d\d%/);
    expect(r.out).toMatch(/^worst: max \d+\.\d\d% \(.+\), rms \d+\.\d\d% \(.+\)$/m);
    const bytes = readFileSync(blob);
    expect(r.out).toContain(`wrote ${blob}: ${bytes.length} bytes`);
    expect(readBlob(bytes).config.groupSize).toBe(32);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]); // no temp file left behind
  });

  it('fails with one clear line on bad input', async () => {
    const junk = path.join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.alloc(5000, 7));
    const cases: [string[], RegExp][] = [
      [['convert', path.join(dir, 'missing.bin'), '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'x.blob')], /cannot read the checkpoint .*missing\.bin: no such file/],
      [['convert', junk, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'x.blob')], /junk\.bin: not a llama2\.c checkpoint/],
      [['convert', STORIES_MODEL, '-t', junk, '-o', path.join(dir, 'x.blob')], /junk\.bin: tokenizer/],
      [['convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'no/such/dir/x.blob')], /folder .* does not exist/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    }
    const bad = await run('convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'x.blob'), '-g', '30');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/multiple of 16/);
    expect(readdirSync(dir).filter((f) => f.startsWith('x.blob'))).toEqual([]);
  });
});
