/**
 * The shared data the tests use (../shared, see tests/paths.ts), which test
 * files need which, and what to do when it is missing. vitest.config.ts asks
 * this before any test file is loaded: without the data, the files that need
 * it are left out with one message saying what is missing and where it comes
 * from (so nothing waits on a process that never started); in CI (CI=true)
 * the run stops at once instead, since there missing data is a broken setup.
 *
 * A file needs a data set when its own text names one of the set's
 * constants from tests/paths.ts (or a helper that reads it): no list to keep.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { KJV_VERSES, PROJECT_ROOT, SHARED, STORIES_MODEL, STORIES_REFERENCE, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

interface DataSet {
  name: string;
  files: string[];
  /** Names in a test file that mean it reads this set. */
  uses: RegExp;
  from: string;
}

export const DATA_SETS: DataSet[] = [
  {
    name: 'stories260K',
    files: [STORIES_MODEL, STORIES_TOKENIZER],
    uses: /\b(STORIES_MODEL|STORIES_TOKENIZER|storiesBlob)\b/,
    from: 'stories260K.bin and tok512.bin, published with karpathy/llama2.c (Hugging Face: karpathy/tinyllamas, folder stories260K); put them in SHARED/models',
  },
  {
    name: 'run.c reference outputs',
    files: [STORIES_REFERENCE],
    uses: /\b(STORIES_REFERENCE|readReferenceRun)\b/,
    from: "llama2.c's run.c run on stories260K, made with the shared folder (its reference/stories260K/README.md says how)",
  },
  {
    name: 'stories260K samples corpus',
    files: [STORIES_SAMPLES],
    uses: /\bSTORIES_SAMPLES\b/,
    from: 'stories sampled from stories260K by run.c (SHARED/corpora/stories260K-samples.txt)',
  },
  {
    name: 'KJV verses corpus',
    files: [KJV_VERSES],
    uses: /kjv-verses|\bKJV_VERSES\b/,
    from: "the King James Bible one verse a line, from Debian's bible-kjv packages (SHARED/corpora/kjv-verses.txt)",
  },
];

export interface MissingData {
  set: DataSet;
  missing: string[];
  testFiles: string[];
}

/** The data sets that are missing, each with the test files that need it. */
export function missingSharedData(testsDir = path.join(PROJECT_ROOT, 'tests')): MissingData[] {
  const tests = readdirSync(testsDir).filter((f) => f.endsWith('.test.ts'));
  const texts = new Map(tests.map((f) => [f, readFileSync(path.join(testsDir, f), 'utf8')]));
  const result: MissingData[] = [];
  for (const set of DATA_SETS) {
    const missing = set.files.filter((f) => !existsSync(f));
    if (missing.length === 0) continue;
    const testFiles = tests.filter((f) => set.uses.test(texts.get(f)!)).map((f) => `tests/${f}`);
    if (testFiles.length) result.push({ set, missing, testFiles });
  }
  return result;
}

/** One message for all of it: what is missing, where it comes from, what is left out. */
export function describeMissing(missing: MissingData[], ci: boolean): string {
  const skipped = [...new Set(missing.flatMap((m) => m.testFiles))].sort();
  const lines = [
    `lmflash tests: shared data missing in ${SHARED} (set LMFLASH_SHARED to another folder):`,
    ...missing.map((m) => `  - ${m.set.name}: ${m.missing.map((f) => path.relative(SHARED, f) || f).join(', ')} — ${m.set.from.replaceAll('SHARED', SHARED)}`),
    ci
      ? `CI=true: stopping here; the ${skipped.length} test files that need it would fail: ${skipped.join(' ')}`
      : `skipping the ${skipped.length} test files that need it: ${skipped.join(' ')}`,
  ];
  return lines.join('\n');
}
