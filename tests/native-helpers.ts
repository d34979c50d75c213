/** Building and running the C core from tests: the real executables, no doubles. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertCheckpoint } from '../converter/convert.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

export const NATIVE_RUN = path.join(PROJECT_ROOT, 'build/native/lmf-run');
export const ASAN_DIR = path.join(PROJECT_ROOT, 'build/asan');

/** Configures and builds a CMake tree of firmware/ (incremental: fast when up to date). */
export function buildFirmware(dir: string, cmakeArgs: string[] = []): void {
  execFileSync('cmake', ['-S', path.join(PROJECT_ROOT, 'firmware'), '-B', dir, ...cmakeArgs], { stdio: 'pipe' });
  execFileSync('cmake', ['--build', dir, '-j2'], { stdio: 'pipe' });
}

export function ensureNativeBuild(): void {
  buildFirmware(path.join(PROJECT_ROOT, 'build/native'), ['-DCMAKE_BUILD_TYPE=Release', '-DLMF_TESTS=ON']);
}

/** The ASan + UBSan build of the core and its test programs. */
export function ensureSanitizerBuild(): void {
  buildFirmware(ASAN_DIR, ['-DLMF_SANITIZE=ON', '-DCMAKE_BUILD_TYPE=Debug', '-DLMF_TESTS=ON']);
}

export interface CoreRun {
  status: number;
  stdout: Buffer;
  stderr: string;
}

export function runCore(blob: string, args: string[], exe = NATIVE_RUN): CoreRun {
  const r = spawnSync(exe, [blob, ...args], { maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

export function coreJson(blob: string, args: string[]): { prompt_tokens: number[]; generated_tokens: number[]; text: string } {
  const r = runCore(blob, [...args, '--json']);
  if (r.status !== 0) throw new Error(`lmf-run failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8'));
}

export function coreLogits(blob: string, ids: number[], vocab: number): Float32Array[] {
  const r = runCore(blob, ['--tokens', ids.join(','), '--logits']);
  if (r.status !== 0) throw new Error(`lmf-run failed (${r.status}): ${r.stderr}`);
  const all = new Float32Array(r.stdout.buffer.slice(r.stdout.byteOffset, r.stdout.byteOffset + r.stdout.length));
  return Array.from({ length: all.length / vocab }, (_, i) => all.subarray(i * vocab, (i + 1) * vocab));
}

/** A fresh folder inside the run's temp folder (tests/global-setup.ts removes it at the end). */
export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(process.env.LMFLASH_TEST_TMP ?? os.tmpdir(), `lmflash-${prefix}-`));
}

/** stories260K converted by lmflash (group size 64 and int8 unless asked; bits 4: int4 layers, int8 embedding), in a temp folder. */
export async function storiesBlob(groupSize = 64, bits: 4 | 8 = 8): Promise<string> {
  const file = path.join(tempDir('stories'), `stories260K-g${groupSize}-q${bits}.blob`);
  const { blob } = await convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { groupSize, bits });
  writeFileSync(file, blob);
  return file;
}

export function haveFile(p: string): boolean {
  return existsSync(p);
}
