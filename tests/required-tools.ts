/**
 * Test files that need a tool this machine may lack (an Xtensa toolchain, QEMU,
 * clang's libFuzzer, tmux) call this once. Without the tool the file's tests
 * are skipped with one line saying what to install, except in CI (CI=true),
 * where a missing tool is a broken setup: there the file gets one failing test
 * naming it, so CI can never pass by skipping.
 *
 * Returns whether the tool is there (for `describe.runIf`).
 */
import { it } from 'vitest';

export function requireTool(what: string, problem: string | null): boolean {
  if (!problem) return true;
  if (process.env.CI) {
    it(`has ${what} (CI must not skip these tests)`, () => {
      throw new Error(problem);
    });
  } else {
    console.log(`skipping the ${what} tests: ${problem}`);
  }
  return false;
}
