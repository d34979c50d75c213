/**
 * Builds the native core (release and ASan/UBSan) once before any test file
 * runs, so that parallel test workers never run CMake in the same tree.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureNativeBuild, ensureSanitizerBuild } from './native-helpers.js';

export default function setup(): () => void {
  ensureNativeBuild();
  ensureSanitizerBuild();
  // one temp folder for the whole run, inherited by the test workers, removed at the end
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lmflash-test-'));
  process.env.LMFLASH_TEST_TMP = tmp;
  return () => rmSync(tmp, { recursive: true, force: true });
}
