/**
 * What `npm run build` builds for a user: the programs they run (lmf-run,
 * lmf-sim), not the fuzzers and split tests the test suite needs (those are
 * behind -DLMF_TESTS=ON, which `npm test` and tests/global-setup.ts set).
 * Only configures CMake (well under a second), never compiles.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

function targetsOf(cmakeArgs: string[]): string[] {
  const dir = tempDir('cmake-targets');
  execFileSync('cmake', ['-S', path.join(PROJECT_ROOT, 'firmware'), '-B', dir, '-DCMAKE_BUILD_TYPE=Release', ...cmakeArgs], { stdio: 'pipe' });
  const help = execFileSync('cmake', ['--build', dir, '--target', 'help'], { encoding: 'utf8' });
  return help
    .split('\n')
    .map((l) => l.replace(/^\.\.\. /, '').trim())
    .filter((t) => t && !t.includes('.') && !t.includes(' '));
}

const TEST_PROGRAMS = ['blob-fuzz', 'rom-loader-fuzz', 'split-test', 'split-test-portable', 'split-test-pie-emu', 'split-test-pie-emu-portable'];

describe('the native build', () => {
  it("npm run build's configuration builds lmf-run and lmf-sim and no test programs", () => {
    const script = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')).scripts['build:native'] as string;
    const args = [...script.matchAll(/-D\S+/g)].map((m) => m[0]).filter((a) => !a.startsWith('-DCMAKE_BUILD_TYPE'));
    const targets = targetsOf(args);
    expect(targets).toEqual(expect.arrayContaining(['lmf-run', 'lmf-sim']));
    for (const t of TEST_PROGRAMS) expect(targets).not.toContain(t);
  });

  it('-DLMF_TESTS=ON adds every test program the suite runs', () => {
    const targets = targetsOf(['-DLMF_TESTS=ON']);
    expect(targets).toEqual(expect.arrayContaining(['lmf-run', 'lmf-sim', ...TEST_PROGRAMS]));
  });
});
