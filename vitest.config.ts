import { defineConfig } from 'vitest/config';
import { describeMissing, missingSharedData } from './tests/shared-data.js';

// Test files whose shared data (../shared) is missing are left out with one
// message, or stop the run at once in CI (tests/shared-data.ts).
const missing = missingSharedData();
const ci = process.env.CI === 'true' || process.env.CI === '1';
if (missing.length) {
  const message = describeMissing(missing, ci);
  if (ci) throw new Error(message);
  console.warn(message);
}

// Real programs run in these tests (the C core, QEMU, sanitizer builds): give them time.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...missing.flatMap((m) => m.testFiles)],
    // a run whose every file was left out for missing data has said why: not a failure
    passWithNoTests: missing.length > 0,
    globalSetup: ['tests/global-setup.ts'],
    testTimeout: 120_000,
    // In CI, a failed test runs once more: the end-to-end tests drive real
    // processes over real pseudo-terminals on a shared 2-core machine, where
    // timing varies (flash-hostile once timed out under full-suite load after
    // the serial bindings raised an EBADF nobody listened for; host/serial.ts
    // and the esptool adapter now listen). A real bug fails both times.
    retry: process.env.CI ? 1 : 0,
    // Generous for the builds in global setup; no hook waits on a process
    // that failed to start (tests/sim-robustness.test.ts checks it started).
    hookTimeout: 600_000,
  },
});
