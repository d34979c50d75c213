/**
 * The C core under AddressSanitizer and UndefinedBehaviorSanitizer: thousands
 * of randomly truncated, bit-flipped and field-overwritten blobs (programs in
 * firmware/tests), and hostile prompts, must never crash it.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ASAN_DIR, runCore, storiesBlob, tempDir } from './native-helpers.js';
import { buildVectors } from './vectors.js';

const ASAN_RUN = path.join(ASAN_DIR, 'lmf-run');
const FUZZ = path.join(ASAN_DIR, 'blob-fuzz');
let blob: string;

beforeAll(async () => {
  blob = await storiesBlob();
}, 600_000);

function fuzz(file: string, iterations: number, seed: number): { rejected: number; accepted: number } {
  const r = spawnSync(FUZZ, [file, String(iterations), String(seed)], { encoding: 'utf8' });
  expect(r.stderr).toBe(''); // a sanitizer report or a message-less rejection would land here
  expect(r.status).toBe(0);
  const m = /(\d+) corrupted blobs, (\d+) rejected with a message, (\d+) still valid/.exec(r.stdout);
  expect(m, r.stdout).not.toBeNull();
  expect(Number(m![1])).toBe(iterations);
  return { rejected: Number(m![2]), accepted: Number(m![3]) };
}

describe('corrupt blobs under ASan/UBSan', () => {
  it('survives 2,000 corruptions of stories260K (and most are rejected)', () => {
    const r = fuzz(blob, 2000, 1);
    expect(r.rejected).toBeGreaterThan(1500);
    expect(r.accepted).toBeGreaterThan(0); // some damage (in weights) passes validation and must still run safely
  });

  it('survives 1,000 corruptions of stories260K with int4 layers (and most are rejected)', async () => {
    const r = fuzz(await storiesBlob(64, 4), 1000, 3);
    expect(r.rejected).toBeGreaterThan(700);
    expect(r.accepted).toBeGreaterThan(0);
  });

  it('survives 1,000 corruptions of each synthetic vector blob (int8 and int4)', () => {
    const dir = tempDir('fuzz-vectors');
    for (const v of buildVectors()) {
      const file = path.join(dir, `${v.name}.blob`);
      writeFileSync(file, v.blob);
      fuzz(file, 1000, 2);
    }
  });
});

describe('hostile prompts under ASan/UBSan', () => {
  const cases: [string, string[]][] = [
    ['invalid UTF-8 and stray continuation bytes', ['--prompt-hex', 'ff80c3e4bd00e4bda0f09f98']],
    ['a prompt longer than the context', ['-p', 'word '.repeat(600), '--ctx', '64']],
    ['a full context of generation', ['-p', 'Once', '-n', '600', '--ctx', '32', '-t', '1.5', '--top-k', '5', '--repeat-penalty', '1.3']],
    ['banned tokens and extreme sampling', ['-p', 'Tom', '-n', '20', '-t', '100', '--top-p', '0.01', '--ban', '0,1,2,511']],
  ];
  it.each(cases)('%s', (_name, args) => {
    const r = runCore(blob, args, ASAN_RUN);
    expect(r.stderr).not.toMatch(/Sanitizer|runtime error/);
    expect([0, 2]).toContain(r.status);
    if (r.status === 2) expect(r.stderr).toMatch(/^lmf-run: .*(shorten|context|--ctx)/m);
  });
});
