/**
 * `--pace BOARD`: the virtual board answers at a board profile's estimated
 * speed (src/boards.ts), so that its tok/s line says something about a board
 * and a reply lasts long enough to interrupt; the demo runs at a board's pace
 * by default and says so.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { trainNgram } from '../converter/ngram/train.js';
import { paceFor } from '../host/pace.js';
import { findBoard, planNgramOnBoard } from '../src/boards.js';
import { readNgramBlob } from '../src/ngram.js';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT, SHARED } from './paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');
const dir = tempDir('pace');
const small = path.join(dir, 'kjv3.blob');
const wide = path.join(dir, 'kjv-wide.blob');

beforeAll(() => {
  const raw = readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').filter(Boolean);
  writeFileSync(small, trainNgram(raw.slice(0, 3000).map(splitPunctuationLowercase), { order: 3 }).blob);
  writeFileSync(wide, trainNgram(raw, { order: 1 }).blob); // ~28 k words: needs PSRAM
}, 60_000);

function generateJson(args: string[]): { stats: { generated_tokens: number; prompt_tokens: number; tokens_per_second: number; seconds: number } } {
  const r = spawnSync(process.execPath, [CLI, 'generate', '--sim', '--model', small, '-p', 'and the lord said', '-n', '40', '-t', '0', '--json', ...args], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('--pace on the virtual board', () => {
  it('takes the profile\'s estimate: a forward pass waits 1 / (estimated tok/s)', async () => {
    const pace = await paceFor(small, 's3-n8r2');
    const estimate = planNgramOnBoard(readNgramBlob(readFileSync(small)), findBoard('s3-n8r2')).speed!.atStart;
    expect(pace.tokensPerSecond).toBe(estimate);
    expect(pace.stepDelayUs).toBe(Math.round(1e6 / estimate));
  });

  it('generate --sim --pace is no faster than the estimate (unpaced: many times faster)', () => {
    const paced = generateJson(['--pace', 's3-n8r2']);
    const estimate = 1e6 / Math.round(1e6 / planNgramOnBoard(readNgramBlob(readFileSync(small)), findBoard('s3-n8r2')).speed!.atStart);
    const forwards = paced.stats.prompt_tokens + paced.stats.generated_tokens;
    expect(paced.stats.generated_tokens).toBeGreaterThan(5);
    // every forward pass (prompt and reply) waits at least the board's time
    expect(paced.stats.seconds).toBeGreaterThanOrEqual((forwards - 1) / estimate);
    const full = generateJson([]);
    expect(full.stats.seconds).toBeLessThan(paced.stats.seconds / 3);
  });

  it('is refused without --sim, with an unknown profile, or when the model cannot run on that board', async () => {
    expect((await cli('generate', '--model', small, '--pace', 's3-n8r2', '-p', 'x')).err).toMatch(/--pace slows the virtual board: it goes with --sim/);
    expect((await cli('generate', '--sim', '--model', small, '--pace', 's3-x', '-p', 'x')).err).toMatch(/unknown board profile "s3-x": use one of s3-n4, /);
    const r = await cli('generate', '--sim', '--model', wide, '--pace', 's3-n8', '-p', 'x');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/--pace s3-n8: .* cannot run on that board \(the model needs .* of RAM even for a context of 1 token.*choose another profile or --pace off/);
  });
});

describe('the demo', () => {
  it('runs the virtual board at a board\'s pace by default and says so; --pace off runs at full speed', () => {
    const out = tempDir('demo-pace');
    const paced = spawnSync(process.execPath, [CLI, 'demo', '--out', out, '--stories', '300', '--no-chat'], { encoding: 'utf8', timeout: 60_000 });
    expect(paced.status, paced.stderr).toBe(0);
    expect(paced.stderr).toMatch(/virtual board paced like an s3-n8r2 board: ~\d+ tok\/s \(estimate from docs\/hardware\.md's cost model; --pace off for full speed\)/);
    const full = spawnSync(process.execPath, [CLI, 'demo', '--out', out, '--stories', '300', '--no-chat', '--pace', 'off'], { encoding: 'utf8', timeout: 60_000 });
    expect(full.status, full.stderr).toBe(0);
    expect(full.stderr).not.toMatch(/paced like/);
    expect(full.stdout).toBe(paced.stdout); // the same story, only slower
  }, 90_000);
});
