/**
 * `eval --native` streams: the native core's output is scored as it arrives,
 * so a long text on a large vocabulary evaluates in bounded memory (the old
 * code held every logit row of a batch, three times over: gigabytes), with the
 * same perplexity as the TypeScript scorer, bit for bit. And the progress bar
 * eval draws on a terminal.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainNgram } from '../converter/ngram/train.js';
import { evaluate } from '../host/commands/eval.js';
import { Progress } from '../host/progress.js';
import { seededRandom } from '../src/random.js';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const dir = tempDir('eval-stream');
const blob = path.join(dir, 'words2.blob');
const text = path.join(dir, 'text.txt');
const VOCAB = 16_000;

/** Lines of words drawn from a Zipf-like law over VOCAB words: a word model with a large vocabulary, trained in a second. */
function zipfText(lines: number, seed: number): string[] {
  const rand = seededRandom(seed);
  const out: string[] = [];
  for (let l = 0; l < lines; l++) {
    const words: string[] = [];
    const n = 6 + Math.floor(rand() * 7);
    for (let w = 0; w < n; w++) words.push(`w${Math.floor(Math.pow(VOCAB, rand()))}`);
    out.push(words.join(' '));
  }
  return out;
}

beforeAll(() => {
  const { blob: bytes } = trainNgram(zipfText(12_000, 1), { order: 2 });
  writeFileSync(blob, bytes);
  writeFileSync(text, zipfText(2_500, 2).join('\n') + '\n');
}, 60_000);

describe('eval --native in bounded memory', () => {
  it('scores ~24 k positions of a 16 k-word vocabulary under a 1 GB address-space limit, as the TypeScript scorer does', async () => {
    // ~24 k positions x 64 KB of logits: 1.5 GB of rows, which the old code buffered (and copied) a batch at a time
    const r = spawnSync('bash', ['-c', `ulimit -v 1000000 && exec node bin/lmflash.js eval "${blob}" --text "${text}" --native --json`], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const native = JSON.parse(r.stdout);
    const ts = JSON.parse((await cli('eval', blob, '--text', text, '--json')).out);
    expect(native.scorer).toBe('native');
    expect(native.tokens).toBeGreaterThan(20_000);
    expect(native.perplexity).toBe(ts.perplexity);
    expect(native.perplexityExcludingOov).toBe(ts.perplexityExcludingOov);
    expect(native.oov).toBe(ts.oov);
  }, 60_000);
});

describe('eval progress bar', () => {
  it('draws on a terminal, ends at 100 % counting positions', async () => {
    let err = '';
    const progress = new Progress({ out: () => undefined, err: (t) => void (err += t) }, { tty: true, unit: 'positions' });
    const r = await evaluate(blob, text, { split: 'all', native: true, progress });
    expect(err).toMatch(/^\reval +\[/);
    const last = err.slice(err.lastIndexOf('\r', err.length - 2)); // the final redraw
    expect(last).toMatch(new RegExp(`\\[#{24}\\] 100%  ${r.tokens.toLocaleString('en-US')}/${r.tokens.toLocaleString('en-US')} positions  [\\d,]+ positions/s  \\d+\\.\\d s\\x1b\\[K\\n$`));
  }, 60_000);

  it('prints no bar when stderr is not a terminal', async () => {
    const r = await cli('eval', blob, '--text', text, '--native');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
  }, 60_000);
});
