/**
 * Builds the native core (release and ASan/UBSan) once before any test file
 * runs, so that parallel test workers never run CMake in the same tree.
 */
import { ensureNativeBuild, ensureSanitizerBuild } from './native-helpers.js';

export default function setup(): void {
  ensureNativeBuild();
  ensureSanitizerBuild();
}
