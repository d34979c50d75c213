/**
 * convert's tokenizer check (host/tokenizer-check.ts): a tokenizer of the
 * right size that is not the model's used to convert silently with exit 0;
 * now the converted model scores a short text and convert warns when its
 * perplexity is worse than a uniform guess.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { SHARED, STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const dir = tempDir('tokcheck');
const wrongTok = path.join(dir, 'kjv512.bin');

beforeAll(async () => {
  // a 512-token vocabulary of another corpus: the right size for stories260K, the wrong pieces
  const kjv = path.join(dir, 'kjv.txt');
  writeFileSync(kjv, readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').slice(0, 4000).join('\n'));
  const r = await cli('tokenizer', 'train', kjv, '--vocab', '512', '-o', wrongTok);
  expect(r.code, r.err).toBe(0);
}, 60_000);

describe('convert checks the tokenizer', () => {
  it('with the model\'s own tokenizer: a low perplexity, no warning', async () => {
    const r = await cli('convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'right.blob'));
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const m = /tokenizer check: perplexity ([\d.]+) on two English demo stories \((\d+) tokens; a wrong tokenizer scores above the vocabulary size, 512\)/.exec(r.out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(50);
  });

  it('with a wrong tokenizer of the right size: warns, says what to do, still writes the blob', async () => {
    const out = path.join(dir, 'wrong.blob');
    const r = await cli('convert', STORIES_MODEL, '-t', wrongTok, '-o', out);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^lmflash: warning: the converted model finds two English demo stories less likely than a uniform guess over its 512 tokens \(perplexity [\d,]+ over \d+ tokens;.*the tokenizer is probably not the one the model was trained with.*--check-text FILE\)\n$/);
    const ppl = Number(/perplexity ([\d,]+)/.exec(r.err)![1].replace(/,/g, ''));
    expect(ppl).toBeGreaterThan(5_000);
    expect(existsSync(out)).toBe(true);
  });

  it('--check-text scores the given text; --no-check skips the check', async () => {
    const right = await cli('convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'r2.blob'), '--check-text', STORIES_SAMPLES);
    expect(right.out).toMatch(new RegExp(`tokenizer check: perplexity [\\d.]+ on ${STORIES_SAMPLES.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    const wrong = await cli('convert', STORIES_MODEL, '-t', wrongTok, '-o', path.join(dir, 'w2.blob'), '--check-text', STORIES_SAMPLES);
    expect(wrong.err).toMatch(/warning: the converted model finds .*stories260K-samples\.txt less likely than a uniform guess/);
    const skipped = await cli('convert', STORIES_MODEL, '-t', wrongTok, '-o', path.join(dir, 'w3.blob'), '--no-check');
    expect(skipped.err).toBe('');
    expect(skipped.out).not.toMatch(/tokenizer check/);
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, '\n\n');
    const bad = await cli('convert', STORIES_MODEL, '-t', STORIES_TOKENIZER, '-o', path.join(dir, 'e.blob'), '--check-text', empty);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/empty\.txt: no line of it gives two tokens or more to score: give a text of a few sentences \(nothing was written\)/);
    expect(existsSync(path.join(dir, 'e.blob'))).toBe(false);
  });
});
