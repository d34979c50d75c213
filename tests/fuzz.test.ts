/**
 * Coverage-guided fuzzing of the C core, briefly, in every test run: the
 * libFuzzer harnesses of firmware/tests/fuzz_*.c (a blob opened and run for
 * a few forward steps; the serial session fed bytes and frames; the model
 * upload handler), built with Debian's clang (-fsanitize=fuzzer,address,
 * undefined) in build/fuzz, each run for a few seconds from its seed corpus.
 * Any crash or sanitizer report fails the test with libFuzzer's report.
 * Without clang and libFuzzer (Debian: clang, libclang-rt-14-dev) it is
 * skipped locally, and fails in CI.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';
import { buildVectors } from './vectors.js';
import { requireTool } from './required-tools.js';

const BUILD = path.join(PROJECT_ROOT, 'build/fuzz');
const SEEDS = path.join(PROJECT_ROOT, 'firmware/tests/fuzz-seeds');
const SECONDS = 5;

function clangProblem(): string | null {
  const probe = spawnSync('clang', ['-fsanitize=fuzzer', '-x', 'c', '-', '-o', '/dev/null'], { input: 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' });
  if (probe.error) return 'clang is not installed (Debian: apt-get install clang libclang-rt-14-dev)';
  if (probe.status !== 0) return `clang cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev): ${probe.stderr.toString().trim()}`;
  return null;
}

const problem = clangProblem();
const haveClang = requireTool('libFuzzer (clang)', problem);

/** Runs a harness for SECONDS from a fresh corpus folder (libFuzzer adds to the first one) and the seeds. */
function fuzz(name: string, seedDirs: string[], env: NodeJS.ProcessEnv = {}): string {
  const corpus = tempDir(`fuzz-${name}`);
  const r = spawnSync(path.join(BUILD, `fuzz-${name}`), [`-max_total_time=${SECONDS}`, '-timeout=10', '-rss_limit_mb=1024', `-artifact_prefix=${corpus}/`, corpus, ...seedDirs], {
    encoding: 'utf8',
    env: { ...process.env, ...env, ASAN_OPTIONS: 'abort_on_error=1:detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' },
    maxBuffer: 1 << 26,
  });
  const report = r.stderr.split('\n').slice(-40).join('\n');
  expect(r.stderr, report).not.toMatch(/Sanitizer|runtime error|deadly signal|crash-|leak-|timeout-/);
  expect(r.status, report).toBe(0);
  expect(r.stderr).toMatch(/Done \d+ runs in \d+ second/);
  return r.stderr;
}

describe.runIf(haveClang)('libFuzzer harnesses, a few seconds each', () => {
  let blobSeeds: string;
  let sessionBlob: string;

  beforeAll(() => {
    execFileSync('cmake', ['-S', path.join(PROJECT_ROOT, 'firmware'), '-B', BUILD, '-DCMAKE_C_COMPILER=clang', '-DLMF_FUZZ=ON', '-DCMAKE_BUILD_TYPE=Debug'], { stdio: 'pipe' });
    execFileSync('cmake', ['--build', BUILD, '-j2', '--target', 'fuzz-blob', 'fuzz-session', 'fuzz-upload'], { stdio: 'pipe' });
    // the blob seeds are the small synthetic vector blobs, written here rather than checked in
    blobSeeds = tempDir('fuzz-blob-seeds');
    for (const v of buildVectors()) writeFileSync(path.join(blobSeeds, `${v.name}.blob`), v.blob);
    sessionBlob = path.join(blobSeeds, `${buildVectors()[0].name}.blob`);
  }, 300_000);

  it('blob open + forward steps', () => {
    fuzz('blob', [blobSeeds]);
  }, 60_000);

  it('the serial session, with a model and without', () => {
    expect(existsSync(path.join(SEEDS, 'session'))).toBe(true);
    fuzz('session', [path.join(SEEDS, 'session')], { LMF_FUZZ_BLOB: sessionBlob });
    fuzz('session', [path.join(SEEDS, 'session')], { LMF_FUZZ_BLOB: '' });
  }, 60_000);

  it('the model upload handler', () => {
    fuzz('upload', [path.join(SEEDS, 'upload')]);
  }, 60_000);
});

